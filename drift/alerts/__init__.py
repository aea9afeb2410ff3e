"""Alerts: a log line, a Slack-compatible webhook, e-mail — at most once per dedupe key.

:func:`enqueue` writes an alert to the outbox with the night's verdict and
:func:`deliver_pending` delivers it to every configured sink afterwards
(:func:`dispatch` does both at once; :mod:`drift.alerts.delivery`); each sink is one class in
:mod:`drift.alerts.sinks` with its settings model, which gives the monitor
config's ``alerts`` section its keys (:data:`AlertSettings`). Only the standard
library speaks HTTP (urllib) and SMTP (smtplib).
"""

from drift.alerts.delivery import (
    OUTBOX_STATUSES,
    deliver,
    deliver_pending,
    dispatch,
    enqueue,
    enqueue_batch_failed,
)
from drift.alerts.redaction import REDACTED, redact
from drift.alerts.settings import AlertPolicy, AlertSettings
from drift.alerts.sinks import (
    SINKS,
    SINKS_KEY,
    EmailSettings,
    LogSettings,
    Sink,
    WebhookSettings,
    register_sink,
    slack_payload,
)

__all__ = [
    "REDACTED",
    "SINKS",
    "SINKS_KEY",
    "AlertPolicy",
    "AlertSettings",
    "EmailSettings",
    "LogSettings",
    "Sink",
    "WebhookSettings",
    "OUTBOX_STATUSES",
    "deliver",
    "deliver_pending",
    "dispatch",
    "enqueue",
    "enqueue_batch_failed",
    "redact",
    "register_sink",
    "slack_payload",
]
