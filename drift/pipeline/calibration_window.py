"""Thresholds from production: a window of clean nights, recalibration, the in-sample check.

A reference that is the model's own training set gives thresholds that are too
tight (rows the model trained on score lower than rows it never saw), so clean
nights flag more than the calibrated rate. Three remedies live here:

* :func:`read_window_rows` - the rows of ``reference.calibration_nights``, read
  through :mod:`drift.sources` like the nightly run, for `drift fit`;
* :func:`recalibrate` - the same after the fact from the per-row scores already
  stored for those nights (no re-embedding), as a new model version;
* :func:`in_sample_check` - the warning, on the first nights after a fit, that
  the thresholds look in-sample.

A window is refused (one line, nothing written) when a night is not landed,
not succeeded or scored by another version, when it overlaps a confirmed or
open-warning drift event, or when it holds too few rows.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from drift import sources
from drift.batch import InvalidBatchError
from drift.calibration import (
    IN_SAMPLE_NIGHTS,
    ConformalCalibrator,
    in_sample_warning,
    min_calibration_rows,
)
from drift.config import CalibrationWindow, MonitorConfig, Settings
from drift.model_files import first_line
from drift.pipeline.artifacts import (
    FittedMonitor,
    ensure_dir,
    load_fitted,
    monitor_dir,
    required_columns,
    scores_dir,
)
from drift.pipeline.results import FitResult, Manifest
from drift.status import BatchStatus, CloseReason, EventKind, EventStatus
from drift.store import repo
from drift.store.db import session_scope
from drift.store.models import Batch, DriftEvent, ModelVersion
from drift.store.types import utcnow


def window_nights(window: CalibrationWindow) -> list[date]:
    """Every night of the window, in order.

    Examples
    --------
    >>> w = CalibrationWindow(start=date(2026, 11, 1), end=date(2026, 11, 3))
    >>> [d.day for d in window_nights(w)]
    [1, 2, 3]
    """
    return [window.start + timedelta(days=i) for i in range((window.end - window.start).days + 1)]


def event_conflict(session: Session, monitor_id: int, window: CalibrationWindow) -> str | None:
    """Why the window cannot be declared clean: it overlaps a drift event that was
    confirmed (whatever its status now) or is an open warning; None when it does not.
    An event a person closed as a false alarm does not count: its nights were clean
    (typically the nights that in-sample thresholds flagged), and neither does an
    ``input`` or ``gradual`` warning: re-baselining on such nights is what it advises."""
    event = session.scalars(
        select(DriftEvent)
        .where(
            DriftEvent.monitor_id == monitor_id,
            DriftEvent.first_seen <= window.end,
            DriftEvent.last_seen >= window.start,
            DriftEvent.kind == EventKind.SHIFT,
            or_(DriftEvent.confirmed_on.is_not(None), DriftEvent.status == EventStatus.WARNING),
            or_(DriftEvent.closed_as.is_(None), DriftEvent.closed_as != CloseReason.FALSE_ALARM),
        )
        .order_by(DriftEvent.first_seen)
        .limit(1)
    ).one_or_none()
    if event is None:
        return None
    return (
        f"nights {window.label()} overlap drift event #{event.id} ({event.status}, "
        f"{event.first_seen}..{event.last_seen}); choose nights the monitor found clean"
    )


def _enough_rows(n_rows: int, monitor: MonitorConfig, window: CalibrationWindow) -> None:
    needed = min_calibration_rows(monitor.tpr)
    if n_rows < needed:
        raise ValueError(
            f"nights {window.label()} hold {n_rows} rows; thresholds at tpr {monitor.tpr} "
            f"need at least {needed}: widen the window"
        )


def read_window_rows(
    settings: Settings, monitor: MonitorConfig, window: CalibrationWindow
) -> pd.DataFrame:
    """The rows of the window's landed nights (``reference.calibration_nights``).

    Raises ValueError (one line) when a night is not landed or unreadable, the
    window overlaps a drift event, or it holds too few rows.
    """
    where = "reference.calibration_nights"
    with session_scope(settings.db_url) as session:
        monitor_row = repo.get_monitor_row(session, monitor.name)
        conflict = monitor_row and event_conflict(session, monitor_row.id, window)
    if conflict:
        raise ValueError(f"{where}: {conflict}")
    columns = required_columns(monitor)
    frames = []
    for night in window_nights(window):
        try:
            info = sources.inspect_batch(monitor.source, night, columns)
            frames.append(
                sources.read_rows(monitor.source, night, info.files, columns, 0, info.n_rows)
            )
        except InvalidBatchError as exc:
            raise ValueError(f"{where}: night {night} is not a landed, valid night ({first_line(exc)})") from None
    rows = pd.concat(frames, ignore_index=True)
    _enough_rows(len(rows), monitor, window)
    return rows


def _stored_scores(
    settings: Settings, monitor: MonitorConfig, nights: list[date], detectors: list[str]
) -> dict[str, np.ndarray]:
    columns = [f"score__{name}" for name in detectors]
    frames: list[pd.DataFrame] = []
    for night in nights:
        shards = sorted(scores_dir(settings, monitor, night).glob("shard-*.parquet"))
        if not shards:
            raise ValueError(
                f"night {night}: no stored scores under {scores_dir(settings, monitor, night)}"
            )
        frames.extend(pd.read_parquet(shard, columns=columns) for shard in shards)
    scores = pd.concat(frames, ignore_index=True)
    return {name: scores[f"score__{name}"].to_numpy() for name in detectors}


def _check_scored_nights(
    session: Session, monitor: MonitorConfig, window: CalibrationWindow
) -> ModelVersion:
    """The active version, after checking every night succeeded under it and no event overlaps."""
    monitor_row = repo.get_monitor_row(session, monitor.name)
    active = repo.active_version(session, monitor_row.id) if monitor_row is not None else None
    if monitor_row is None or active is None:
        raise ValueError(f"monitor '{monitor.name}' has no fitted model version: run `drift fit` first")
    batches = {b.batch_date: b for b in repo.list_batches(session, monitor_row.id, window.start, window.end)}
    for night in window_nights(window):
        batch = batches.get(night)
        if batch is None or batch.status != BatchStatus.SUCCEEDED:
            state = "never run" if batch is None else batch.status
            raise ValueError(f"night {night} has not succeeded ({state}); run or choose landed, succeeded nights")
        if batch.model_version_id != active.id:
            other = batch.model_version_id and session.get(ModelVersion, batch.model_version_id)
            raise ValueError(
                f"night {night} was scored by model version v{other.version if other else '?'}, "
                f"not the active v{active.version}; choose nights scored by v{active.version}"
            )
    conflict = event_conflict(session, monitor_row.id, window)
    if conflict:
        raise ValueError(conflict)
    return active


def recalibrate(settings: Settings, monitor: MonitorConfig, window: CalibrationWindow) -> FitResult:
    """New thresholds from the per-row scores stored for the window's nights, as a new,
    active model version with the active version's detectors, model and reference sample.

    The gate restarts on the new version's first night (it continues only across
    nights scored by one version). The manifest records ``origin``
    ``recalibrate:<start>..<end>`` and the window. Raises ValueError (one line,
    nothing written) on a window that cannot be declared clean.
    """
    from drift.pipeline.fit import register_version

    with session_scope(settings.db_url) as session:
        active = _check_scored_nights(session, monitor, window)
        fitted = load_fitted(active.artifact_path)
        active_number = active.version
    scores = _stored_scores(settings, monitor, window_nights(window), list(fitted.calibrators))
    n_rows = len(next(iter(scores.values())))
    _enough_rows(n_rows, monitor, window)

    with tempfile.TemporaryDirectory(dir=ensure_dir(monitor_dir(settings, monitor))) as tmp:
        staging = Path(tmp) / "version"
        shutil.copytree(fitted.path, staging, ignore=shutil.ignore_patterns("manifest.json"))
        for name, calibrator in fitted.calibrators.items():
            shutil.rmtree(staging / "calibration" / name)
            ConformalCalibrator(tpr=calibrator.tpr).fit(scores[name]).save(
                staging / "calibration" / name
            )
        manifest: Manifest = {
            **fitted.manifest,
            "n_calibration": n_rows,
            "origin": f"recalibrate:{window.label()}",
            "created_at": utcnow().isoformat(),
            "calibrated_on": f"stored scores of production nights {window.label()} (from v{active_number})",
            "calibration_nights": window.model_dump(mode="json"),
            "accuracy_calibration": None,
        }
        return register_version(settings, monitor, staging, manifest, promote=True)


def in_sample_check(session: Session, batch: Batch, fitted: FittedMonitor, monitor: str) -> str | None:
    """The in-sample sentence for ``batch`` when it is among the first
    :data:`~drift.calibration.IN_SAMPLE_NIGHTS` nights of its model version."""
    first = list(
        session.scalars(
            select(Batch)
            .where(
                Batch.monitor_id == batch.monitor_id,
                Batch.model_version_id == batch.model_version_id,
                or_(Batch.status == BatchStatus.SUCCEEDED, Batch.id == batch.id),
            )
            .order_by(Batch.batch_date)
            .limit(IN_SAMPLE_NIGHTS)
        )
    )
    if batch not in first:
        return None
    nights: dict[str, list[tuple[int, int]]] = {name: [] for name in fitted.calibrators}
    for night in first:
        for score in night.scores:
            if score.detector in nights:
                nights[score.detector].append((score.n_rows, score.n_flagged))
    calibration = {name: (c.m, c.tpr) for name, c in fitted.calibrators.items()}
    return in_sample_warning(nights, calibration, monitor)
