"""driftwatch: nightly data-drift and OOD monitoring for production PyTorch models."""

__version__ = "0.1.0"
