"""Shift functions for :meth:`drift.adapt.MetaOODLearner.meta_train` on the digits setting."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drift.adapt.mol import ShiftFn
from drift.digits import CORRUPTIONS, corrupt


def random_corruption(
    kinds: Sequence[str] = CORRUPTIONS, severities: Sequence[int] = (1, 2, 3, 4, 5)
) -> ShiftFn:
    """A shift function applying one corruption of random kind and severity to all rows.

    Examples
    --------
    >>> shift = random_corruption(kinds=("noise",), severities=(5,))
    >>> rows = np.zeros((3, 64), dtype=np.float32)
    >>> shifted = shift(rows, np.random.default_rng(0))
    >>> shifted.shape, bool(shifted.max() > 0)
    ((3, 64), True)
    """
    kinds, severities = tuple(kinds), tuple(severities)

    def shift(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        kind = kinds[rng.integers(len(kinds))]
        return corrupt(x, kind, int(rng.choice(severities)), rng)

    return shift
