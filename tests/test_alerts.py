"""Alerts against a real local HTTP server and a real local SMTP server; no mocks."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drift.alerts import SINKS, AlertSettings, WebhookSettings, dispatch
from drift.config import MonitorConfig, Settings
from drift.pipeline import record_failure
from drift.store.db import get_engine, upgrade
from drift.store.models import Alert, Batch

TOKEN = "T0KEN-s3cr3t-9f8e7d"
PASSWORD = "smtp-pa55word-xyz"


class WebhookServer:
    """A Slack-like endpoint on 127.0.0.1: fails the first ``fail_first`` POSTs with 500.

    Its error reason echoes the request path, token included, so a sink that
    copied error text verbatim would leak the secret.
    """

    def __init__(self) -> None:
        self.fail_first = 0
        self.received: list[dict] = []
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.requests += 1
                if server.requests <= server.fail_first:
                    self.send_response(500, f"boom at {self.path}")
                    self.end_headers()
                    return
                server.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/services/T000/B000/{TOKEN}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server = WebhookServer()
    yield server
    server.close()


@pytest.fixture
def smtp_server() -> Iterator[tuple[object, list]]:
    """aiosmtpd on 127.0.0.1 with AUTH; a wrong password is answered with the password echoed."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    messages: list = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            messages.append(envelope)
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"drift" and auth_data.password == PASSWORD.encode()
        if ok:
            return AuthResult(success=True)
        echoed = auth_data.password.decode()
        return AuthResult(success=False, handled=False, message=f"535 bad password {echoed}")

    with socket.socket() as probe:  # the Controller needs a concrete port to self-check
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    yield controller, messages
    controller.stop()


def drift_logs(caplog: pytest.LogCaptureFixture) -> str:
    """Our log lines only (the test SMTP server's own debug log echoes what it was sent)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("drift"))


def settings_for(webhook: WebhookServer | None = None, email: dict | None = None, **kw: object) -> AlertSettings:
    return AlertSettings(
        webhook={"url": webhook.url, "timeout_seconds": 5} if webhook else None,
        email=email,
        backoff_seconds=0.01,
        **kw,
    )


def send(url: str, settings: AlertSettings, key: str = "digits:2025-01-01:ood_surge") -> Alert:
    with Session(get_engine(url), expire_on_commit=False) as session, session.begin():
        return dispatch(
            session, settings, kind="ood_surge", dedupe_key=key,
            message="[digits] OOD surge: knn 31%", payload={"ood_rate": {"knn": 0.31}},
        )


def test_same_key_is_delivered_once(db_url: str, webhook: WebhookServer) -> None:
    settings = settings_for(webhook)
    first, second = send(db_url, settings), send(db_url, settings)
    assert first.id == second.id and second.status == "sent"
    assert len(webhook.received) == 1
    body = webhook.received[0]
    assert body["text"] == "[digits] OOD surge: knn 31%" and body["blocks"]
    with Session(get_engine(db_url)) as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 1


def test_a_failing_webhook_is_retried_until_it_delivers(sqlite_url: str, webhook: WebhookServer) -> None:
    webhook.fail_first = 2
    alert = send(sqlite_url, settings_for(webhook, max_attempts=3))
    assert alert.status == "sent" and alert.attempts == 3 and alert.last_error is None
    assert webhook.requests == 3 and len(webhook.received) == 1


def test_permanent_failure_is_recorded_not_raised_and_secrets_stay_out(
    sqlite_url: str, webhook: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    webhook.fail_first = 10**6
    caplog.set_level(logging.DEBUG)
    alert = send(sqlite_url, settings_for(webhook, max_attempts=2))
    assert alert.status == "failed" and alert.attempts == 2
    assert "HTTP 500" in alert.last_error
    assert TOKEN not in alert.last_error and TOKEN not in drift_logs(caplog)
    assert "boom at" in drift_logs(caplog)  # the server's words are kept, its secret is not
    # the log sink delivered, so a later retry only tries the webhook again
    webhook.fail_first = 0
    webhook.requests = 0
    retried = send(sqlite_url, settings_for(webhook))
    assert retried.status == "sent" and len(webhook.received) == 1
    assert retried.payload["_sinks"] == {"log": "sent", "webhook": "sent"}
    assert drift_logs(caplog).count("OOD surge: knn 31%") == 1  # the log line was not repeated


def test_email_is_sent_once_and_the_password_never_leaks(
    sqlite_url: str, smtp_server: tuple, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    controller, messages = smtp_server
    email = {
        "smtp_host": "127.0.0.1", "smtp_port": controller.port, "sender": "drift@example.org",
        "recipients": ["oncall@example.org"], "username": "drift",
        "password_env": "DRIFT_TEST_SMTP_PASSWORD", "starttls": False, "timeout_seconds": 5,
    }
    monkeypatch.setenv("DRIFT_TEST_SMTP_PASSWORD", PASSWORD)
    settings = settings_for(email=email, log=False)
    assert send(sqlite_url, settings).status == "sent"
    assert send(sqlite_url, settings).status == "sent"
    assert len(messages) == 1 and messages[0].rcpt_tos == ["oncall@example.org"]
    assert b"OOD surge" in messages[0].content

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DRIFT_TEST_SMTP_PASSWORD", "wrong-" + PASSWORD)  # server echoes it back
    failed = send(sqlite_url, settings_for(email=email, log=False, max_attempts=2), key="k2")
    assert failed.status == "failed" and "535" in failed.last_error
    for text in (failed.last_error, drift_logs(caplog)):
        assert PASSWORD not in text
    assert "***" in failed.last_error
    assert PASSWORD not in repr(settings)


def test_every_registered_sink_is_a_key_of_the_alerts_section() -> None:
    fields = AlertSettings.model_fields
    for name, sink in SINKS.items():
        assert fields[name].annotation == (sink.settings_model | None)
    assert list(SINKS) == ["log", "webhook", "email"]  # delivery order: the log line first
    assert [s.name for s, _ in AlertSettings(log={"level": "error"}).configured_sinks()] == ["log"]
    assert AlertSettings(log=False).log is None and AlertSettings().log.level == "warning"


def test_log_sink_level_is_configurable(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    send(sqlite_url, AlertSettings(log={"level": "error"}))
    (record,) = [r for r in caplog.records if r.getMessage().startswith("[alert ood_surge]")]
    assert record.levelname == "ERROR"


def unchecked_webhook(url: str) -> WebhookSettings:
    """Settings holding a URL the config would refuse: what delivery must survive anyway."""
    return WebhookSettings.model_construct(url=SecretStr(url), timeout_seconds=1.0)


@pytest.mark.parametrize("sep", ["\t", "\n", "\r"])
def test_a_control_character_in_the_url_does_not_leak_the_token(
    sqlite_url: str, webhook: WebhookServer, caplog: pytest.LogCaptureFixture, sep: str
) -> None:
    caplog.set_level(logging.DEBUG)
    head, tail = TOKEN[:8], TOKEN[8:]
    url = webhook.url.replace(TOKEN, head + sep + tail)
    settings = AlertSettings(backoff_seconds=0.0, max_attempts=1)
    settings.webhook = unchecked_webhook(url)
    alert = send(sqlite_url, settings)
    assert alert.status == "failed" and "InvalidURL" in alert.last_error
    for text in (alert.last_error, drift_logs(caplog)):
        assert head not in text and tail not in text
    assert "***" in alert.last_error


def failing_monitor(webhook: WebhookSettings, tmp_path) -> MonitorConfig:
    monitor = MonitorConfig(
        name="digits",
        model={"format": "precomputed", "feature_columns": ["f0"], "logit_columns": ["l0"]},
        source={"landing": tmp_path, "input_columns": ["f0"]},
        reference={"path": tmp_path / "ref.parquet"},
        alerts={"backoff_seconds": 0.0, "max_attempts": 1},
    )
    monitor.alerts.webhook = webhook
    return monitor


def test_record_failure_sends_the_one_redacted_batch_failed_alert(
    sqlite_url: str, webhook: WebhookServer, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade(sqlite_url)
    caplog.set_level(logging.DEBUG)
    monitor = failing_monitor(WebhookSettings(url=webhook.url, timeout_seconds=5), tmp_path)
    error = f"URLError: could not reach {webhook.url}"
    record_failure(Settings(database_url=sqlite_url, home=tmp_path), monitor, date(2025, 1, 3), error)
    with Session(get_engine(sqlite_url)) as session:
        (alert,) = session.scalars(select(Alert)).all()
    assert alert.kind == "batch_failed" and alert.severity == "error" and alert.status == "sent"
    assert TOKEN not in alert.message and TOKEN not in json.dumps(alert.payload)
    assert alert.payload["error"] == "URLError: could not reach ***"
    assert TOKEN not in json.dumps(webhook.received) and TOKEN not in drift_logs(caplog)


def test_a_malformed_webhook_url_neither_crashes_the_alert_nor_loses_the_failed_night(
    sqlite_url: str, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade(sqlite_url)
    caplog.set_level(logging.DEBUG)
    monitor = failing_monitor(unchecked_webhook(f"http://[::1/services/T000/B000/{TOKEN}"), tmp_path)
    record_failure(Settings(database_url=sqlite_url, home=tmp_path), monitor, date(2025, 1, 3), "boom")
    with Session(get_engine(sqlite_url)) as session:
        (batch,) = session.scalars(select(Batch)).all()
        (alert,) = session.scalars(select(Alert)).all()
    assert batch.status == "failed" and batch.error == "boom"
    assert alert.status == "failed" and alert.payload["_sinks"] == {"log": "sent", "webhook": "failed"}
    assert "Invalid IPv6 URL" in alert.last_error
    assert TOKEN not in alert.last_error and TOKEN not in drift_logs(caplog)


def test_a_failed_night_is_recorded_and_alerted_once(
    sqlite_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`record_failure` is what the pipeline (and `drift run`) calls when a night fails."""
    from drift.config import Settings, get_monitor
    from drift.pipeline import record_failure
    from drift.store.models import Batch

    monkeypatch.delenv("DRIFT_CONFIG", raising=False)
    monkeypatch.setenv("DRIFT_HOME", str(tmp_path))
    monitor = get_monitor("digits_demo").model_copy(update={"alerts": AlertSettings()})
    settings = Settings(home=tmp_path, database_url=sqlite_url)
    for night in (date(2025, 1, 2), date(2025, 1, 2), date(2025, 1, 3)):
        record_failure(settings, monitor, night, "InvalidBatchError: row 3")
    with Session(get_engine(sqlite_url)) as session:
        alerts = session.scalars(select(Alert).order_by(Alert.id)).all()
        batches = session.scalars(select(Batch).order_by(Batch.batch_date)).all()
        # one alert per failed night, however often the night is retried
        assert [a.dedupe_key for a in alerts] == [
            "digits_demo:2025-01-02:batch_failed", "digits_demo:2025-01-03:batch_failed",
        ]
        assert all(a.kind == "batch_failed" and a.severity == "error" and a.attempts == 1 and a.status == "sent" for a in alerts)
        assert alerts[0].message == "[digits_demo] batch 2025-01-02 failed: InvalidBatchError: row 3"
        assert [(b.batch_date, b.status, b.error) for b in batches] == [
            (date(2025, 1, 2), "failed", "InvalidBatchError: row 3"),
            (date(2025, 1, 3), "failed", "InvalidBatchError: row 3"),
        ]
        assert alerts[0].batch_id == batches[0].id
