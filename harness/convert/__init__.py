"""harness.convert"""
