"""Average thresholded confidence (ATC, Garg et al. 2022; docs/methods.md §8.3)."""

from __future__ import annotations

from typing import Any

import numpy as np

from drift.performance.base import ESTIMATORS, Estimate, PerformanceEstimator, band


class ATC(PerformanceEstimator):
    """Estimated accuracy = the share of rows whose confidence exceeds a threshold ``t``.

    ``fit`` sets ``t`` on labelled reference rows so that the share of them above it
    equals their accuracy (ATC-MC: the score is the top softmax probability, here its
    log). ``estimate`` is the share of the night's rows above ``t``. Band: the
    binomial variance of that share, ``a(1-a)/n``, plus the reference accuracy's
    sampling variance ``a_ref(1-a_ref)/m`` (Agresti-Coull adjusted; the threshold inherits it).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.5, 1.0, 20_000)
    >>> atc = ATC().fit_scores(np.log(p), rng.random(20_000) < p)
    >>> round(atc.reference_accuracy_, 2), round(float(np.exp(atc.threshold_)), 2)
    (0.75, 0.63)
    >>> e = atc.estimate_scores(np.log(rng.uniform(0.5, 1.0, 5_000)))
    >>> e.low < 0.75 < e.high
    True
    """

    name = "atc"

    def _fit(self, scores: np.ndarray, correct: np.ndarray) -> None:
        # the (1 - accuracy) quantile: a share `accuracy` of the scores lies above it
        self.threshold_ = float(np.quantile(scores, 1.0 - self.reference_accuracy_))

    def estimate_scores(self, scores: np.ndarray) -> Estimate:
        self._check_fitted()
        scores = np.asarray(scores, dtype=np.float64)
        if len(scores) == 0:
            raise ValueError("atc: no rows to estimate on")
        a = float((scores > self.threshold_).mean())
        return band(a, a * (1 - a) / len(scores) + self._calibration_variance(), len(scores))

    def _state(self) -> dict[str, Any]:
        return {"threshold": self.threshold_}

    def _restore(self, state: dict[str, Any]) -> None:
        self.threshold_ = float(state["threshold"])


ESTIMATORS[ATC.name] = ATC
