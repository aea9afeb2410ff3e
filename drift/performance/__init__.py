"""The model's accuracy per night: realized from feedback labels, estimated without them.

Pure numerics (no database, no files), like :mod:`drift.stats`:

* :mod:`~drift.performance.realized` — :func:`realized_performance`: accuracy with
  a Wilson 95% interval, per-class recall and macro-F1 of the labelled rows;
* :mod:`~drift.performance.base` — :class:`PerformanceEstimator` (``fit(logits,
  y_true) -> self``, ``estimate(logits) -> Estimate``), the confidence score and
  the JSON form every estimator is saved in (never a pickle);
* :mod:`~drift.performance.cbpe` — :class:`CBPE`, confidence-based performance
  estimation: the mean of isotonically calibrated confidences;
* :mod:`~drift.performance.atc` — :class:`ATC`, average thresholded confidence
  (Garg et al. 2022): the share of rows above a threshold fitted on reference;
* :mod:`~drift.performance.reference` — :func:`reference_accuracy`: the fitted version's
  accuracy on its held-out calibration rows, and the test of a realized accuracy against it.
"""

from drift.performance.atc import ATC
from drift.performance.base import (
    ESTIMATORS,
    Estimate,
    PerformanceEstimator,
    confidence,
    load_estimator,
)
from drift.performance.cbpe import CBPE
from drift.performance.realized import RealizedPerformance, realized_performance, wilson_interval
from drift.performance.reference import ReferenceAccuracy, reference_accuracy

__all__ = [
    "ATC",
    "CBPE",
    "ESTIMATORS",
    "Estimate",
    "PerformanceEstimator",
    "RealizedPerformance",
    "ReferenceAccuracy",
    "confidence",
    "load_estimator",
    "realized_performance",
    "reference_accuracy",
    "wilson_interval",
]
