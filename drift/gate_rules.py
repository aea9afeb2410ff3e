"""The gate's rules for alarms that matter (docs/methods.md §4.4): the practical test,
a detector's recent level, ``gradual`` warnings and ``input`` events.

* **Practical test** — a decisive detector test counts only when that detector's
  flag rate exceeds its calibrated rate by ``min_excess_rate`` (``flag_deficit``: falls
  below it by ``min_deficit_rate``) and, when its recent level has itself drifted by
  half that floor, exceeds the recent level by the floor and by ``step_z`` standard
  errors of a night's rate (sampling noise on a drifted level is no step).
  Tests in ``practical_tests`` (class mix, accuracy drop: their ``min_effect`` is in
  the user's units already) count on their own. A CUSUM alarm counts when its
  detector passes the upward practical test.
* **Recent level** — the median of a detector's flag rates on the last
  ``gradual_w`` quiet nights at least ``recent_lag`` nights back. A step change is
  new against it for ``recent_lag`` nights (long enough to confirm, and it is
  frozen while the shift lasts: shift nights do not enter it); a slow creep of a
  point over weeks never is.
* **Gradual** — ``gradual_r`` of the last ``gradual_w`` nights statistically decisive
  but not practical: one ``gradual`` warning with the numbers and a recommendation
  to re-baseline (`drift recalibrate` on a recent clean window).
* **Input** — per-column tests whose smallest BH-adjusted p-value is at most
  :meth:`GateSettings.input_level` (their share of the false-event budget: under the
  global null BH controls the family-wise rate) with their ``min_effect``, on a night
  whose OOD rates did not move practically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from drift.gate_settings import GateSettings
from drift.stats import Correction, TestResult, expected_flag_rate, find

if TYPE_CHECKING:
    from drift.gate import NightEvidence

def is_decisive(test: TestResult, level: float, settings: GateSettings) -> bool:
    """Small enough p-value at ``level`` *and* an effect size of at least ``min_effect``."""
    return test.p_value <= level and test.effect_size >= settings.min_effect.get(test.name, 0.0)


def is_column_test(test: TestResult) -> bool:
    """A per-column test: its p-value comes BH-adjusted across the night's columns."""
    record = find(test.name)
    return record is not None and record.correction is Correction.BH


def own_level(test: TestResult, settings: GateSettings) -> float:
    """The level a test is judged at on its own (its stored ``significant``): per-column
    tests at the FDR ``column_fdr``, the rest raw at ``alpha``."""
    return settings.column_fdr if is_column_test(test) else settings.alpha


def fmt(value: float) -> str:
    """A number as a person reads it: 3 significant digits, scientific only when tiny.

    >>> fmt(0.000714), fmt(31.12), fmt(4.97e-09), fmt(0.0)
    ('0.000714', '31.1', '5e-09', '0')
    """
    return "0" if value == 0 else f"{value:.3g}" if abs(value) >= 1e-4 else f"{value:.1g}"


def evidence_of_test(
    test: TestResult,
    subject: str,
    level: float,
    settings: GateSettings,
    decisive: bool,
    practical: bool = True,
) -> dict[str, Any]:
    """One test as the stored evidence shows it, with the bars it was judged against.

    ``in_act_family``: the test takes part in the act/don't-act decision, judged at
    ``bar`` (the Bonferroni level alpha / family size); ``practical``: its move passes
    the practical test; ``decisive``: it passed its bar, ``min_effect`` and the
    practical test and so made the night significant. Evidence-only tests carry
    their own bar (BH ``column_fdr`` for per-column tests, else ``alpha``) and ``moved``:
    whether they pass it; they are never decisive.
    """
    in_family = test.name in settings.act_tests
    bar = level if in_family else own_level(test, settings)
    return {
        **test.as_dict(),
        "subject": test.subject or subject,
        "in_act_family": in_family,
        "bar": bar,
        "min_effect": settings.min_effect.get(test.name, 0.0),
        "moved": is_decisive(test, bar, settings),
        "practical": practical,
        "decisive": decisive,
    }


#: the low-side test: practical when the rate fell, not when it rose
DEFICIT_TEST = "flag_deficit"
#: nights of quiet flag rates kept in the gate state per detector
MIN_RECENT_NIGHTS = 3


def recent_levels(rates: dict[str, list[float]], settings: GateSettings) -> dict[str, float | None]:
    """Each detector's recent level from its quiet-night rates (oldest first) in the state;
    None until ``MIN_RECENT_NIGHTS`` of them lie ``recent_lag`` nights back.

    >>> recent_levels({"knn": [0.05] * 10 + [0.09] * 7}, GateSettings(recent_lag=7))
    {'knn': 0.05}
    >>> recent_levels({"knn": [0.05] * 8}, GateSettings(recent_lag=7))
    {'knn': None}
    """
    levels: dict[str, float | None] = {}
    for name, history in rates.items():
        older = history[: max(len(history) - settings.recent_lag, 0)][-settings.gradual_w :]
        levels[name] = float(np.median(older)) if len(older) >= MIN_RECENT_NIGHTS else None
    return levels


def keep_rates(
    rates: dict[str, list[float]], night: NightEvidence, quiet: bool, settings: GateSettings
) -> dict[str, list[float]]:
    """The rate history to carry forward: tonight's rates join it on a night that was not
    significant, so that a shift never becomes its own baseline."""
    if not quiet:
        return rates
    keep = settings.recent_lag + settings.gradual_w
    return {
        name: (rates.get(name, []) + [det.ood_rate])[-keep:] for name, det in night.detectors.items()
    }


@dataclass(frozen=True)
class Practical:
    """The practical test of one night: per detector, how far its rate moved, in points."""

    detectors: dict[str, dict[str, Any]]

    def up(self, detector: str) -> bool:
        return bool(self.detectors.get(detector, {}).get("up", False))

    def down(self, detector: str) -> bool:
        return bool(self.detectors.get(detector, {}).get("down", False))

    def passes(self, subject: str, test: TestResult, settings: GateSettings) -> bool:
        """Does a decisive test come with an effect a person cares about?"""
        if test.name in settings.practical_tests:
            return True
        if subject not in self.detectors:
            return False  # batch tests (embedding MMD) are statistical evidence only
        return self.down(subject) if test.name == DEFICIT_TEST else self.up(subject)


def practical_test(
    night: NightEvidence, levels: dict[str, float | None], settings: GateSettings
) -> Practical:
    """Each detector's flag rate against its calibrated rate and, once that has drifted by
    half a floor, its recent level (which the rate must then also clear by ``step_z``
    standard errors of a night's rate)."""
    out: dict[str, dict[str, Any]] = {}
    for name, det in sorted(night.detectors.items()):
        expected = expected_flag_rate(det.tpr, det.n_calibration)
        recent = levels.get(name)
        rate = det.ood_rate
        drifted_up = recent is not None and recent - expected >= settings.min_excess_rate / 2
        drifted_down = recent is not None and expected - recent >= settings.min_deficit_rate / 2
        base_up = recent if drifted_up and recent is not None else expected
        base_down = recent if drifted_down and recent is not None else expected
        se = float(np.sqrt(base_up * (1 - base_up) / max(det.n_rows, 1)))
        se_down = float(np.sqrt(base_down * (1 - base_down) / max(det.n_rows, 1)))
        floor_up = settings.min_excess_rate
        floor_down = settings.min_deficit_rate
        if drifted_up:
            floor_up = max(floor_up, settings.step_z * se)
        if drifted_down:
            floor_down = max(floor_down, settings.step_z * se_down)
        above = min(rate - expected, rate - base_up)
        below = min(expected - rate, base_down - rate)
        out[name] = {
            "rate": rate,
            "expected": expected,
            "recent": recent,
            "excess": rate - expected,
            "above_both": above,
            "below_both": below,
            "min_excess": settings.min_excess_rate,
            "min_deficit": settings.min_deficit_rate,
            "floor_up": floor_up,
            "floor_down": floor_down,
            "up": rate - expected >= settings.min_excess_rate and rate - base_up >= floor_up,
            "down": expected - rate >= settings.min_deficit_rate and base_down - rate >= floor_down,
        }
    return Practical(out)


def input_columns(night: NightEvidence, settings: GateSettings) -> list[TestResult]:
    """The columns that open an ``input`` event tonight: BH-adjusted p at most the input
    level and an effect of at least ``min_effect``; most moved first."""
    if not settings.input_events:
        return []
    level = settings.input_level()
    return sorted(
        (t for t in night.tests if is_column_test(t) and is_decisive(t, level, settings)),
        key=lambda t: (t.p_value, -t.effect_size),
    )


def gradual_advice(practical: Practical, count: int, settings: GateSettings) -> str:
    """The ``gradual`` warning's reason: the numbers and what to do about them."""
    moved = ", ".join(
        f"{name} {d['rate']:.1%} vs {d['expected']:.1%} calibrated"
        + (f", {d['recent']:.1%} recently" if d["recent"] is not None else "")
        for name, d in practical.detectors.items()
    )
    return (
        f"gradual drift: {count} of the last {settings.gradual_w} nights statistically decisive "
        f"but below the practical floor ({moved}); a persistent small level change, not a "
        "shift to act on: re-baseline the thresholds on a recent clean window "
        "(`drift recalibrate --monitor M --start ... --end ...`)"
    )


def points_moved(moved: dict[str, Any] | None, test: str) -> str:
    """How far a detector's rate moved against the practical floor, in points."""
    if moved is None:
        return "a batch-level test: needs a detector's practical move"
    if test == DEFICIT_TEST:
        return (
            f"rate {moved['rate']:.1%} is {moved['below_both'] * 100:.1f} points below its "
            f"calibrated and recent rates, floor {moved.get('floor_down', moved['min_deficit']) * 100:.2g}"
        )
    return (
        f"rate {moved['rate']:.1%} is {moved['above_both'] * 100:.1f} points above its "
        f"calibrated and recent rates, floor {moved.get('floor_up', moved['min_excess']) * 100:.2g}"
    )


def below_nominal(name: str, moved: dict[str, Any]) -> str:
    return (
        f"{name} flagged {moved['rate']:.1%} of rows, far BELOW its calibrated "
        f"{moved['expected']:.1%}: a model more confident than on calibration is evidence "
        "of a shift too (overconfidence under shift)"
    )
