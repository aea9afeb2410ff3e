"""Realized performance: accuracy (with a Wilson interval), per-class recall and macro-F1
of the rows whose true label came back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

#: confidence level of the accuracy interval
CONFIDENCE = 0.95


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when ``n`` is 0.

    >>> low, high = wilson_interval(90, 100)
    >>> round(low, 3), round(high, 3)
    (0.826, 0.945)
    """
    if n == 0:
        return 0.0, 1.0
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


@dataclass(frozen=True)
class RealizedPerformance:
    """Accuracy of ``n_labelled`` labelled rows with its Wilson interval, recall per
    class (classes with no labelled row are left out) and macro-F1 over ``classes``."""

    accuracy: float
    accuracy_low: float
    accuracy_high: float
    n_labelled: int
    recall: dict[int, float] = field(default_factory=dict)
    macro_f1: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "accuracy_low": self.accuracy_low,
            "accuracy_high": self.accuracy_high,
            "n_labelled": self.n_labelled,
            "recall": {str(c): r for c, r in self.recall.items()},
            "macro_f1": self.macro_f1,
        }


def realized_performance(
    y_true: np.ndarray, y_pred: np.ndarray, classes: int | list[int]
) -> RealizedPerformance:
    """Performance of predictions ``y_pred`` against true labels ``y_true``.

    ``classes`` is the model's class count (classes ``0..classes-1``) or the list of
    its classes; a true label outside them (a novel class) counts as a miss.

    >>> perf = realized_performance(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), 2)
    >>> perf.accuracy, perf.n_labelled, perf.recall
    (0.6, 5, {0: 0.5, 1: 1.0})
    >>> round(perf.macro_f1, 3)
    0.65
    """
    y_true, y_pred = np.asarray(y_true).astype(np.int64), np.asarray(y_pred).astype(np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"realized_performance: {len(y_true)} labels for {len(y_pred)} predictions"
        )
    known = list(range(classes)) if isinstance(classes, int) else [int(c) for c in classes]
    n = len(y_true)
    correct = int((y_true == y_pred).sum())
    low, high = wilson_interval(correct, n)
    recall, f1 = {}, []
    for c in known:
        actual, predicted = y_true == c, y_pred == c
        hits = int((actual & predicted).sum())
        if actual.any():
            recall[c] = hits / int(actual.sum())
        denominator = int(actual.sum()) + int(predicted.sum())
        f1.append(2 * hits / denominator if denominator else 0.0)
    return RealizedPerformance(
        accuracy=correct / n if n else 0.0,
        accuracy_low=low,
        accuracy_high=high,
        n_labelled=n,
        recall=recall,
        macro_f1=float(np.mean(f1)) if f1 else 0.0,
    )
