"""The model's accuracy per night: estimators fitted with a version, estimates stored by
``aggregate``, realized accuracy stored when feedback labels arrive.

* at ``drift fit``: :func:`fit_estimators` fits CBPE and ATC on the labelled
  calibration rows and writes ``performance.json`` beside the detectors (JSON, no
  pickle); without labels or logits they are skipped with a one-line note;
* nightly (``aggregate``): :func:`estimate_night` estimates the night's accuracy
  from the per-row confidence scores; the CBPE estimate feeds ``accuracy_drop``;
* on label import (``drift feedback import``) and on a re-run night:
  :func:`record_realized` joins the night's labels with its predictions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from drift.batch import FeatureBatch
from drift.config import MonitorConfig, Settings
from drift.performance import (
    ATC,
    CBPE,
    Estimate,
    PerformanceEstimator,
    load_estimator,
    realized_performance,
    reference_accuracy,
)
from drift.pipeline.artifacts import load_fitted, scores_dir
from drift.store import repo
from drift.store.models import Batch, FeedbackLabel, ModelVersion, NightPerformance

#: the fitted estimators of a model version, in its folder
PERFORMANCE_FILE = "performance.json"
#: the estimate the gate's accuracy_drop test reads
GATE_ESTIMATOR = "cbpe"
#: the per-row confidence score column of the nightly shard files
CONFIDENCE_COLUMN = "conf"
REALIZED = "realized"


def fit_estimators(folder: Path, calibration: FeatureBatch, where: str) -> str:
    """Fit CBPE and ATC on the labelled ``calibration`` rows into ``folder``; say what was done."""
    if calibration.logits is None:
        return "performance estimators skipped: the model has no logits"
    if calibration.labels is None:
        return f"performance estimators skipped: the calibration rows ({where}) have no labels"
    estimators: list[PerformanceEstimator] = [CBPE(), ATC()]
    for estimator in estimators:
        estimator.fit(calibration.logits, calibration.labels)
    (folder / PERFORMANCE_FILE).write_text(
        json.dumps({e.name: e.to_dict() for e in estimators}, indent=2)
    )
    accuracy = estimators[0].reference_accuracy_
    return (
        f"performance estimators cbpe, atc fitted on {len(calibration)} labelled calibration "
        f"rows (reference accuracy {accuracy:.3f})"
    )


def load_estimators(folder: Path) -> dict[str, PerformanceEstimator]:
    """A version's fitted estimators by name; empty when it has none."""
    path = Path(folder) / PERFORMANCE_FILE
    if not path.is_file():
        return {}
    return {name: load_estimator(state) for name, state in json.loads(path.read_text()).items()}


@dataclass(frozen=True)
class NightEstimates:
    """A night's estimates by estimator name, with the estimators that made them."""

    estimators: dict[str, PerformanceEstimator]
    estimates: dict[str, Estimate]

    @property
    def gate_estimate(self) -> Estimate | None:
        """The estimate the gate's accuracy_drop test reads (CBPE), if any."""
        return self.estimates.get(GATE_ESTIMATOR)

    @property
    def reference_accuracy(self) -> float | None:
        estimator = self.estimators.get(GATE_ESTIMATOR)
        return estimator.reference_accuracy_ if estimator and self.gate_estimate else None

    def values(self) -> dict[str, float]:
        return {name: e.value for name, e in self.estimates.items()}

    def rows(self) -> list[dict[str, Any]]:
        """``night_performance`` rows of the estimates."""
        return [
            {
                "method": name,
                "accuracy": e.value,
                "accuracy_low": e.low,
                "accuracy_high": e.high,
                "n_rows": e.n_rows,
                "reference_accuracy": self.estimators[name].reference_accuracy_,
                "details": {"se": e.se},
            }
            for name, e in self.estimates.items()
        ]


def estimate_night(folder: Path, rows: pd.DataFrame) -> NightEstimates:
    """The version's estimators (in ``folder``) on the night's per-row confidence scores;
    none for a version without estimators or shards written without scores."""
    estimators = load_estimators(folder)
    if not estimators or CONFIDENCE_COLUMN not in rows or rows.empty:
        return NightEstimates(estimators, {})
    scores = rows[CONFIDENCE_COLUMN].to_numpy(np.float64)
    return NightEstimates(estimators, {n: e.estimate_scores(scores) for n, e in estimators.items()})


def store_night(
    session: Session,
    settings: Settings,
    monitor: MonitorConfig,
    batch: Batch,
    estimated: NightEstimates,
) -> None:
    """Store the night's estimates and, for labels already imported (a night run again),
    its realized accuracy."""
    save_performance(session, batch.id, estimated.rows())
    record_realized(session, settings, monitor, batch)


def save_performance(session: Session, batch_id: int, rows: list[dict[str, Any]]) -> None:
    repo.upsert(
        session,
        NightPerformance,
        [{"batch_id": batch_id, **r} for r in rows],
        ["batch_id", "method"],
    )


def record_realized(
    session: Session, settings: Settings, monitor: MonitorConfig, batch: Batch
) -> dict[str, Any] | None:
    """Realized performance of the night's labelled rows, stored; None without labels or
    predictions (a model without logits, scores no longer in the artifact store)."""
    labels = session.execute(
        select(FeedbackLabel.row_id, FeedbackLabel.label).where(
            FeedbackLabel.monitor_id == batch.monitor_id,
            FeedbackLabel.batch_date == batch.batch_date,
        )
    ).all()
    version = batch.model_version_id and session.get(ModelVersion, batch.model_version_id)
    shards = sorted(scores_dir(settings, monitor, batch.batch_date).glob("shard-*.parquet"))
    if not labels or not version or not shards:
        return None
    key = "id" if monitor.source.id_column else "row"
    rows = pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True)
    if "pred" not in rows:
        return None
    predicted = pd.Series(rows["pred"].to_numpy(), index=rows[key].astype(str))
    labelled = pd.DataFrame(labels, columns=["row_id", "label"])
    labelled = labelled[labelled["row_id"].isin(predicted.index)]
    if labelled.empty:
        return None
    fitted = load_fitted(version.artifact_path)
    reference = reference_accuracy(fitted.manifest)
    realized = realized_performance(
        labelled["label"].to_numpy(),
        predicted.loc[labelled["row_id"]].to_numpy(),
        classes=range(fitted.manifest["n_classes"] or 0),
    )
    row = {
        "method": REALIZED,
        "accuracy": realized.accuracy,
        "accuracy_low": realized.accuracy_low,
        "accuracy_high": realized.accuracy_high,
        "n_rows": realized.n_labelled,
        "reference_accuracy": None if reference is None else reference.accuracy,
        "details": {"recall": realized.recall, "macro_f1": realized.macro_f1},
    }
    save_performance(session, batch.id, [row])
    return row


def refresh_realized(
    session: Session, settings: Settings, monitor: MonitorConfig, monitor_id: int, nights: list[date]
) -> int:
    """Recompute realized performance of these nights (after a label import); how many stored."""
    stored = 0
    for night in sorted(set(nights)):
        batch = session.scalars(
            select(Batch).where(Batch.monitor_id == monitor_id, Batch.batch_date == night)
        ).first()
        if batch is not None and record_realized(session, settings, monitor, batch):
            stored += 1
    return stored


def performance_by_night(session: Session, monitor_id: int) -> list[dict[str, Any]]:
    """Per decided night: each method's accuracy and band, and the reference accuracy."""
    rows = session.execute(
        select(Batch.batch_date, NightPerformance)
        .join(NightPerformance, NightPerformance.batch_id == Batch.id)
        .where(Batch.monitor_id == monitor_id)
        .order_by(Batch.batch_date, NightPerformance.method)
    ).all()
    nights: dict[date, dict[str, Any]] = {}
    for night, p in rows:
        entry = nights.setdefault(night, {"batch_date": night.isoformat(), "reference_accuracy": None})
        if p.reference_accuracy is not None:
            entry["reference_accuracy"] = p.reference_accuracy
        entry[p.method] = {
            "accuracy": p.accuracy,
            "low": p.accuracy_low,
            "high": p.accuracy_high,
            "n_rows": p.n_rows,
            **({"macro_f1": p.details["macro_f1"]} if "macro_f1" in p.details else {}),
        }
    return list(nights.values())
