"""harness: on-device mobile inference benchmarking."""

__version__ = "0.1.0"
