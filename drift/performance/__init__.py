"""Model performance from labels: realized accuracy of a labelled sample, and the
reference accuracy it is compared with."""

from drift.performance.realized import RealizedPerformance, realized_performance, wilson_interval
from drift.performance.reference import ReferenceAccuracy, reference_accuracy

__all__ = [
    "RealizedPerformance",
    "ReferenceAccuracy",
    "realized_performance",
    "reference_accuracy",
    "wilson_interval",
]
