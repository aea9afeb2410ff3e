"""The log sink: one log line per alert on the ``drift.alerts`` logger."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from drift.alerts.sinks.base import Sink, register_sink

log = logging.getLogger("drift.alerts")


class LogSettings(BaseModel):
    """``log: true`` (the default) or ``log: {level: error}``; ``log: false`` turns it off."""

    model_config = ConfigDict(extra="forbid")

    level: Literal["info", "warning", "error"] = "warning"

    @model_validator(mode="before")
    @classmethod
    def _from_true(cls, value: Any) -> Any:
        return {} if value is True else value


@register_sink
class LogSink(Sink[LogSettings]):
    """``[alert <kind>] <message>`` at the configured level.

    Examples
    --------
    >>> import io
    >>> stream = io.StringIO()
    >>> handler = logging.StreamHandler(stream)
    >>> handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    >>> log.addHandler(handler)
    >>> LogSink().send(LogSettings(level="error"), "ood_surge", "OOD surge", {})
    >>> log.removeHandler(handler)
    >>> stream.getvalue()
    'ERROR [alert ood_surge] OOD surge\\n'
    """

    name = "log"
    settings_model = LogSettings
    default = LogSettings()

    def send(self, settings: LogSettings, kind: str, message: str, payload: dict[str, Any]) -> None:
        log.log(logging.getLevelName(settings.level.upper()), "[alert %s] %s", kind, message)
