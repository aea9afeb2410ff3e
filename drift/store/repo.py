"""Queries and idempotent writes for the event store.

Every nightly write is an upsert on the table's natural key, through one
dialect-aware helper (:func:`upsert`), so re-running a night - or two workers
running it at once - leaves one row, never two.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from drift.store.models import (
    AuditEntry,
    Base,
    Batch,
    DetectorScore,
    DriftTest,
    ModelVersion,
    MonitoredModel,
)
from drift.store.types import utcnow


def dialect_insert(session: Session, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """The session's own dialect INSERT for ``model``: both carry ``ON CONFLICT`` clauses."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"upsert: unsupported database dialect '{dialect}'")


def upsert(
    session: Session,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update_columns: Sequence[str] | None = None,
) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE on Postgres and SQLite alike.

    ``update_columns`` defaults to every column given except the keys; an empty
    list means DO NOTHING.
    """
    if not rows:
        return
    statement = dialect_insert(session, model).values(list(rows))
    if update_columns is None:
        update_columns = [c for c in rows[0] if c not in keys]
    if update_columns:
        statement = statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={c: statement.excluded[c] for c in update_columns},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    session.execute(statement)


def ensure_monitor(session: Session, name: str, config: dict[str, Any] | None = None) -> MonitoredModel:
    """The monitor's row, created on first use; its stored config follows the file."""
    values = {"name": name, "config": config or {}, "created_at": utcnow()}
    upsert(session, MonitoredModel, [values], ["name"], ["config"] if config is not None else [])
    return session.scalars(select(MonitoredModel).where(MonitoredModel.name == name)).one()


def get_monitor_row(session: Session, name: str) -> MonitoredModel | None:
    return session.scalars(select(MonitoredModel).where(MonitoredModel.name == name)).one_or_none()


def require_monitor_row(session: Session, name: str) -> MonitoredModel:
    """The monitor's row where it must already exist (fitted before); a clear error if not."""
    row = get_monitor_row(session, name)
    if row is None:
        raise LookupError(f"monitor '{name}' is not in the database: run `drift fit` first")
    return row


def add_version(
    session: Session,
    monitor_id: int,
    artifact_path: str,
    *,
    origin: str = "fit",
    status: str = "candidate",
    metrics: dict[str, Any] | None = None,
) -> ModelVersion:
    """A new model version numbered after the monitor's latest."""
    latest = session.scalar(
        select(func.max(ModelVersion.version)).where(ModelVersion.monitor_id == monitor_id)
    )
    version = ModelVersion(
        monitor_id=monitor_id,
        version=(latest or 0) + 1,
        artifact_path=artifact_path,
        origin=origin,
        status=status,
        metrics=metrics or {},
    )
    session.add(version)
    session.flush()
    return version


def promote_version(session: Session, version: ModelVersion) -> None:
    """Make ``version`` the monitor's only active version (within the caller's transaction)."""
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.monitor_id == version.monitor_id, ModelVersion.status == "active")
        .where(ModelVersion.id != version.id)
        .values(status="retired")
    )
    version.status = "active"
    version.promoted_at = utcnow()


def get_version(session: Session, monitor_id: int, version: int) -> ModelVersion:
    return session.scalars(
        select(ModelVersion).where(ModelVersion.monitor_id == monitor_id, ModelVersion.version == version)
    ).one()


def active_version(session: Session, monitor_id: int) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion).where(ModelVersion.monitor_id == monitor_id, ModelVersion.status == "active")
    ).one_or_none()


def start_batch(session: Session, monitor_id: int, batch_date: date, source: dict[str, Any]) -> Batch:
    """Register (or re-open) the night's batch row; safe to call concurrently."""
    values = {
        "monitor_id": monitor_id,
        "batch_date": batch_date,
        "status": "running",
        "error": None,
        "source": source,
        "started_at": utcnow(),
        "finished_at": None,
    }
    upsert(session, Batch, [values], ["monitor_id", "batch_date"])
    return get_batch(session, monitor_id, batch_date)


def get_batch(session: Session, monitor_id: int, batch_date: date) -> Batch:
    return session.scalars(
        select(Batch).where(Batch.monitor_id == monitor_id, Batch.batch_date == batch_date)
    ).one()


def fail_batch(session: Session, monitor_id: int, batch_date: date, error: str) -> Batch:
    """Record the night as failed with its reason (creating the row if discovery never did)."""
    values = {
        "monitor_id": monitor_id,
        "batch_date": batch_date,
        "status": "failed",
        "error": error,
        "verdict": None,
        "finished_at": utcnow(),
    }
    upsert(session, Batch, [values], ["monitor_id", "batch_date"])
    return get_batch(session, monitor_id, batch_date)


def save_detector_scores(session: Session, batch_id: int, rows: Sequence[dict[str, Any]]) -> None:
    upsert(session, DetectorScore, [{"batch_id": batch_id, **r} for r in rows], ["batch_id", "detector"])


def save_drift_tests(session: Session, batch_id: int, rows: Sequence[dict[str, Any]]) -> None:
    upsert(session, DriftTest, [{"batch_id": batch_id, **r} for r in rows], ["batch_id", "test", "subject"])


def find_batch(session: Session, monitor: str, batch_date: date) -> Batch | None:
    """The monitor's (by name) night ``batch_date``, or None when it was never started."""
    return session.scalars(
        select(Batch)
        .join(MonitoredModel, MonitoredModel.id == Batch.monitor_id)
        .where(MonitoredModel.name == monitor, Batch.batch_date == batch_date)
    ).one_or_none()


def previous_batch(session: Session, monitor_id: int, before: date) -> Batch | None:
    """The latest decided night before ``before`` (whose gate state the next night continues)."""
    return session.scalars(
        select(Batch)
        .where(Batch.monitor_id == monitor_id, Batch.batch_date < before, Batch.verdict.is_not(None))
        .order_by(Batch.batch_date.desc())
        .limit(1)
    ).one_or_none()


def list_batches(
    session: Session, monitor_id: int, start: date | None = None, end: date | None = None
) -> list[Batch]:
    query = select(Batch).where(Batch.monitor_id == monitor_id)
    if start is not None:
        query = query.where(Batch.batch_date >= start)
    if end is not None:
        query = query.where(Batch.batch_date <= end)
    return list(session.scalars(query.order_by(Batch.batch_date)))


def record_audit(
    session: Session, monitor_id: int, action: str, actor: str, *, event_id: int | None = None, **details: Any
) -> AuditEntry:
    """One ``audit_log`` row: who did what to a monitor (or one of its events), now."""
    entry = AuditEntry(
        monitor_id=monitor_id, event_id=event_id, action=action, actor=actor, at=utcnow(), details=details
    )
    session.add(entry)
    session.flush()
    return entry


def list_versions(session: Session, monitor_id: int) -> list[ModelVersion]:
    """Every version of a monitor, oldest first."""
    return list(
        session.scalars(
            select(ModelVersion).where(ModelVersion.monitor_id == monitor_id).order_by(ModelVersion.version)
        )
    )
