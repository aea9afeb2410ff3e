"""The reference accuracy: the model's accuracy on labelled rows it never trained on.

It is measured once, when a version is fitted: ``drift fit`` scores the calibration rows
(held out of every detector bank) and, when they are labelled, stores their accuracy and
count in the version's manifest (``accuracy_calibration``, ``n_calibration``). This module
is the one place that reads it back, and the test of a realized accuracy against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class ReferenceAccuracy:
    """Accuracy on ``n`` labelled held-out rows of the fitted version."""

    accuracy: float
    n: int

    def drop_p_value(self, correct: int, n: int) -> float:
        """One-sided p-value of "the accuracy of ``correct`` of ``n`` rows is below this one"
        (pooled two-proportion z-test; 1.0 when either sample is empty or nothing varies).

        >>> ref = ReferenceAccuracy(0.95, 1000)
        >>> ref.drop_p_value(160, 200) < 1e-6, ref.drop_p_value(190, 200) > 0.3
        (True, True)
        """
        if n == 0 or self.n == 0:
            return 1.0
        pooled = (correct + self.accuracy * self.n) / (n + self.n)
        se = float(np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / self.n)))
        if se == 0.0:
            return 1.0
        return float(stats.norm.cdf((correct / n - self.accuracy) / se))


def reference_accuracy(manifest: Mapping[str, Any]) -> ReferenceAccuracy | None:
    """The fitted version's reference accuracy; None when its calibration rows had no labels
    (or were production nights: ``drift recalibrate``, ``calibration_nights``).

    >>> reference_accuracy({"accuracy_calibration": 0.97, "n_calibration": 300})
    ReferenceAccuracy(accuracy=0.97, n=300)
    >>> reference_accuracy({"accuracy_calibration": None, "n_calibration": 300}) is None
    True
    """
    accuracy = manifest.get("accuracy_calibration")
    if accuracy is None or not manifest.get("n_calibration"):
        return None
    return ReferenceAccuracy(float(accuracy), int(manifest["n_calibration"]))
