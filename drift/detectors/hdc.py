"""Hyperdimensional class-prototype OOD detector (HDFF, Wilson et al., WACV 2023).

The HDC detector of the EAR adaptation loop: ``EARModel.hdc_`` is one of these with
a class hypervector per (domain, class), which gives EAR's OOD score and the
per-class similarities and batch-level *domain hypervectors* of its HDC routing
ablations (``drift.adapt.ear.routing.HDCRouter``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np

from drift.batch import FeatureBatch
from drift.detectors import register
from drift.detectors.base import Detector, l2_normalise


def _unit_rows(x: np.ndarray) -> np.ndarray:
    # float64 hypervectors stay float64 (cosines feed EAR's routing)
    return l2_normalise(x, eps=1e-12, dtype=np.float64)


@register
class HDCDetector(Detector):
    r"""Cosine similarity of a row's hypervector to its closest class hypervector.

    A row's features :math:`z \in \mathbb{R}^d` are mean-centred by one fitted scalar
    :math:`\mu` (the mean over reference rows and feature dimensions) and projected to
    :math:`V(z) = (z - \mu) P` with a seeded random :math:`P \in \mathbb{R}^{d \times D}`
    of orthonormal rows. Each class hypervector is the bundle (sum)
    :math:`H_c = \sum_{y_i = c} V(z_i)` of its reference rows. The score is
    :math:`-\max_c \cos(V(z), H_c)`: higher = more OOD. The reference needs labels.

    HDFF fuses several layers by summing their hypervectors; a :class:`FeatureBatch`
    carries one feature vector per row, so this is the single-layer case.

    Parameters
    ----------
    dim
        hypervector dimension D (10,000 in HDFF). Must be ≥ the feature dimension
        for the rows of :math:`P` to be orthonormal.
    gamma
        forgetting factor of :meth:`partial_fit`: old class hypervectors are scaled
        by ``gamma`` in (0, 1] before new rows are added (1 = never forget).
    seed
        seed of the projection matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from drift.batch import FeatureBatch
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.normal(size=(3, 16)) * 3
    >>> labels = rng.integers(0, 3, 300)
    >>> ref = FeatureBatch(centres[labels] + rng.normal(size=(300, 16)), labels=labels)
    >>> det = HDCDetector(dim=1000).fit(ref)
    >>> det.class_similarities(FeatureBatch(centres)).argmax(axis=1)
    array([0, 1, 2])
    >>> bool(det.score(FeatureBatch(centres)).max() < det.score(FeatureBatch(-centres)).min())
    True
    >>> det.partial_fit(FeatureBatch(centres[:1] + 5, labels=np.array([7]))).classes_
    array([0, 1, 2, 7])

    References
    ----------
    Wilson, Fischer, Sünderhauf, Dayoub, "Hyperdimensional Feature Fusion for
    Out-of-Distribution Detection", WACV 2023.
    """

    name = "hdc"
    needs = ("features", "labels")

    def __init__(self, dim: int = 10_000, gamma: float = 1.0, seed: int = 0) -> None:
        self.dim = dim
        self.gamma = gamma
        self.seed = seed

    def fit(self, reference: FeatureBatch) -> Self:
        labels = self._require(reference, "labels")
        d = reference.features.shape[1]
        if self.dim < d:
            raise ValueError(f"hdc: dim={self.dim} must be ≥ the feature dimension {d}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"hdc: gamma must be in (0, 1], got {self.gamma}")
        # QR of a Gaussian (D, d) matrix: orthonormal columns, i.e. P = Qᵀ has orthonormal rows.
        gaussian = np.random.default_rng(self.seed).standard_normal((self.dim, d))
        q, _ = np.linalg.qr(gaussian)
        self.projection_ = np.ascontiguousarray(q.T, dtype=np.float32)
        self._set_width(reference.features)
        self.centre_ = float(reference.features.mean(dtype=np.float64))
        self.classes_ = np.empty(0, dtype=np.int64)
        self.class_vectors_ = np.empty((0, self.dim), dtype=np.float64)
        return self._bundle(reference.features, labels)

    def partial_fit(self, batch: FeatureBatch) -> Self:
        """Streaming update: ``H_c ← gamma·H_c + Σ V(x)`` over the new labelled rows.

        Classes never seen before get new hypervectors. On an unfitted detector this
        is ``fit`` (the centring scalar and projection come from this first batch).
        """
        if not self.is_fitted:
            return self.fit(batch)
        labels = self._require(batch, "labels")
        self.class_vectors_ *= self.gamma
        return self._bundle(batch.features, labels)

    def _bundle(self, features: np.ndarray, labels: np.ndarray) -> Self:
        new = np.setdiff1d(np.unique(labels), self.classes_)
        if len(new):
            self.classes_ = np.concatenate([self.classes_, new])
            order = np.argsort(self.classes_, kind="stable")
            self.classes_ = self.classes_[order]
            grown = np.vstack([self.class_vectors_, np.zeros((len(new), self.dim))])
            self.class_vectors_ = grown[order]
        hypervectors = self.hypervectors(features)
        rows = np.searchsorted(self.classes_, labels)
        np.add.at(self.class_vectors_, rows, hypervectors)
        return self

    def hypervectors(self, features: np.ndarray) -> np.ndarray:
        """float64 (n, D) hypervectors V(z) of feature rows."""
        self._check_fitted()
        centred = np.asarray(self._check_width(features), dtype=np.float32) - np.float32(self.centre_)
        return (centred @ self.projection_).astype(np.float64)

    def class_similarities(self, batch: FeatureBatch) -> np.ndarray:
        """(n, C) cosine similarity of each row to each class hypervector (``classes_`` order)."""
        return _unit_rows(self.hypervectors(batch.features)) @ _unit_rows(self.class_vectors_).T

    def domain_hypervector(self, batch: FeatureBatch) -> np.ndarray:
        """(D,) unit-norm bundle of a batch: what EAR compares to route a domain."""
        return _unit_rows(self.hypervectors(batch.features).sum(axis=0))

    def score(self, batch: FeatureBatch) -> np.ndarray:
        return -self.class_similarities(batch).max(axis=1)

    def _fitted_state(self, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {
            "projection_": self.projection_,
            "classes_": self.classes_,
            "class_vectors_": self.class_vectors_,
        }
        return arrays, {"centre_": self.centre_}

    def _restore_state(self, arrays: dict, scalars: dict, folder: Path) -> None:
        self.projection_ = arrays["projection_"]
        self.classes_ = arrays["classes_"]
        self.class_vectors_ = arrays["class_vectors_"]
        self.centre_ = scalars["centre_"]
