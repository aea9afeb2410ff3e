"""Feedback labels on the real pipeline (SQLite and Postgres): they fix an event's shift
type with recorded evidence, and they request the adaptation of an event waiting for them.

Demo world nights (1-based): 7-9 novel digits at 30%, 14-17 occluded digits (covariate),
22-24 two classes over-sampled (prior); labels of 15% of each night's rows.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from drift import pipeline
from drift.demo import FIRST_NIGHT
from drift.pipeline.labelled import MIN_TYPING_LABELS, NOVEL_LABEL_SHARE, type_by_labels
from drift.store.db import session_scope
from drift.store.models import DriftEvent


def _night(n: int):
    return FIRST_NIGHT + timedelta(days=n - 1)


def _labels_file(monitor, n: int):
    return monitor.reference.path.parent / "feedback" / f"labels-{_night(n)}.csv"


@pytest.fixture
def fitted(drift_env, demo_monitor, db_url):
    settings = drift_env(db_url)
    pipeline.fit_monitor(settings, demo_monitor)
    return settings, demo_monitor


def _event(settings, event_id: int) -> DriftEvent:
    with session_scope(settings.db_url) as session:
        event = session.get_one(DriftEvent, event_id)
        session.expunge(event)
        return event


def _run(settings, monitor, first: int, last: int) -> list[dict]:
    return [pipeline.run_night(settings, monitor, _night(n)) for n in range(first, last + 1)]


def test_a_covariate_shift_is_unknown_until_its_labels_show_an_accuracy_drop(fitted):
    settings, monitor = fitted
    decisions = _run(settings, monitor, 12, 15)  # occlusion from night 14
    confirmed = [d for d in decisions if d["newly_confirmed"]]
    assert confirmed, [d["verdict"] for d in decisions]
    event_id = confirmed[0]["event_id"]
    # the unlabelled evidence of occluded digits looks like novel classes: no guess
    assert [d["shift_type"] for d in decisions if d["event_id"] == event_id] == [
        "unknown",
        "unknown",
    ]
    assert _event(settings, event_id).shift_type == "unknown"

    result = pipeline.import_feedback(settings, monitor, _labels_file(monitor, 14))
    assert result["retyped"] == [{"event_id": event_id, "was": "unknown", "now": "covariate"}]
    event = _event(settings, event_id)
    assert event.shift_type == "covariate"
    (change,) = event.evidence["type_changes"]
    labels = pd.read_csv(_labels_file(monitor, 14))
    assert change["from"] == "unknown" and change["to"] == "covariate"
    assert change["n_labels"] == len(labels) and change["n_novel"] == 0
    assert change["nights"] == [str(_night(14))]
    assert change["accuracy"] < change["reference_accuracy"] - 0.1
    assert change["accuracy_drop_p_value"] < 1e-4
    assert change["accuracy_low"] <= change["accuracy"] <= change["accuracy_high"]
    assert change["n_reference"] > 0 and "accuracy" in change["why"]

    # a later night's gate verdict no longer changes the type the labels fixed
    later = pipeline.run_night(settings, monitor, _night(16))
    assert later["event_id"] == event_id and later["shift_type"] in {"unknown", "covariate"}
    assert _event(settings, event_id).shift_type == "covariate"


def test_novel_class_labels_fix_a_semantic_shift(fitted):
    settings, monitor = fitted
    decisions = _run(settings, monitor, 6, 8)
    event_id = next(d["event_id"] for d in decisions if d["newly_confirmed"])
    assert _event(settings, event_id).shift_type == "unknown"
    result = pipeline.import_feedback(settings, monitor, _labels_file(monitor, 7))
    assert result["novel_class"] > 0
    assert result["retyped"] == [{"event_id": event_id, "was": "unknown", "now": "semantic"}]
    assert result["adaptation_requested"] == []  # a fixed classifier cannot learn new classes
    change = _event(settings, event_id).evidence["type_changes"][-1]
    assert change["to"] == "semantic" and change["novel_classes"] == [8, 9]
    assert 0.2 < change["novel_share"] < 0.4 and change["n_novel"] > 0


def test_labels_of_quiet_rows_leave_the_type_alone(fitted):
    """Labels of a prior shift's nights: known classes, accuracy as on the reference."""
    settings, monitor = fitted
    decisions = _run(settings, monitor, 21, 23)
    event_id = next(d["event_id"] for d in decisions if d["event_id"])
    before = _event(settings, event_id).shift_type
    assert before == "prior"
    pipeline.import_feedback(settings, monitor, _labels_file(monitor, 22))
    event = _event(settings, event_id)
    assert event.shift_type == "prior"
    checked = event.evidence["labels"]
    assert checked["n_novel"] == 0 and checked["accuracy_drop_p_value"] > 0.01
    assert checked["class_mix_p_value"] < 1e-6  # the true class mix moved too


def test_labels_arriving_a_night_late_request_the_adaptation_once(fitted):
    settings, monitor = fitted
    requested: dict[int, list[int]] = {}
    event_id = None
    for n in range(12, 18):
        if n > 12:  # yesterday's labels arrive before tonight's run
            result = pipeline.import_feedback(settings, monitor, _labels_file(monitor, n - 1))
            requested[n] = result["adaptation_requested"]
        decision = pipeline.run_night(settings, monitor, _night(n))
        event_id = event_id or (decision["event_id"] if decision["newly_confirmed"] else None)
    assert event_id is not None
    # min_labels 200 in the demo config, ~90 labels a night (15% of 600): the third
    # shifted night's labels (night 16's, arriving on 17) reach it
    assert requested == {13: [], 14: [], 15: [], 16: [], 17: [event_id]}
    request = pipeline.take_adaptation_request(settings, monitor)
    assert request is not None and request["event_id"] == event_id
    assert request["shift_type"] == "covariate" and request["n_labelled"] >= 200
    assert pipeline.take_adaptation_request(settings, monitor) is None  # emitted once
    # importing the same labels again requests nothing new
    again = pipeline.import_feedback(settings, monitor, _labels_file(monitor, 16))
    assert again["adaptation_requested"] == []


# -- the typing rule itself (docs/methods.md §4 item 5, drift/pipeline/labelled.py) -----------

UNIFORM = np.full(10, 0.1)  # the reference labels' class mix of a 10-class model
WITH_REFERENCE = {"n_classes": 10, "accuracy_calibration": 0.98, "n_calibration": 300}


def _typed(labels, predicted, manifest=WITH_REFERENCE, share=UNIFORM):
    labels = np.asarray(labels)
    frame = pd.DataFrame({
        "batch_date": _night(14), "row_id": [str(i) for i in range(len(labels))],
        "label": labels, "pred": np.asarray(predicted, dtype=float),
    })  # fmt: skip
    shift_type, evidence = type_by_labels(frame, manifest, share)
    return None if shift_type is None else str(shift_type), evidence


def test_labels_type_only_from_30_on_and_semantic_from_5_percent_novel():
    assert MIN_TYPING_LABELS == 30 and NOVEL_LABEL_SHARE == 0.05
    novel = np.full(30, 11)  # every label a class the model does not have
    assert _typed(novel[:29], np.zeros(29))[0] is None
    assert "29 labels, need 30" in _typed(novel[:29], np.zeros(29))[1]["why"]
    assert _typed(novel, np.zeros(30))[0] == "semantic"

    known = np.arange(100) % 10  # the reference's class mix, every row predicted right
    assert _typed(known, known)[0] is None  # nothing moved
    four, five = known.copy(), known.copy()
    four[:4], five[:5] = 10, 10
    shift_type, evidence = _typed(four, known)
    assert shift_type is None and evidence["n_novel"] == 4
    shift_type, evidence = _typed(five, known)
    assert shift_type == "semantic" and evidence["novel_classes"] == [10]


def test_labels_type_covariate_on_a_significant_drop_of_at_least_two_points():
    known = np.arange(2000) % 10
    reference = {"n_classes": 10, "accuracy_calibration": 0.995, "n_calibration": 10_000}

    def wrong(share: float) -> np.ndarray:
        predicted = known.copy()
        predicted[: int(share * len(known))] += 1
        return predicted % 10

    # 1.5 points below: significant (p < 1e-6), but smaller than the 2-point floor
    shift_type, evidence = _typed(known, wrong(0.02), reference)
    assert shift_type is None and evidence["accuracy_drop_p_value"] < 1e-6
    shift_type, evidence = _typed(known, wrong(0.03), reference)  # 2.5 points below
    assert shift_type == "covariate" and evidence["accuracy"] == pytest.approx(0.97)
    # 20 points below on only 100 labels: significant too
    twenty_wrong = (known[:100] + (np.arange(100) < 20)) % 10
    assert _typed(known[:100], twenty_wrong, reference)[0] == "covariate"


def test_without_a_reference_accuracy_labels_type_semantic_and_prior_not_covariate():
    """Calibration on production nights: no reference accuracy, so no covariate by labels."""
    no_reference = {"n_classes": 10, "accuracy_calibration": None, "n_calibration": None}
    known = np.arange(100) % 10
    half_wrong = (known + (np.arange(100) % 2)) % 10  # accuracy 0.5
    assert _typed(known, half_wrong)[0] == "covariate"
    shift_type, evidence = _typed(known, half_wrong, no_reference)
    assert shift_type is None and evidence["accuracy_drop_p_value"] is None
    two_classes = np.arange(100) % 2  # the true class mix moved to classes 0 and 1
    shift_type, evidence = _typed(two_classes, two_classes, no_reference)
    assert shift_type == "prior" and evidence["class_mix_shift"] == pytest.approx(0.8)
    novel = known.copy()
    novel[:10] = 12
    assert _typed(novel, known, no_reference)[0] == "semantic"


def test_landed_labels_files_csv_and_parquet_of_the_days_partition_are_imported(
    drift_env, demo_monitor, sqlite_url, tmp_path
):
    """The drift_feedback DAG's import step (dags/drift_feedback.py): every CSV or parquet
    file under ``adaptation.feedback_landing/<partition of the day>``, nothing else; no
    landing configured: nothing to do."""
    settings = drift_env(sqlite_url)
    pipeline.fit_monitor(settings, demo_monitor)
    assert pipeline.import_landed_feedback(settings, demo_monitor, _night(8)) == []  # no landing
    pipeline.run_night(settings, demo_monitor, _night(7))
    labels = pd.read_csv(_labels_file(demo_monitor, 7))
    landing = tmp_path / "landing"
    day = landing / demo_monitor.source.partition.format(date=_night(8))
    day.mkdir(parents=True)
    half = len(labels) // 2
    labels[:half].to_csv(day / "a.csv", index=False)
    labels[half:].to_parquet(day / "b.parquet", index=False)
    (day / "notes.txt").write_text("batch_date,row_id,label\nnot,a,labels file\n")
    other_day = landing / demo_monitor.source.partition.format(date=_night(9))
    other_day.mkdir()
    labels.to_csv(other_day / "c.csv", index=False)
    monitor = demo_monitor.model_copy(
        update={"adaptation": demo_monitor.adaptation.model_copy(update={"feedback_landing": landing})}
    )
    imports = pipeline.import_landed_feedback(settings, monitor, _night(8))
    assert [i["imported"] for i in imports] == [half, len(labels) - half]
    assert all(not i["rejected"] for i in imports)



def test_an_emission_that_fails_leaves_the_request_pending(drift_env, demo_monitor, sqlite_url):
    """take_adaptation_request's docstring: ``emit`` gets the Asset event's extra (``event_id``,
    ``shift_type``, ``n_labelled``, ``reason``) before the request is marked emitted; if it
    raises, the request stays pending (tests/test_airflow_api.py: the same through a dead
    API, in minutes)."""
    from drift import events
    from drift.gate import GateDecision
    from drift.store import repo
    from drift.store.db import upgrade
    from drift.store.models import Batch

    settings = drift_env(sqlite_url)
    upgrade(settings.db_url)
    confirm = GateDecision("confirm", True, {"quiet_nights": 0}, "covariate", {}, [])
    with session_scope(settings.db_url) as session:
        monitor_id = repo.ensure_monitor(session, demo_monitor.name).id
        batch = Batch(monitor_id=monitor_id, batch_date=_night(14))
        session.add(batch)
        session.flush()
        event = events.record_decision(session, monitor_id, batch, confirm)
        # what import_feedback records once the event has min_labels labelled rows
        event.evidence = {**event.evidence, "adaptation_request": {"n_labelled": 250, "emitted": False}}
        event_id = event.id

    def refuse(extra: dict) -> None:
        raise RuntimeError(f"Airflow said no to event {extra['event_id']}")

    with pytest.raises(RuntimeError, match=f"event {event_id}"):
        pipeline.take_adaptation_request(settings, demo_monitor, emit=refuse)
    assert _event(settings, event_id).evidence["adaptation_request"]["emitted"] is False
    emitted: list[dict] = []
    request = pipeline.take_adaptation_request(settings, demo_monitor, emit=emitted.append)
    assert request == emitted[0] == {
        "event_id": event_id, "shift_type": "covariate", "n_labelled": 250, "reason": "feedback labels arrived",
    }  # fmt: skip
    assert _event(settings, event_id).evidence["adaptation_request"]["emitted"] is True
    assert pipeline.take_adaptation_request(settings, demo_monitor) is None
