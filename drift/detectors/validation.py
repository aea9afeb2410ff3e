"""Detector parameters checked against the detector's constructor when the config loads.

A typo'd parameter name or a value of the wrong type fails at config load with
one line naming the detector and the parameter, not as a traceback at fit.

>>> validate_params("knn", {"k": "5"})
{'k': 5}
>>> validate_params("knn", {"kk": 5})  # doctest: +ELLIPSIS
Traceback (most recent call last):
ValueError: knn: unknown parameter 'kk' (accepted: k, index, nlist, nprobe, ..., device)
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

from pydantic import TypeAdapter, ValidationError

from drift.detectors import detector_class


def validate_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` of detector ``name`` converted to the constructor's annotated types.

    Raises ``ValueError`` for an unknown detector, an unknown parameter or a
    value its annotation does not accept.
    """
    cls = detector_class(name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = [key for key in params if key not in accepted]
    if unknown:
        raise ValueError(f"{name}: unknown parameter '{unknown[0]}' (accepted: {', '.join(accepted)})")
    hints = typing.get_type_hints(cls.__init__)
    checked = {}
    for key, value in params.items():
        annotation = hints.get(key, Any)
        try:
            checked[key] = TypeAdapter(annotation).validate_python(value)
        except ValidationError:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise ValueError(
                f"{name}: parameter '{key}' must be {_describe(annotation)}, got {shown}"
            ) from None
    return checked


def _describe(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
