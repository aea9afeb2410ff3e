"""Maximum softmax probability baseline (Hendrycks & Gimpel, ICLR 2017)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
from scipy.special import softmax

from drift.batch import FeatureBatch
from drift.detectors import register
from drift.detectors.base import Detector


@register
class MSPDetector(Detector):
    r"""Minus the largest softmax probability: :math:`-\max_c \mathrm{softmax}(f(x)/T)_c`.

    Higher = more OOD (a confident prediction scores near -1, a uniform one -1/C).
    Same sign and formula as pytorch-ood's ``MaxSoftmax``.

    Parameters
    ----------
    temperature
        T; 1 is the original baseline, T > 1 is the temperature-scaled variant.

    Examples
    --------
    >>> import numpy as np
    >>> from drift.batch import FeatureBatch
    >>> ref = FeatureBatch(np.zeros((2, 3)), logits=np.array([[5.0, 0.0], [0.0, 5.0]]))
    >>> det = MSPDetector().fit(ref)
    >>> det.score(FeatureBatch(np.zeros((2, 3)), logits=np.array([[0.0, 0.0], [9.0, 0.0]]))).round(4)
    array([-0.5   , -0.9999])

    References
    ----------
    Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution
    Examples in Neural Networks", ICLR 2017.
    """

    name = "msp"
    needs = ("logits",)

    def __init__(self, temperature: float = 1.0):
        self.temperature = temperature

    def fit(self, reference: FeatureBatch) -> Self:
        if self.temperature <= 0:
            raise ValueError(f"msp: temperature must be > 0, got {self.temperature}")
        self.n_classes_ = int(self._require(reference, "logits").shape[1])
        return self

    def score(self, batch: FeatureBatch) -> np.ndarray:
        self._check_fitted()
        logits = self._require(batch, "logits").astype(np.float64)
        return -softmax(logits / self.temperature, axis=1).max(axis=1)

    def _fitted_state(self, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"n_classes_": self.n_classes_}

    def _restore_state(self, arrays: dict, scalars: dict, folder: Path) -> None:
        self.n_classes_ = scalars["n_classes_"]
