"""`drift feedback import` emits the adaptation DAG's Asset event itself, through a real
Airflow api-server's REST API (`DRIFT_AIRFLOW_API_URL`), with no DAG run in between.

In-process, the occluded-digits nights 12-16 of the demo world run with each night's
labels imported the next day; the covariate event confirmed on night 14 then waits for
labels (fewer than `min_labels`). Airflow: a SQLite metadata database with the DAGs
serialized (unpaused), and `airflow api-server` (one worker) with the simple auth manager's
real login: one user, `drift`, whose password is in its passwords file. The test imports
night 16's labels with the `drift` command, logging in with the username and a named
password variable, and checks the Asset event and the queued adaptation run in Airflow's
database; then, with no server listening, that a failed emission leaves the request pending
(one-line error, exit 1); then a token used as given, and a wrong password or no credentials
refused in one line that carries no secret.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import run_module
from tests.labelled_world import event_waiting_for_labels, night, prepare_airflow, world_files
from tests.test_dags import airflow_env

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

ADAPT_DAG_ID = "drift_adapt__digits_demo"
SECRET = "s3cret-pa55"
#: the login as README documents it: a username and the variable that holds the password
LOGIN = {
    "DRIFT_AIRFLOW_USERNAME": "drift",
    "DRIFT_AIRFLOW_PASSWORD_ENV": "MY_AIRFLOW_PASSWORD",
    "MY_AIRFLOW_PASSWORD": SECRET,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, server: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError("api-server exited:\n" + log.read_text()[-3000:])
        try:
            with urllib.request.urlopen(f"{url}/api/v2/version", timeout=5):
                return
        except OSError:
            time.sleep(2)
    raise AssertionError("api-server did not answer:\n" + log.read_text()[-3000:])


@pytest.fixture(scope="module")
def world(demo_world: Path, tmp_path_factory: pytest.TempPathFactory):
    from drift.config import Settings, get_monitor
    from drift.store.db import upgrade

    root = tmp_path_factory.mktemp("airflow_api")
    config, _ = world_files(demo_world, root)
    drift_url = f"sqlite:///{root / 'drift.db'}"
    settings = Settings(home=root / "drift", config=config, database_url=drift_url)
    upgrade(drift_url)
    monitor = get_monitor("digits_demo", config, settings)
    feedback = demo_world / "demo" / "feedback"
    event_id = event_waiting_for_labels(settings, monitor, feedback)

    home, port = root / "airflow", _free_port()
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({"drift": SECRET}))
    env = airflow_env(
        home,
        DRIFT_HOME=str(root / "drift"),
        DRIFT_CONFIG=str(config),
        DRIFT_DATABASE_URL=drift_url,
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        # a real login: one user whose password is in the file the auth manager reads
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="drift:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
    )
    prepare_airflow(env)
    log = root / "api-server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "-p", str(port), "-w", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, server, log)
        drift_env = {**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        yield settings, monitor, event_id, home, url, drift_env, feedback, server
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)


def _request(settings, event_id: int) -> dict:
    from drift.store.db import session_scope
    from drift.store.models import DriftEvent

    with session_scope(settings.db_url) as session:
        event = session.scalars(select(DriftEvent).where(DriftEvent.id == event_id)).one()
        return dict(event.evidence.get("adaptation_request", {}))


def test_feedback_import_emits_the_asset_event_through_the_rest_api(world):
    settings, monitor, event_id, home, url, env, feedback, _ = world
    labels = feedback / f"labels-{night(16)}.csv"
    done = run_module(
        "drift.cli",
        "feedback",
        "import",
        str(labels),
        "--monitor",
        "digits_demo",
        env={**env, **LOGIN, "DRIFT_AIRFLOW_API_URL": url},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"event {event_id}: enough labelled rows - adaptation requested" in done.stdout
    assert (
        f"event {event_id}: Asset event emitted on drift://digits_demo/confirmed_shift"
        in done.stdout
    )
    with sqlite3.connect(home / "airflow.db") as conn:
        events = conn.execute(
            "SELECT a.uri, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id"
        ).fetchall()
        queued = conn.execute("SELECT target_dag_id FROM asset_dag_run_queue").fetchall()
    ((uri, extra),) = events
    assert uri == "drift://digits_demo/confirmed_shift"
    extra = json.loads(extra)
    assert extra["event_id"] == event_id and extra["shift_type"] == "covariate"
    assert (ADAPT_DAG_ID,) in queued  # the scheduler starts drift_adapt from it
    assert _request(settings, event_id)["emitted"] is True


def test_a_failed_emission_leaves_the_request_pending(world):
    """Runs after the test above: its request is forgotten so that the import asks again."""
    from drift import pipeline
    from drift.airflow_api import AirflowApiError
    from drift.store.db import session_scope
    from drift.store.models import DriftEvent

    settings, monitor, event_id, _, _, env, feedback, _ = world
    with session_scope(settings.db_url) as session:
        event = session.get_one(DriftEvent, event_id)
        event.evidence = {k: v for k, v in event.evidence.items() if k != "adaptation_request"}
    labels = feedback / f"labels-{night(16)}.csv"
    dead = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    done = run_module(
        "drift.cli",
        "feedback",
        "import",
        str(labels),
        "--monitor",
        "digits_demo",
        env={**env, "DRIFT_AIRFLOW_API_URL": dead},
    )
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "not reachable" in done.stderr
    assert "stays pending" in done.stderr
    assert _request(settings, event_id)["emitted"] is False

    def refuse(extra: dict) -> None:
        raise AirflowApiError(f"Airflow API refused event {extra['event_id']}")

    with pytest.raises(AirflowApiError):
        pipeline.take_adaptation_request(settings, monitor, emit=refuse)
    assert _request(settings, event_id)["emitted"] is False
    # what the drift_feedback DAG's publish task then takes (and emits as its outlet)
    assert pipeline.take_adaptation_request(settings, monitor)["event_id"] == event_id
    assert _request(settings, event_id)["emitted"] is True


def test_a_token_is_used_as_given_and_a_refused_login_is_one_line_without_the_secret(world):
    """Runs last: it adds Asset events of its own."""
    from drift.airflow_api import AirflowApi, AirflowApiError, confirmed_shift_uri

    _, _, _, home, url, _, _, _ = world
    uri = confirmed_shift_uri("digits_demo")
    token = AirflowApi(url, username="drift", password=SECRET)._token()
    event_id = AirflowApi(url, token=token).emit_asset_event(uri, {"probe": "token"})
    with sqlite3.connect(home / "airflow.db") as conn:
        (extra,) = conn.execute("SELECT extra FROM asset_event WHERE id = ?", (event_id,)).fetchone()
    assert json.loads(extra)["probe"] == "token"  # Airflow adds from_rest_api

    for client, status in (
        (AirflowApi(url, username="drift", password=SECRET + "-wrong"), "HTTP 401"),
        (AirflowApi(url), "HTTP 403"),  # no credentials: GET /auth/token needs all-admins mode
    ):
        with pytest.raises(AirflowApiError) as refused:
            client.emit_asset_event(uri, {"probe": "refused"})
        message = str(refused.value)
        assert status in message and "/auth/token" in message
        assert "\n" not in message and SECRET not in message


def test_without_an_api_url_there_is_no_client(monkeypatch: pytest.MonkeyPatch):
    from drift.airflow_api import from_env

    monkeypatch.delenv("DRIFT_AIRFLOW_API_URL", raising=False)
    monkeypatch.setenv("DRIFT_AIRFLOW_API_TOKEN", "given")
    assert from_env() is None
