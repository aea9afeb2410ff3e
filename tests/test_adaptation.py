"""The adaptation steps end to end on the demo world: collect -> adapt -> validate -> promote."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from drift import pipeline
from drift.demo import FIRST_NIGHT
from drift.feedback import import_labels
from drift.store.db import session_scope
from drift.store.models import Adaptation, DriftEvent, ModelVersion


def _run(settings, monitor, first: int, last: int) -> list[dict]:
    """Nights first..last (1-based, as in the demo script) with their feedback labels."""
    feedback = monitor.reference.path.parent / "feedback"
    decisions = []
    for i in range(first - 1, last):
        night = FIRST_NIGHT + timedelta(days=i)
        decisions.append(pipeline.run_night(settings, monitor, night))
        import_labels(settings, monitor, feedback / f"labels-{night}.csv")
    return decisions


@pytest.fixture
def fitted(drift_env, demo_monitor, sqlite_url):
    settings = drift_env(sqlite_url)
    pipeline.fit_monitor(settings, demo_monitor)
    return settings, demo_monitor


def _confirmed_event(decisions: list[dict]) -> int:
    confirmed = [d for d in decisions if d["newly_confirmed"]]
    assert confirmed, [d["verdict"] for d in decisions]
    return confirmed[0]["event_id"]


def test_novel_classes_are_typed_semantic_by_feedback_and_left_to_a_human(fitted):
    settings, monitor = fitted
    event_id = _confirmed_event(_run(settings, monitor, 5, 9))  # nights 7-9: 30% unseen digits
    result = pipeline.adapt_for_event(settings, monitor, event_id)
    assert result["shift_type"] == "semantic" and not result["promoted"]
    assert "novel classes" in result["reasons"][0]
    with session_scope(settings.db_url) as session:
        event = session.get(DriftEvent, event_id)
        assert event.status == "confirmed"  # back from adapting, for a human
        assert event.evidence["feedback"]["novel_label_share"] > 0.2
        assert session.scalars(select(Adaptation)).all() == []


def test_covariate_shift_adapts_and_the_gate_decides_promotion(fitted):
    settings, monitor = fitted
    event_id = _confirmed_event(_run(settings, monitor, 13, 16))  # nights 14-17: occluded digits
    result = pipeline.adapt_for_event(settings, monitor, event_id)
    assert result["shift_type"] == "covariate"
    assert result["method"] == "finetune"  # no meta-initialisation was trained here
    before, after = result["before"], result["after"]
    with session_scope(settings.db_url) as session:
        adaptation = session.scalars(select(Adaptation)).one()
        event = session.get(DriftEvent, event_id)
        versions = {v.version: v.status for v in session.scalars(select(ModelVersion))}
        assert adaptation.metrics_before["new_domain_accuracy"] == before["new_domain_accuracy"]
        if result["promoted"]:
            # promoted only when better on the new domain and not worse (beyond 2 points) on the old
            assert after["new_domain_accuracy"] > before["new_domain_accuracy"]
            assert after["old_domain_accuracy"] >= before["old_domain_accuracy"] - 0.02
            assert versions == {1: "retired", 2: "active"} and event.status == "resolved"
            assert adaptation.status == "promoted"
        else:
            assert versions == {1: "active", 2: "rejected"} and event.status == "confirmed"
            assert adaptation.status == "rejected" and adaptation.reason
    # the adapted version carries its own model file and scores the next night
    night = FIRST_NIGHT + timedelta(days=17)
    assert pipeline.run_night(settings, monitor, night)["verdict"] in {"ok", "warn", "confirm"}
    again = pipeline.adapt_for_event(settings, monitor, event_id)
    if result["promoted"]:  # a resolved event is not adapted twice (e.g. a re-emitted Asset event)
        assert not again["promoted"] and again["reasons"] == [f"event {event_id} is resolved"]
    else:  # a rejected adaptation leaves the shift confirmed, to be retried with more labels
        assert again["version"] == 3


def test_adaptation_without_enough_labels_is_skipped(fitted):
    settings, monitor = fitted
    monitor = monitor.model_copy(update={"adaptation": monitor.adaptation.model_copy(update={"min_labels": 10_000})})
    event_id = _confirmed_event(_run(settings, monitor, 13, 15))
    result = pipeline.adapt_for_event(settings, monitor, event_id)
    assert not result["promoted"] and "need 10000" in result["reasons"][0]


def test_meta_training_writes_a_loadable_initialisation(fitted):
    settings, monitor = fitted
    monitor = monitor.model_copy(
        update={"adaptation": monitor.adaptation.model_copy(update={"meta_iterations": 2})}
    )
    result = pipeline.meta_train(settings, monitor)
    assert (pipeline.meta_dir(settings, monitor) / "meta.json").is_file()
    assert result["final_loss"] > 0
