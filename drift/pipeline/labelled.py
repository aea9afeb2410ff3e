"""What feedback labels do when they arrive: fix an event's shift type, and request its adaptation.

:func:`import_feedback` is ``drift feedback import`` and the ``drift_feedback`` DAG's
import step: it stores the labels (:func:`drift.feedback.import_labels`), types again
every open event with a labelled night (:func:`retype_event`) and, for a confirmed
covariate event that now has ``adaptation.min_labels`` labelled rows, records an
adaptation request. :func:`take_adaptation_request` hands the newest pending request
to the ``drift_feedback`` DAG, which emits it as the monitor's Asset event, so the
adaptation DAG runs with no manual trigger.

Typing by labels (docs/methods.md §4, shift typing), on the labelled rows of the
event's nights, joined with what the model predicted for them:

* at least :data:`NOVEL_LABEL_SHARE` of the labels outside the model's classes:
  **semantic**;
* else realized accuracy below the reference accuracy
  (:mod:`drift.performance.reference`) by at least :data:`MIN_ACCURACY_DROP`, at
  one-sided p <= :data:`TYPING_ALPHA`: **covariate**;
* else the true class mix moved from the reference's (chi-square p <=
  :data:`TYPING_ALPHA`, total variation >= :data:`MIN_MIX_SHIFT`) with the accuracy
  unchanged: **prior**;
* else, or with fewer than :data:`MIN_TYPING_LABELS` labels, the type stays.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy import stats
from sqlalchemy import select
from sqlalchemy.orm import Session

from drift import sources
from drift.config import MonitorConfig, Settings
from drift.events import OPEN_STATUSES
from drift.feedback import import_labels
from drift.performance import realized_performance, reference_accuracy
from drift.pipeline.artifacts import scores_dir
from drift.pipeline.results import FeedbackImport, Retyped
from drift.status import EventStatus, ShiftType
from drift.store import repo
from drift.store.db import session_scope
from drift.store.models import Batch, DriftEvent, DriftEventBatch, FeedbackLabel, ModelVersion
from drift.store.types import utcnow

#: share of labels outside the model's classes that makes a shift semantic
NOVEL_LABEL_SHARE = 0.05
#: fewer labels than this never change a type
MIN_TYPING_LABELS = 30
#: level of the accuracy-drop and class-mix tests
TYPING_ALPHA = 0.01
#: smallest accuracy drop below the reference that types a shift covariate
MIN_ACCURACY_DROP = 0.02
#: smallest total-variation distance between the labelled and reference class mix (prior)
MIN_MIX_SHIFT = 0.1


def _manifest(version: ModelVersion) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(
        (Path(version.artifact_path) / "manifest.json").read_text()
    )
    return manifest


def event_labels(
    session: Session, settings: Settings, monitor: MonitorConfig, event: DriftEvent
) -> pd.DataFrame:
    """The event's labelled rows: batch_date, row_id, label and ``pred`` (the class the
    model that scored the night predicted; NaN where the scores hold no prediction)."""
    nights = [b.batch_date for b in event.batches]
    labels = pd.DataFrame(
        session.execute(
            select(FeedbackLabel.batch_date, FeedbackLabel.row_id, FeedbackLabel.label).where(
                FeedbackLabel.monitor_id == event.monitor_id, FeedbackLabel.batch_date.in_(nights)
            )
        ).all(),
        columns=["batch_date", "row_id", "label"],
    )
    key = "id" if monitor.source.id_column else "row"
    predictions = []
    for night in sorted(set(labels["batch_date"])):
        for shard in sorted(scores_dir(settings, monitor, night).glob("shard-*.parquet")):
            if "pred" not in pq.read_schema(shard).names:  # a model without class outputs
                continue
            frame = pd.read_parquet(shard, columns=[key, "pred"])
            if len(frame):
                predictions.append(
                    pd.DataFrame(
                        {
                            "batch_date": night,
                            "row_id": frame[key].astype(str),
                            "pred": frame["pred"],
                        }
                    )
                )
    if not predictions:
        return labels.assign(pred=np.nan)
    return labels.merge(
        pd.concat(predictions, ignore_index=True), on=["batch_date", "row_id"], how="left"
    )


def _reference_class_share(monitor: MonitorConfig, n_classes: int) -> np.ndarray | None:
    label = monitor.reference.label_column
    if label is None:
        return None
    path = monitor.reference.calibration_path or monitor.reference.path
    counts = np.bincount(
        sources.read_reference(path, [label])[label].to_numpy(np.int64), minlength=n_classes
    )
    return counts[:n_classes] / max(int(counts[:n_classes].sum()), 1)


def type_by_labels(
    labels: pd.DataFrame, manifest: dict[str, Any], reference_share: np.ndarray | None
) -> tuple[ShiftType | None, dict[str, Any]]:
    """The type the labels show (None: they do not decide) and the evidence, as stored."""
    n_classes = manifest.get("n_classes")
    evidence: dict[str, Any] = {
        "n_labels": len(labels),
        "nights": sorted({str(d) for d in labels["batch_date"]}),
    }
    if n_classes is None:
        return None, {**evidence, "why": "the model has no class outputs"}
    if len(labels) < MIN_TYPING_LABELS:
        return None, {**evidence, "why": f"{len(labels)} labels, need {MIN_TYPING_LABELS} to type"}
    novel = ~labels["label"].between(0, n_classes - 1)
    evidence.update(
        n_novel=int(novel.sum()),
        novel_share=float(novel.mean()),
        novel_classes=sorted(int(c) for c in labels.loc[novel, "label"].unique()),
    )
    if novel.mean() >= NOVEL_LABEL_SHARE:
        return ShiftType.SEMANTIC, {
            **evidence,
            "why": f"{novel.mean():.0%} of the labels are classes the model does not have (>= {NOVEL_LABEL_SHARE:.0%})",
        }
    known = labels[~novel & labels["pred"].notna()]
    reference = reference_accuracy(manifest)
    if reference is not None and len(known):
        realized = realized_performance(
            known["label"].to_numpy(), known["pred"].to_numpy(), range(n_classes)
        )
        correct = int(round(realized.accuracy * realized.n_labelled))
        p_value = reference.drop_p_value(correct, realized.n_labelled)
        evidence.update(
            accuracy=realized.accuracy, accuracy_low=realized.accuracy_low, accuracy_high=realized.accuracy_high,
            n_accuracy=realized.n_labelled, reference_accuracy=reference.accuracy, n_reference=reference.n,
            accuracy_drop_p_value=p_value,
        )  # fmt: skip
        if p_value <= TYPING_ALPHA and reference.accuracy - realized.accuracy >= MIN_ACCURACY_DROP:
            return ShiftType.COVARIATE, {
                **evidence,
                "why": f"known classes only; accuracy {realized.accuracy:.1%} below the reference {reference.accuracy:.1%} (p={p_value:.2g})",
            }
    else:
        evidence["accuracy_drop_p_value"] = None
    if reference_share is not None:
        observed = np.bincount(labels.loc[~novel, "label"].to_numpy(np.int64), minlength=n_classes)[
            :n_classes
        ]
        expected = np.maximum(reference_share, 1e-6) * observed.sum()
        expected *= observed.sum() / expected.sum()
        p_mix = float(stats.chisquare(observed, expected).pvalue)
        shift = float(0.5 * np.abs(observed / max(observed.sum(), 1) - reference_share).sum())
        evidence.update(class_mix_p_value=p_mix, class_mix_shift=shift)
        if p_mix <= TYPING_ALPHA and shift >= MIN_MIX_SHIFT:
            return ShiftType.PRIOR, {
                **evidence,
                "why": f"class mix moved (total variation {shift:.2f}, p={p_mix:.2g}) without a significant accuracy drop",
            }
    return None, {
        **evidence,
        "why": "the labels show neither novel classes, an accuracy drop nor a moved class mix",
    }


def retype_event(
    session: Session, settings: Settings, monitor: MonitorConfig, event: DriftEvent
) -> ShiftType | None:
    """Type ``event`` again from its labelled rows; record the evidence on the event
    (``evidence.labels``, and ``evidence.type_changes`` when the type changes)."""
    labels = event_labels(session, settings, monitor, event)
    if labels.empty:
        return None if event.shift_type is None else ShiftType(event.shift_type)
    version = session.get_one(ModelVersion, event.batches[-1].model_version_id)
    manifest = _manifest(version)
    n_classes = manifest.get("n_classes")
    share = _reference_class_share(monitor, n_classes) if n_classes else None
    shift_type, evidence = type_by_labels(labels, manifest, share)
    evidence = {**evidence, "checked_at": utcnow().isoformat(), "model_version": version.version}
    update: dict[str, Any] = {"labels": evidence}
    if shift_type is not None and shift_type != event.shift_type:
        change = {"from": event.shift_type, "to": shift_type, **evidence}
        update["type_changes"] = [*event.evidence.get("type_changes", []), change]
        event.shift_type = shift_type
    event.evidence = {**event.evidence, **update}
    return None if event.shift_type is None else ShiftType(event.shift_type)


def labelled_row_count(session: Session, event: DriftEvent) -> int:
    """How many feedback labels the event's nights have."""
    from sqlalchemy import func

    nights = [b.batch_date for b in event.batches]
    return int(
        session.scalar(
            select(func.count())
            .select_from(FeedbackLabel)
            .where(
                FeedbackLabel.monitor_id == event.monitor_id, FeedbackLabel.batch_date.in_(nights)
            )
        )
        or 0
    )


def import_feedback(settings: Settings, monitor: MonitorConfig, path: Path) -> FeedbackImport:
    """Import a labels file, type again the open events it labels, and request the
    adaptation of confirmed covariate events that now have ``min_labels`` labelled rows
    (once per event; ``drift adapt --event N`` runs it again by hand)."""
    done = import_labels(settings, monitor, path)
    nights = done.nights
    retyped: list[Retyped] = []
    requested: list[int] = []
    with session_scope(settings.db_url) as session:
        monitor_id = repo.require_monitor_row(session, monitor.name).id
        touched = session.scalars(
            select(DriftEvent)
            .join(DriftEventBatch, DriftEventBatch.event_id == DriftEvent.id)
            .join(Batch, Batch.id == DriftEventBatch.batch_id)
            .where(
                DriftEvent.monitor_id == monitor_id,
                DriftEvent.status.in_(OPEN_STATUSES),
                Batch.batch_date.in_(nights),
            )
            .distinct()
            .order_by(DriftEvent.id)
        ).all()
        for event in touched:
            before = event.shift_type
            after = retype_event(session, settings, monitor, event)
            if after != before:
                retyped.append({"event_id": event.id, "was": before, "now": after})
            n_labelled = labelled_row_count(session, event)
            if (
                monitor.adaptation.enabled
                and event.status == EventStatus.CONFIRMED
                and after == ShiftType.COVARIATE
                and n_labelled >= monitor.adaptation.min_labels
                and "adaptation_request" not in event.evidence
            ):
                event.evidence = {
                    **event.evidence,
                    "adaptation_request": {
                        "requested_at": utcnow().isoformat(),
                        "n_labelled": n_labelled,
                        "emitted": False,
                    },
                }
                requested.append(event.id)
    return {
        "monitor": monitor.name,
        "imported": done.imported,
        "rejected": {str(reason): n for reason, n in done.rejected.items() if n},
        "novel_class": done.novel_class,
        "retyped": retyped,
        "adaptation_requested": requested,
    }


def import_landed_feedback(
    settings: Settings, monitor: MonitorConfig, landed_on: date
) -> list[FeedbackImport]:
    """Every labels file (CSV or parquet) under ``adaptation.feedback_landing`` in the
    partition of ``landed_on`` (the source's ``partition`` pattern); none: nothing to do."""
    landing = monitor.adaptation.feedback_landing
    if landing is None:
        return []
    folder = Path(landing) / monitor.source.partition.format(date=landed_on)
    files = (
        sorted(p for p in folder.glob("*") if p.suffix in (".csv", ".parquet"))
        if folder.is_dir()
        else []
    )
    return [import_feedback(settings, monitor, path) for path in files]


def take_adaptation_request(
    settings: Settings,
    monitor: MonitorConfig,
    emit: Callable[[dict[str, Any]], object] | None = None,
) -> dict[str, Any] | None:
    """The newest pending adaptation request of ``monitor`` as the Asset event's ``extra``
    (``event_id``, ``shift_type``, ``n_labelled``, ``reason``), marking every pending request
    emitted (the adaptation DAG adapts to the newest shift); None when none is pending.

    ``emit`` (e.g. :meth:`drift.airflow_api.AirflowApi.emit_asset_event`) is called with the
    extra before the requests are marked: if it raises, they stay pending.
    """
    with session_scope(settings.db_url) as session:
        monitor_id = repo.require_monitor_row(session, monitor.name).id
        pending = [
            e
            for e in session.scalars(
                select(DriftEvent)
                .where(
                    DriftEvent.monitor_id == monitor_id,
                    DriftEvent.status == EventStatus.CONFIRMED,
                )
                .order_by(DriftEvent.id)
            )
            if e.evidence.get("adaptation_request", {}).get("emitted") is False
        ]
        if not pending:
            return None
        newest = pending[-1]
        extra = {
            "event_id": newest.id,
            "shift_type": newest.shift_type,
            "n_labelled": newest.evidence["adaptation_request"]["n_labelled"],
            "reason": "feedback labels arrived",
        }
        if emit is not None:
            emit(extra)
        for event in pending:
            request = {
                **event.evidence["adaptation_request"],
                "emitted": True,
                "emitted_at": utcnow().isoformat(),
            }
            event.evidence = {**event.evidence, "adaptation_request": request}
        return extra
