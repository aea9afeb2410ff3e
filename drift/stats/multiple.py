"""Multiple-testing corrections: Benjamini–Hochberg and Bonferroni."""

from __future__ import annotations

import numpy as np


def bh_adjusted(p_values: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values: reject at FDR q exactly where adjusted <= q.

    Examples
    --------
    >>> bh_adjusted(np.array([0.01, 0.04, 0.03, 0.5])).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * len(p) / np.arange(1, len(p) + 1)
    # running minimum from the largest p down gives the step-up rule
    adjusted_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(adjusted_sorted, 1.0)
    return adjusted


def benjamini_hochberg(p_values: np.ndarray, q: float = 0.1) -> np.ndarray:
    """Boolean rejections of the BH step-up procedure at false discovery rate ``q``.

    Examples
    --------
    >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5]), q=0.05).tolist()
    [True, False, False, False]
    >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5]), q=0.06).tolist()
    [True, True, True, False]
    """
    return bh_adjusted(p_values) <= q


def bonferroni(p_values: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    """Boolean rejections at family-wise level ``alpha``: p <= alpha / (number of tests).

    Examples
    --------
    >>> bonferroni(np.array([0.004, 0.006]), alpha=0.01).tolist()
    [True, False]
    """
    p = np.asarray(p_values, dtype=np.float64)
    return p <= alpha / max(len(p), 1)
