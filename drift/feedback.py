"""Delayed feedback labels: true labels of production rows, arriving nights later."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from drift.batch import InvalidBatchError
from drift.store import repo
from drift.store.db import session_scope
from drift.store.models import FeedbackLabel

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


def import_labels(db_url: str, monitor: str, path: Path) -> int:
    """Upsert the file's labels for ``monitor``; returns the number of rows."""
    frame = read_labels(path)
    with session_scope(db_url) as session:
        monitor_id = repo.ensure_monitor(session, monitor).id
        rows = [
            {
                "monitor_id": monitor_id,
                "batch_date": r.batch_date,
                "row_id": r.row_id,
                "label": int(r.label),
            }
            for r in frame.itertuples(index=False)
        ]
        for start in range(0, len(rows), 5_000):  # bounded statement size
            repo.upsert(
                session,
                FeedbackLabel,
                rows[start : start + 5_000],
                ["monitor_id", "batch_date", "row_id"],
                ["label"],
            )
    return len(frame)
