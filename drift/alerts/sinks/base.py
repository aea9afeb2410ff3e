"""The sink contract: a name, a settings model, ``send`` and ``secrets``.

A sink is one small class registered with :func:`register_sink`. The monitor
config's ``alerts`` section gets one optional key per registered sink, typed by
the sink's ``settings_model``; :func:`drift.alerts.dispatch` delivers to every
sink whose settings are present, and redacts every sink's ``secrets`` from any
error text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

#: payload key under which the per-sink delivery status is kept
SINKS_KEY = "_sinks"

SettingsT = TypeVar("SettingsT", bound=BaseModel)


class Sink(ABC, Generic[SettingsT]):
    """Where an alert goes. Stateless: everything it needs is in its settings.

    Examples
    --------
    >>> from pydantic import BaseModel
    >>> class PrintSettings(BaseModel):
    ...     prefix: str = "ALERT"
    >>> class PrintSink(Sink[PrintSettings]):
    ...     name = "print"
    ...     settings_model = PrintSettings
    ...     def send(self, settings, kind, message, payload):
    ...         print(settings.prefix, kind, message)
    >>> PrintSink().send(PrintSettings(), "ood_surge", "OOD surge", {})
    ALERT ood_surge OOD surge
    """

    #: key of this sink in the ``alerts`` section and in ``payload["_sinks"]``
    name: ClassVar[str]
    settings_model: ClassVar[type[BaseModel]]
    #: settings when the config omits the key (None: the sink is off)
    default: ClassVar[Any] = None

    @abstractmethod
    def send(self, settings: SettingsT, kind: str, message: str, payload: dict[str, Any]) -> None:
        """Deliver one alert; raise on failure (the caller retries and records it)."""

    def secrets(self, settings: SettingsT) -> list[str]:
        """Strings that must never appear in a log line or ``last_error``."""
        return []


#: registered sinks by name, in delivery order
SINKS: dict[str, Sink[Any]] = {}

SinkT = TypeVar("SinkT", bound=type[Sink[Any]])


def register_sink(cls: SinkT) -> SinkT:
    """Class decorator: deliver alerts through ``cls`` and give it a key in ``alerts``."""
    SINKS[cls.name] = cls()
    return cls


def payload_details(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload without driftwatch's own bookkeeping (what a sink shows)."""
    return {key: value for key, value in payload.items() if key != SINKS_KEY}
