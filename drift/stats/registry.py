"""One record per nightly statistic: what the gate, the pipeline and the report read.

A statistic is a function that returns :class:`TestResult` rows plus one
:class:`Statistic` record registered with :func:`register`. The record says
everything the rest of driftwatch needs to know about the test, so nothing
else matches on its name:

* ``scope`` — what the nightly pipeline hands its ``compute`` function: one
  detector's scores (:class:`DetectorSample`), or the night's sample of
  inputs, embeddings and predictions (:class:`BatchSample`); ``COLUMN``
  statistics also read the batch sample and return one row per raw input column;
* ``family`` — ``ACT`` tests decide whether to act (Bonferroni across the
  family at the gate's ``alpha``); ``EVIDENCE`` tests only attribute a shift;
* ``min_effect`` — the effect size a small p-value must come with to count;
* ``correction`` — how the p-value is judged: raw at the gate's ``alpha``
  (``BONFERRONI`` across the act family), or BH-adjusted across the night's
  columns and judged at ``column_fdr`` (``BH``);
* ``signals`` — what kind of move a decisive result points to, for shift typing;
* ``categorical`` — it compares category frequencies (the report draws bars,
  not a histogram).

Adding a statistic (tests/test_stats_registry.py runs this example through the gate)::

    @register(Statistic("score_mean", Scope.DETECTOR, Family.ACT, min_effect=0.1,
                        signals=Signal.DETECTOR))
    def score_mean_on_night(sample: DetectorSample) -> list[TestResult]:
        return [my_score_mean_test(sample.scores, sample.calibration_scores,
                                   subject=sample.detector)]

Examples
--------
>>> statistic("flag_count").family, statistic("column_ks").correction
(<Family.ACT: 'act'>, <Correction.BH: 'benjamini_hochberg'>)
>>> [s.name for s in column_statistics()]
['column_ks', 'column_chisquare']
>>> find("no_such_test") is None
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from drift.performance import Estimate


@dataclass(frozen=True)
class TestResult:
    """One test on one night: its statistic, p-value and an effect size."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    statistic: float
    p_value: float
    effect_size: float
    #: what was tested: a detector, a column, "" for the whole batch
    subject: str = ""

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


class Scope(StrEnum):
    """What a statistic's ``compute`` reads, and so what its subject is."""

    DETECTOR = "detector"  # one detector's scores; subject: the detector
    BATCH = "batch"  # the whole night's sample; subject: the embedding, the predictions
    COLUMN = "column"  # the night's raw inputs; one row per column, subject: the column


class Family(StrEnum):
    ACT = "act"  # decides whether to act
    EVIDENCE = "evidence"  # attributes a shift, never decides alone


class Correction(StrEnum):
    BONFERRONI = "bonferroni"  # raw p-value; Bonferroni across the act family at alpha
    BH = "benjamini_hochberg"  # BH-adjusted p-value, judged at the gate's column_fdr


class Signal(StrEnum):
    """The kind of move a decisive result points to (the gate's shift typing)."""

    DETECTOR = "detector"  # a detector's scores surged
    INPUTS = "inputs"  # the inputs moved: the embedding or a raw column
    CLASS_MIX = "class_mix"  # the predicted-class mix moved (prior shift)


@dataclass(frozen=True)
class DetectorSample:
    """One detector's scores on one night, and what it was calibrated on."""

    detector: str
    scores: np.ndarray
    n_flagged: int
    calibration_scores: np.ndarray
    tpr: float


@dataclass(frozen=True)
class BatchSample:
    """A night's sample beside the reference sample (raw inputs, ``embedding_columns``),
    every night row's predicted class (None for a model without logits) and the
    night's estimated accuracy."""

    reference: pd.DataFrame
    current: pd.DataFrame
    input_columns: list[str]
    embedding_columns: list[str]
    column_fdr: float
    predictions: np.ndarray | None = None
    reference_predictions: np.ndarray | None = None
    n_classes: int | None = None
    #: the night's estimated accuracy (CBPE) and the reference accuracy it is judged
    #: against; None when the model version has no performance estimators
    estimated_accuracy: Estimate | None = None
    reference_accuracy: float | None = None
    #: the drop in accuracy the gate tolerates (GateSettings.max_accuracy_drop)
    max_accuracy_drop: float = 0.05


Compute = Callable[[Any], list[TestResult]]


@dataclass(frozen=True)
class Statistic:
    """The registry's record of one statistic (one ``TestResult.name``)."""

    name: str
    scope: Scope
    family: Family
    min_effect: float = 0.0
    signals: Signal = Signal.DETECTOR
    correction: Correction = Correction.BONFERRONI
    categorical: bool = False
    #: the fewest rows its sample needs; a smaller night is not tested by it (and says so)
    min_rows: int = 1
    #: runs it on a night (takes a DetectorSample or BatchSample by ``scope``);
    #: None: a name the gate knows but the nightly pipeline does not compute
    compute: Compute | None = None


_REGISTRY: dict[str, Statistic] = {}
F = TypeVar("F", bound=Compute)


def register(*records: Statistic) -> Callable[[F], F]:
    """Decorator: register ``records`` (one function may emit several names) as computed by it."""

    def decorator(compute: F) -> F:
        for record in records:
            add(replace(record, compute=compute))
        return compute

    return decorator


def add(record: Statistic) -> Statistic:
    """Register one record; a name can be registered once."""
    if record.name in _REGISTRY:
        raise ValueError(f"statistic {record.name!r} is already registered")
    _REGISTRY[record.name] = record
    return record


def find(name: str) -> Statistic | None:
    return _REGISTRY.get(name)


def statistic(name: str) -> Statistic:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown statistic {name!r}; registered: {sorted(_REGISTRY)}") from None


def statistics(scope: Scope | None = None) -> list[Statistic]:
    """Registered statistics in registration order, optionally of one scope."""
    return [s for s in _REGISTRY.values() if scope is None or s.scope is scope]


def column_statistics() -> list[Statistic]:
    """The per-column statistics: what the report's column tables and panels show."""
    return statistics(Scope.COLUMN)


def default_min_effect() -> dict[str, float]:
    """The gate's default minimum effect per test name."""
    return {s.name: s.min_effect for s in _REGISTRY.values()}


def default_act_tests() -> tuple[str, ...]:
    """The gate's default act family."""
    return tuple(s.name for s in _REGISTRY.values() if s.family is Family.ACT)


def computes(*scopes: Scope, n_rows: int | None = None) -> list[Compute]:
    """Each distinct ``compute`` of these scopes once, in registration order;
    given ``n_rows``, only those whose statistics can test a sample that small."""
    return list(
        dict.fromkeys(
            s.compute
            for s in _REGISTRY.values()
            if s.scope in scopes and s.compute is not None and (n_rows is None or n_rows >= s.min_rows)
        )
    )


def too_small(n_rows: int, *scopes: Scope) -> list[str]:
    """Why a sample of ``n_rows`` rows skips some statistics of these scopes: one reason each.

    Examples
    --------
    >>> too_small(1, Scope.BATCH)
    ['too small to test: mmd needs at least 2 rows, the sample has 1']
    >>> too_small(50, Scope.BATCH)
    []
    """
    return [
        f"too small to test: {s.name} needs at least {s.min_rows} rows, the sample has {n_rows}"
        for s in _REGISTRY.values()
        if s.scope in scopes and s.compute is not None and n_rows < s.min_rows
    ]
