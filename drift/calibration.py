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

    def __init__(self, tpr: float = 0.95):
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
