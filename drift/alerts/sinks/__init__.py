"""Alert sinks, one file each, registered with :func:`register_sink`.

Adding a sink: one file here with a settings model and a :class:`Sink`
subclass decorated with ``@register_sink``, plus its import below.
"""

# import order is delivery order: the log line first, e-mail last
# isort: off
from drift.alerts.sinks.base import SINKS, SINKS_KEY, Sink, payload_details, register_sink
from drift.alerts.sinks.log import LogSettings, LogSink
from drift.alerts.sinks.webhook import WebhookSettings, WebhookSink, slack_payload
from drift.alerts.sinks.email import EmailSettings, EmailSink
# isort: on

__all__ = [
    "SINKS",
    "SINKS_KEY",
    "EmailSettings",
    "EmailSink",
    "LogSettings",
    "LogSink",
    "Sink",
    "WebhookSettings",
    "WebhookSink",
    "payload_details",
    "register_sink",
    "slack_payload",
]
