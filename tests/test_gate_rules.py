"""The gate's rules for alarms that matter: the practical floor, gradual warnings, the low
side of the flag rate, input events and the false-event budget they share."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pytest

from drift.gate import DetectorNight, GateSettings, NightEvidence, decide
from drift.stats import TestResult, expected_flag_rate, flag_count_test, flag_deficit_test
from drift.status import EventKind, Verdict

M, TPR = 1999, 0.95
START = date(2025, 6, 1)


def detector(n_rows: int, n_flagged: int, name: str, tpr: float = TPR) -> DetectorNight:
    tests = [
        flag_count_test(n_flagged, n_rows, M, tpr, subject=name),
        flag_deficit_test(n_flagged, n_rows, M, tpr, subject=name),
    ]
    return DetectorNight(n_rows, n_flagged, M, tpr, tests)


def night(day: int, flagged: dict[str, int], n_rows: int, tests: list[TestResult] | None = None,
          tpr: float = TPR) -> NightEvidence:
    return NightEvidence(
        START + timedelta(days=day),
        {name: detector(n_rows, k, name, tpr) for name, k in flagged.items()},
        tests or [],
    )


def run(settings: GateSettings, nights: list[NightEvidence]) -> list:
    state, out = None, []
    for n in nights:
        decision = decide(settings, state, n)
        state = decision.state
        out.append(decision)
    return out


def test_the_practical_floor_blocks_a_tiny_but_significant_excess() -> None:
    # 50,000 rows, 6.5% flagged against 5% calibrated: p ~ 1e-9, a 1.5-point excess
    tiny = night(0, {"knn": 3250}, 50_000)
    strict = decide(GateSettings(min_excess_rate=0.02), None, tiny)
    assert strict.verdict is Verdict.OK and not strict.significant
    assert strict.evidence["statistically_decisive"] == ["flag_count:knn"]
    assert strict.evidence["decisive"] == []
    assert any("not the practical test" in r and "1.5 points above" in r for r in strict.reasons)
    # the same night against a floor the excess clears is a warning
    lenient = decide(GateSettings(min_excess_rate=0.01), None, tiny)
    assert lenient.verdict is Verdict.WARN and lenient.kind is EventKind.SHIFT


def test_a_step_after_weeks_at_the_calibrated_rate_is_caught_every_night() -> None:
    """The recent level freezes during a shift: a step stays new against it."""
    settings = GateSettings()
    nights = [night(t, {"knn": 100}, 2000) for t in range(20)]  # 5% for three weeks
    nights += [night(20 + t, {"knn": 150}, 2000) for t in range(12)]  # 7.5%, for 12 nights
    decisions = run(settings, nights)
    assert [d.verdict for d in decisions[:20]] == [Verdict.OK] * 20
    assert Verdict.CONFIRM in [d.verdict for d in decisions[20:22]]
    assert all(d.kind is EventKind.SHIFT for d in decisions[20:])


def test_a_slow_level_change_is_one_gradual_warning_and_rebaselining_ends_it() -> None:
    """5% creeping to 7% over 60 nights of 20,000 rows: every late night is statistically
    decisive, none is a step from the recent level: one run of gradual warnings, no shift."""
    rng = np.random.default_rng(0)
    settings = GateSettings()
    rates = np.r_[np.full(20, 0.05), np.linspace(0.05, 0.07, 60), np.full(20, 0.07)]
    n = 20_000
    nights = [night(t, {"energy": int(rng.binomial(n, r))}, n) for t, r in enumerate(rates)]
    decisions = run(settings, nights)
    kinds = [d.kind for d in decisions]
    assert Verdict.CONFIRM not in [d.verdict for d in decisions]
    assert EventKind.SHIFT not in kinds
    first = kinds.index(EventKind.GRADUAL)
    assert all(k is EventKind.GRADUAL for k in kinds[first:])  # one warning, never broken up
    assert 20 < first < 80
    advice = next(r for r in decisions[-1].reasons if r.startswith("gradual drift"))
    assert "drift recalibrate" in advice and "energy" in advice and "calibrated" in advice
    # re-baselined on a recent clean window: thresholds at the new 7% level, a fresh gate
    rebaselined_tpr = 0.93
    assert expected_flag_rate(rebaselined_tpr, M) == pytest.approx(0.07)
    after = [night(100 + t, {"energy": int(rng.binomial(n, 0.07))}, n, tpr=rebaselined_tpr)
             for t in range(60)]
    assert {d.verdict for d in run(settings, after)} == {Verdict.OK}


def test_a_rate_far_below_nominal_is_evidence_named_in_the_reasons() -> None:
    # the census episode: KNN rose to 8%, energy fell to 0.9% (more confident while wrong)
    decision = decide(GateSettings(), None, night(0, {"knn": 160, "energy": 18}, 2000))
    assert decision.verdict is not Verdict.OK and decision.kind is EventKind.SHIFT
    assert "flag_deficit:energy" in decision.evidence["decisive"]
    assert any("energy flagged 0.9% of rows, far BELOW" in r for r in decision.reasons)
    assert decision.evidence["practical"]["energy"]["down"]
    # a fall of 1.5 points on a huge night is significant but not a practical deficit
    mild = decide(GateSettings(), None, night(0, {"energy": 1750}, 50_000))
    assert mild.evidence["statistically_decisive"] == ["flag_deficit:energy"]
    assert mild.verdict is Verdict.OK


def column(name: str, p_bh: float, effect: float) -> TestResult:
    return TestResult("column_ks", p_bh, p_bh, effect, subject=name)


def test_columns_that_moved_while_ood_rates_did_not_open_an_input_warning() -> None:
    quiet = {"knn": 100, "energy": 100}
    moved = decide(GateSettings(), None, night(0, quiet, 2000, [column("age", 1e-6, 0.3)]))
    assert moved.verdict is Verdict.WARN and moved.kind is EventKind.INPUT
    assert moved.evidence["input"]["columns"] == ["age"]
    assert any("input drift" in r and "age" in r for r in moved.reasons)
    # moved at the column FDR (evidence) but not at the input events' share of the budget
    weak = decide(GateSettings(), None, night(0, quiet, 2000, [column("age", 0.01, 0.3)]))
    assert weak.verdict is Verdict.OK
    # a large p-value-free move of a tiny size is not an input event either
    small = decide(GateSettings(), None, night(0, quiet, 2000, [column("age", 1e-9, 0.05)]))
    assert small.verdict is Verdict.OK
    off = decide(GateSettings(input_events=False), None, night(0, quiet, 2000, [column("age", 1e-6, 0.3)]))
    assert off.verdict is Verdict.OK


def test_the_false_event_budget_adds_up() -> None:
    settings = GateSettings()
    per_night = 1 / settings.arl0_nights
    assert settings.input_level() == pytest.approx(settings.input_share * per_night)
    assert settings.persistence_false_rate() == pytest.approx(math.comb(3, 2) * 0.01**2)
    for n_detectors in (1, 2, 3):
        cusums = n_detectors / settings.cusum_arl0(n_detectors)
        total = (settings.persistence_false_rate() + settings.input_level()
                 + settings.gradual_false_rate() + cusums)
        assert total == pytest.approx(per_night)
    assert 0 < settings.gradual_false_rate() < 1e-9
    assert GateSettings(input_events=False).input_level() == 0.0
    with pytest.raises(ValueError, match="input events' share"):
        GateSettings(alpha=0.02, input_share=0.9)
    with pytest.raises(ValueError, match="gradual_r"):
        GateSettings(gradual_r=15)


def test_sampling_noise_on_a_drifted_level_is_no_step() -> None:
    """Three weeks at 7% (2 points over calibrated): a night at 8.2% is 1.2 points above the
    recent level, past the 1-point floor but within 4 standard errors of a 2,000-row night
    (2.3 points): not practical. A night at 10% is a step."""
    settings = GateSettings()
    rng = np.random.default_rng(1)
    history = [night(t, {"knn": int(rng.binomial(2000, 0.07))}, 2000) for t in range(21)]
    state = run(settings, history)[-1].state
    noisy = decide(settings, state, night(21, {"knn": 164}, 2000))
    practical = noisy.evidence["practical"]["knn"]
    assert practical["recent"] == pytest.approx(0.07, abs=0.006)
    assert not practical["up"] and practical["floor_up"] == pytest.approx(4 * np.sqrt(
        practical["recent"] * (1 - practical["recent"]) / 2000))
    assert noisy.kind is not EventKind.SHIFT
    step = decide(settings, state, night(21, {"knn": 200}, 2000))
    assert step.evidence["practical"]["knn"]["up"] and step.kind is EventKind.SHIFT
