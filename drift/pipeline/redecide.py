"""Deciding a night that is earlier than nights already decided: the gate is sequential.

Each night's verdict continues the gate state of the night before it, so a
missed night run late (a backfill) changes what every later night should have
been. :func:`~drift.pipeline.decide` therefore rewinds the monitor's events to
the state they had before that night (:func:`rewind_events`) and decides it and
then every later decided night again, in order, in one transaction: the store
ends up as if the nights had run in order, and the caller is told which
verdicts changed.

An event that an adaptation has worked on is history that re-deciding must
not rewrite: :func:`rewind_events` refuses with :class:`RedecideRefusedError`.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from drift import events
from drift.store.models import Adaptation, Batch, DriftEvent, DriftEventBatch

#: evidence keys that :func:`drift.events.record_decision` writes when it confirms an event
_CONFIRMATION_KEYS = ("confirmed_on", "confirmation", "confirmation_reasons")
#: how an event resolved by quiet nights says so (``expired``/``receded after N quiet nights``)
_QUIET_RESOLUTION = "quiet nights"


class RedecideRefusedError(RuntimeError):
    """Re-deciding later nights would rewrite an event that must stay as it is."""


def later_decided(session: Session, monitor_id: int, night: date) -> list[Batch]:
    """The monitor's decided nights after ``night``, in date order."""
    return list(
        session.scalars(
            select(Batch)
            .where(Batch.monitor_id == monitor_id, Batch.batch_date > night, Batch.verdict.is_not(None))
            .order_by(Batch.batch_date)
        )
    )


def _linked_dates(session: Session, event: DriftEvent) -> list[date]:
    query = (
        select(Batch.batch_date)
        .join(DriftEventBatch, DriftEventBatch.batch_id == Batch.id)
        .where(DriftEventBatch.event_id == event.id)
        .order_by(Batch.batch_date)
    )
    return list(session.scalars(query))


def _resolved_by_quiet_nights_before(
    session: Session, event: DriftEvent, night: date, expire_after: int
) -> bool:
    """Whether an event resolved by quiet nights reached ``expire_after`` before ``night``."""
    query = select(Batch.gate_state).where(
        Batch.monitor_id == event.monitor_id,
        Batch.batch_date > event.last_seen,
        Batch.batch_date < night,
        Batch.verdict.is_not(None),
    )
    return any(int(state.get("quiet_nights", 0)) >= expire_after for state in session.scalars(query))


def rewind_events(session: Session, monitor_id: int, night: date, *, expire_after: int = 3) -> None:
    """Undo what the nights from ``night`` on did to the monitor's events.

    Links to those nights and their per-night evidence go; an event first seen
    on or after ``night`` is deleted (deciding again recreates it); a
    confirmation or a quiet-night resolution that happened on or after ``night``
    is undone. Raises :class:`RedecideRefusedError` for an event with an
    adaptation, before changing anything.
    """
    later = select(Batch.id).where(Batch.monitor_id == monitor_id, Batch.batch_date >= night)
    touched = list(
        session.scalars(
            select(DriftEvent)
            .where(DriftEvent.monitor_id == monitor_id)
            .where(
                DriftEvent.id.in_(select(DriftEventBatch.event_id).where(DriftEventBatch.batch_id.in_(later)))
                | (
                    (DriftEvent.status == "resolved")
                    & (DriftEvent.last_seen < night)
                    & DriftEvent.resolved_at.is_not(None)
                )
            )
            .order_by(DriftEvent.id)
        )
    )
    adapted = set(
        session.scalars(select(Adaptation.event_id).where(Adaptation.event_id.in_([e.id for e in touched])))
    )
    for event in touched:
        if event.id in adapted or event.status == "adapting":
            raise RedecideRefusedError(
                f"re-deciding the nights from {night} would rewrite event #{event.id}, "
                f"which has an adaptation ({event.status})"
            )

    for event in touched:
        resolution = str(event.evidence.get("resolution", ""))
        quietly_resolved = event.status == "resolved" and resolution.endswith(_QUIET_RESOLUTION)
        if event.last_seen < night:  # not linked to a later night: only its resolution may move
            if quietly_resolved and not _resolved_by_quiet_nights_before(session, event, night, expire_after):
                _reopen(event)
            continue
        session.execute(
            delete(DriftEventBatch).where(
                DriftEventBatch.event_id == event.id, DriftEventBatch.batch_id.in_(later)
            )
        )
        kept = _linked_dates(session, event)
        if not kept:
            session.delete(event)
            continue
        nights = {d: s for d, s in event.evidence.get("nights", {}).items() if d < night.isoformat()}
        evidence = {**event.evidence, "nights": nights, "first_seen": kept[0].isoformat()}
        event.first_seen, event.last_seen = kept[0], kept[-1]
        if quietly_resolved:
            _reopen(event)
            evidence.pop("resolution", None)
        if event.confirmed_on is not None and event.confirmed_on >= night:
            event.status, event.confirmed_on = "warning", None
            for key in _CONFIRMATION_KEYS:
                evidence.pop(key, None)
        if event.status in ("warning", "confirmed") and not events.typed_by_labels(event):
            event.shift_type = events.agreed_type(s.get("shift_type") for s in nights.values())
        event.evidence = evidence
    session.flush()


def _reopen(event: DriftEvent) -> None:
    event.status = "confirmed" if event.confirmed_on is not None else "warning"
    event.resolved_at = None
    event.evidence = {k: v for k, v in event.evidence.items() if k != "resolution"}
