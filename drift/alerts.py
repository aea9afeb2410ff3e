"""Alerts: a log line, a Slack-compatible webhook, e-mail — at most once per dedupe key.

:func:`dispatch` inserts the alert row keyed by ``dedupe_key`` (insert-or-get
with ``ON CONFLICT DO NOTHING``, safe under concurrent writers on Postgres and
SQLite), then delivers it to every configured sink that has not had it yet.
An alert already sent is never resent; a failing sink is retried with
exponential backoff up to ``max_attempts``; the failure is recorded on the row
(``status``, ``attempts``, ``last_error``) and never raised into the nightly
job. Which sinks got the alert is kept under ``payload["_sinks"]`` so a later
retry does not repeat a sink that already delivered.

Secrets — the webhook URL's path and query (Slack puts its token there) and
the SMTP password — never reach a log line or ``last_error``: every error text
is redacted before it leaves this module. Only the standard library speaks
HTTP (urllib) and SMTP (smtplib).

Call :func:`dispatch` with a session of its own (``session_scope``) so that the
alert record commits whatever happens to the night's other writes.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import time
import urllib.error
import urllib.request
from datetime import date
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from drift.store.models import Alert
from drift.store.types import json_safe, utcnow

log = logging.getLogger("drift.alerts")

#: payload key under which the per-sink delivery status is kept
SINKS_KEY = "_sinks"
_REDACTED = "***"


class WebhookSettings(BaseModel):
    """A Slack-compatible incoming webhook; the URL is a secret (its path holds the token)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr
    timeout_seconds: float = Field(10.0, gt=0)

    def safe_url(self) -> str:
        """The URL with everything after the host redacted: what logs may show.

        Examples
        --------
        >>> WebhookSettings(url="https://hooks.slack.com/services/T0/B0/XyZ").safe_url()
        'https://hooks.slack.com/***'
        """
        parts = urlsplit(self.url.get_secret_value())
        host = parts.netloc.rsplit("@", 1)[-1]  # drop any user:password@
        return f"{parts.scheme}://{host}/{_REDACTED}"

    def secrets(self) -> list[str]:
        url = self.url.get_secret_value()
        parts = urlsplit(url)
        return [url, parts.path, parts.query, parts.password or ""]


class EmailSettings(BaseModel):
    """SMTP delivery; the password is read from the environment variable ``password_env``."""

    model_config = ConfigDict(extra="forbid")

    smtp_host: str
    smtp_port: int = 587
    sender: str
    recipients: list[str] = Field(min_length=1)
    username: str | None = None
    #: name of the environment variable that holds the SMTP password (never the password)
    password_env: str | None = None
    starttls: bool = True
    timeout_seconds: float = Field(10.0, gt=0)

    def password(self) -> str | None:
        return os.environ.get(self.password_env) if self.password_env else None

    def secrets(self) -> list[str]:
        return [self.password() or ""]


class AlertSettings(BaseModel):
    """Where alerts go and how hard to try.

    Examples
    --------
    >>> AlertSettings(ood_rate_ceiling=0.3).webhook is None
    True
    >>> AlertSettings(webhook={"url": "https://example.org/hook/secret"})
    AlertSettings(ood_rate_ceiling=0.25, log=True, webhook=WebhookSettings(url=SecretStr('**********'), timeout_seconds=10.0), email=None, max_attempts=3, backoff_seconds=1.0)
    """

    model_config = ConfigDict(extra="forbid")

    #: OOD-surge alert the same night when any detector's OOD rate exceeds this (None: off)
    ood_rate_ceiling: float | None = Field(0.25, gt=0.0, le=1.0)
    log: bool = True
    webhook: WebhookSettings | None = None
    email: EmailSettings | None = None
    max_attempts: int = Field(3, ge=1)
    #: wait before the second attempt; doubles after each further failure
    backoff_seconds: float = Field(1.0, ge=0.0)

    def secrets(self) -> list[str]:
        sinks = [s for s in (self.webhook, self.email) if s is not None]
        return [secret for sink in sinks for secret in sink.secrets() if secret]


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``***`` (longest first, so parts of a URL go too).

    Examples
    --------
    >>> redact("POST https://h/services/T0/tok failed", ["https://h/services/T0/tok", "/services/T0/tok"])
    'POST *** failed'
    """
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, _REDACTED)
    return text


def slack_payload(kind: str, message: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The JSON body for a Slack-compatible webhook: ``text`` plus blocks with the details.

    Examples
    --------
    >>> body = slack_payload("ood_surge", "OOD surge", {"batch_date": "2024-01-01"})
    >>> body["text"], body["blocks"][1]["elements"][0]["text"]
    ('OOD surge', '*batch_date*: 2024-01-01')
    """
    details = [
        {"type": "mrkdwn", "text": f"*{key}*: {value}"}
        for key, value in payload.items()
        if key != SINKS_KEY
    ][:10]  # Slack allows at most 10 elements in a context block
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": message}}]
    if details:
        blocks.append({"type": "context", "elements": details})
    return {"text": message, "blocks": blocks, "metadata": {"event_type": kind}}


def _send_webhook(settings: WebhookSettings, kind: str, message: str, payload: dict[str, Any]) -> None:
    body = json.dumps(json_safe(slack_payload(kind, message, payload))).encode()
    request = urllib.request.Request(
        settings.url.get_secret_value(),
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=settings.timeout_seconds) as response:
        response.read()


def _send_email(settings: EmailSettings, kind: str, message: str, payload: dict[str, Any]) -> None:
    mail = EmailMessage()
    mail["Subject"] = message.splitlines()[0][:200]
    mail["From"] = settings.sender
    mail["To"] = ", ".join(settings.recipients)
    details = {k: v for k, v in payload.items() if k != SINKS_KEY}
    mail.set_content(f"{message}\n\nkind: {kind}\n{json.dumps(json_safe(details), indent=2, default=str)}\n")
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout_seconds) as smtp:
        if settings.starttls:
            smtp.starttls()
        if settings.username:
            smtp.login(settings.username, settings.password() or "")
        smtp.send_message(mail)


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
    settings: AlertSettings,
    *,
    kind: str,
    dedupe_key: str,
    message: str,
    payload: dict[str, Any],
    monitor_id: int | None = None,
    event_id: int | None = None,
    batch_id: int | None = None,
    severity: str = "warning",
) -> Alert:
    """Record and deliver one alert, at most once per ``dedupe_key``; never raises on delivery.

    Returns the alert row: ``status`` is ``sent`` when every sink delivered
    (now or earlier), ``failed`` when some sink still failed after
    ``max_attempts`` attempts (``last_error`` says why, redacted).

    Examples
    --------
    >>> import tempfile, os
    >>> from sqlalchemy.orm import Session
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
            "status": "pending",
            "attempts": 0,
            "created_at": utcnow(),
        },
    )
    if alert.status == "sent":
        return alert

    senders = {
        "log": (lambda *_: log.warning("[alert %s] %s", kind, message)) if settings.log else None,
        "webhook": (lambda *a: _send_webhook(settings.webhook, *a)) if settings.webhook else None,
        "email": (lambda *a: _send_email(settings.email, *a)) if settings.email else None,
    }
    delivered = dict(alert.payload.get(SINKS_KEY, {}))
    pending = [name for name, send in senders.items() if send and delivered.get(name) != "sent"]
    secrets = settings.secrets()
    errors: dict[str, str] = {}
    for attempt in range(settings.max_attempts):
        if attempt:
            time.sleep(settings.backoff_seconds * 2 ** (attempt - 1))
        alert.attempts += 1
        for name in list(pending):
            try:
                senders[name](kind, message, payload)
            except Exception as exc:  # any sink failure is recorded, never raised
                errors[name] = redact(_describe(exc), secrets)
                log.warning("alert %s: %s sink failed (attempt %d): %s", dedupe_key, name, alert.attempts, errors[name])
            else:
                delivered[name] = "sent"
                errors.pop(name, None)
                pending.remove(name)
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
    settings: AlertSettings,
    monitor_name: str,
    batch_date: date,
    error: str,
    *,
    monitor_id: int | None = None,
    batch_id: int | None = None,
) -> Alert:
    """One alert for a night that failed (pipeline or Airflow failure callback)."""
    return dispatch(
        session,
        settings,
        kind="batch_failed",
        dedupe_key=f"{monitor_name}:{batch_date.isoformat()}:batch_failed",
        message=f"[{monitor_name}] batch {batch_date} failed: {redact(error, settings.secrets())}",
        payload={"batch_date": batch_date.isoformat()},
        monitor_id=monitor_id,
        batch_id=batch_id,
        severity="error",
    )
