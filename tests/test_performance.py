"""Accuracy per night: realized metrics, the CBPE and ATC estimators, the accuracy_drop test
in the gate, and the whole path on a stream whose labels arrive one night late (SQLite and
Postgres)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, recall_score
from sqlalchemy import select, text

from drift import pipeline
from drift.explain import explain_night
from drift.feedback import import_labels
from drift.gate import GateSettings, NightEvidence, decide
from drift.performance import ATC, CBPE, load_estimator, realized_performance, wilson_interval
from drift.stats import accuracy_drop_test, statistic
from drift.stats.registry import Family, Scope
from drift.status import Verdict
from drift.store.db import get_engine, session_scope
from drift.store.models import Batch, DriftTest, FeedbackLabel, NightPerformance

# -- realized ---------------------------------------------------------------------------------


def test_realized_metrics_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 6, 500)
    # the model knows classes 0-4: it predicts one of them, right 70% of the time where it can be
    y_pred = np.where((rng.random(500) < 0.7) & (y_true < 5), y_true, rng.integers(0, 5, 500))
    r = realized_performance(y_true, y_pred, classes=range(5))  # class 5 is novel
    assert r.accuracy == pytest.approx((y_true == y_pred).mean()) and r.n_labelled == 500
    for c in range(6):
        expected = recall_score(y_true, y_pred, labels=[c], average=None, zero_division=0)[0]
        assert r.recall[str(c)] == pytest.approx(expected)
    assert r.recall["5"] == 0.0  # a novel class is never predicted
    assert r.macro_f1 == pytest.approx(f1_score(y_true, y_pred, labels=list(range(5)), average="macro"))


def test_wilson_interval_matches_statsmodels_and_covers_95_percent() -> None:
    from statsmodels.stats.proportion import proportion_confint

    for k, n in [(0, 10), (7, 10), (95, 100), (600, 601), (300, 1000)]:
        assert wilson_interval(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"))
    rng = np.random.default_rng(2)
    draws = rng.binomial(120, 0.9, 4000)
    covered = np.mean([lo <= 0.9 <= hi for lo, hi in (wilson_interval(int(k), 120) for k in draws)])
    assert 0.93 <= covered <= 0.97


def test_realized_refuses_mismatched_or_empty_inputs() -> None:
    with pytest.raises(ValueError, match="must be one length"):
        realized_performance([1, 2], [1], classes=[1, 2])
    with pytest.raises(ValueError, match="no labelled rows"):
        realized_performance([], [], classes=[1])


# -- estimators on a case whose truth is known ------------------------------------------------


def _calibrated_logits(rng: np.random.Generator, confidence: np.ndarray, n_classes: int = 4):
    """Logits whose top softmax probability is ``confidence`` and labels drawn so that the
    top class is right with exactly that probability (a perfectly calibrated model)."""
    n = len(confidence)
    rest = (1 - confidence) / (n_classes - 1)
    logits = np.log(np.column_stack([confidence] + [rest] * (n_classes - 1)))
    correct = rng.random(n) < confidence
    wrong = rng.integers(1, n_classes, n)
    return logits, np.where(correct, 0, wrong)


def test_cbpe_tracks_a_calibrated_model_across_confidence_shifts() -> None:
    rng = np.random.default_rng(3)
    logits, labels = _calibrated_logits(rng, rng.uniform(0.4, 1.0, 5000))
    cbpe = CBPE().fit(logits, labels)
    assert cbpe.reference_accuracy_ == pytest.approx(0.7, abs=0.02)
    for low, high in [(0.4, 1.0), (0.6, 1.0), (0.4, 0.7), (0.8, 1.0)]:
        night_logits, night_labels = _calibrated_logits(rng, rng.uniform(low, high, 2000))
        e = cbpe.estimate(night_logits)
        realized = float((night_logits.argmax(1) == night_labels).mean())
        assert e.low <= realized <= e.high and abs(e.value - realized) < 0.04, (low, high, e)
        assert e.n_rows == 2000


def test_atc_is_exact_when_correctness_is_a_confidence_threshold() -> None:
    """ATC's own assumption: the rows above some confidence are the right ones. Then the
    threshold fitted on reference recovers it, and every confidence shift is estimated."""
    rng = np.random.default_rng(3)
    confidence = rng.uniform(0.4, 1.0, 5000)
    logits, _ = _calibrated_logits(rng, confidence)
    atc = ATC().fit(logits, np.where(confidence > 0.6, 0, 1))
    assert np.exp(atc.threshold_) == pytest.approx(0.6, abs=0.01)
    for low, high in [(0.4, 1.0), (0.5, 0.8), (0.55, 0.65)]:
        night = rng.uniform(low, high, 2000)
        e = atc.estimate(_calibrated_logits(rng, night)[0])
        realized = float((night > 0.6).mean())
        assert e.low <= realized <= e.high and abs(e.value - realized) < 0.02, (low, high, e)


def test_cbpe_band_covers_realized_accuracy_95_percent_of_nights() -> None:
    rng = np.random.default_rng(4)
    logits, labels = _calibrated_logits(rng, rng.uniform(0.5, 1.0, 3000))
    cbpe = CBPE().fit(logits, labels)
    hits = []
    for _ in range(300):
        night, truth = _calibrated_logits(rng, rng.uniform(0.5, 1.0, 500))
        e = cbpe.estimate(night)
        hits.append(e.low <= float((night.argmax(1) == truth).mean()) <= e.high)
    assert np.mean(hits) >= 0.93


@pytest.mark.parametrize("estimator", [CBPE, ATC])
def test_fitted_estimators_round_trip_through_json(estimator) -> None:
    rng = np.random.default_rng(5)
    logits, labels = _calibrated_logits(rng, rng.uniform(0.3, 1.0, 1000))
    fitted = estimator().fit(logits, labels)
    again = load_estimator(json.loads(json.dumps(fitted.to_dict())))
    night, _ = _calibrated_logits(rng, rng.uniform(0.3, 0.9, 700))
    assert again.estimate(night) == fitted.estimate(night)


def test_estimators_refuse_bad_input() -> None:
    with pytest.raises(RuntimeError, match="call fit"):
        CBPE().estimate(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="3 rows of logits but 2 labels"):
        ATC().fit(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="unknown performance estimator 'nope'"):
        load_estimator({"name": "nope"})


# -- accuracy_drop in the registry and the gate -----------------------------------------------


def test_accuracy_drop_is_an_act_statistic_and_the_gate_acts_on_it() -> None:
    record = statistic("accuracy_drop")
    assert record.family is Family.ACT and record.scope is Scope.BATCH
    settings = GateSettings()
    assert "accuracy_drop" in settings.act_tests
    day = date(2026, 1, 1)
    quiet = decide(settings, None, NightEvidence(day, {}, [accuracy_drop_test(0.97, 0.01, 0.98, 0.05)]))
    assert quiet.verdict is Verdict.OK
    dropped = decide(
        settings, quiet.state,
        NightEvidence(day + timedelta(days=1), {}, [accuracy_drop_test(0.85, 0.01, 0.98, 0.05)]),
    )
    assert dropped.verdict is Verdict.WARN and "accuracy_drop" in dropped.reasons[0]
    # the allowed drop is a setting: the same night is fine when 15 points are tolerated
    tolerant = accuracy_drop_test(0.85, 0.01, 0.98, GateSettings(max_accuracy_drop=0.15).max_accuracy_drop)
    assert decide(settings, None, NightEvidence(day, {}, [tolerant])).verdict is Verdict.OK


def test_quiet_nights_of_a_calibrated_model_never_show_a_significant_drop() -> None:
    """The gate's false-alarm budget: with an honest band, quiet nights do not act."""
    rng = np.random.default_rng(6)
    bar = GateSettings().alpha / 7  # the demo's act family: 7 tests
    alarms = 0
    for _ in range(20):  # 20 calibrations x 100 quiet nights
        logits, labels = _calibrated_logits(rng, rng.uniform(0.6, 1.0, 300))
        cbpe = CBPE().fit(logits, labels)
        for n_rows in (200, 5000) * 50:
            e = cbpe.estimate(_calibrated_logits(rng, rng.uniform(0.6, 1.0, n_rows))[0])
            test = accuracy_drop_test(e.value, e.se, cbpe.reference_accuracy_, 0.05)
            alarms += test.p_value <= bar
    assert alarms == 0


# -- the whole path: labels one night late ----------------------------------------------------

NIGHTS = [date(2026, 11, 5) + timedelta(days=i) for i in range(4)]  # 2 clean, 2 novel-class


def _realized_by_hand(settings, monitor, night) -> tuple[float, int]:
    shards = sorted(pipeline.scores_dir(settings, monitor, night).glob("shard-*.parquet"))
    rows = pd.concat([pd.read_parquet(p) for p in shards])
    with session_scope(settings.db_url) as session:
        labels = pd.DataFrame(
            session.execute(
                select(FeedbackLabel.row_id, FeedbackLabel.label).where(FeedbackLabel.batch_date == night)
            ).all(),
            columns=["row_id", "label"],
        )
    joined = labels.merge(rows.assign(row_id=rows["id"].astype(str)), on="row_id")
    return float((joined["label"] == joined["pred"]).mean()), len(joined)


def test_a_stream_with_labels_one_night_late(drift_env, demo_monitor, demo_world, db_url) -> None:
    settings = drift_env(db_url)
    fit = pipeline.fit_monitor(settings, demo_monitor)
    assert fit["performance"].startswith("performance estimators cbpe, atc fitted on")
    feedback = demo_world / "demo" / "feedback"
    for i, night in enumerate(NIGHTS):
        if i:
            import_labels(settings, demo_monitor, feedback / f"labels-{NIGHTS[i - 1]}.csv")
        pipeline.run_night(settings, demo_monitor, night)

    with session_scope(settings.db_url) as session:
        stored = {
            (b, p.method): p
            for b, p in session.execute(
                select(Batch.batch_date, NightPerformance).join(Batch, Batch.id == NightPerformance.batch_id)
            ).all()
        }
        drops = {
            session.get(Batch, t.batch_id).batch_date: t
            for t in session.scalars(select(DriftTest).where(DriftTest.test == "accuracy_drop"))
        }
        for night in NIGHTS:
            for method in ("cbpe", "atc"):
                p = stored[(night, method)]
                assert p.accuracy_low <= p.accuracy <= p.accuracy_high and p.n_rows == 600
                assert p.reference_accuracy == pytest.approx(fit["accuracy_calibration"])
            assert drops[night].details["in_act_family"]
        assert {n for n, m in stored if m == "realized"} == set(NIGHTS[:-1])  # last: no labels yet

    for night in NIGHTS[:-1]:
        accuracy, n_labelled = _realized_by_hand(settings, demo_monitor, night)
        realized = stored[(night, "realized")]
        assert realized.accuracy == pytest.approx(accuracy) and realized.n_rows == n_labelled
        assert realized.accuracy_low < accuracy < realized.accuracy_high or accuracy in (0.0, 1.0)
    # novel classes cost accuracy the estimators cannot see; clean nights stay near reference
    assert stored[(NIGHTS[2], "realized")].accuracy < stored[(NIGHTS[2], "cbpe")].accuracy - 0.1
    assert stored[(NIGHTS[0], "cbpe")].accuracy == pytest.approx(fit["accuracy_calibration"], abs=0.03)

    # the last night's labels arrive: its realized accuracy appears; a re-import changes nothing
    import_labels(settings, demo_monitor, feedback / f"labels-{NIGHTS[-1]}.csv")
    import_labels(settings, demo_monitor, feedback / f"labels-{NIGHTS[-1]}.csv")
    with get_engine(settings.db_url).connect() as conn:
        view = conn.execute(
            text("SELECT batch_date, method FROM v_daily_performance WHERE method = 'realized'")
        ).all()
        # the columns README's "Dashboards" promises: monitor, night, method, accuracy with its
        # 95% band, rows, reference accuracy (and the night's verdict)
        columns = conn.execute(
            text(
                "SELECT monitor, batch_date, method, accuracy, accuracy_low, accuracy_high, n_rows,"
                " reference_accuracy, verdict FROM v_daily_performance WHERE method = 'cbpe'"
            )
        ).all()
    assert len(view) == len(NIGHTS)
    assert {(c.monitor, c.n_rows) for c in columns} == {("digits_demo", 600)} and len(columns) == len(NIGHTS)
    assert all(c.accuracy_low <= c.accuracy <= c.accuracy_high and c.verdict for c in columns)

    # a night run again keeps its realized accuracy (labels already in)
    pipeline.run_night(settings, demo_monitor, NIGHTS[0])
    with session_scope(settings.db_url) as session:
        count = session.query(NightPerformance).count()
    assert count == 3 * len(NIGHTS)

    explanation = explain_night(settings, demo_monitor, NIGHTS[2])
    line = next(x for x in explanation.lines() if x.startswith("accuracy: "))
    assert "by CBPE" in line and "by ATC" in line and "labelled rows" in line
    assert any(t["test"] == "accuracy_drop" for t in explanation.tests)
    assert explanation.as_dict()["performance"]["realized"]["n_rows"] > 0


def test_without_labelled_calibration_rows_the_estimators_are_skipped(
    drift_env, demo_monitor, db_url
) -> None:
    settings = drift_env(db_url)
    unlabelled = demo_monitor.model_copy(
        update={"reference": demo_monitor.reference.model_copy(update={"label_column": None})}
    )
    fit = pipeline.fit_monitor(settings, unlabelled)
    assert fit["performance"].startswith("performance estimators skipped: the calibration rows")
    assert "\n" not in fit["performance"]  # one line, printed by `drift fit`
    assert not (Path(fit["path"]) / "performance.json").exists()
    pipeline.run_night(settings, unlabelled, NIGHTS[0])
    with session_scope(settings.db_url) as session:
        assert session.query(NightPerformance).count() == 0
        assert session.query(DriftTest).filter(DriftTest.test == "accuracy_drop").count() == 0


def test_a_model_without_logits_skips_the_estimators_in_one_line(tmp_path) -> None:
    """Precomputed features without logit columns: no confidence, so nothing to fit."""
    from drift.batch import FeatureBatch
    from drift.pipeline.performance import fit_estimators

    rng = np.random.default_rng(0)
    rows = FeatureBatch(rng.normal(size=(50, 4)), logits=None, labels=rng.integers(0, 3, 50))
    note = fit_estimators(tmp_path, rows, "file calibration.parquet")
    assert note == "performance estimators skipped: the model has no logits"
    assert list(tmp_path.iterdir()) == []


def test_fit_stores_the_estimators_as_json_beside_the_detectors(drift_env, demo_monitor, sqlite_url) -> None:
    """drift/pipeline/performance.py: ``performance.json`` in the version folder (JSON, no
    pickle), read back into the estimators that score the nights."""
    from drift.pipeline.performance import load_estimators

    settings = drift_env(sqlite_url)
    fit = pipeline.fit_monitor(settings, demo_monitor)
    folder = Path(fit["path"])
    state = json.loads((folder / "performance.json").read_text())
    assert sorted(state) == ["atc", "cbpe"]
    estimators = load_estimators(folder)
    assert {name: type(e) for name, e in estimators.items()} == {"cbpe": CBPE, "atc": ATC}
    assert estimators["cbpe"].reference_accuracy_ == pytest.approx(fit["accuracy_calibration"])
    assert "\n" not in fit["performance"]
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".pkl", ".pickle", ".joblib")]
    # no file of the version opens with a pickle's protocol header (0x80 then the protocol)
    assert not [p for p in files if p.read_bytes()[:1] == b"\x80"]
