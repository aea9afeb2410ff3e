"""Confidence-based performance estimation (CBPE, as NannyML's; docs/methods.md §8.2)."""

from __future__ import annotations

from typing import Any

import numpy as np

from drift.performance.base import ESTIMATORS, Estimate, PerformanceEstimator, band


class CBPE(PerformanceEstimator):
    """Expected accuracy = the mean of calibrated confidences.

    ``fit`` maps each row's confidence score to the probability that the row is
    classified correctly by isotonic regression of correctness on the score
    (monotone, no parametric shape; its mean on the fitted rows is exactly their
    accuracy). ``estimate`` averages the calibrated confidences of the night.
    Band: the binomial variance of the night's accuracy at the estimate,
    ``a(1-a)/n`` (it bounds both the Poisson-binomial spread of realized accuracy
    and the sampling variance of the mean), plus the calibration rows' sampling
    variance ``a_ref(1-a_ref)/m``. The band holds while the calibration holds:
    under covariate shift confidence and correctness drift apart and CBPE is
    optimistic (``benchmarks/performance_estimation.py`` says by how much).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.5, 1.0, 20_000)          # calibrated probabilities
    >>> correct = rng.random(20_000) < p
    >>> cbpe = CBPE().fit_scores(np.log(p), correct)
    >>> night = rng.uniform(0.5, 0.8, 5_000)       # a less confident night: accuracy 0.65
    >>> e = cbpe.estimate_scores(np.log(night))
    >>> round(e.value, 2), e.low < 0.65 < e.high
    (0.65, True)
    """

    name = "cbpe"

    def _fit(self, scores: np.ndarray, correct: np.ndarray) -> None:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(
            y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip"
        )
        iso.fit(scores, correct.astype(np.float64))
        self.x_ = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.y_ = np.asarray(iso.y_thresholds_, dtype=np.float64)

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        """Each row's probability of being classified correctly."""
        self._check_fitted()
        return np.interp(np.asarray(scores, dtype=np.float64), self.x_, self.y_)

    def estimate_scores(self, scores: np.ndarray) -> Estimate:
        p = self.calibrated(scores)
        if len(p) == 0:
            raise ValueError("cbpe: no rows to estimate on")
        a = float(p.mean())
        return band(a, a * (1 - a) / len(p) + self._calibration_variance(), len(p))

    def _state(self) -> dict[str, Any]:
        return {"x": self.x_.tolist(), "y": self.y_.tolist()}

    def _restore(self, state: dict[str, Any]) -> None:
        self.x_ = np.asarray(state["x"], dtype=np.float64)
        self.y_ = np.asarray(state["y"], dtype=np.float64)


ESTIMATORS[CBPE.name] = CBPE
