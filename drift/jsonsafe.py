"""JSON-safe values: what Postgres JSON, Airflow XCom and alert payloads accept.

A neutral helper: the numerics (:mod:`drift.gate`) and the store
(:mod:`drift.store.types`) both use it, and neither imports the other.
"""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """``value`` with NaN and ±inf replaced by None (Postgres JSON rejects them) and
    NumPy scalars turned into Python numbers.

    Examples
    --------
    >>> import numpy as np
    >>> json_safe({"a": np.float32(0.5), 1: [float("nan"), (np.int64(2), float("inf"))]})
    {'a': 0.5, '1': [None, [2, None]]}
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # NumPy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
