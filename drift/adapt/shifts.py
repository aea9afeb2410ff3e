"""Shift functions for :meth:`drift.adapt.MetaOODLearner.meta_train` that fit any numeric inputs.

Data-specific shifts live with their data (the demo's image corruptions:
:func:`drift.digits.random_corruption`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drift.adapt.mol import ShiftFn


def gaussian_noise(scales: Sequence[float] = (0.1, 0.2, 0.3, 0.5)) -> ShiftFn:
    """A shift function for any numeric inputs: per-column offsets and noise of random strength.

    The default for meta-training when a monitor names no shift of its own: each
    simulated distribution moves every column's mean and adds noise, both scaled
    by the column's spread and one strength drawn from ``scales``.

    Examples
    --------
    >>> shift = gaussian_noise(scales=(0.5,))
    >>> rows = np.random.default_rng(1).normal(size=(200, 3)).astype(np.float32)
    >>> moved = shift(rows, np.random.default_rng(0))
    >>> moved.shape, moved.dtype, bool(np.abs(moved - rows).mean() > 0.1)
    ((200, 3), dtype('float32'), True)
    """
    scales = tuple(scales)

    def shift(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        strength = scales[rng.integers(len(scales))]
        spread = x.std(axis=0, keepdims=True) + 1e-6
        offset = rng.normal(0.0, strength, size=(1, x.shape[1])) * spread
        noise = rng.normal(0.0, strength, size=x.shape) * spread
        return (x + offset + noise).astype(np.float32)

    return shift
