"""The adaptation steps: the ``drift_adapt`` DAG's tasks.

    collect_adaptation_data -> adapt -> validate_candidate -> promote_candidate

The candidates' trainers are in :mod:`drift.pipeline.candidates`, MOL's
meta-training (the ``drift_meta_train`` DAG) in :mod:`drift.pipeline.meta`.

:func:`adapt_for_event` runs the same steps in-process (the CLI and the demo).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drift import events, leases, sources
from drift.atomic import write_file
from drift.config import ModelSpec, MonitorConfig, Settings
from drift.embed import Embedder
from drift.pipeline import labelled as labelled_rows
from drift.pipeline.artifacts import active_fitted, adapt_dir, load_fitted, meta_tasks_dir
from drift.pipeline.attempts import all_or_nothing
from drift.pipeline.results import (
    AdaptationOutcome,
    BatchFailedError,
    Candidate,
    CandidateModel,
    Collected,
    DomainAccuracy,
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


def labelled_reference(monitor: MonitorConfig, path: str | os.PathLike) -> pd.DataFrame:
    if monitor.reference.label_column is None:
        raise BatchFailedError(f"{monitor.name}: adaptation needs reference.label_column")
    columns = [*monitor.source.input_columns, monitor.reference.label_column]
    return sources.read_reference(path, columns).rename(
        columns={monitor.reference.label_column: "label"}
    )


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
    settings: Settings,
    monitor: MonitorConfig,
    event_id: int,
    nights: dict[Any, list[str]],
    labels: pd.DataFrame,
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
    """Train the candidates of ``adaptation.method`` on the shifted nights' labelled rows.

    The labelled rows are split in two by a hash of their values: support (about two
    thirds: trains every candidate, joins the detector banks and MOL's pool of
    meta-training tasks) and validation (judges the candidates, never trained on).
    ``auto`` trains every applicable method, one candidate version each
    (:mod:`drift.pipeline.candidates`). Novel classes cannot be learned by a fixed classifier:
    a semantic shift is left to a human.
    """
    from drift.pipeline.candidates import TrainingRows, applicable_methods, train_candidate

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

    columns = monitor.source.input_columns
    labelled = labelled[[*columns, "label"]]
    # a row's side follows from its values, so a retry with more labels never validates on
    # rows an earlier attempt (or MOL's meta-training on this event) trained on
    held_out = pd.util.hash_pandas_object(labelled[columns], index=False).to_numpy() % 3 == 0
    support, validation = labelled[~held_out], labelled[held_out]
    write_file(meta_tasks_dir(settings, monitor) / f"event-{event_id}.parquet", support.to_parquet)
    folder = adapt_dir(settings, monitor, event_id)
    write_file(folder / "validation.parquet", validation.to_parquet)

    reference = labelled_reference(monitor, monitor.reference.path)
    training = TrainingRows(settings, monitor, fitted, event_id, support, reference, folder)
    bank = pd.concat([reference, support], ignore_index=True).rename(
        columns={"label": monitor.reference.label_column}
    )
    candidates = [
        train_candidate(training, method, bank)
        for method in applicable_methods(settings, monitor, fitted)
    ]
    first = candidates[0]
    return {
        "event_id": event_id,
        "status": StepStatus.CANDIDATE,
        "method": first["method"],
        "adaptation_id": first["adaptation_id"],
        "version": first["version"],
        "path": first["path"],
        "validation_path": str(folder / "validation.parquet"),
        "n_support": len(support),
        "candidates": candidates,
    }


def _accuracies(
    spec: ModelSpec, columns: list[str], new: pd.DataFrame, old: pd.DataFrame
) -> DomainAccuracy:
    def accuracy(frame: pd.DataFrame) -> float:
        logits = Embedder(spec, columns).embed_frame(frame).logits
        if logits is None:
            raise BatchFailedError("accuracy needs a model with class outputs (logits)")
        return float((logits.argmax(axis=1) == frame["label"].to_numpy()).mean())

    return {"new_domain_accuracy": accuracy(new), "old_domain_accuracy": accuracy(old)}


def _gate(before: DomainAccuracy, after: DomainAccuracy, max_drop: float) -> list[str]:
    """The no-regression gate's reasons to reject (none = passed)."""
    reasons = []
    if after["new_domain_accuracy"] <= before["new_domain_accuracy"]:
        reasons.append("no gain on the new domain")
    if after["old_domain_accuracy"] < before["old_domain_accuracy"] - max_drop:
        reasons.append("regresses on the old domain")
    return reasons


def _rank(judged: CandidateModel) -> tuple[bool, float, float]:
    after = judged["after"]
    return judged["passed"], after["new_domain_accuracy"], after["old_domain_accuracy"]


@all_or_nothing
def validate_candidate(
    settings: Settings, monitor: MonitorConfig, candidate: Candidate
) -> Validation:
    """The no-regression gate on every candidate: better on the new domain's held-out rows,
    not worse on the old; the winner is the passing candidate best on the new domain."""
    from drift.store.models import Adaptation

    if candidate["status"] != StepStatus.CANDIDATE:
        return {"passed": False, "reasons": [candidate["reason"]], **candidate}
    _, _, current = active_fitted(settings, monitor)
    columns = monitor.source.input_columns
    new_domain = pd.read_parquet(candidate["validation_path"])
    old_path = monitor.reference.calibration_path or monitor.reference.path
    old_domain = labelled_reference(monitor, old_path)
    before = _accuracies(current.model_spec(monitor.model), columns, new_domain, old_domain)
    judged: list[CandidateModel] = []
    for c in candidate["candidates"]:
        proposed = load_fitted(c["path"]).model_spec(monitor.model)
        after = _accuracies(proposed, columns, new_domain, old_domain)
        reasons = _gate(before, after, monitor.adaptation.max_old_domain_drop)
        judged.append({**c, "passed": not reasons, "reasons": reasons, "after": after})
        with session_scope(settings.db_url) as session:
            adaptation = session.get_one(Adaptation, c["adaptation_id"])
            adaptation.metrics_before = {
                **adaptation.metrics_before,
                **before,
                "n_validation": len(new_domain),
            }
            adaptation.metrics_after = dict(after)
    winner = max(judged, key=_rank)
    return {
        **candidate,
        "method": winner["method"],
        "adaptation_id": winner["adaptation_id"],
        "version": winner["version"],
        "path": winner["path"],
        "candidates": judged,
        "passed": winner["passed"],
        "reasons": winner["reasons"],
        "before": before,
        "after": winner["after"],
    }


@all_or_nothing
def promote_candidate(
    settings: Settings, monitor: MonitorConfig, validation: Validation
) -> Promotion:
    """Promote the winning candidate in one transaction and resolve the event; reject the rest."""
    from drift.store.models import Adaptation

    event_id = validation["event_id"]
    with session_scope(settings.db_url) as session:
        monitor_id = repo.require_monitor_row(session, monitor.name).id
        if validation["status"] != StepStatus.CANDIDATE:  # skipped: adapt left the event confirmed
            return {"event_id": event_id, "promoted": False, "reasons": validation["reasons"]}
        for c in validation["candidates"]:
            adaptation = session.get_one(Adaptation, c["adaptation_id"])
            version = repo.get_version(session, monitor_id, c["version"])
            adaptation.finished_at = utcnow()
            if validation["passed"] and c["adaptation_id"] == validation["adaptation_id"]:
                repo.promote_version(session, version)
                adaptation.status = AdaptationStatus.PROMOTED
            else:
                version.status = VersionStatus.REJECTED
                adaptation.status = AdaptationStatus.REJECTED
                adaptation.reason = "; ".join(c["reasons"]) or (
                    f"passed, but {validation['method']} did better on the new domain"
                )
        status = EventStatus.RESOLVED if validation["passed"] else EventStatus.CONFIRMED
        events.set_event_status(session, event_id, status)
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
