"""The e-mail sink: SMTP over smtplib; the password comes from an environment variable."""

from __future__ import annotations

import json
import os
import smtplib
from email.message import EmailMessage
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from drift.alerts.sinks.base import Sink, payload_details, register_sink
from drift.store.types import json_safe


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


@register_sink
class EmailSink(Sink[EmailSettings]):
    """One plain-text mail per alert: the message as subject, the payload as JSON."""

    name = "email"
    settings_model = EmailSettings

    def send(self, settings: EmailSettings, kind: str, message: str, payload: dict[str, Any]) -> None:
        mail = EmailMessage()
        mail["Subject"] = message.splitlines()[0][:200]
        mail["From"] = settings.sender
        mail["To"] = ", ".join(settings.recipients)
        details = json.dumps(json_safe(payload_details(payload)), indent=2, default=str)
        mail.set_content(f"{message}\n\nkind: {kind}\n{details}\n")
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout_seconds) as smtp:
            if settings.starttls:
                smtp.starttls()
            if settings.username:
                smtp.login(settings.username, settings.password() or "")
            smtp.send_message(mail)

    def secrets(self, settings: EmailSettings) -> list[str]:
        return [settings.password() or ""]
