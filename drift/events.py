"""Drift events in the database: the lifecycle warning → confirmed → adapting → resolved (or closed).

Functions here take an open SQLAlchemy :class:`~sqlalchemy.orm.Session` (the
caller owns the transaction) and ORM rows; they create no engines.

Lifecycle
---------
* A **warn** night opens a ``warning`` event, or extends the monitor's open
  event (warning, confirmed or adapting): ``last_seen`` moves and the night is
  linked through ``drift_event_batches``.
* A **confirm** night moves the open warning to ``confirmed`` (``confirmed_on``
  and the confirming evidence are set; ``first_seen`` keeps the
  night the shift was first seen), opens a ``confirmed`` event directly when
  none is open, or extends an open confirmed/adapting event.
* **Expiry**: a ``warning`` that is not confirmed is resolved automatically
  once the gate has seen ``expire_after`` consecutive non-significant nights
  (``quiet_nights`` in the gate state; default 3 = the gate's ``confirm_w``,
  i.e. the warning's night has left the r-of-w window without a confirm).
* **Receding**: a ``confirmed`` shift that goes away (``expire_after`` quiet
  nights, no adaptation running) is resolved as receded, so that a later,
  different shift opens an event of its own instead of extending this one.
  An ``adapting`` event ends only through its adaptation.
* **A person** acts on an event (:func:`acknowledge`, :func:`close_event`,
  :func:`reopen_event`; each writes who and when, and an ``audit_log`` row):
  acknowledging keeps the event open and silences its repeat alerts; closing
  (``false-alarm`` or ``handled``, with a note) ends a warning or confirmed
  event, so that the next shifted night opens a new one; reopening a closed
  event returns it to ``confirmed`` (if it had been confirmed) or ``warning``.
  An ``adapting`` event cannot be closed: its adaptation ends it, or
  `drift reset` (:mod:`drift.leases`) once its run has died.
* **Shift type**: the type the event's nights agree on (:func:`agreed_type`;
  ``unknown`` when they disagree), until feedback labels fix it
  (:func:`typed_by_labels`); after that the nights no longer change it.
* **Kinds** (``kind``, :class:`~drift.status.EventKind`): ``shift`` events follow
  the lifecycle above. ``input`` (columns moved, OOD rates did not) and
  ``gradual`` (a small level change that persists) are *advisory* warnings: never
  confirmed, never adapted; one open advisory event per monitor at a time (an
  open ``input`` event becomes ``gradual`` when the gradual rule fires), beside
  the monitor's open shift event; it expires after ``advisory_expire_after``
  nights without an input or gradual warning (the gate's ``gradual_w``).
* Re-deciding a night is idempotent: a night already linked to an event
  updates that event in place, links are not duplicated and per-night evidence
  is keyed by date.

Every decided night also writes ``batch.verdict`` and ``batch.gate_state``, so
the next night (on any worker) continues the gate from the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from drift.gate import GateDecision
from drift.status import CloseReason, EventKind, EventStatus, ShiftType
from drift.store import repo
from drift.store.models import Batch, DriftEvent, DriftEventBatch, MonitoredModel

OPEN_STATUSES = ("warning", "confirmed", "adapting")
#: kinds of event that only warn (never confirmed, never adapted); one open at a time
ADVISORY_KINDS = (EventKind.INPUT, EventKind.GRADUAL)
#: every status an event can have
STATUSES = tuple(EventStatus)
#: allowed status changes; staying in the same status is always allowed (idempotent)
TRANSITIONS: dict[str, frozenset[str]] = {
    "warning": frozenset({"confirmed", "resolved", "closed"}),
    "confirmed": frozenset({"adapting", "resolved", "closed"}),
    # a rejected, failed or reset adaptation leaves the shift confirmed, to be retried
    "adapting": frozenset({"resolved", "confirmed"}),
    "resolved": frozenset(),
    # reopened by a person
    "closed": frozenset({"warning", "confirmed"}),
}


class InvalidTransitionError(ValueError):
    """An event status change that the lifecycle does not allow."""


class EventNotFoundError(LookupError):
    """No drift event has that id."""


class EventMonitorMismatchError(ValueError):
    """A command named one monitor and an event of another."""


def get_event(
    session: Session, event_id: int, *, for_update: bool = False, monitor: str | None = None
) -> DriftEvent:
    """The event with ``event_id``; :class:`EventNotFoundError` (one line) when there is none,
    :class:`EventMonitorMismatchError` when ``monitor`` is given and the event is another monitor's."""
    event = session.get(DriftEvent, event_id, with_for_update=for_update)
    if event is None:
        raise EventNotFoundError(f"no drift event with id {event_id}")
    if monitor is not None and event.monitor.name != monitor:
        raise EventMonitorMismatchError(
            f"event {event_id} belongs to monitor '{event.monitor.name}', not '{monitor}'"
        )
    return event


def _open_event(
    session: Session, monitor_id: int, kinds: tuple[str, ...] = (EventKind.SHIFT,)
) -> DriftEvent | None:
    query = (
        select(DriftEvent)
        .where(
            DriftEvent.monitor_id == monitor_id,
            DriftEvent.status.in_(OPEN_STATUSES),
            DriftEvent.kind.in_(kinds),
        )
        .order_by(DriftEvent.first_seen.desc(), DriftEvent.id.desc())
        .limit(1)
        .with_for_update()  # one decider at a time per monitor on Postgres; no-op on SQLite
    )
    return session.scalars(query).first()


def _event_of_batch(session: Session, monitor_id: int, batch_id: int) -> DriftEvent | None:
    query = (
        select(DriftEvent)
        .join(DriftEventBatch, DriftEventBatch.event_id == DriftEvent.id)
        .where(DriftEventBatch.batch_id == batch_id, DriftEvent.monitor_id == monitor_id)
        .order_by(DriftEvent.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def _night_summary(decision: GateDecision) -> dict[str, Any]:
    return {
        "verdict": decision.verdict,
        "kind": decision.kind,
        "shift_type": decision.shift_type,
        "decisive": decision.evidence.get("decisive", []),
        "reasons": decision.reasons,
    }


def _link(session: Session, event: DriftEvent, batch: Batch) -> None:
    if session.get(DriftEventBatch, (event.id, batch.id)) is None:
        session.add(DriftEventBatch(event_id=event.id, batch_id=batch.id))


def agreed_type(types: Iterable[str | None]) -> str | None:
    """The shift type an event's nights agree on; ``unknown`` when typed nights disagree
    (a type that flips night to night is no type), None when no night is typed.

    >>> agreed_type(["covariate", None, "covariate"]), agreed_type(["covariate", "unknown"])
    ('covariate', 'unknown')
    """
    typed = {str(t) for t in types if t}
    if len(typed) > 1:
        return ShiftType.UNKNOWN.value
    return typed.pop() if typed else None


def typed_by_labels(event: DriftEvent) -> bool:
    """Did feedback labels fix the event's type (:mod:`drift.pipeline.labelled`)? Then the
    gate's nights no longer change it."""
    return bool(event.evidence.get("type_changes"))


def _confirm(event: DriftEvent, night: date, decision: GateDecision) -> None:
    event.status = "confirmed"
    event.confirmed_on = night
    event.evidence = {
        **event.evidence,
        "confirmed_on": night.isoformat(),
        "confirmation": decision.evidence,
        "confirmation_reasons": decision.reasons,
    }


def record_decision(
    session: Session,
    monitor_id: int,
    batch: Batch,
    decision: GateDecision,
    *,
    expire_after: int = 3,
    advisory_expire_after: int = 14,
) -> DriftEvent | None:
    """Record the gate's decision on ``batch``; return the event it belongs to, if any.

    Writes ``batch.verdict`` and ``batch.gate_state``; opens, extends or
    confirms an event on warn/confirm nights; on ok nights expires an open
    warning after ``expire_after`` quiet nights and returns None. Warnings of kind
    ``input`` / ``gradual`` (``decision.kind``) open or extend the monitor's advisory
    event instead, which expires after ``advisory_expire_after`` nights without one
    (``advisory_quiet_nights`` in the gate state). Idempotent for
    a night that is decided again with the same decision.

    Examples
    --------
    >>> from datetime import date
    >>> from sqlalchemy.orm import Session
    >>> from drift.store.db import get_engine, upgrade
    >>> from drift.gate import GateDecision
    >>> import tempfile, os
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "events.db")
    >>> upgrade(url)
    >>> with Session(get_engine(url)) as session:
    ...     monitor = MonitoredModel(name="digits"); session.add(monitor); session.flush()
    ...     batch = Batch(monitor_id=monitor.id, batch_date=date(2024, 1, 1)); session.add(batch); session.flush()
    ...     warn = GateDecision("warn", True, {"quiet_nights": 0}, "semantic", {}, ["flag_count[knn]"])
    ...     event = record_decision(session, monitor.id, batch, warn)
    ...     again = record_decision(session, monitor.id, batch, warn)
    ...     print(event.status, event is again, len(event.batches), batch.verdict)
    warning True 1 warn
    """
    batch.verdict = decision.verdict
    batch.gate_state = decision.state
    night = batch.batch_date
    session.flush()

    kind = decision.kind or (EventKind.SHIFT if decision.verdict != "ok" else None)
    if kind != EventKind.SHIFT:
        _expire(session, monitor_id, (EventKind.SHIFT,), "quiet_nights", expire_after, decision)
    if kind not in ADVISORY_KINDS:
        _expire(
            session, monitor_id, ADVISORY_KINDS, "advisory_quiet_nights", advisory_expire_after, decision
        )
    if kind is None:
        return None

    kinds = ADVISORY_KINDS if kind in ADVISORY_KINDS else (EventKind.SHIFT,)
    event = _event_of_batch(session, monitor_id, batch.id) or _open_event(session, monitor_id, kinds)
    if event is None:
        event = DriftEvent(
            monitor_id=monitor_id,
            kind=kind,
            status="warning",
            shift_type=decision.shift_type,
            first_seen=night,
            last_seen=night,
            evidence={"first_seen": night.isoformat(), "nights": {}},
        )
        session.add(event)
        session.flush()
    if event.status not in OPEN_STATUSES:
        return event  # a re-run of a night whose event ended since: leave history alone

    event.last_seen = max(event.last_seen, night)
    event.first_seen = min(event.first_seen, night)
    nights = {**event.evidence.get("nights", {}), night.isoformat(): _night_summary(decision)}
    event.evidence = {**event.evidence, "first_seen": event.first_seen.isoformat(), "nights": nights}
    if kind == EventKind.GRADUAL and event.kind != kind:  # an input event turned out gradual
        event.kind = kind
    if decision.verdict == "confirm" and event.status == "warning":
        _confirm(event, night, decision)
    if event.status in ("warning", "confirmed") and not typed_by_labels(event):
        event.shift_type = agreed_type(s.get("shift_type") for s in nights.values())
    _link(session, event, batch)
    session.flush()
    return event


def _expire(
    session: Session,
    monitor_id: int,
    kinds: tuple[str, ...],
    counter: str,
    after: int,
    decision: GateDecision,
) -> None:
    """Resolve the open warning or confirmed event of ``kinds`` once the gate state's
    ``counter`` of quiet nights reaches ``after``."""
    event = _open_event(session, monitor_id, kinds)
    quiet = int(decision.state.get(counter, 0))
    if event is not None and event.status in ("warning", "confirmed") and quiet >= after:
        outcome = "expired" if event.status == "warning" else "receded"
        event.status = "resolved"
        event.resolved_at = datetime.now(UTC)
        event.evidence = {**event.evidence, "resolution": f"{outcome} after {quiet} quiet nights"}


def set_event_status(session: Session, event_id: int, status: str) -> DriftEvent:
    """Move an event along its lifecycle; raise :class:`InvalidTransitionError` otherwise.

    Setting the status an event already has is a no-op, so retried tasks are safe.

    Examples
    --------
    >>> TRANSITIONS["warning"] == {"confirmed", "resolved", "closed"}
    True
    """
    event = get_event(session, event_id, for_update=True)
    if status == event.status:
        return event
    if status not in TRANSITIONS:
        raise InvalidTransitionError(f"unknown event status {status!r}")
    if status not in TRANSITIONS[event.status]:
        raise InvalidTransitionError(f"event {event_id}: cannot go from {event.status} to {status}")
    event.status = status
    if status == "confirmed" and event.confirmed_on is None:
        event.confirmed_on = event.last_seen
    if status == "resolved":
        event.resolved_at = datetime.now(UTC)
    if status != "adapting":  # the adaptation lease ends with the adapting status
        event.adapting_since = event.lease_owner = event.heartbeat_at = None
    session.flush()
    return event


def acknowledge(session: Session, event_id: int, by: str) -> DriftEvent:
    """A person has seen the event: it stays open, its repeat alerts are silenced.

    Only an open event can be acknowledged; acknowledging again keeps the first
    acknowledgement.
    """
    event = get_event(session, event_id, for_update=True)
    if event.status not in OPEN_STATUSES:
        raise InvalidTransitionError(f"event {event_id} is {event.status}: only an open event can be acknowledged")
    if event.acked_at is None:
        event.acked_at, event.acked_by = datetime.now(UTC), by
        repo.record_audit(session, event.monitor_id, "ack", by, event_id=event_id)
    session.flush()
    return event


def close_event(session: Session, event_id: int, closed_as: CloseReason, by: str, note: str | None) -> DriftEvent:
    """A person closes the event as a false alarm or as handled, with a note.

    Examples
    --------
    >>> sorted(TRANSITIONS["closed"]), "closed" in TRANSITIONS["adapting"]
    (['confirmed', 'warning'], False)
    """
    event = set_event_status(session, event_id, EventStatus.CLOSED)
    event.closed_as, event.closed_by, event.closed_at, event.note = (
        CloseReason(closed_as), by, datetime.now(UTC), note,
    )
    repo.record_audit(session, event.monitor_id, "close", by, event_id=event_id, closed_as=closed_as, note=note)
    session.flush()
    return event


def reopen_event(session: Session, event_id: int, by: str) -> DriftEvent:
    """Open a closed event again: ``confirmed`` if it had been confirmed, else ``warning``."""
    event = get_event(session, event_id, for_update=True)
    if event.status != EventStatus.CLOSED:
        raise InvalidTransitionError(f"event {event_id} is {event.status}: only a closed event can be reopened")
    status = EventStatus.CONFIRMED if event.confirmed_on is not None else EventStatus.WARNING
    set_event_status(session, event_id, status)
    was = event.closed_as
    event.closed_as = event.closed_by = event.closed_at = None
    repo.record_audit(session, event.monitor_id, "reopen", by, event_id=event_id, was_closed_as=was)
    session.flush()
    return event


def list_events(
    session: Session,
    monitor: int | str | None = None,
    status: str | Iterable[str] | None = None,
    since: date | None = None,
) -> list[DriftEvent]:
    """Events, oldest first; filter by monitor (id or name), status(es) and last seen on/after ``since``."""
    query = select(DriftEvent).order_by(DriftEvent.first_seen, DriftEvent.id)
    if isinstance(monitor, str):
        query = query.join(MonitoredModel, MonitoredModel.id == DriftEvent.monitor_id).where(
            MonitoredModel.name == monitor
        )
    elif monitor is not None:
        query = query.where(DriftEvent.monitor_id == monitor)
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        query = query.where(DriftEvent.status.in_(statuses))
    if since is not None:
        query = query.where(DriftEvent.last_seen >= since)
    return list(session.scalars(query))
