"""Asset events through Airflow's REST API, for code that runs outside Airflow.

`drift feedback import` runs in a shell, not in a task, so it cannot use a task's outlet.
When ``DRIFT_AIRFLOW_API_URL`` is set (e.g. ``http://airflow:8080``) it creates the
monitor's Asset event with ``POST /api/v2/assets/events``, as the nightly DAG's outlet
would, and the scheduler starts the adaptation DAG. Authentication: a token in
``DRIFT_AIRFLOW_API_TOKEN``; else ``DRIFT_AIRFLOW_USERNAME`` and the password in the
variable that ``DRIFT_AIRFLOW_PASSWORD_ENV`` names (default ``DRIFT_AIRFLOW_PASSWORD``),
exchanged at ``POST /auth/token``; else ``GET /auth/token`` (the simple auth manager with
all users admins). Only the standard library is used: the drift package imports no Airflow.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

URL_ENV = "DRIFT_AIRFLOW_API_URL"
TOKEN_ENV = "DRIFT_AIRFLOW_API_TOKEN"
USERNAME_ENV = "DRIFT_AIRFLOW_USERNAME"
PASSWORD_ENV_ENV = "DRIFT_AIRFLOW_PASSWORD_ENV"


def confirmed_shift_uri(monitor_name: str) -> str:
    """The URI of the Asset that starts a monitor's adaptation DAG.

    >>> confirmed_shift_uri("digits_demo")
    'drift://digits_demo/confirmed_shift'
    """
    return f"drift://{monitor_name}/confirmed_shift"


class AirflowApiError(RuntimeError):
    """Airflow's REST API refused or could not be reached (one line, no secrets)."""


@dataclass
class AirflowApi:
    """A client for the few endpoints driftwatch needs."""

    url: str
    token: str | None = None
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0

    def _call(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self._token()}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url.rstrip("/") + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AirflowApiError(
                f"Airflow API {method} {path}: HTTP {exc.code} {exc.reason}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AirflowApiError(f"Airflow API at {self.url} not reachable: {reason}") from None

    def _token(self) -> str:
        if self.token is None:
            if self.username is not None:
                body = {"username": self.username, "password": self.password or ""}
                answer = self._call("POST", "/auth/token", body, auth=False)
            else:
                answer = self._call("GET", "/auth/token", auth=False)
            self.token = str(answer["access_token"])
        return self.token

    def emit_asset_event(self, uri: str, extra: dict[str, Any]) -> int:
        """Create an event on the Asset with ``uri``; returns the event's id."""
        query = urllib.parse.urlencode({"uri_pattern": uri, "limit": 100})
        assets = self._call("GET", f"/api/v2/assets?{query}")["assets"]
        matching = [a["id"] for a in assets if a["uri"] == uri]
        if not matching:
            raise AirflowApiError(f"Airflow knows no asset {uri} (is the monitor's DAG parsed?)")
        created = self._call(
            "POST", "/api/v2/assets/events", {"asset_id": matching[0], "extra": extra}
        )
        return int(created["id"])


def from_env() -> AirflowApi | None:
    """The API client the environment configures; None when ``DRIFT_AIRFLOW_API_URL`` is unset."""
    url = os.environ.get(URL_ENV)
    if not url:
        return None
    password_env = os.environ.get(PASSWORD_ENV_ENV, "DRIFT_AIRFLOW_PASSWORD")
    return AirflowApi(
        url,
        token=os.environ.get(TOKEN_ENV) or None,
        username=os.environ.get(USERNAME_ENV) or None,
        password=os.environ.get(password_env),
    )
