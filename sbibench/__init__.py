"""sbibench: a benchmark and validation suite for simulation-based inference."""

__version__ = "0.1.0"

__all__ = ["__version__"]
