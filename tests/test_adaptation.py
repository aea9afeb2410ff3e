"""The adaptation steps end to end on the demo world: collect -> adapt -> validate -> promote."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from drift import pipeline
from drift.demo import FIRST_NIGHT
from drift.feedback import import_labels
from drift.store.db import session_scope
from drift.store.models import Adaptation, Batch, DriftEvent, ModelVersion


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
        # typed by the labels when the adaptation collected them (imported without typing here)
        change = event.evidence["type_changes"][-1]
        assert change["from"] == "unknown" and change["to"] == "semantic"
        assert change["novel_share"] > 0.2
        assert session.scalars(select(Adaptation)).all() == []


def _covariate_event(settings, monitor) -> int:
    return _confirmed_event(_run(settings, monitor, 13, 16))  # nights 14-16: occluded digits


def _versions_and_states(settings, event_id: int) -> tuple[dict[int, str], str, Adaptation]:
    with session_scope(settings.db_url) as session:
        adaptation = session.scalars(select(Adaptation)).one()
        versions = {v.version: v.status for v in session.scalars(select(ModelVersion))}
        return versions, session.get(DriftEvent, event_id).status, adaptation


def _scoring_version(settings, night) -> int:
    with session_scope(settings.db_url) as session:
        batch = session.scalars(select(Batch).where(Batch.batch_date == night)).one()
        return session.get(ModelVersion, batch.model_version_id).version


NEXT_QUIET_NIGHT = FIRST_NIGHT + timedelta(days=17)  # night 18: the occlusion is over


def _with_adaptation(monitor, **settings):
    return monitor.model_copy(update={"adaptation": monitor.adaptation.model_copy(update=settings)})


def test_covariate_shift_adapts_and_the_better_candidate_is_promoted(fitted):
    settings, monitor = fitted
    # without a meta-initialisation the deployed weights are fine-tuned; the demo's 10 steps
    # at 0.02 are sized for MOL's θ and gain nothing from there, 50 steps at 0.1 do
    monitor = _with_adaptation(monitor, method="finetune", inner_steps=50, inner_lr=0.1)
    event_id = _covariate_event(settings, monitor)
    result = pipeline.adapt_for_event(settings, monitor, event_id)
    assert result["shift_type"] == "covariate"
    assert result["method"] == "finetune"  # no meta-initialisation was trained here
    # fine-tuning on the occluded digits' labels (with old-domain rehearsal) helps the new
    # domain without costing the old one: the gate must promote it
    assert result["promoted"], result["reasons"]
    before, after = result["before"], result["after"]
    assert after["new_domain_accuracy"] > before["new_domain_accuracy"]
    assert after["old_domain_accuracy"] >= before["old_domain_accuracy"] - monitor.adaptation.max_old_domain_drop
    versions, event_status, adaptation = _versions_and_states(settings, event_id)
    assert versions == {1: "retired", 2: "active"} and event_status == "resolved"
    assert adaptation.status == "promoted" and adaptation.reason is None
    assert adaptation.metrics_before["new_domain_accuracy"] == before["new_domain_accuracy"]
    assert adaptation.metrics_after == after
    # the adapted version carries its own model file and scores the next night
    with session_scope(settings.db_url) as session:
        v2 = session.scalars(select(ModelVersion).where(ModelVersion.version == 2)).one()
        model_file = pipeline.load_fitted(v2.artifact_path).manifest["model_file"]
        assert (Path(v2.artifact_path) / model_file).is_file()
    assert pipeline.run_night(settings, monitor, NEXT_QUIET_NIGHT)["verdict"] == "ok"
    assert _scoring_version(settings, NEXT_QUIET_NIGHT) == 2
    # a resolved event is not adapted twice (e.g. a re-emitted Asset event)
    again = pipeline.adapt_for_event(settings, monitor, event_id)
    assert not again["promoted"] and again["reasons"] == [f"event {event_id} is resolved"]


def test_a_candidate_that_regresses_the_old_domain_is_rejected(fitted):
    settings, monitor = fitted
    # a learning rate far too large: the fine-tuned weights lose what the model knew
    monitor = _with_adaptation(monitor, method="finetune", inner_lr=50.0)
    event_id = _covariate_event(settings, monitor)
    result = pipeline.adapt_for_event(settings, monitor, event_id)
    assert result["shift_type"] == "covariate" and not result["promoted"]
    before, after = result["before"], result["after"]
    assert after["old_domain_accuracy"] < before["old_domain_accuracy"] - monitor.adaptation.max_old_domain_drop
    assert "regresses on the old domain" in result["reasons"]
    versions, event_status, adaptation = _versions_and_states(settings, event_id)
    assert versions == {1: "active", 2: "rejected"} and event_status == "confirmed"
    assert adaptation.status == "rejected" and "regresses on the old domain" in adaptation.reason
    # the deployed version keeps scoring; the shift stays confirmed, to be retried with more labels
    trained_on = pd.read_parquet(pipeline.meta_tasks_dir(settings, monitor) / f"event-{event_id}.parquet")
    assert _run(settings, monitor, 17, 17)[0]["event_id"] == event_id  # the last occluded night
    pipeline.run_night(settings, monitor, NEXT_QUIET_NIGHT)
    assert _scoring_version(settings, NEXT_QUIET_NIGHT) == 1
    again = pipeline.adapt_for_event(settings, monitor, event_id)
    assert again["version"] == 3 and not again["promoted"]
    # docs/methods.md §5: rows are split by a hash of their values, so the retry (with night
    # 17's labels too) never validates on a row the first attempt trained on
    validated = pd.read_parquet(pipeline.adapt_dir(settings, monitor, event_id) / "validation.parquet")
    retrained = pd.read_parquet(pipeline.meta_tasks_dir(settings, monitor) / f"event-{event_id}.parquet")
    columns = monitor.source.input_columns
    assert len(retrained) > len(trained_on)  # more labelled rows this time
    assert validated[columns].merge(trained_on[columns]).empty
    still = trained_on[columns].merge(retrained[columns].drop_duplicates())
    assert len(still) == len(trained_on)  # and every row trained on before is trained on again


def test_adaptation_without_enough_labels_is_skipped(fitted):
    settings, monitor = fitted
    monitor = _with_adaptation(monitor, min_labels=10_000)
    event_id = _confirmed_event(_run(settings, monitor, 13, 15))
    result = pipeline.adapt_for_event(settings, monitor, event_id)
    assert not result["promoted"] and "need 10000" in result["reasons"][0]


def test_meta_training_writes_a_loadable_initialisation_that_lowers_the_loss(fitted):
    import importlib

    import numpy as np
    import pandas as pd
    import torch

    from drift.adapt import MetaOODLearner, trainable_module

    settings, monitor = fitted
    monitor = _with_adaptation(monitor, meta_iterations=8)
    cfg = monitor.adaptation
    result = pipeline.meta_train(settings, monitor)
    folder = pipeline.meta_dir(settings, monitor)
    assert result["path"] == str(folder) and (folder / "meta.json").is_file()

    with session_scope(settings.db_url) as session:
        deployed = pipeline.load_fitted(session.scalars(select(ModelVersion)).one().artifact_path)
    module = trainable_module(deployed.model_spec(monitor.model))
    learner = MetaOODLearner.load(folder, module)
    assert learner.meta_losses_[-1] == result["final_loss"] and len(learner.meta_losses_) == 8
    theta, start = learner.state_dict(), module.state_dict()
    assert any(not torch.equal(theta[name], start[name]) for name in start)  # θ moved

    # the same tasks (same seed) adapted from the deployed weights, which never move
    # (meta_lr=0): meta-training must have lowered the post-adaptation loss on them
    reference = pd.read_parquet(monitor.reference.path)
    module_name, factory = cfg.meta_shift.split(":")
    frozen = MetaOODLearner(
        inner_steps=cfg.inner_steps, inner_lr=cfg.inner_lr, meta_iterations=8, meta_lr=0.0
    ).meta_train(
        module,
        reference[monitor.source.input_columns].to_numpy(np.float32),
        reference[monitor.reference.label_column].to_numpy(np.int64),
        getattr(importlib.import_module(module_name), factory)(),
    )
    assert learner.meta_losses_[0] == frozen.meta_losses_[0]  # same tasks, same start
    assert result["final_loss"] < frozen.meta_losses_[-1]
    assert sum(learner.meta_losses_[1:]) < sum(frozen.meta_losses_[1:])
