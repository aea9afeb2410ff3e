"""Deep nearest-neighbour OOD score (Sun, Ming, Zhu, Li, ICML 2022) on FAISS."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np

from drift.batch import FeatureBatch
from drift.detectors import register
from drift.detectors.base import Detector


def l2_normalise(x: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (epsilon inside the denominator)."""
    x = np.asarray(x, dtype=np.float32)
    return np.ascontiguousarray(x / (np.linalg.norm(x, axis=1, keepdims=True) + eps))


@register
class KNNDetector(Detector):
    """Distance from a row's L2-normalised features to its k-th nearest reference row.

    Higher = more OOD. Exact search on a FAISS flat index.

    Parameters
    ----------
    k
        which neighbour's distance is the score (50 as in the paper for CIFAR-10).

    Examples
    --------
    >>> import numpy as np
    >>> from drift.batch import FeatureBatch
    >>> rng = np.random.default_rng(0)
    >>> det = KNNDetector(k=5).fit(FeatureBatch(rng.normal(size=(200, 8))))
    >>> det.score(FeatureBatch(rng.normal(size=(3, 8)))).shape
    (3,)

    References
    ----------
    Sun et al., "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022.
    """

    name = "knn"

    def __init__(self, k: int = 50):
        self.k = k

    def fit(self, reference: FeatureBatch) -> Self:
        import faiss

        bank = l2_normalise(reference.features)
        if not 1 <= self.k <= len(bank):
            raise ValueError(f"knn: k={self.k} must be between 1 and the bank size {len(bank)}")
        self.index_ = faiss.IndexFlatL2(bank.shape[1])
        self.index_.add(bank)
        return self

    def score(self, batch: FeatureBatch) -> np.ndarray:
        self._check_fitted()
        squared, _ = self.index_.search(l2_normalise(batch.features), self.k)
        # FAISS returns squared L2; clip rounding below zero before the square root.
        return np.sqrt(np.maximum(squared[:, -1].astype(np.float64), 0.0))

    def _fitted_state(self, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        import faiss

        faiss.write_index(self.index_, str(folder / "index.faiss"))
        return {}, {}

    def _restore_state(self, arrays: dict, scalars: dict, folder: Path) -> None:
        import faiss

        self.index_ = faiss.read_index(str(folder / "index.faiss"))
