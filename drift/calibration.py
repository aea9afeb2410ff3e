"""Conformal calibration of detector scores.

Fit on held-out reference rows that are in no detector's bank. A row's
conformal p-value is ``p = (1 + #{calibration >= s}) / (m + 1)``; a row is
flagged when ``p <= 1 - tpr``. For exchangeable in-distribution rows this
flags at most ``1 - tpr`` of them in expectation, whatever the score's scale.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Self

import numpy as np


def flag_ranks(tpr: float, n_calibration: int) -> int:
    """K = floor((1 - tpr)(m + 1)): a row is flagged when fewer than K of the ``m`` calibration
    scores reach it, so K / (m + 1) is the expected in-distribution flag rate.

    Examples
    --------
    >>> flag_ranks(0.95, 1999), flag_ranks(0.9, 99)
    (100, 10)
    """
    # the epsilon keeps an exact product such as 0.05 * 2000 from flooring to 99
    return math.floor((1.0 - tpr) * (n_calibration + 1) + 1e-9)


class ConformalCalibrator:
    """Conformal p-values and the threshold at a target TPR for one detector's scores.

    Parameters
    ----------
    tpr
        share of in-distribution rows that must pass (not be flagged); 0.95 by default.

    Examples
    --------
    >>> import numpy as np
    >>> cal = ConformalCalibrator(tpr=0.9).fit(np.arange(99.0))
    >>> cal.p_values(np.array([-1.0, 98.0, 1000.0]))
    array([1.  , 0.02, 0.01])
    >>> cal.flags(np.array([50.0, 95.0])).tolist()
    [False, True]
    """

    def __init__(self, tpr: float = 0.95) -> None:
        self.tpr = tpr

    def fit(self, scores: np.ndarray) -> Self:
        if not 0.0 < self.tpr < 1.0:
            raise ValueError(f"calibration: tpr must be in (0, 1), got {self.tpr}")
        scores = np.sort(np.asarray(scores, dtype=np.float64))
        if scores.ndim != 1 or len(scores) == 0 or not np.isfinite(scores).all():
            raise ValueError("calibration: need a non-empty 1-D array of finite scores")
        self.scores_ = scores
        return self

    @property
    def m(self) -> int:
        return len(self.scores_)

    @property
    def n_flag_ranks(self) -> int:
        """K = :func:`flag_ranks` of this calibrator's ``tpr`` and ``m``."""
        return flag_ranks(self.tpr, self.m)

    @property
    def threshold_(self) -> float:
        """Scores strictly above this are flagged (the K-th largest calibration score)."""
        k = self.n_flag_ranks
        return float(self.scores_[self.m - k]) if k >= 1 else math.inf

    def p_values(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        n_at_least = self.m - np.searchsorted(self.scores_, scores, side="left")
        return (1.0 + n_at_least) / (self.m + 1.0)

    def flags(self, scores: np.ndarray) -> np.ndarray:
        """True where a row is flagged OOD (p-value <= 1 - tpr)."""
        return self.p_values(scores) <= (1.0 - self.tpr) + 1e-12

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / "calibration_scores.npy", self.scores_)
        (path / "calibration.json").write_text(json.dumps({"tpr": self.tpr, "m": self.m}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> ConformalCalibrator:
        path = Path(path)
        meta = json.loads((path / "calibration.json").read_text())
        cal = cls(tpr=meta["tpr"])
        cal.scores_ = np.load(path / "calibration_scores.npy", allow_pickle=False)
        return cal


#: fewest calibration scores at or above the threshold (K) a production window must give:
#: the true flag rate of a threshold on m rows varies by about 1 / sqrt(K) of itself
MIN_FLAG_RANKS = 50
#: nights after a fit that the in-sample check pools
IN_SAMPLE_NIGHTS = 7
#: false-alarm budget of the in-sample check per look, split across detectors (Bonferroni);
#: a fit is looked at on its first IN_SAMPLE_NIGHTS nights, so at most 7e-3 per fit
IN_SAMPLE_LEVEL = 1e-3


def min_calibration_rows(tpr: float) -> int:
    """Calibration rows needed for K >= :data:`MIN_FLAG_RANKS` at ``tpr``.

    Examples
    --------
    >>> min_calibration_rows(0.95), min_calibration_rows(0.9)
    (1000, 500)
    """
    return math.ceil(MIN_FLAG_RANKS / (1.0 - tpr) - 1e-9)


def in_sample_warning(
    nights: dict[str, list[tuple[int, int]]],
    calibration: dict[str, tuple[int, float]],
    monitor: str,
    level: float = IN_SAMPLE_LEVEL,
) -> str | None:
    """One sentence when the first nights after a fit flag evenly more than calibrated.

    Thresholds fitted on rows the model trained on are too tight: every unseen
    row scores a little higher, so *every* night flags a little too much. A
    detector is in-sample when the pooled count of its ``(n_rows, n_flagged)``
    ``nights`` is significant under the flag-count test's beta-binomial null
    (with the calibration's ``m`` and ``tpr`` from ``calibration``) at
    ``level`` / #detectors, and no night stands out from the others (one-sided
    binomial test of a night against the pooled rate of the rest at the same
    level) - a shift that starts is concentrated in its nights, a calibration
    bias is not. It is a warning about calibration, not a drift event.

    Examples
    --------
    >>> quiet = [(1000, 52), (1000, 47), (1000, 55)]
    >>> in_sample_warning({"energy": quiet}, {"energy": (1999, 0.95)}, "m") is None
    True
    >>> tight = [(1000, 95), (1000, 101), (1000, 90), (1000, 99)]
    >>> print(in_sample_warning({"energy": tight}, {"energy": (1999, 0.95)}, "m"))  # doctest: +ELLIPSIS
    calibration looks in-sample: energy flagged 9.6% of 4000 rows over the first 4 nights after the fit (calibrated 5.0%, p=...), evenly across nights; ...
    """
    from scipy import stats as scipy_stats

    from drift.stats import expected_flag_rate, flag_count_test

    per_detector_level = level / max(len(nights), 1)
    findings = []
    for name, counts in sorted(nights.items()):
        if not counts:
            continue
        m, tpr = calibration[name]
        n_rows = sum(n for n, _ in counts)
        n_flagged = sum(f for _, f in counts)
        pooled = flag_count_test(n_flagged, n_rows, m, tpr)
        if pooled.p_value > per_detector_level:
            continue
        extreme = False
        for n, flagged in counts if len(counts) > 1 else []:
            rest_rate = (n_flagged - flagged) / max(n_rows - n, 1)
            if scipy_stats.binom.sf(flagged - 1, n, min(max(rest_rate, 1e-9), 1.0)) <= per_detector_level:
                extreme = True
        if not extreme:
            findings.append(
                f"{name} flagged {n_flagged / n_rows:.1%} of {n_rows} rows over the "
                f"{'first night' if len(counts) == 1 else f'first {len(counts)} nights'} after the fit "
                f"(calibrated {expected_flag_rate(tpr, m):.1%}, "
                f"p={pooled.p_value:.1g})"
            )
    if not findings:
        return None
    return (
        f"calibration looks in-sample: {'; '.join(findings)}, evenly across nights; the thresholds "
        "were likely fitted on rows the model trained on - declare clean production nights with "
        f"reference.calibration_nights and re-fit, or run `drift recalibrate --monitor {monitor} "
        "--start D1 --end D2`"
    )
