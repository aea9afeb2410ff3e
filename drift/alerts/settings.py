"""The ``alerts`` section of a monitor: one optional key per registered sink, plus retry policy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from drift.alerts.sinks import SINKS, Sink


class AlertPolicy(BaseModel):
    """What every ``alerts`` section holds whatever the sinks: when to alert, how hard to try."""

    model_config = ConfigDict(extra="forbid")

    #: OOD-surge alert the same night when any detector's OOD rate exceeds this (None: off)
    ood_rate_ceiling: float | None = Field(0.25, gt=0.0, le=1.0)
    max_attempts: int = Field(3, ge=1)
    #: wait before the second attempt; doubles after each further failure
    backoff_seconds: float = Field(1.0, ge=0.0)

    @model_validator(mode="before")
    @classmethod
    def _false_turns_a_sink_off(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {k: (None if k in SINKS and v is False else v) for k, v in values.items()}
        return values

    def configured_sinks(self) -> list[tuple[Sink[Any], Any]]:
        """``(sink, its settings)`` for every sink this section turns on, in delivery order."""
        pairs = [(sink, getattr(self, name, None)) for name, sink in SINKS.items()]
        return [(sink, settings) for sink, settings in pairs if settings is not None]

    def secrets(self) -> list[str]:
        """Every configured sink's secrets: what redaction removes from error text."""
        return [s for sink, settings in self.configured_sinks() for s in sink.secrets(settings) if s]


_SINK_FIELDS: dict[str, Any] = {
    name: (sink.settings_model | None, sink.default) for name, sink in SINKS.items()
}

if TYPE_CHECKING:  # a type checker sees the policy; the sink keys exist at run time
    AlertSettings = AlertPolicy
else:
    #: ``AlertPolicy`` plus ``<sink name>: <its settings_model> | None`` for every registered sink.
    AlertSettings = create_model(
        "AlertSettings",
        __base__=AlertPolicy,
        __module__=__name__,
        __doc__="""Where alerts go and how hard to try: a key per sink (``log``, ``webhook``, ``email``).

        Examples
        --------
        >>> AlertSettings(ood_rate_ceiling=0.3).webhook is None
        True
        >>> [sink.name for sink, _ in AlertSettings(log=False).configured_sinks()]
        []
        >>> AlertSettings(webhook={"url": "https://example.org/hook/secret"}).webhook
        WebhookSettings(url=SecretStr('**********'), timeout_seconds=10.0)
        """,
        **_SINK_FIELDS,
    )
