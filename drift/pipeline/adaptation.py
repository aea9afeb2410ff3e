"""The adaptation steps: the ``drift_meta_train`` DAG and the ``drift_adapt`` DAG's tasks.

    collect_adaptation_data -> adapt -> validate_candidate -> promote_candidate

:func:`adapt_for_event` runs the same steps in-process (the CLI and the demo).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from drift import events, leases, sources
from drift.atomic import write_file
from drift.config import ModelSpec, MonitorConfig, Settings
from drift.embed import Embedder
from drift.pipeline import labelled as labelled_rows
from drift.pipeline.artifacts import active_fitted, adapt_dir, load_fitted, meta_dir
from drift.pipeline.attempts import adaptation_method, all_or_nothing
from drift.pipeline.fit import fit_monitor
from drift.pipeline.results import (
    AdaptationOutcome,
    BatchFailedError,
    Candidate,
    Collected,
    DomainAccuracy,
    MetaTrainResult,
    Promotion,
    Validation,
)
from drift.status import (
    AdaptationStatus,
    BatchStatus,
    EventStatus,
    ShiftType,
    StepStatus,
    VersionStatus,
)
from drift.store import repo
from drift.store.db import session_scope
from drift.store.types import utcnow

if TYPE_CHECKING:
    import torch


def _labelled_reference(monitor: MonitorConfig, path: str | os.PathLike) -> pd.DataFrame:
    if monitor.reference.label_column is None:
        raise BatchFailedError(f"{monitor.name}: adaptation needs reference.label_column")
    columns = [*monitor.source.input_columns, monitor.reference.label_column]
    return sources.read_reference(path, columns).rename(
        columns={monitor.reference.label_column: "label"}
    )


def meta_train(settings: Settings, monitor: MonitorConfig) -> MetaTrainResult:
    """Learn MOL's meta-initialisation from shifts simulated on the reference (weekly DAG)."""
    import importlib

    from drift.adapt import MetaOODLearner, trainable_module

    cfg = monitor.adaptation
    reference = _labelled_reference(monitor, monitor.reference.path)
    module_name, factory = cfg.meta_shift.split(":")
    shift_fn = getattr(importlib.import_module(module_name), factory)()
    _, _, fitted = active_fitted(settings, monitor)
    learner = MetaOODLearner(
        inner_steps=cfg.inner_steps, inner_lr=cfg.inner_lr, meta_iterations=cfg.meta_iterations
    ).meta_train(
        trainable_module(fitted.model_spec(monitor.model)),
        reference[monitor.source.input_columns].to_numpy(np.float32),
        reference["label"].to_numpy(np.int64),
        shift_fn,
    )
    learner.save(meta_dir(settings, monitor))
    return {
        "monitor": monitor.name,
        "path": str(meta_dir(settings, monitor)),
        "final_loss": learner.meta_losses_[-1],
    }


@all_or_nothing
def collect_adaptation_data(settings: Settings, monitor: MonitorConfig, event_id: int) -> Collected:
    """The event's nightly rows joined with their feedback labels; moves the event to `adapting`.

    Refuses an event that is another monitor's (:class:`~drift.events.EventMonitorMismatchError`).
    """
    with session_scope(settings.db_url) as session:
        event = events.get_event(session, event_id, monitor=monitor.name)
        if event.status != EventStatus.CONFIRMED:  # e.g. a re-run night emitted the Asset again
            return {
                "event_id": event_id,
                "status": StepStatus.SKIPPED,
                "reason": f"event {event_id} is {event.status}",
            }
        nights = {
            b.batch_date: b.source.get("files", [])
            for b in event.batches
            if b.status == BatchStatus.SUCCEEDED
        }
        labels = labelled_rows.event_labels(session, settings, monitor, event).drop(columns="pred")
        shift_type = labelled_rows.retype_event(session, settings, monitor, event)
        leases.take(session, event_id)

    with leases.held(settings.db_url, event_id):
        rows, path = _collect_rows(settings, monitor, event_id, nights, labels)
    return {
        "event_id": event_id,
        "status": StepStatus.COLLECTED,
        "shift_type": shift_type,
        "path": str(path),
        "n_rows": len(rows),
        "n_labelled": int(rows["label"].notna().sum()),
    }


def _collect_rows(
    settings: Settings, monitor: MonitorConfig, event_id: int, nights: dict[Any, list[str]], labels: pd.DataFrame
) -> tuple[pd.DataFrame, Path]:
    id_column = monitor.source.id_column
    columns = [*monitor.source.input_columns, *([id_column] if id_column else [])]
    frames = []
    for night, files in sorted(nights.items()):
        frame = sources.read_rows(monitor.source, night, files, columns)
        frame["batch_date"] = night
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    if id_column and not labels.empty:
        rows["row_id"] = rows[id_column].astype(str)
        rows = rows.merge(labels, on=["batch_date", "row_id"], how="left")
    else:
        rows["label"] = np.nan
    path = adapt_dir(settings, monitor, event_id) / "collected.parquet"
    write_file(path, lambda p: rows.to_parquet(p))
    return rows, path


@all_or_nothing
def adapt(settings: Settings, monitor: MonitorConfig, collected: Collected) -> Candidate:
    """Adapt the model to the shifted nights' labelled rows and fit a candidate version.

    The labelled rows are split in two: support (two thirds: adapts the model,
    with as many old-domain rows rehearsed, and joins the detector banks) and
    validation (judges the candidate, never trained on). MOL adapts from its
    meta-initialisation when one was meta-trained; otherwise the deployed model
    is fine-tuned with the same steps. Novel classes cannot be learned by a
    fixed classifier: a semantic shift is left to a human.
    """
    from drift.adapt import MetaOODLearner, export_module, fine_tune, trainable_module
    from drift.store.models import Adaptation

    cfg = monitor.adaptation
    event_id = collected["event_id"]
    if collected["status"] == StepStatus.SKIPPED:
        return {"event_id": event_id, "status": StepStatus.SKIPPED, "reason": collected["reason"]}
    rows = pd.read_parquet(collected["path"])
    labelled = rows[rows["label"].notna()].astype({"label": np.int64})
    _, _, fitted = active_fitted(settings, monitor)
    n_classes = fitted.manifest["n_classes"]
    reason = None
    if not cfg.enabled:
        reason = "adaptation is disabled in the monitor config"
    elif collected["shift_type"] == ShiftType.PRIOR:
        reason = (
            "prior shift: each class's inputs did not move, only the class mix; nothing to retrain"
        )
    elif collected["shift_type"] == ShiftType.SEMANTIC:
        reason = (
            "semantic shift (novel classes): a fixed classifier cannot learn them; needs a human"
        )
    elif collected["shift_type"] != ShiftType.COVARIATE:
        reason = (
            f"shift type {collected['shift_type'] or 'not known'}: the labels of its nights have "
            "not shown an accuracy drop on known classes yet (a covariate shift)"
        )
    elif len(labelled) < cfg.min_labels:
        reason = f"{len(labelled)} feedback-labelled rows, need {cfg.min_labels}"
    elif n_classes is None or labelled["label"].max() >= n_classes:
        reason = "feedback labels outside the model's classes"
    if reason is not None:  # the shift stays confirmed, for a human
        with session_scope(settings.db_url) as session:
            events.set_event_status(session, event_id, EventStatus.CONFIRMED)
        return {"event_id": event_id, "status": StepStatus.SKIPPED, "reason": reason}

    order = np.random.default_rng(event_id).permutation(len(labelled))
    n_validation = len(order) // 3
    support = labelled.iloc[np.sort(order[n_validation:])]
    validation = labelled.iloc[np.sort(order[:n_validation])]
    folder = adapt_dir(settings, monitor, event_id)
    write_file(folder / "validation.parquet", lambda p: validation.to_parquet(p))

    columns = monitor.source.input_columns
    label = monitor.reference.label_column
    reference = _labelled_reference(monitor, monitor.reference.path)
    # rehearsal: as many old-domain rows as new ones, so adapting does not forget the old domain
    replay = reference.sample(n=min(len(support), len(reference)), random_state=event_id)
    rehearsal = pd.concat([support[[*columns, "label"]], replay], ignore_index=True)
    x_support = rehearsal[columns].to_numpy(np.float32)
    y_support = rehearsal["label"].to_numpy(np.int64)
    module = trainable_module(fitted.model_spec(monitor.model))
    method = adaptation_method(settings, monitor)
    if method == "mol":
        learner = MetaOODLearner.load(meta_dir(settings, monitor), module)
        adapted = learner.adapt(x_support, y_support)
    else:
        adapted = fine_tune(module, x_support, y_support, steps=cfg.inner_steps, lr=cfg.inner_lr)
    model_file = export_module(adapted, _as_tensor(x_support[:2]), folder / "model.pt2")

    # the new domain's rows join the banks; thresholds stay calibrated on the configured
    # in-distribution rows, so "5% flagged" keeps its meaning across versions
    result = fit_monitor(
        settings,
        monitor,
        reference=pd.concat([reference, support[[*columns, "label"]]], ignore_index=True).rename(
            columns={"label": label}
        ),
        model_file=model_file,
        origin=f"adapt:{method}:event-{event_id}",
        promote=False,
    )
    with session_scope(settings.db_url) as session:
        monitor_id = repo.require_monitor_row(session, monitor.name).id
        version = repo.get_version(session, monitor_id, result["version"])
        adaptation = Adaptation(
            monitor_id=monitor_id, event_id=event_id, method=method, candidate_version_id=version.id
        )
        session.add(adaptation)
        session.flush()
        adaptation_id = adaptation.id
    return {
        "event_id": event_id,
        "status": StepStatus.CANDIDATE,
        "method": method,
        "adaptation_id": adaptation_id,
        "version": result["version"],
        "path": result["path"],
        "validation_path": str(folder / "validation.parquet"),
        "n_support": len(support),
    }


def _as_tensor(x: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _accuracy(spec: ModelSpec, columns: list[str], frame: pd.DataFrame) -> float:
    logits = Embedder(spec, columns).embed_frame(frame).logits
    if logits is None:
        raise BatchFailedError("accuracy needs a model with class outputs (logits)")
    return float((logits.argmax(axis=1) == frame["label"].to_numpy()).mean())


@all_or_nothing
def validate_candidate(
    settings: Settings, monitor: MonitorConfig, candidate: Candidate
) -> Validation:
    """The no-regression gate: better on the new domain's held-out rows, not worse on the old."""
    from drift.store.models import Adaptation

    if candidate["status"] != StepStatus.CANDIDATE:
        return {"passed": False, "reasons": [candidate["reason"]], **candidate}
    _, _, current = active_fitted(settings, monitor)
    proposed = load_fitted(candidate["path"])
    columns = monitor.source.input_columns
    new_domain = pd.read_parquet(candidate["validation_path"])
    old_path = monitor.reference.calibration_path or monitor.reference.path
    old_domain = _labelled_reference(monitor, old_path)
    before: DomainAccuracy = {
        "new_domain_accuracy": _accuracy(current.model_spec(monitor.model), columns, new_domain),
        "old_domain_accuracy": _accuracy(current.model_spec(monitor.model), columns, old_domain),
    }
    after: DomainAccuracy = {
        "new_domain_accuracy": _accuracy(proposed.model_spec(monitor.model), columns, new_domain),
        "old_domain_accuracy": _accuracy(proposed.model_spec(monitor.model), columns, old_domain),
    }
    reasons = []
    if after["new_domain_accuracy"] <= before["new_domain_accuracy"]:
        reasons.append("no gain on the new domain")
    if (
        after["old_domain_accuracy"]
        < before["old_domain_accuracy"] - monitor.adaptation.max_old_domain_drop
    ):
        reasons.append("regresses on the old domain")
    with session_scope(settings.db_url) as session:
        adaptation = session.get_one(Adaptation, candidate["adaptation_id"])
        adaptation.metrics_before = {**before, "n_validation": len(new_domain)}
        adaptation.metrics_after = dict(after)
    return {
        **candidate,
        "passed": not reasons,
        "reasons": reasons,
        "before": before,
        "after": after,
    }


@all_or_nothing
def promote_candidate(
    settings: Settings, monitor: MonitorConfig, validation: Validation
) -> Promotion:
    """Promote a validated candidate in one transaction and resolve the event; else reject it."""
    from drift.store.models import Adaptation

    event_id = validation["event_id"]
    with session_scope(settings.db_url) as session:
        monitor_id = repo.require_monitor_row(session, monitor.name).id
        if validation["status"] != StepStatus.CANDIDATE:  # skipped: adapt left the event confirmed
            return {"event_id": event_id, "promoted": False, "reasons": validation["reasons"]}
        adaptation = session.get_one(Adaptation, validation["adaptation_id"])
        version = repo.get_version(session, monitor_id, validation["version"])
        adaptation.finished_at = utcnow()
        if validation["passed"]:
            repo.promote_version(session, version)
            adaptation.status = AdaptationStatus.PROMOTED
            events.set_event_status(session, event_id, EventStatus.RESOLVED)
        else:
            version.status = VersionStatus.REJECTED
            adaptation.status = AdaptationStatus.REJECTED
            adaptation.reason = "; ".join(validation["reasons"])
            events.set_event_status(session, event_id, EventStatus.CONFIRMED)
    return {
        "event_id": event_id,
        "promoted": validation["passed"],
        "version": validation["version"],
        "reasons": validation["reasons"],
    }


def adapt_for_event(settings: Settings, monitor: MonitorConfig, event_id: int) -> AdaptationOutcome:
    """collect -> adapt -> validate -> promote in-process: what the drift_adapt DAG runs task by task."""
    collected = collect_adaptation_data(settings, monitor, event_id)
    candidate = adapt(settings, monitor, collected)
    validation = validate_candidate(settings, monitor, candidate)
    outcome = promote_candidate(settings, monitor, validation)
    return {"shift_type": collected.get("shift_type"), **validation, **outcome}
