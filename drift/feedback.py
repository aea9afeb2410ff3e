"""Delayed feedback labels: true labels of production rows, arriving nights later."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session

from drift.batch import InvalidBatchError
from drift.config import MonitorConfig, Settings
from drift.pipeline.artifacts import load_fitted, scores_dir
from drift.store import repo
from drift.store.db import session_scope
from drift.store.models import FeedbackLabel, ModelVersion

COLUMNS = ("batch_date", "row_id", "label")


def read_labels(path: Path) -> pd.DataFrame:
    """A labels file (CSV or parquet) with columns batch_date, row_id, label, validated."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels file not found: {path}")
    frame = (
        pd.read_parquet(path)
        if path.suffix == ".parquet"
        else pd.read_csv(path, dtype={"row_id": str})
    )
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidBatchError(
            f"{path.name}: missing column '{missing[0]}' (need {', '.join(COLUMNS)})"
        )
    if frame.empty:
        raise InvalidBatchError(f"{path.name}: no labels")
    frame = frame[list(COLUMNS)].copy()
    try:
        frame["batch_date"] = pd.to_datetime(frame["batch_date"], format="%Y-%m-%d").dt.date
    except ValueError as exc:
        raise InvalidBatchError(f"{path.name}: batch_date must be YYYY-MM-DD ({exc})") from None
    if frame["label"].isna().any() or not pd.api.types.is_integer_dtype(frame["label"]):
        raise InvalidBatchError(f"{path.name}: column 'label' must hold integers with no gaps")
    frame["row_id"] = frame["row_id"].astype(str)
    return frame


class Rejection(StrEnum):
    """Why a label row was not imported."""

    NIGHT_NEVER_RUN = "night never run"
    UNKNOWN_ROW_ID = "unknown row id"
    DUPLICATE = "duplicate label"


@dataclass(frozen=True)
class LabelImport:
    """What an import did: rows imported, rows rejected per reason, and how many imported
    labels lie outside the model's classes (kept: evidence of a novel class)."""

    imported: int
    rejected: dict[Rejection, int] = field(default_factory=dict)
    novel_class: int = 0
    #: the nights the imported labels belong to
    nights: tuple[date, ...] = ()


def _scored_rows(
    session: Session, settings: Settings, monitor: MonitorConfig, night: date
) -> tuple[set[str], int | None] | None:
    """The row ids a scored night had and its model's class count; None: never run."""
    batch = repo.find_batch(session, monitor.name, night)
    version = batch and batch.model_version_id and session.get(ModelVersion, batch.model_version_id)
    shards = sorted(scores_dir(settings, monitor, night).glob("shard-*.parquet"))
    if not version or not shards:
        return None
    key = "id" if monitor.source.id_column else "row"
    ids = {str(v) for p in shards for v in pd.read_parquet(p, columns=[key])[key]}
    return ids, load_fitted(version.artifact_path).manifest.get("n_classes")


def import_labels(settings: Settings, monitor: MonitorConfig, path: Path) -> LabelImport:
    """Upsert the file's valid labels for ``monitor`` and say what was left out and why.

    A label counts when its night was run and scored and its row id was among that
    night's rows; of several labels for one row the last in the file counts (the
    others are duplicates). Labels outside the model's classes are imported and
    counted as ``novel_class``. The realized performance of every night with new
    labels is recomputed and stored in the same transaction. A file with no valid label raises
    :class:`~drift.batch.InvalidBatchError` naming the reasons; re-importing a file is
    idempotent (a row keeps one label, the latest).
    """
    frame = read_labels(path)
    rejected = dict.fromkeys(Rejection, 0)
    duplicated = frame.duplicated(["batch_date", "row_id"], keep="last")
    rejected[Rejection.DUPLICATE] = int(duplicated.sum())
    frame = frame[~duplicated]
    with session_scope(settings.db_url) as session:
        monitor_id = repo.ensure_monitor(session, monitor.name).id
        keep = pd.Series(False, index=frame.index)
        novel = pd.Series(False, index=frame.index)
        for night, labels in frame.groupby("batch_date"):
            scored = _scored_rows(session, settings, monitor, night)
            if scored is None:
                rejected[Rejection.NIGHT_NEVER_RUN] += len(labels)
                continue
            ids, n_classes = scored
            known = labels["row_id"].isin(ids)
            rejected[Rejection.UNKNOWN_ROW_ID] += int((~known).sum())
            keep[labels.index] = known
            if n_classes is not None:
                novel[labels.index] = known & ~labels["label"].between(0, n_classes - 1)
        valid = frame[keep]
        if valid.empty:
            reasons = ", ".join(f"{n} {r}" for r, n in rejected.items() if n)
            raise InvalidBatchError(f"{Path(path).name}: no valid labels ({reasons})")
        rows = [
            {
                "monitor_id": monitor_id,
                "batch_date": r.batch_date,
                "row_id": r.row_id,
                "label": int(r.label),
            }
            for r in valid.itertuples(index=False)
        ]
        for start in range(0, len(rows), 5_000):  # bounded statement size
            repo.upsert(
                session,
                FeedbackLabel,
                rows[start : start + 5_000],
                ["monitor_id", "batch_date", "row_id"],
                ["label"],
            )
        # the nights' realized accuracy, with the new labels (drift.pipeline.performance)
        from drift.pipeline.performance import refresh_realized

        refresh_realized(session, settings, monitor, monitor_id, list(valid["batch_date"]))
    nights = tuple(sorted(set(valid["batch_date"])))
    return LabelImport(len(valid), rejected, int(novel[keep].sum()), nights)
