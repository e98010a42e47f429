"""harness.devices"""
