"""Class-conditional Gaussian with a tied covariance (Lee et al., NeurIPS 2018; OpenOOD ``mds``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np

from drift.batch import FeatureBatch
from drift.detectors import register
from drift.detectors.base import Detector, l2_normalise


@register
class MahalanobisDetector(Detector):
    r"""Mahalanobis distance to the nearest class mean under one shared covariance.

    :math:`s(x) = \min_c \sqrt{(z - \mu_c)^\top \Sigma^{-1} (z - \mu_c)}`, higher = more OOD,
    where :math:`\mu_c` are the class means of the reference features and
    :math:`\Sigma` the covariance of the class-centred features (tied across classes).
    Needs labels in the reference batch.

    Parameters
    ----------
    normalise
        L2-normalise features first (default; steadier with ReLU features of varying
        norm). ``False`` gives the raw-feature detector of the paper and pytorch-ood.
    shrinkage
        ``"ledoit-wolf"`` (default: the Ledoit–Wolf optimal shrinkage towards a scaled
        identity, which keeps :math:`\Sigma` invertible when features outnumber rows),
        or a float in [0, 1] for a fixed shrinkage (0 = the empirical covariance).

    Examples
    --------
    >>> import numpy as np
    >>> from drift.batch import FeatureBatch
    >>> rng = np.random.default_rng(0)
    >>> ref = FeatureBatch(rng.normal(size=(300, 4)) + 3, labels=rng.integers(0, 3, 300))
    >>> det = MahalanobisDetector().fit(ref)
    >>> near, far = det.score(FeatureBatch(np.array([[3.0, 3, 3, 3], [3, -3, 3, -3]])))
    >>> bool(far > near)
    True

    References
    ----------
    Lee, Lee, Lee, Shin, "A Simple Unified Framework for Detecting Out-of-Distribution
    Samples and Adversarial Attacks", NeurIPS 2018.
    """

    name = "mahalanobis"
    needs = ("features", "labels")

    def __init__(self, normalise: bool = True, shrinkage: float | str = "ledoit-wolf") -> None:
        self.normalise = normalise
        self.shrinkage = shrinkage

    def fit(self, reference: FeatureBatch) -> Self:
        from sklearn.covariance import ledoit_wolf, shrunk_covariance

        labels = self._require(reference, "labels")
        z = self._prepare(reference.features)
        classes, inverse = np.unique(labels, return_inverse=True)
        means = np.stack([z[inverse == i].mean(axis=0) for i in range(len(classes))])
        centred = z - means[inverse]
        if self.shrinkage == "ledoit-wolf":
            covariance, _ = ledoit_wolf(centred, assume_centered=True)
        elif isinstance(self.shrinkage, (int, float)) and 0.0 <= self.shrinkage <= 1.0:
            covariance = shrunk_covariance(centred.T @ centred / len(z), float(self.shrinkage))
        else:
            raise ValueError(
                f"mahalanobis: shrinkage must be 'ledoit-wolf' or in [0, 1], got {self.shrinkage!r}"
            )
        self.classes_ = classes
        self.means_ = means
        # pinv: an empirical covariance (shrinkage=0) may be singular
        self.precision_ = np.linalg.pinv(covariance, hermitian=True)
        self._set_width(reference.features)
        return self

    def _prepare(self, features: np.ndarray) -> np.ndarray:
        return (l2_normalise(features) if self.normalise else features).astype(np.float64)

    def class_distances(self, batch: FeatureBatch) -> np.ndarray:
        """(n, C) squared Mahalanobis distances to each class mean (``classes_`` order)."""
        self._check_fitted()
        z = self._prepare(self._check_width(batch.features))
        # (z-μ)ᵀP(z-μ) = zᵀPz − 2 zᵀPμ + μᵀPμ: one matmul for all classes
        projected = z @ self.precision_
        squared = (
            np.einsum("nd,nd->n", projected, z)[:, None]
            - 2.0 * projected @ self.means_.T
            + np.einsum("cd,cd->c", self.means_ @ self.precision_, self.means_)[None, :]
        )
        return np.maximum(squared, 0.0)

    def score(self, batch: FeatureBatch) -> np.ndarray:
        return np.sqrt(self.class_distances(batch).min(axis=1))

    def _fitted_state(self, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"classes_": self.classes_, "means_": self.means_, "precision_": self.precision_}, {}

    def _restore_state(self, arrays: dict, scalars: dict, folder: Path) -> None:
        self.classes_ = arrays["classes_"]
        self.means_ = arrays["means_"]
        self.precision_ = arrays["precision_"]
