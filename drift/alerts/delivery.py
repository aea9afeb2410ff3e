"""Deliver an alert to every configured sink, at most once per dedupe key.

:func:`dispatch` inserts the alert row keyed by ``dedupe_key`` (insert-or-get
with ``ON CONFLICT DO NOTHING``, safe under concurrent writers on Postgres and
SQLite), then delivers it to every configured sink that has not had it yet.
An alert already sent is never resent; a failing sink is retried with
exponential backoff up to ``max_attempts``; the failure is recorded on the row
(``status``, ``attempts``, ``last_error``) and never raised into the nightly
job. Which sinks got the alert is kept under ``payload["_sinks"]`` so a later
retry does not repeat a sink that already delivered.

Secrets (each sink's :meth:`~drift.alerts.sinks.Sink.secrets`: the webhook
URL's path and query, the SMTP password) never reach a log line or
``last_error``: every error text is redacted before it leaves this module.

Call :func:`dispatch` with a session of its own (``session_scope``) so that the
alert record commits whatever happens to the night's other writes.
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
from drift.store.types import json_safe, utcnow

log = logging.getLogger("drift.alerts")


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"  # never str(exc.url)
    return f"{type(exc).__name__}: {exc}"


def _insert_or_get(session: Session, values: dict[str, Any]) -> Alert:
    """The alert row for ``values["dedupe_key"]``, inserting it if it is new.

    ``ON CONFLICT DO NOTHING`` on the unique key makes concurrent inserts safe on
    both dialects; ``FOR UPDATE`` (Postgres) then serialises the deliverers.
    """
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(Alert).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"]))
    query = select(Alert).where(Alert.dedupe_key == values["dedupe_key"]).with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).one()


def dispatch(
    session: Session,
    settings: AlertPolicy,
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
    """Record and deliver one alert, at most once per ``dedupe_key``; never raises on delivery.

    A ``silenced`` alert (its event acknowledged or closed by a person) is
    recorded with status ``silenced`` and sent nowhere.

    Returns the alert row: ``status`` is ``sent`` when every sink delivered
    (now or earlier), ``failed`` when some sink still failed after
    ``max_attempts`` attempts (``last_error`` says why, redacted).

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
    alert = _insert_or_get(
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
    if alert.status in ("sent", "silenced"):
        return alert

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
                sink.send(config, kind, message, payload)
            except Exception as exc:  # any sink failure is recorded, never raised
                errors[name] = redact(_describe(exc), secrets)
                log.warning("alert %s: %s sink failed (attempt %d): %s", dedupe_key, name, alert.attempts, errors[name])
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


def alert_batch_failed(
    session: Session,
    settings: AlertPolicy,
    monitor_name: str,
    batch_date: date,
    error: str,
    *,
    monitor_id: int | None = None,
    batch_id: int | None = None,
) -> Alert:
    """The one alert for a failed night: severity ``error``, the error text redacted.

    Both the pipeline's :func:`~drift.pipeline.record_failure` and the Airflow
    failure callback (through it) send this; one per monitor and night.
    """
    reason = redact(error, settings.secrets())
    return dispatch(
        session,
        settings,
        kind="batch_failed",
        dedupe_key=f"{monitor_name}:{batch_date.isoformat()}:batch_failed",
        message=f"[{monitor_name}] batch {batch_date} failed: {reason}",
        payload={"batch_date": batch_date.isoformat(), "error": reason},
        monitor_id=monitor_id,
        batch_id=batch_id,
        severity="error",
    )
