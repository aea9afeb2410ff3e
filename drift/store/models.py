"""The event store: SQLAlchemy 2 typed ORM, one schema for SQLite and Postgres.

Every table that a nightly run writes has a natural unique key, so that a
re-run upserts instead of duplicating (see :mod:`drift.store.repo`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from drift.store.types import JSONDocument, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONDocument(), datetime: UTCDateTime()}


class MonitoredModel(Base):
    """One monitor: a deployed model watched by one nightly DAG."""

    __tablename__ = "monitored_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """A model (and its detector artifacts) that was, is or may become active."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("monitor_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    #: candidate | active | retired | rejected
    status: Mapped[str] = mapped_column(String(20), default="candidate")
    artifact_path: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(40), default="fit")
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(default=None)


class Batch(Base):
    """One night of one monitor. Unique per (monitor, batch date)."""

    __tablename__ = "batches"
    __table_args__ = (
        UniqueConstraint("monitor_id", "batch_date"),
        Index("ix_batches_monitor_status", "monitor_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"))
    batch_date: Mapped[date] = mapped_column(Date)
    #: running | succeeded | failed
    status: Mapped[str] = mapped_column(String(20), default="running")
    n_rows: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    source: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), default=None
    )
    #: ok | warn | confirm (set by the gate); None until decided
    verdict: Mapped[str | None] = mapped_column(String(20), default=None)
    #: the gate's state after this night (CUSUM sums, recent significance) so a
    #: gate restarted anywhere continues from the database
    gate_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    scores: Mapped[list[DetectorScore]] = relationship(
        back_populates="batch", cascade="all, delete-orphan", order_by="DetectorScore.detector"
    )


class DetectorScore(Base):
    """One detector's summary of one night."""

    __tablename__ = "detector_scores"
    __table_args__ = (UniqueConstraint("batch_id", "detector"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    detector: Mapped[str] = mapped_column(String(100))
    n_rows: Mapped[int] = mapped_column(Integer)
    n_flagged: Mapped[int] = mapped_column(Integer)
    ood_rate: Mapped[float] = mapped_column(Float)
    mean_score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    p_value: Mapped[float] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    batch: Mapped[Batch] = relationship(back_populates="scores")


class DriftTest(Base):
    """One statistical test of one night, on one subject (a detector, a column, …)."""

    __tablename__ = "drift_tests"
    __table_args__ = (UniqueConstraint("batch_id", "test", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    test: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(200), default="")
    statistic: Mapped[float | None] = mapped_column(Float, default=None)
    p_value: Mapped[float | None] = mapped_column(Float, default=None)
    effect_size: Mapped[float | None] = mapped_column(Float, default=None)
    significant: Mapped[bool] = mapped_column(Boolean, default=False)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class DriftEvent(Base):
    """A shift: warning → confirmed → adapting → resolved, or closed by a person (see :mod:`drift.events`)."""

    __tablename__ = "drift_events"
    __table_args__ = (Index("ix_drift_events_monitor_status", "monitor_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"))
    #: warning | confirmed | adapting | resolved | closed
    status: Mapped[str] = mapped_column(String(20), default="warning")
    #: covariate | semantic | prior | unknown (mixed: typed before unknown existed; None until known)
    shift_type: Mapped[str | None] = mapped_column(String(20), default=None)
    #: shift | input | gradual (drift.status.EventKind): what the event is about
    kind: Mapped[str] = mapped_column(String(20), default="shift", server_default="shift")
    first_seen: Mapped[date] = mapped_column(Date)
    last_seen: Mapped[date] = mapped_column(Date)
    confirmed_on: Mapped[date | None] = mapped_column(Date, default=None)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    #: acknowledged by a person: the event stays open, its repeat alerts are silenced
    acked_at: Mapped[datetime | None] = mapped_column(default=None)
    acked_by: Mapped[str | None] = mapped_column(String(100), default=None)
    #: closed by a person: false-alarm | handled
    closed_as: Mapped[str | None] = mapped_column(String(20), default=None)
    closed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    #: the adaptation lease: who runs it and their last heartbeat (`drift reset` checks it)
    adapting_since: Mapped[datetime | None] = mapped_column(default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(200), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)

    monitor: Mapped[MonitoredModel] = relationship(lazy="selectin")
    batches: Mapped[list[Batch]] = relationship(secondary="drift_event_batches", order_by=Batch.batch_date)


class DriftEventBatch(Base):
    """Which nightly batches are evidence for which event."""

    __tablename__ = "drift_event_batches"

    event_id: Mapped[int] = mapped_column(
        ForeignKey("drift_events.id", ondelete="CASCADE"), primary_key=True
    )
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True)


class Adaptation(Base):
    """One adaptation attempt for an event, and whether its candidate was promoted."""

    __tablename__ = "adaptations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("drift_events.id", ondelete="SET NULL"), default=None
    )
    method: Mapped[str] = mapped_column(String(40))
    #: running | promoted | rejected | failed
    status: Mapped[str] = mapped_column(String(20), default="running")
    candidate_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), default=None
    )
    metrics_before: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics_after: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditEntry(Base):
    """One thing a person did to a monitor or an event: ack, close, reopen, reset, rollback."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("drift_events.id", ondelete="SET NULL"), default=None
    )
    action: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Alert(Base):
    """One alert; ``dedupe_key`` makes it at most one per event and kind."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    monitor_id: Mapped[int | None] = mapped_column(
        ForeignKey("monitored_models.id", ondelete="CASCADE"), default=None
    )
    kind: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("drift_events.id", ondelete="SET NULL"), default=None
    )
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("batches.id", ondelete="SET NULL"), default=None
    )
    severity: Mapped[str] = mapped_column(String(20), default="warning")
    message: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: pending | sent | failed | silenced (its event was acknowledged or closed: recorded, not sent)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class FeedbackLabel(Base):
    """A delayed true label for one production row."""

    __tablename__ = "feedback_labels"
    __table_args__ = (UniqueConstraint("monitor_id", "batch_date", "row_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"))
    batch_date: Mapped[date] = mapped_column(Date)
    row_id: Mapped[str] = mapped_column(String(200))
    label: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class NightPerformance(Base):
    """The model's accuracy on one night by one method: estimated (``cbpe``, ``atc``,
    with a 95% band) or ``realized`` from feedback labels (Wilson 95% interval)."""

    __tablename__ = "night_performance"
    __table_args__ = (UniqueConstraint("batch_id", "method"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(20))
    accuracy: Mapped[float] = mapped_column(Float)
    accuracy_low: Mapped[float] = mapped_column(Float)
    accuracy_high: Mapped[float] = mapped_column(Float)
    #: rows it rests on: the night's rows (estimates) or its labelled rows (realized)
    n_rows: Mapped[int] = mapped_column(Integer)
    #: the model version's accuracy on its labelled calibration rows
    reference_accuracy: Mapped[float | None] = mapped_column(Float, default=None)
    #: realized: per-class recall and macro-F1; estimates: the band's standard error
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
