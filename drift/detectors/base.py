"""The Detector contract: fit on reference rows, score new rows, higher = more OOD.

Persistence never pickles: a saved detector is a folder holding ``detector.json``
(type, format version, constructor params, small fitted scalars), ``arrays.npz``
(fitted arrays, loaded with ``allow_pickle=False``) and, for index-backed
detectors, extra files such as a FAISS index.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import DTypeLike

from drift.atomic import atomic_folder
from drift.batch import FeatureBatch
from drift.params import ParamsMixin

FORMAT_VERSION = 1


def l2_normalise(x: np.ndarray, eps: float = 1e-10, dtype: DTypeLike = np.float32) -> np.ndarray:
    """Rows of ``x`` (its last axis) scaled to unit L2 norm, epsilon inside the denominator.

    Examples
    --------
    >>> l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[0.6, 0.8],
           [0. , 0. ]], dtype=float32)
    >>> l2_normalise(np.array([3.0, 4.0]), dtype=np.float64)
    array([0.6, 0.8])
    """
    x = np.asarray(x, dtype=dtype)
    return np.ascontiguousarray(x / (np.linalg.norm(x, axis=-1, keepdims=True) + eps))


class NotFittedError(RuntimeError):
    """The detector was used before ``fit``."""


class DetectorFileError(ValueError):
    """A saved detector is missing, of another type, or of an unknown format version."""


class Detector(ParamsMixin, ABC):
    """Base class of every OOD detector.

    Subclasses store their constructor arguments unchanged as attributes of the
    same name (scikit-learn style: no work in ``__init__``), keep fitted state in
    attributes ending with ``_``, and implement ``fit``, ``score``,
    ``_fitted_state`` and ``_restore_state``.
    """

    name: ClassVar[str]
    #: what the detector reads: "features" and/or "logits" (fit and score), "labels"
    #: (the reference's, at fit); checked against each monitor when its config loads
    needs: ClassVar[tuple[str, ...]] = ("features",)

    @abstractmethod
    def fit(self, reference: FeatureBatch) -> Self:
        """Learn what in-distribution looks like from ``reference``; returns self."""

    @abstractmethod
    def score(self, batch: FeatureBatch) -> np.ndarray:
        """float64 (n,) OOD scores, higher = more OOD."""

    @property
    def is_fitted(self) -> bool:
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{self.name}: call fit() before score()")

    def _set_width(self, features: np.ndarray) -> None:
        """Remember the fitted feature width (scikit-learn's ``n_features_in_``)."""
        self.n_features_in_ = int(features.shape[1])

    def _check_width(self, features: np.ndarray) -> np.ndarray:
        """``features``, if they are as wide as the fitted ones; else one clear line."""
        expected = getattr(self, "n_features_in_", None)
        if expected is not None and features.shape[-1] != expected:
            raise ValueError(f"{self.name}: expected {expected} features, got {features.shape[-1]}")
        return features

    def _require(self, batch: FeatureBatch, what: str) -> np.ndarray:
        value = getattr(batch, what)
        if value is None:
            raise ValueError(f"{self.name}: this detector needs {what}, the batch has none")
        return value

    # -- persistence ------------------------------------------------------------
    @abstractmethod
    def _fitted_state(self, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Fitted arrays and JSON-able scalars; may also write extra files into ``folder``."""

    @abstractmethod
    def _restore_state(
        self, arrays: dict[str, np.ndarray], scalars: dict[str, Any], folder: Path
    ) -> None:
        """Inverse of ``_fitted_state``."""

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted detector to the folder ``path`` atomically (temp folder + rename)."""
        self._check_fitted()
        with atomic_folder(path) as tmp:
            arrays, scalars = self._fitted_state(tmp)
            np.savez(tmp / "arrays.npz", allow_pickle=False, **arrays)
            meta = {
                "type": self.name,
                "format_version": FORMAT_VERSION,
                "params": self.get_params(),
                "n_features_in": getattr(self, "n_features_in_", None),
                "state": scalars,
            }
            (tmp / "detector.json").write_text(json.dumps(meta, indent=2))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Detector:
        """Load a detector saved by ``save``.

        Called on the base class it returns whatever type was saved; called on a
        subclass it refuses a file of another type.
        """
        from drift.detectors import detector_class

        path = Path(path)
        meta_file = path / "detector.json"
        if not meta_file.is_file():
            raise DetectorFileError(f"{path}: not a saved detector (no detector.json)")
        meta = json.loads(meta_file.read_text())
        saved_type = meta.get("type")
        if cls is not Detector and saved_type != cls.name:
            raise DetectorFileError(f"{path}: holds a '{saved_type}' detector, not '{cls.name}'")
        if meta.get("format_version") != FORMAT_VERSION:
            raise DetectorFileError(
                f"{path}: format version {meta.get('format_version')!r}; "
                f"this driftwatch reads version {FORMAT_VERSION}"
            )
        detector = detector_class(saved_type)(**meta["params"])
        with np.load(path / "arrays.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        detector._restore_state(arrays, meta["state"], path)
        if meta.get("n_features_in") is not None:  # absent from files saved before it was kept
            detector.n_features_in_ = meta["n_features_in"]
        return detector


class LogitDetector(Detector):
    """Base of post-hoc scores on a classifier's logits with a temperature (energy, MSP).

    Fitting only validates the temperature and records the class count;
    subclasses implement :meth:`score_logits` on float64 logits.
    """

    needs: ClassVar[tuple[str, ...]] = ("logits",)

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def fit(self, reference: FeatureBatch) -> Self:
        if self.temperature <= 0:
            raise ValueError(f"{self.name}: temperature must be > 0, got {self.temperature}")
        self.n_classes_ = int(self._require(reference, "logits").shape[1])
        return self

    def score(self, batch: FeatureBatch) -> np.ndarray:
        self._check_fitted()
        logits = self._require(batch, "logits")
        if logits.shape[1] != self.n_classes_:
            raise ValueError(f"{self.name}: expected {self.n_classes_} logits, got {logits.shape[1]}")
        return self.score_logits(logits.astype(np.float64))

    @abstractmethod
    def score_logits(self, logits: np.ndarray) -> np.ndarray:
        """float64 (n,) scores of (n, c) logits, higher = more OOD."""

    def _fitted_state(self, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"n_classes_": self.n_classes_}

    def _restore_state(
        self, arrays: dict[str, np.ndarray], scalars: dict[str, Any], folder: Path
    ) -> None:
        self.n_classes_ = scalars["n_classes_"]
