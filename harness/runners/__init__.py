"""harness.runners"""
