"""Deliver an alert to every configured sink, at most once per dedupe key, through an outbox.

:func:`enqueue` inserts the alert row keyed by ``dedupe_key`` (insert-or-get
with ``ON CONFLICT DO NOTHING``, safe under concurrent writers on Postgres and
SQLite) as ``pending``, in the transaction that decides the night, so the
alert commits with the verdict or not at all. :func:`deliver_pending` then
delivers every pending row to every configured sink that has not had it yet
(after the verdict committed: the next night, a backfill or
``drift alerts flush`` deliver what a crash left behind).
An alert already sent is never resent; a failing sink is retried with
exponential backoff up to ``max_attempts``; the failure is recorded on the row
(``status``, ``attempts``, ``last_error``) and never raised into the nightly
job. Which sinks got the alert is kept under ``payload["_sinks"]`` so a later
retry does not repeat a sink that already delivered.

Secrets (each sink's :meth:`~drift.alerts.sinks.Sink.secrets`: the webhook
URL's path and query, the SMTP password) never reach a log line or
``last_error``: every error text is redacted before it leaves this module.

A process killed while a sink is sending leaves the row ``pending``: that one
send is repeated by the next delivery (the receiver never acknowledged it);
an acknowledged send is committed as ``sent`` before the next alert starts.
"""

from __future__ import annotations

import logging
import time
import urllib.error
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from drift.alerts.redaction import redact
from drift.alerts.settings import AlertPolicy
from drift.alerts.sinks import SINKS_KEY
from drift.store.models import Alert
from drift.store.repo import dialect_insert
from drift.store.types import json_safe, utcnow

log = logging.getLogger("drift.alerts")

#: the outbox: alerts still to deliver (``failed`` ones are tried again on the next delivery)
OUTBOX_STATUSES = ("pending", "failed")


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"  # never str(exc.url)
    return f"{type(exc).__name__}: {exc}"


def _insert_or_get(session: Session, values: dict[str, Any]) -> Alert:
    """The alert row for ``values["dedupe_key"]``, inserting it if it is new.

    ``ON CONFLICT DO NOTHING`` on the unique key makes concurrent inserts safe on
    both dialects; ``FOR UPDATE`` (Postgres) then serialises the deliverers.
    """
    session.execute(dialect_insert(session, Alert).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"]))
    query = select(Alert).where(Alert.dedupe_key == values["dedupe_key"]).with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).one()


def enqueue(
    session: Session,
    *,
    kind: str,
    dedupe_key: str,
    message: str,
    payload: dict[str, Any],
    monitor_id: int | None = None,
    event_id: int | None = None,
    batch_id: int | None = None,
    severity: str = "warning",
    silenced: bool = False,
) -> Alert:
    """Write the alert to the outbox (a ``pending`` row) in the caller's transaction; send nothing.

    The row commits with whatever else the transaction writes (the night's
    verdict), so a process that dies before delivery leaves it ``pending`` for
    :func:`deliver_pending`. An alert already recorded under ``dedupe_key`` is
    returned as it is.

    A ``silenced`` alert (its event acknowledged or closed by a person) is
    recorded with status ``silenced`` and sent nowhere.
    """
    return _insert_or_get(
        session,
        {
            "dedupe_key": dedupe_key,
            "kind": kind,
            "message": message,
            "payload": json_safe({**payload, SINKS_KEY: {}}),
            "monitor_id": monitor_id,
            "event_id": event_id,
            "batch_id": batch_id,
            "severity": severity,
            "status": "silenced" if silenced else "pending",
            "attempts": 0,
            "created_at": utcnow(),
        },
    )


def deliver(session: Session, settings: AlertPolicy, alert: Alert) -> Alert:
    """Deliver one outbox row to every configured sink that has not had it; never raises.

    ``status`` becomes ``sent`` when every sink delivered (now or earlier) and
    ``failed`` when some sink still failed after ``max_attempts`` attempts
    (``last_error`` says why, redacted); a ``failed`` row is tried again by
    the next :func:`deliver_pending`.
    """
    if alert.status in ("sent", "silenced"):
        return alert
    payload = {k: v for k, v in alert.payload.items() if k != SINKS_KEY}
    delivered = dict(alert.payload.get(SINKS_KEY, {}))
    pending = {
        sink.name: (sink, config)
        for sink, config in settings.configured_sinks()
        if delivered.get(sink.name) != "sent"
    }
    secrets = settings.secrets()
    errors: dict[str, str] = {}
    for attempt in range(settings.max_attempts):
        if attempt:
            time.sleep(settings.backoff_seconds * 2 ** (attempt - 1))
        alert.attempts += 1
        for name, (sink, config) in list(pending.items()):
            try:
                sink.send(config, alert.kind, alert.message, payload)
            except Exception as exc:  # any sink failure is recorded, never raised
                errors[name] = redact(_describe(exc), secrets)
                log.warning(
                    "alert %s: %s sink failed (attempt %d): %s",
                    alert.dedupe_key, name, alert.attempts, errors[name],
                )
            else:
                delivered[name] = "sent"
                errors.pop(name, None)
                del pending[name]
        if not pending:
            break

    for name in pending:
        delivered[name] = "failed"
    alert.payload = {**alert.payload, SINKS_KEY: delivered}
    alert.last_error = "; ".join(f"{name}: {error}" for name, error in errors.items()) or None
    alert.status = "failed" if pending else "sent"
    if not pending:
        alert.sent_at = utcnow()
    session.flush()
    return alert


def dispatch(session: Session, settings: AlertPolicy, **alert: Any) -> Alert:
    """Record and deliver one alert now, at most once per ``dedupe_key``; never raises on delivery.

    :func:`enqueue` then :func:`deliver` in one transaction: for alerts that no
    other write depends on (a failed task). The night's own alerts go through
    the outbox instead (``enqueue`` with the verdict, :func:`deliver_pending` after).

    Examples
    --------
    >>> import tempfile, os
    >>> from sqlalchemy.orm import Session
    >>> from drift.alerts import AlertSettings
    >>> from drift.store.db import get_engine, upgrade
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "alerts.db")
    >>> upgrade(url)
    >>> with Session(get_engine(url)) as session:
    ...     first = dispatch(session, AlertSettings(), kind="ood_surge", dedupe_key="m:2024-01-01:ood_surge",
    ...                      message="OOD surge", payload={"ood_rate": 0.4})
    ...     again = dispatch(session, AlertSettings(), kind="ood_surge", dedupe_key="m:2024-01-01:ood_surge",
    ...                      message="OOD surge", payload={"ood_rate": 0.4})
    ...     print(first.status, first.attempts, again.id == first.id, again.attempts)
    sent 1 True 1
    """
    return deliver(session, settings, enqueue(session, **alert))


def deliver_pending(db_url: str, settings: AlertPolicy, monitor_id: int | None) -> list[Alert]:
    """Deliver the monitor's outbox: every ``pending`` or ``failed`` alert, oldest first.

    Each alert is delivered in a transaction of its own that holds its row
    locked (``FOR UPDATE SKIP LOCKED`` on Postgres: two deliverers never send
    the same row; SQLite serialises writers), and commits the outcome before
    the next, so a crash repeats at most the delivery that was under way.
    Returns the rows delivered or tried.

    Examples
    --------
    >>> import tempfile, os
    >>> from drift.alerts import AlertSettings
    >>> from drift.store.db import session_scope, upgrade
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "outbox.db")
    >>> upgrade(url)
    >>> with session_scope(url) as session:
    ...     _ = enqueue(session, kind="ood_surge", dedupe_key="k", message="OOD surge", payload={})
    >>> [(a.kind, a.status) for a in deliver_pending(url, AlertSettings(), None)]
    [('ood_surge', 'sent')]
    >>> deliver_pending(url, AlertSettings(), None)
    []
    """
    from drift.store.db import session_scope

    with session_scope(db_url) as session:
        ids = list(
            session.scalars(
                select(Alert.id)
                .where(Alert.monitor_id.is_(None) if monitor_id is None else Alert.monitor_id == monitor_id)
                .where(Alert.status.in_(OUTBOX_STATUSES))
                .order_by(Alert.id)
            )
        )
    done = []
    for alert_id in ids:
        with session_scope(db_url) as session:
            query = select(Alert).where(Alert.id == alert_id, Alert.status.in_(OUTBOX_STATUSES))
            alert = session.scalars(
                query.with_for_update(skip_locked=True).execution_options(populate_existing=True)
            ).one_or_none()
            if alert is not None:  # sent (or taken) by another deliverer meanwhile
                done.append(deliver(session, settings, alert))
                session.expunge(alert)
    return done


def enqueue_batch_failed(
    session: Session,
    settings: AlertPolicy,
    monitor_name: str,
    batch_date: date,
    error: str,
    *,
    monitor_id: int | None = None,
    batch_id: int | None = None,
) -> Alert:
    """The one alert for a failed night, into the outbox: severity ``error``, the error text redacted.

    The pipeline's :func:`~drift.pipeline.record_failure` writes it with the
    failed batch row (and the Airflow failure callback through it); one per
    monitor and night.
    """
    reason = redact(error, settings.secrets())
    return enqueue(
        session,
        kind="batch_failed",
        dedupe_key=f"{monitor_name}:{batch_date.isoformat()}:batch_failed",
        message=f"[{monitor_name}] batch {batch_date} failed: {reason}",
        payload={"batch_date": batch_date.isoformat(), "error": reason},
        monitor_id=monitor_id,
        batch_id=batch_id,
        severity="error",
    )
