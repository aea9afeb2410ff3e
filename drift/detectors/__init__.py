"""OOD detectors, one file each, behind one contract (:class:`Detector`).

Every detector scores rows so that **higher = more OOD**. Pick one by name::

    from drift.detectors import get_detector
    knn = get_detector("knn", k=50).fit(reference_batch)

Built-in detectors register themselves with :func:`register`. Another package
adds its own without editing driftwatch: it declares the class under the entry
point group ``driftwatch.detectors``, named as the class's ``name``::

    [project.entry-points."driftwatch.detectors"]
    constant = "my_package.constant:ConstantDetector"
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from drift.detectors.base import Detector, DetectorFileError, NotFittedError

#: entry point group under which other packages declare their detector classes
ENTRY_POINT_GROUP = "driftwatch.detectors"

_REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make ``cls`` available to :func:`get_detector` under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def detector_class(name: str) -> type[Detector]:
    _load_builtins()
    if name not in _REGISTRY:
        _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown detector '{name}' (known: {known})") from None


def get_detector(name: str, **params: Any) -> Detector:
    """A new, unfitted detector of type ``name`` with ``params``."""
    return detector_class(name)(**params)


def available_detectors() -> list[str]:
    """Names of the built-in detectors and of those other installed packages declare."""
    _load_builtins()
    _load_entry_points()
    return sorted(_REGISTRY)


def _load_builtins() -> None:
    # Imported lazily so that `import drift.detectors` stays cheap (no FAISS, no torch).
    from drift.detectors import energy, hdc, knn, mahalanobis, msp  # noqa: F401


def _load_entry_points() -> None:
    """Register every detector class declared under :data:`ENTRY_POINT_GROUP`."""
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point '{entry.name} = {entry.value}' ({ENTRY_POINT_GROUP})"
        cls = entry.load()
        if not (isinstance(cls, type) and issubclass(cls, Detector)):
            raise TypeError(f"{where}: not a Detector subclass")
        if getattr(cls, "name", None) != entry.name:
            raise ValueError(f"{where}: the class's name is {getattr(cls, 'name', None)!r}")
        if _REGISTRY.setdefault(entry.name, cls) is not cls:
            raise ValueError(f"{where}: '{entry.name}' is already a detector")


__all__ = [
    "ENTRY_POINT_GROUP",
    "Detector",
    "DetectorFileError",
    "NotFittedError",
    "available_detectors",
    "detector_class",
    "get_detector",
    "register",
]
