"""The adaptation lease: an ``adapting`` event names its run and that run's heartbeat.

A run that takes an event to ``adapting`` writes ``adapting_since``,
``lease_owner`` (host:pid) and ``heartbeat_at``; while a step works, a thread
renews ``heartbeat_at`` every ``interval`` seconds. A process that is killed
stops renewing, and once the heartbeat is older than :data:`LEASE_SECONDS`
`drift reset` may return the event to ``confirmed``. A live run (its heartbeat
fresh) is never reset under it.

Examples
--------
>>> owner().count(":") == 1
True
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from drift.events import InvalidTransitionError, get_event, set_event_status
from drift.status import AdaptationStatus, EventStatus, VersionStatus
from drift.store import repo
from drift.store.db import session_scope
from drift.store.models import Adaptation, DriftEvent, ModelVersion
from drift.store.types import utcnow

#: seconds between heartbeats of a running adaptation step
HEARTBEAT_SECONDS = 30.0
#: a lease whose heartbeat is older than this has lapsed: its run is dead (Airflow's
#: gap between two tasks of one run stays well inside it)
LEASE_SECONDS = 600.0


class LeaseHeldError(RuntimeError):
    """The event's adaptation run is alive: it must not be reset."""


class LeaseLostError(RuntimeError):
    """A step of a run whose event is no longer ``adapting``."""


def owner() -> str:
    """This process, as a lease owner: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def take(session: Session, event_id: int) -> DriftEvent:
    """Move a confirmed event to ``adapting`` under this process's lease."""
    event = set_event_status(session, event_id, EventStatus.ADAPTING)
    now = utcnow()
    event.adapting_since, event.lease_owner, event.heartbeat_at = now, owner(), now
    session.flush()
    return event


def _beat(url: str, event_id: int) -> None:
    with session_scope(url) as session:
        session.execute(
            update(DriftEvent)
            .where(DriftEvent.id == event_id, DriftEvent.status == EventStatus.ADAPTING)
            .values(lease_owner=owner(), heartbeat_at=utcnow())
        )


@contextmanager
def held(url: str, event_id: int, interval: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Renew the event's lease every ``interval`` seconds while the block runs (one step).

    Raises :class:`LeaseLostError` when the event is no longer ``adapting`` (the
    run failed or was reset since, e.g. an Airflow retry of a later step).
    """
    with session_scope(url) as session:
        status = get_event(session, event_id).status
    if status != EventStatus.ADAPTING:
        raise LeaseLostError(f"event {event_id} is {status}, not adapting: start the adaptation again")
    _beat(url, event_id)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(interval):
            _beat(url, event_id)

    thread = threading.Thread(target=renew, name=f"lease-event-{event_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_running_attempts(session: Session, event_id: int, reason: str) -> int:
    """Mark the event's running adaptation attempts failed (their candidates rejected)."""
    attempts = list(
        session.query(Adaptation).filter(
            Adaptation.event_id == event_id, Adaptation.status == AdaptationStatus.RUNNING
        )
    )
    for attempt in attempts:
        attempt.status, attempt.reason, attempt.finished_at = AdaptationStatus.FAILED, reason, utcnow()
        if attempt.candidate_version_id is not None:
            session.execute(
                update(ModelVersion)
                .where(ModelVersion.id == attempt.candidate_version_id, ModelVersion.status == VersionStatus.CANDIDATE)
                .values(status=VersionStatus.REJECTED)
            )
    return len(attempts)


def reset_stale(session: Session, event_id: int, by: str, lease_seconds: float = LEASE_SECONDS) -> DriftEvent:
    """Return an ``adapting`` event whose run died to ``confirmed``; refuse while its lease is alive."""
    event = get_event(session, event_id, for_update=True)
    if event.status != EventStatus.ADAPTING:
        raise InvalidTransitionError(f"event {event_id} is {event.status}, not adapting: nothing to reset")
    last = event.heartbeat_at or event.adapting_since
    if last is not None and utcnow() - last < timedelta(seconds=lease_seconds):
        age = (utcnow() - last).total_seconds()
        raise LeaseHeldError(
            f"event {event_id}: its adaptation ({event.lease_owner}) is alive - last heartbeat {age:.0f}s ago, "
            f"a lease lapses after {lease_seconds:.0f}s"
        )
    lease_owner, heartbeat = event.lease_owner, last.isoformat() if last else None
    reason = f"reset by {by}: the run {lease_owner} stopped (last heartbeat {heartbeat})"
    fail_running_attempts(session, event_id, reason)
    set_event_status(session, event_id, EventStatus.CONFIRMED)
    repo.record_audit(
        session, event.monitor_id, "reset", by, event_id=event_id, lease_owner=lease_owner, last_heartbeat=heartbeat
    )
    session.flush()
    return event


def abandon(session: Session, event_id: int, monitor_id: int, method: str, reason: str) -> bool:
    """Undo a failed run of this process: its attempt is recorded failed, the event confirmed again.

    Acts only on an event that this process holds (``lease_owner``), so a run
    that failed before it took the lease never touches another run's event.
    Returns whether it did.
    """
    event = get_event(session, event_id, for_update=True)
    if event.status != EventStatus.ADAPTING or event.lease_owner != owner():
        return False
    if not fail_running_attempts(session, event_id, reason):
        session.add(
            Adaptation(
                monitor_id=monitor_id, event_id=event_id, method=method,
                status=AdaptationStatus.FAILED, reason=reason, finished_at=utcnow(),
            )
        )
    set_event_status(session, event_id, EventStatus.CONFIRMED)
    session.flush()
    return True
