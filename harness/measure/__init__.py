"""harness.measure"""
