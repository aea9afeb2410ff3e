"""The report's event log and adaptations, read from the event store into small views."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drift.status import CloseReason
from drift.store.models import Adaptation, Batch, DriftEvent, DriftTest


@dataclass(frozen=True)
class EventView:
    """One drift event as the report shows it."""

    id: int
    status: str
    shift_type: str | None
    first_seen: date
    last_seen: date
    confirmed_on: date | None
    n_nights: int
    #: the night whose tests made the event: its confirmation night, else its first night
    decisive_night: date
    decisive_tests: pd.DataFrame
    reasons: list[str]
    resolution: str | None
    #: what a person did: "acknowledged by …", "closed as false-alarm by …: note"
    actions: list[str]
    #: shift | input | gradual (an input event's reasons name its columns)
    kind: str = "shift"


@dataclass(frozen=True)
class AdaptationView:
    """One adaptation as the report shows it: what the pipeline's validate/promote steps stored."""

    id: int
    event_id: int | None
    method: str
    status: str
    started_at: datetime
    reason: str | None
    metrics_before: dict[str, Any]
    metrics_after: dict[str, Any]


def _decisive_tests(
    session: Session, monitor_id: int, night: date, decisive: list[str]
) -> pd.DataFrame:
    """The stored tests the gate named decisive on ``night`` ("test:subject" or "test")."""
    tests = session.scalars(
        select(DriftTest)
        .join(Batch, Batch.id == DriftTest.batch_id)
        .where(Batch.monitor_id == monitor_id, Batch.batch_date == night)
    )
    named = {tuple(name.split(":", 1)) if ":" in name else (name, None) for name in decisive}
    rows = [
        (t.test, t.subject, t.p_value, t.effect_size)
        for t in tests
        if (t.test, t.subject) in named or (t.test, None) in named
    ]
    return pd.DataFrame(rows, columns=["test", "subject", "p_value", "effect_size"])


def event_view(session: Session, event: DriftEvent) -> EventView:
    night = event.confirmed_on or event.first_seen
    summary = event.evidence.get("nights", {}).get(night.isoformat(), {})
    reasons = event.evidence.get("confirmation_reasons") or summary.get("reasons", [])
    return EventView(
        id=event.id,
        status=event.status,
        shift_type=event.shift_type,
        first_seen=event.first_seen,
        last_seen=event.last_seen,
        confirmed_on=event.confirmed_on,
        n_nights=len(event.evidence.get("nights", {})),
        decisive_night=night,
        decisive_tests=_decisive_tests(
            session, event.monitor_id, night, summary.get("decisive", [])
        ),
        reasons=list(reasons),
        resolution=event.evidence.get("resolution"),
        actions=_person_actions(event),
        kind=event.kind,
    )


def _person_actions(event: DriftEvent) -> list[str]:
    actions = []
    if event.acked_at is not None:
        actions.append(f"acknowledged by {event.acked_by} at {event.acked_at:%Y-%m-%d %H:%M} UTC")
    if event.closed_at is not None:
        note = f": {event.note}" if event.note else ""
        actions.append(f"closed as {event.closed_as} by {event.closed_by} at {event.closed_at:%Y-%m-%d %H:%M} UTC{note}")
    return actions


def event_counts(session: Session, monitor_id: int) -> tuple[int, int]:
    """(events closed as a false alarm, all events) of the monitor, ever."""
    counts = dict(
        session.execute(
            select(DriftEvent.closed_as, func.count())
            .where(DriftEvent.monitor_id == monitor_id)
            .group_by(DriftEvent.closed_as)
        ).all()
    )
    return int(counts.get(CloseReason.FALSE_ALARM, 0)), int(sum(counts.values()))


def events_in_range(session: Session, monitor_id: int, start: date, end: date) -> list[DriftEvent]:
    return list(
        session.scalars(
            select(DriftEvent)
            .where(
                DriftEvent.monitor_id == monitor_id,
                DriftEvent.first_seen <= end,
                DriftEvent.last_seen >= start,
            )
            .order_by(DriftEvent.first_seen, DriftEvent.id)
        )
    )


def adaptations_in_range(
    session: Session, monitor_id: int, start: date, end: date, event_ids: list[int]
) -> list[AdaptationView]:
    """Adaptations of the range's events, or started within the range."""
    window = (
        datetime.combine(start, datetime.min.time(), UTC),
        datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC),
    )
    query = select(Adaptation).where(
        Adaptation.monitor_id == monitor_id,
        Adaptation.event_id.in_(event_ids)
        | ((Adaptation.started_at >= window[0]) & (Adaptation.started_at < window[1])),
    )
    return [
        AdaptationView(
            id=a.id,
            event_id=a.event_id,
            method=a.method,
            status=a.status,
            started_at=a.started_at,
            reason=a.reason,
            metrics_before=dict(a.metrics_before),
            metrics_after=dict(a.metrics_after),
        )
        for a in session.scalars(query.order_by(Adaptation.started_at, Adaptation.id))
    ]
