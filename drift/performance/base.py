"""What every performance estimator shares: the contract, the confidence score, JSON state.

An estimator follows the scikit-learn contract: parameters in ``__init__``,
``fit(logits, y_true) -> self`` on labelled reference (calibration) rows,
``estimate(logits) -> Estimate`` on a night's rows. Nightly the pipeline keeps
only each row's confidence score (:func:`confidence`), so estimators also take
the scores directly (``estimate_scores``). Fitted state is plain JSON
(``to_dict`` / :func:`load_estimator`), never a pickle.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np

from drift.performance.realized import Z95


@dataclass(frozen=True)
class Estimate:
    """An estimated accuracy with its 95% band ``[low, high]`` and the band's standard error."""

    value: float
    low: float
    high: float
    se: float
    n_rows: int


def confidence(logits: np.ndarray) -> np.ndarray:
    """Each row's confidence score: the log of its largest softmax probability (<= 0).

    The log keeps the order of the probabilities without their ties at 1.0 (a
    saturated softmax rounds every confident row to exactly 1 in float64).

    >>> confidence(np.array([[2.0, 0.0], [0.0, 0.0]])).round(3).tolist()
    [-0.127, -0.693]
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"confidence: need logits of shape (rows, classes >= 2), got {z.shape}")
    top = z.max(axis=1)
    return -np.log(np.exp(z - top[:, None]).sum(axis=1))


def band(value: float, variance: float, n_rows: int) -> Estimate:
    """``value`` with a symmetric 95% normal band, clipped to [0, 1]."""
    se = math.sqrt(max(variance, 0.0))
    return Estimate(
        float(value), max(0.0, value - Z95 * se), min(1.0, value + Z95 * se), se, n_rows
    )


class PerformanceEstimator(ABC):
    """Estimates a classifier's accuracy on unlabelled rows from its confidence.

    Subclasses set ``name``, implement ``_fit(scores, correct)``,
    ``estimate_scores(scores)`` and their JSON state (``_state`` / ``_restore``).
    ``reference_accuracy_`` and ``n_reference_`` are the accuracy and size of the
    labelled rows it was fitted on; their sampling error enters every band.
    """

    name: ClassVar[str]
    reference_accuracy_: float
    n_reference_: int

    def fit(self, logits: np.ndarray, y_true: np.ndarray) -> Self:
        """Fit on labelled rows: their logits and true labels."""
        scores = confidence(logits)
        labels = np.asarray(y_true)
        if len(labels) != len(scores):
            raise ValueError(
                f"{self.name}: {len(scores)} rows of logits but {len(labels)} labels"
            )
        return self.fit_scores(scores, np.asarray(logits).argmax(axis=1) == labels)

    def fit_scores(self, scores: np.ndarray, correct: np.ndarray) -> Self:
        """Fit on confidence scores and whether each row was classified correctly."""
        scores = np.asarray(scores, dtype=np.float64)
        correct = np.asarray(correct, dtype=bool)
        if len(scores) < 2 or len(scores) != len(correct):
            raise ValueError(f"{self.name}: need at least 2 labelled rows, one score each")
        self.reference_accuracy_ = float(correct.mean())
        self.n_reference_ = len(scores)
        self._fit(scores, correct)
        return self

    def estimate(self, logits: np.ndarray) -> Estimate:
        """The estimated accuracy on these rows, from their logits."""
        return self.estimate_scores(confidence(logits))

    def _calibration_variance(self) -> float:
        """Sampling variance of the reference accuracy the estimator is anchored on, at the
        Agresti-Coull adjusted proportion: honest near 1, where a model right on all but one
        of its calibration rows would otherwise claim almost no uncertainty."""
        z2 = Z95 * Z95
        m = self.n_reference_ + z2
        a = (self.reference_accuracy_ * self.n_reference_ + z2 / 2) / m
        return a * (1 - a) / m

    def _check_fitted(self) -> None:
        if not hasattr(self, "reference_accuracy_"):
            raise RuntimeError(f"{self.name}: call fit() before estimate()")

    def to_dict(self) -> dict[str, Any]:
        """The fitted estimator as JSON: :func:`load_estimator` reads it back."""
        self._check_fitted()
        return {
            "name": self.name,
            "reference_accuracy": self.reference_accuracy_,
            "n_reference": self.n_reference_,
            **self._state(),
        }

    @abstractmethod
    def _fit(self, scores: np.ndarray, correct: np.ndarray) -> None: ...

    @abstractmethod
    def estimate_scores(self, scores: np.ndarray) -> Estimate: ...

    @abstractmethod
    def _state(self) -> dict[str, Any]: ...

    @abstractmethod
    def _restore(self, state: dict[str, Any]) -> None: ...


#: the estimators by name; filled by their modules (:mod:`drift.performance` imports both)
ESTIMATORS: dict[str, type[PerformanceEstimator]] = {}


def load_estimator(state: dict[str, Any]) -> PerformanceEstimator:
    """A fitted estimator from its :meth:`PerformanceEstimator.to_dict` form."""
    try:
        estimator = ESTIMATORS[state["name"]]()
    except KeyError:
        raise ValueError(f"unknown performance estimator {state.get('name')!r}") from None
    estimator.reference_accuracy_ = float(state["reference_accuracy"])
    estimator.n_reference_ = int(state["n_reference"])
    estimator._restore(state)
    return estimator
