"""OOD detectors, one file each, behind one contract (:class:`Detector`).

Every detector scores rows so that **higher = more OOD**. Pick one by name::

    from drift.detectors import get_detector
    knn = get_detector("knn", k=50).fit(reference_batch)
"""

from __future__ import annotations

from typing import Any

from drift.detectors.base import Detector, DetectorFileError, NotFittedError

_REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make ``cls`` available to :func:`get_detector` under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def detector_class(name: str) -> type[Detector]:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown detector '{name}' (known: {known})") from None


def get_detector(name: str, **params: Any) -> Detector:
    """A new, unfitted detector of type ``name`` with ``params``."""
    return detector_class(name)(**params)


def available_detectors() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def _load_builtins() -> None:
    # Imported lazily so that `import drift.detectors` stays cheap (no FAISS, no torch).
    from drift.detectors import energy, hdc, knn, mahalanobis, msp  # noqa: F401


__all__ = [
    "Detector",
    "DetectorFileError",
    "NotFittedError",
    "available_detectors",
    "detector_class",
    "get_detector",
    "register",
]
