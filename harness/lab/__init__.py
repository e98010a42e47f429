"""harness.lab"""
