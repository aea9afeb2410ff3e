"""The webhook sink: a Slack-compatible incoming webhook, over urllib only."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from drift.alerts.redaction import REDACTED
from drift.alerts.sinks.base import Sink, payload_details, register_sink
from drift.store.types import json_safe

_URL = re.compile(r"(?P<scheme>[^:/?#]*)://(?P<netloc>[^/?#]*)(?P<rest>.*)", re.DOTALL)


def _split(url: str) -> tuple[str, str, str]:
    """``(scheme, netloc, everything after the host)`` of the raw text.

    Not :func:`urllib.parse.urlsplit`: it drops tabs and newlines first, so its
    parts would miss the text an error message quotes.
    """
    match = _URL.fullmatch(url)
    if match is None:
        return "", "", url
    return match["scheme"], match["netloc"], match["rest"]


class WebhookSettings(BaseModel):
    """A Slack-compatible incoming webhook; the URL is a secret (its path holds the token)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr
    timeout_seconds: float = Field(10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: SecretStr) -> SecretStr:
        # the message never quotes the URL: it holds the token
        text = url.get_secret_value()
        try:
            parts = urlsplit(text)
        except ValueError as exc:
            raise ValueError(f"not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL with a host")
        if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
            raise ValueError("the URL holds whitespace or a control character")
        return url

    def safe_url(self) -> str:
        """The URL with everything after the host redacted: what logs may show.

        Examples
        --------
        >>> WebhookSettings(url="https://hooks.slack.com/services/T0/B0/XyZ").safe_url()
        'https://hooks.slack.com/***'
        """
        scheme, netloc, _ = _split(self.url.get_secret_value())
        host = netloc.rsplit("@", 1)[-1]  # drop any user:password@
        return f"{scheme}://{host}/{REDACTED}"


def slack_payload(kind: str, message: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The JSON body for a Slack-compatible webhook: ``text`` plus blocks with the details.

    Examples
    --------
    >>> body = slack_payload("ood_surge", "OOD surge", {"batch_date": "2024-01-01"})
    >>> body["text"], body["blocks"][1]["elements"][0]["text"]
    ('OOD surge', '*batch_date*: 2024-01-01')
    """
    details = [
        {"type": "mrkdwn", "text": f"*{key}*: {value}"} for key, value in payload_details(payload).items()
    ][:10]  # Slack allows at most 10 elements in a context block
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": message}}]
    if details:
        blocks.append({"type": "context", "elements": details})
    return {"text": message, "blocks": blocks, "metadata": {"event_type": kind}}


@register_sink
class WebhookSink(Sink[WebhookSettings]):
    """POSTs :func:`slack_payload` as JSON to the webhook URL."""

    name = "webhook"
    settings_model = WebhookSettings

    def send(self, settings: WebhookSettings, kind: str, message: str, payload: dict[str, Any]) -> None:
        body = json.dumps(json_safe(slack_payload(kind, message, payload))).encode()
        request = urllib.request.Request(
            settings.url.get_secret_value(),
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=settings.timeout_seconds) as response:
            response.read()

    def secrets(self, settings: WebhookSettings) -> list[str]:
        """The whole URL, everything after the host (path, query) and any password in it.

        Examples
        --------
        >>> WebhookSink().secrets(WebhookSettings(url="https://u:pw@h/services/tok?x=1"))
        ['https://u:pw@h/services/tok?x=1', '/services/tok?x=1', 'pw']
        """
        url = settings.url.get_secret_value()
        _, netloc, after_host = _split(url)
        userinfo = netloc.rsplit("@", 1)[0] if "@" in netloc else ""
        password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
        return [s for s in (url, after_host, password) if s]
