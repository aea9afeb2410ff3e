"""The statistic registry: one record per statistic, read by the gate, the pipeline and the report."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from drift import stats
from drift.gate import DetectorNight, GateSettings, NightEvidence, decide, is_column_test, own_level
from drift.stats import registry
from drift.stats.registry import (
    DetectorSample,
    Family,
    Scope,
    Signal,
    Statistic,
    TestResult,
    register,
)
from drift.status import ShiftType, Verdict


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test vanish after it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_gate_defaults_come_from_the_records() -> None:
    settings = GateSettings()
    assert settings.min_effect == {
        "flag_count": 0.01,
        "score_distribution": 0.05,
        "flag_deficit": 0.01,
        "mmd": 0.0,
        "mmd_linear": 0.0,
        "column_ks": 0.1,
        "column_chisquare": 0.05,
        "class_mix": 0.05,
        "accuracy_drop": 0.0,  # its p-value already tests a drop beyond max_accuracy_drop
    }
    assert set(settings.act_tests) == {
        "flag_count",
        "flag_deficit",
        "score_distribution",
        "mmd",
        "mmd_linear",
        "class_mix",
        "accuracy_drop",
    }
    assert settings.max_accuracy_drop == 0.05


def test_column_statistics_are_bh_evidence_and_say_which_is_categorical() -> None:
    columns = stats.column_statistics()
    assert [(s.name, s.categorical) for s in columns] == [
        ("column_ks", False),
        ("column_chisquare", True),
    ]
    assert all(s.family is Family.EVIDENCE and s.signals is Signal.INPUTS for s in columns)
    settings = GateSettings(alpha=0.001, column_fdr=0.2)
    assert own_level(TestResult("column_ks", 0.01, 0.01, 0.5, "a"), settings) == 0.2
    assert own_level(TestResult("mmd", 0.01, 0.01, 0.5), settings) == 0.001


def test_a_name_registered_twice_is_refused(scratch_registry: None) -> None:
    with pytest.raises(ValueError, match="'flag_count' is already registered"):
        registry.add(Statistic("flag_count", Scope.DETECTOR, Family.ACT))


def test_adding_a_statistic_is_one_function_and_one_registration(scratch_registry: None) -> None:
    """The docs' worked example: a new detector-level test joins the act family, the pipeline
    computes it on every detector, and the gate acts on it with its minimum effect."""

    @register(
        Statistic("score_mean", Scope.DETECTOR, Family.ACT, min_effect=0.2, signals=Signal.DETECTOR)
    )
    def score_mean_on_night(sample: DetectorSample) -> list[TestResult]:
        shift = float(sample.scores.mean() - sample.calibration_scores.mean())
        # always "significant": only the registered minimum effect separates the nights
        return [TestResult("score_mean", shift, 1e-9, shift, subject=sample.detector)]

    assert score_mean_on_night in stats.computes(Scope.DETECTOR)
    settings = GateSettings()
    assert "score_mean" in settings.act_tests and settings.min_effect["score_mean"] == 0.2

    rng = np.random.default_rng(0)
    calibration = rng.normal(size=1000)
    threshold = np.quantile(calibration, 0.95)

    def sample(scores: np.ndarray) -> DetectorSample:  # flags what the threshold flags
        return DetectorSample("knn", scores, int((scores > threshold).sum()), calibration, 0.95)

    quiet, moved = sample(rng.normal(size=500)), sample(rng.normal(1.0, 1.0, size=500))

    def night(day: int, sample: DetectorSample) -> NightEvidence:
        tests = [t for compute in stats.computes(Scope.DETECTOR) for t in compute(sample)]
        detector = DetectorNight(len(sample.scores), sample.n_flagged, 1000, 0.95, tests)
        return NightEvidence(date(2024, 1, day), {"knn": detector})

    settings = GateSettings(cusum_rate=0.9)  # keep the CUSUM out of this
    calm = decide(settings, None, night(1, quiet))
    assert calm.verdict is Verdict.OK
    # flag_count, score_distribution, flag_deficit, score_mean
    assert calm.evidence["family_size"] == 4
    warned = decide(settings, calm.state, night(2, moved))
    assert warned.verdict is Verdict.WARN
    assert "score_mean:knn" in warned.evidence["decisive"]
    assert warned.shift_type is ShiftType.COVARIATE


def test_an_unregistered_name_is_neither_act_nor_column_evidence() -> None:
    unknown = TestResult("not_registered", 0.0, 0.0, 1.0, "x")
    assert stats.find("not_registered") is None
    assert not is_column_test(unknown)
    night = NightEvidence(date(2024, 1, 1), {}, [unknown])
    assert decide(GateSettings(), None, night).verdict is Verdict.OK
