"""Energy score (Liu, Wang, Owens, Li, NeurIPS 2020)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
from scipy.special import logsumexp

from drift.batch import FeatureBatch
from drift.detectors import register
from drift.detectors.base import Detector


@register
class EnergyDetector(Detector):
    r"""Free energy of the logits: :math:`E(x) = -T \log \sum_c e^{f_c(x)/T}`.

    Higher energy = more OOD. Needs no fitting beyond recording the class count.

    Parameters
    ----------
    temperature
        T; the paper and OpenOOD use 1.

    Examples
    --------
    >>> import numpy as np
    >>> from drift.batch import FeatureBatch
    >>> ref = FeatureBatch(np.zeros((2, 3)), logits=np.array([[5.0, 0.0], [0.0, 5.0]]))
    >>> det = EnergyDetector().fit(ref)
    >>> det.score(FeatureBatch(np.zeros((1, 3)), logits=np.array([[0.0, 0.0]]))).round(4)
    array([-0.6931])

    References
    ----------
    Liu et al., "Energy-based Out-of-distribution Detection", NeurIPS 2020.
    """

    name = "energy"
    needs = ("logits",)

    def __init__(self, temperature: float = 1.0):
        self.temperature = temperature

    def fit(self, reference: FeatureBatch) -> Self:
        if self.temperature <= 0:
            raise ValueError(f"energy: temperature must be > 0, got {self.temperature}")
        self.n_classes_ = int(self._require(reference, "logits").shape[1])
        return self

    def score(self, batch: FeatureBatch) -> np.ndarray:
        self._check_fitted()
        logits = self._require(batch, "logits").astype(np.float64)
        t = self.temperature
        return -t * logsumexp(logits / t, axis=1)

    def _fitted_state(self, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"n_classes_": self.n_classes_}

    def _restore_state(self, arrays: dict, scalars: dict, folder: Path) -> None:
        self.n_classes_ = scalars["n_classes_"]
