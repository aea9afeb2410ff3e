"""The sequential gate: turns a series of nightly test results into ok / warn / confirm.

One pure function, :func:`decide`, takes the gate's settings, the state it left
after the previous night and tonight's evidence, and returns a
:class:`GateDecision` whose ``state`` is plain JSON. The pipeline stores that
state on ``batches.gate_state``; a gate restarted on another worker continues
from it and decides exactly as an uninterrupted one would.

The rule (docs/methods.md §4):

* **act family** — every detector's flag-count and score-distribution tests
  plus the batch-level embedding MMD and class-mix tests. Bonferroni across
  the family: a test is *decisive* when p <= alpha / (family size) **and** its
  effect size reaches ``min_effect[test]``; the detectors' low side
  (``flag_deficit``: far fewer flags than calibrated) is in the family too.
  The night is *significant* when a decisive test also passes the
  **practical test** (:mod:`drift.gate_rules`: the flag rate moved by
  ``min_excess_rate`` points beyond its calibrated rate and its recent level).
* **WARN** on a significant night (event kind ``shift``); a ``gradual`` warning
  when nights keep being decisive but not practical; an ``input`` warning when
  per-column tests moved at their share of the budget and the OOD rates did not.
* **CONFIRM** when ``confirm_r`` of the last ``confirm_w`` nights were
  significant, or when a detector's binomial CUSUM alarms with a practical move.
* After a confirm the CUSUM sums and the r-of-w history are reset.
* Each detector's CUSUM runs on its nightly flag count with in-control rate
  p0 = the ``cusum_null_quantile`` (0.99) quantile of the calibration's true
  flag rate and out-of-control rate p1 = ``cusum_rate`` (default twice the
  nominal rate).

False-confirm budget. ``arl0_nights`` is the target for the whole gate: at most
one false confirm per that many quiet nights. The r-of-w rule costs about
C(w, r)·alpha^r per night (independent nights), input events ``input_share``
of it, gradual warnings a binomial tail; the rest is split evenly across detectors' CUSUMs (Bonferroni), each simulated under the
beta-binomial null by :func:`drift.stats.cusum_threshold` at the night's size.
Caveat: when a night is much larger than the calibration set, the calibration
error is the same every night; an unluckily low threshold (probability about
alpha / family size per calibration) then makes every night significant. Fit
calibration on many rows (m >= n/10 is comfortable) and recalibrate after acting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from drift.gate_rules import (
    DEFICIT_TEST,
    below_nominal,
    evidence_of_test,
    fmt,
    gradual_advice,
    input_columns,
    is_column_test,
    is_decisive,
    keep_rates,
    own_level,
    points_moved,
    practical_test,
    recent_levels,
)
from drift.gate_settings import GateSettings
from drift.jsonsafe import json_safe
from drift.stats import (
    BinomialCusum,
    Signal,
    TestResult,
    cusum_threshold,
    expected_flag_rate,
    find,
    flag_rate_quantile,
    round_rows,
)
from drift.status import EventKind, ShiftType, Verdict

__all__ = [
    "DetectorNight",
    "GateDecision",
    "GateSettings",
    "NightEvidence",
    "decide",
    "fmt",
    "is_column_test",
    "is_decisive",
    "own_level",
]

STATE_VERSION = 1


@dataclass(frozen=True)
class DetectorNight:
    """One detector on one night: its flag count and its tests (flag count, score KS)."""

    n_rows: int
    n_flagged: int
    n_calibration: int
    tpr: float
    tests: list[TestResult] = field(default_factory=list)

    @property
    def ood_rate(self) -> float:
        return self.n_flagged / self.n_rows if self.n_rows else 0.0


@dataclass(frozen=True)
class NightEvidence:
    """Everything the gate sees of one night.

    ``tests`` are the batch-level tests (embedding MMD, per-column, class mix).
    """

    batch_date: date
    detectors: dict[str, DetectorNight]
    tests: list[TestResult] = field(default_factory=list)


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict on one night, the state to carry forward and why."""

    verdict: Verdict
    significant: bool
    state: dict[str, Any]
    shift_type: ShiftType | None
    evidence: dict[str, Any]
    reasons: list[str]
    #: the kind of event the night belongs to (None on an ok night)
    kind: EventKind | None = None


def _fresh_state() -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "last_date": None,
        "cusum": {},
        "history": [],  # significance of the most recent nights, oldest first
        "nights": 0,
        "nights_since_reset": 0,
        "quiet_nights": 0,  # consecutive non-significant nights (events expire warnings on it)
        "rates": {},  # each detector's flag rates on recent quiet nights (its recent level)
        "gradual_history": [],  # decisive-but-not-practical, the most recent nights
        "advisory_quiet_nights": 0,  # consecutive nights without a gradual or input warning
    }


def _label(name: str, subject: str) -> str:
    return f"{name}[{subject}]" if subject else name


#: moved input columns named in a night's reasons (the evidence lists them all)
MAX_COLUMNS_IN_REASON = 5


def _signals(test: TestResult, signal: Signal) -> bool:
    record = find(test.name)
    return record is not None and record.signals is signal


#: KS distance over excess flag rate above which the bulk of the scores moved
BULK_SHIFT_RATIO = 1.5


def _bulk_moved(night: NightEvidence, surged: set[str]) -> bool:
    """Did every row's score move (covariate) rather than a subset's (semantic)?

    Novel-class rows are a subset far beyond the threshold: the score
    distribution differs from calibration mostly in its tail, so the KS
    distance D is about the excess flag rate. A covariate shift moves every
    row a little, below the threshold too, so D is well above the excess.
    """
    ratios = []
    for name in surged & set(night.detectors):
        tests = {t.name: t for t in night.detectors[name].tests}
        if "flag_count" in tests and "score_distribution" in tests:
            excess = max(tests["flag_count"].effect_size, 0.01)
            ratios.append(tests["score_distribution"].effect_size / excess)
    return bool(ratios) and float(np.median(ratios)) > BULK_SHIFT_RATIO


def _classify_shift(
    surged: set[str], inputs_moved: bool, mix_moved: bool, bulk_moved: bool
) -> ShiftType | None:
    """Shift type from which families of evidence moved, ``unknown`` where they cannot tell.

    covariate: the detectors' scores moved as a whole (``bulk_moved``) with the class
    mix unmoved, or only input columns moved; prior: only the predicted-class mix
    moved. Any other detector surge is ``unknown``: novel classes, a strong covariate
    shift (its KS distance saturates near the flag-rate excess) and either one with a
    moved class mix leave the same unlabelled signature (docs/methods.md §4, shift
    typing), so the type waits for feedback labels (:mod:`drift.labels`).
    """
    if surged:
        return ShiftType.COVARIATE if bulk_moved and not mix_moved else ShiftType.UNKNOWN
    if mix_moved:
        return ShiftType.PRIOR
    return ShiftType.COVARIATE if inputs_moved else None


def decide(
    settings: GateSettings, previous_state: dict[str, Any] | None, night: NightEvidence
) -> GateDecision:
    """Decide one night from the previous night's state; pure and deterministic.

    Parameters
    ----------
    settings
        the gate's settings.
    previous_state
        ``GateDecision.state`` of the previous decided night (as stored on
        ``batches.gate_state``), or None (or {}) for the first night of a monitor or
        after recalibration.
    night
        tonight's evidence.

    Examples
    --------
    >>> from datetime import date
    >>> from drift.stats import flag_count_test
    >>> def night(day, flagged):
    ...     tests = [flag_count_test(flagged, 1000, 1999, 0.95, subject="knn")]
    ...     return NightEvidence(date(2024, 1, day), {"knn": DetectorNight(1000, flagged, 1999, 0.95, tests)})
    >>> settings, state = GateSettings(), None
    >>> for day, flagged in [(1, 48), (2, 55), (3, 130), (4, 140)]:
    ...     decision = decide(settings, state, night(day, flagged))
    ...     state = decision.state
    ...     print(day, decision.verdict, decision.significant)
    1 ok False
    2 ok False
    3 confirm True
    4 confirm True
    """
    state = _load_state(previous_state) if previous_state else _fresh_state()
    if state["last_date"] is not None and night.batch_date.isoformat() <= state["last_date"]:
        raise ValueError(
            f"gate: night {night.batch_date} is not after the state's last night "
            f"{state['last_date']}; pass the state of the night before it"
        )

    practical = practical_test(night, recent_levels(state["rates"], settings), settings)
    detector_tests = [(name, test) for name, det in night.detectors.items() for test in det.tests]
    act_family = [
        (name, test) for name, test in detector_tests if test.name in settings.act_tests
    ] + [("", test) for test in night.tests if test.name in settings.act_tests]
    level = settings.alpha / max(len(act_family), 1)
    passed = [(name, test) for name, test in act_family if is_decisive(test, level, settings)]
    # decisive: a small p-value, its minimum effect and the practical test
    decisive = [(name, test) for name, test in passed if practical.passes(name, test, settings)]
    significant = bool(decisive)

    cusum_arl0 = settings.cusum_arl0(len(night.detectors))
    cusum_state: dict[str, float] = {}
    cusum_evidence: dict[str, dict[str, float]] = {}
    cusum_alarms: list[str] = []
    for name, det in sorted(night.detectors.items()):
        expected = expected_flag_rate(det.tpr, det.n_calibration)
        p0 = flag_rate_quantile(det.tpr, det.n_calibration, settings.cusum_null_quantile)
        # p1 well above p0 even when a small calibration set makes p0 large
        p1 = max(settings.cusum_rate or 2.0 * expected, 1.5 * p0)
        threshold = cusum_threshold(
            cusum_arl0, round_rows(det.n_rows), p0, p1, det.n_calibration, expected_rate=expected
        )
        cusum = BinomialCusum(p0, p1, threshold)
        cusum_state[name] = cusum.update(state["cusum"].get(name, 0.0), det.n_flagged, det.n_rows)
        cusum_evidence[name] = {
            "sum": cusum_state[name],
            "threshold": threshold,
            "p0": p0,
            "p1": p1,
            "alarm": cusum.alarm(cusum_state[name]),
            "practical": practical.up(name),
        }
        if cusum.alarm(cusum_state[name]):
            cusum_alarms.append(name)
    practical_alarms = [name for name in cusum_alarms if practical.up(name)]

    history = (state["history"] + [significant])[-settings.confirm_w :]
    persistent = sum(history) >= settings.confirm_r
    confirm = persistent or bool(practical_alarms)
    shift = confirm or significant
    small = not shift and bool(passed or cusum_alarms)  # statistically real, practically small
    gradual_history = (state["gradual_history"] + [small])[-settings.gradual_w :]
    gradual = not shift and sum(gradual_history) >= settings.gradual_r
    inputs = [] if shift else input_columns(night, settings)
    kind = (
        EventKind.SHIFT if shift else EventKind.GRADUAL if gradual else EventKind.INPUT if inputs else None
    )
    verdict = Verdict.CONFIRM if confirm else Verdict.WARN if kind else Verdict.OK

    reasons = [
        f"{_label(test.name, subject)}: p={fmt(test.p_value)} below its bar {fmt(level)} "
        f"(alpha {fmt(settings.alpha)} / {len(act_family)} tests), effect {fmt(test.effect_size)} "
        f">= minimum {fmt(settings.min_effect.get(test.name, 0.0))}"
        for subject, test in decisive
    ]
    reasons += [below_nominal(name, practical.detectors[name]) for name, t in decisive if t.name == DEFICIT_TEST]
    reasons += [
        f"{_label(test.name, subject)}: p={fmt(test.p_value)} passed its bar but not the practical "
        f"test ({points_moved(practical.detectors.get(subject), test.name)})"
        for subject, test in passed
        if (subject, test) not in decisive
    ]
    reasons += [
        f"CUSUM[{name}] {fmt(cusum_state[name])} crossed its alarm level "
        f"{fmt(cusum_evidence[name]['threshold'])} (log-likelihood ratio of flag rate "
        f"{cusum_evidence[name]['p1']:.1%} against {cusum_evidence[name]['p0']:.1%})"
        + ("" if name in practical_alarms else "; below the practical floor, not counted")
        for name in cusum_alarms
    ]
    if persistent:
        reasons.append(
            f"{sum(history)} of the last {len(history)} nights significant "
            f"(confirms at {settings.confirm_r} of {settings.confirm_w})"
        )
    if gradual:
        reasons.append(gradual_advice(practical, sum(gradual_history), settings))
    if inputs:
        reasons.append(
            f"input drift: columns moved at the input level {fmt(settings.input_level())} "
            f"while the OOD rates did not: {', '.join(dict.fromkeys(t.subject for t in inputs))}"
        )

    surged = {name for name, t in decisive if name and t.name != DEFICIT_TEST} | set(practical_alarms)
    moved_columns = sorted(
        (t for t in night.tests if is_column_test(t) and is_decisive(t, settings.column_fdr, settings)),
        key=lambda t: (t.p_value, -t.effect_size),
    )
    columns_moved = list(dict.fromkeys(t.subject for t in moved_columns))
    if shift and columns_moved:
        shown = ", ".join(columns_moved[:MAX_COLUMNS_IN_REASON])
        more = len(columns_moved) - MAX_COLUMNS_IN_REASON
        reasons.append(
            f"input columns moved (BH q <= {fmt(settings.column_fdr)}): {shown}"
            + (f" and {more} more" if more > 0 else "")
        )
    inputs_moved = bool(columns_moved) or any(_signals(t, Signal.INPUTS) for _, t in decisive)
    mix_moved = any(_signals(t, Signal.CLASS_MIX) for _, t in decisive)
    shift_type = (
        _classify_shift(surged, inputs_moved, mix_moved, _bulk_moved(night, surged))
        if shift
        else None
    )

    new_state = {
        "version": STATE_VERSION,
        "last_date": night.batch_date.isoformat(),
        # reset after a confirm: the next confirm must rest on new evidence
        "cusum": {name: 0.0 for name in cusum_state} if confirm else cusum_state,
        "history": [] if confirm else history,
        "nights": state["nights"] + 1,
        "nights_since_reset": 0 if confirm else state["nights_since_reset"] + 1,
        "quiet_nights": 0 if significant else state["quiet_nights"] + 1,
        "rates": keep_rates(state["rates"], night, not shift, settings),
        "gradual_history": gradual_history,
        "advisory_quiet_nights": 0 if gradual or inputs else state["advisory_quiet_nights"] + 1,
    }
    evidence = {
        "batch_date": night.batch_date.isoformat(),
        "kind": kind,
        "bonferroni_level": level,
        "family_size": len(act_family),
        "decisive": [f"{t.name}:{subject}" if subject else t.name for subject, t in decisive],
        "statistically_decisive": [f"{t.name}:{s}" if s else t.name for s, t in passed],
        "alpha": settings.alpha,
        "column_fdr": settings.column_fdr,
        "tests": [
            evidence_of_test(
                test, subject, level, settings, (subject, test) in decisive,
                practical.passes(subject, test, settings),
            )
            for subject, test in detector_tests + [("", t) for t in night.tests]
        ],
        "cusum": cusum_evidence,
        "practical": practical.detectors,
        "significant_history": history,
        "confirm_r": settings.confirm_r,
        "gradual": {"history": gradual_history, "r": settings.gradual_r, "warning": gradual},
        "input": {"level": settings.input_level(), "columns": [t.subject for t in inputs]},
        "columns_moved": columns_moved,
        "ood_rates": {name: det.ood_rate for name, det in night.detectors.items()},
    }
    return GateDecision(
        verdict, significant, new_state, shift_type, json_safe(evidence), reasons, kind
    )


def _load_state(stored: dict[str, Any]) -> dict[str, Any]:
    if stored.get("version") != STATE_VERSION:
        raise ValueError(f"gate: unknown state version {stored.get('version')!r}")
    state = _fresh_state()
    state.update(stored)
    return state
