"""Realized performance of the labelled rows of one night (docs/methods.md §8.1)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: two-sided 95% normal quantile: every interval and band of drift.performance is 95%
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (stays inside [0, 1], honest at 0 and n).

    Examples
    --------
    >>> low, high = wilson_interval(90, 100)
    >>> round(low, 3), round(high, 3)
    (0.826, 0.945)
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class RealizedPerformance:
    """Accuracy of ``n_labelled`` rows with its Wilson 95% interval, recall per true
    class present, and macro-F1 over the model's classes seen in labels or predictions."""

    accuracy: float
    accuracy_low: float
    accuracy_high: float
    n_labelled: int
    recall: dict[str, float]
    macro_f1: float


def realized_performance(
    y_true: np.ndarray | Sequence[int],
    y_pred: np.ndarray | Sequence[int],
    classes: Sequence[int],
) -> RealizedPerformance:
    """Accuracy, per-class recall and macro-F1 of predictions against true labels.

    A label outside ``classes`` (a novel class) is a row the model cannot get right:
    it counts as wrong in the accuracy and has a recall of 0 under its own label;
    macro-F1 averages F1 over the model's ``classes`` that occur among the labels
    or the predictions (a class with neither says nothing about this night).

    Examples
    --------
    >>> r = realized_performance([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], classes=[0, 1])
    >>> r.accuracy, r.n_labelled, r.recall
    (0.6, 5, {'0': 0.5, '1': 1.0, '2': 0.0})
    >>> round(r.macro_f1, 3)
    0.65
    """
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.shape != pred.shape or true.ndim != 1:
        raise ValueError(
            f"realized_performance: y_true {true.shape} and y_pred {pred.shape} must be one length"
        )
    n = len(true)
    if n == 0:
        raise ValueError("realized_performance: no labelled rows")
    correct = int((true == pred).sum())
    low, high = wilson_interval(correct, n)
    recall = {str(c): float((pred[true == c] == c).mean()) for c in np.unique(true)}
    f1 = []
    for c in sorted(set(int(c) for c in classes) & (set(true.tolist()) | set(pred.tolist()))):
        tp = int(((true == c) & (pred == c)).sum())
        denominator = int((true == c).sum()) + int((pred == c).sum())
        f1.append(2 * tp / denominator if denominator else 0.0)
    return RealizedPerformance(
        accuracy=correct / n,
        accuracy_low=low,
        accuracy_high=high,
        n_labelled=n,
        recall=recall,
        macro_f1=float(np.mean(f1)) if f1 else 0.0,
    )
