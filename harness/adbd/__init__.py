"""harness.adbd"""
