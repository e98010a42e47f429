"""harness.store"""
