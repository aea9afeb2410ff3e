"""drift.airflow_api's authentication and errors as README and its docstring promise them:
a token from ``DRIFT_AIRFLOW_API_TOKEN``; else ``DRIFT_AIRFLOW_USERNAME`` and the password
in the variable ``DRIFT_AIRFLOW_PASSWORD_ENV`` names (default ``DRIFT_AIRFLOW_PASSWORD``)
exchanged at ``POST /auth/token``; else ``GET /auth/token``; errors in one line, no secrets.

A real HTTP server on loopback answers the three Airflow endpoints the client uses and
records what arrives (tests/test_airflow_api.py runs the client against a real Airflow
api-server, with its all-admins auth, in minutes; this takes a second).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from drift.airflow_api import AirflowApiError, confirmed_shift_uri, from_env

URI = confirmed_shift_uri("digits_demo")
SECRET = "s3cret-pa55"


class _Airflow(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None, object]] = []

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> object:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.seen.append((self.command, self.path, self.headers.get("Authorization"), body))
        return body

    def do_GET(self) -> None:
        self._record()
        if self.path == "/auth/token":
            return self._answer(201, {"access_token": "from-get"})
        if self.headers.get("Authorization") not in ("Bearer from-get", "Bearer from-post", "Bearer given"):
            return self._answer(401, {"detail": "Not authenticated"})
        if self.path.startswith("/api/v2/assets?"):
            return self._answer(200, {"assets": [
                {"id": 7, "uri": URI + "_old"}, {"id": 3, "uri": URI},
            ]})  # fmt: skip
        return self._answer(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = self._record()
        if self.path == "/auth/token":
            ok = isinstance(body, dict) and body == {"username": "drift", "password": SECRET}
            return self._answer(201, {"access_token": "from-post"}) if ok else self._answer(401, {})
        if self.path == "/api/v2/assets/events":
            return self._answer(200, {"id": 42, **(body if isinstance(body, dict) else {})})
        return self._answer(404, {"detail": "Not Found"})


@pytest.fixture
def airflow() -> Iterator[tuple[str, list]]:
    _Airflow.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Airflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Airflow.seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("DRIFT_AIRFLOW_API_URL", "DRIFT_AIRFLOW_API_TOKEN", "DRIFT_AIRFLOW_USERNAME",
                 "DRIFT_AIRFLOW_PASSWORD_ENV", "DRIFT_AIRFLOW_PASSWORD", "MY_AIRFLOW_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_no_url_no_client(clean_env) -> None:
    clean_env.setenv("DRIFT_AIRFLOW_API_TOKEN", "given")
    assert from_env() is None


def test_username_and_password_are_exchanged_for_a_token_at_post_auth_token(airflow, clean_env) -> None:
    url, seen = airflow
    clean_env.setenv("DRIFT_AIRFLOW_API_URL", url)
    clean_env.setenv("DRIFT_AIRFLOW_USERNAME", "drift")
    clean_env.setenv("DRIFT_AIRFLOW_PASSWORD", SECRET)
    assert from_env().emit_asset_event(URI, {"event_id": 5}) == 42
    assert [(method, path.split("?")[0]) for method, path, _, _ in seen] == [
        ("POST", "/auth/token"), ("GET", "/api/v2/assets"), ("POST", "/api/v2/assets/events"),
    ]  # fmt: skip
    assert seen[1][2] == seen[2][2] == "Bearer from-post"
    assert seen[2][3] == {"asset_id": 3, "extra": {"event_id": 5}}  # the asset with that exact URI


def test_the_password_variable_can_be_named(airflow, clean_env) -> None:
    url, seen = airflow
    clean_env.setenv("DRIFT_AIRFLOW_API_URL", url)
    clean_env.setenv("DRIFT_AIRFLOW_USERNAME", "drift")
    clean_env.setenv("DRIFT_AIRFLOW_PASSWORD_ENV", "MY_AIRFLOW_PASSWORD")
    clean_env.setenv("MY_AIRFLOW_PASSWORD", SECRET)
    clean_env.setenv("DRIFT_AIRFLOW_PASSWORD", "not this one")
    assert from_env().emit_asset_event(URI, {}) == 42
    assert seen[0][3] == {"username": "drift", "password": SECRET}


def test_a_token_is_used_as_given_and_without_credentials_get_auth_token(airflow, clean_env) -> None:
    url, seen = airflow
    clean_env.setenv("DRIFT_AIRFLOW_API_URL", url)
    clean_env.setenv("DRIFT_AIRFLOW_API_TOKEN", "given")
    clean_env.setenv("DRIFT_AIRFLOW_USERNAME", "drift")  # a token wins over a username
    from_env().emit_asset_event(URI, {})
    assert all(path != "/auth/token" for _, path, _, _ in seen)
    assert {auth for _, _, auth, _ in seen} == {"Bearer given"}

    seen.clear()
    clean_env.delenv("DRIFT_AIRFLOW_API_TOKEN")
    clean_env.delenv("DRIFT_AIRFLOW_USERNAME")
    from_env().emit_asset_event(URI, {})
    assert seen[0][:2] == ("GET", "/auth/token")  # the simple auth manager, all admins
    assert seen[-1][2] == "Bearer from-get"


def test_errors_are_one_line_and_carry_no_secret(airflow, clean_env) -> None:
    url, _ = airflow
    clean_env.setenv("DRIFT_AIRFLOW_API_URL", url)
    clean_env.setenv("DRIFT_AIRFLOW_USERNAME", "drift")
    clean_env.setenv("DRIFT_AIRFLOW_PASSWORD", SECRET + "-wrong")
    with pytest.raises(AirflowApiError) as refused:
        from_env().emit_asset_event(URI, {})
    assert str(refused.value) == "Airflow API POST /auth/token: HTTP 401 Unauthorized"

    clean_env.setenv("DRIFT_AIRFLOW_PASSWORD", SECRET)
    with pytest.raises(AirflowApiError) as unknown:
        from_env().emit_asset_event(confirmed_shift_uri("other"), {})
    assert "knows no asset drift://other/confirmed_shift" in str(unknown.value)
    for error in (refused.value, unknown.value):
        assert "\n" not in str(error) and SECRET not in str(error)
