"""The nightly DAG under Airflow's CeleryExecutor, for real: scripts/airflow_celery.sh
starts the api-server, scheduler, dag-processor and two Celery workers (worker-1 and
worker-2, each reporting its own host name) on Redis as the broker and a fresh
Postgres database as Airflow's metadata database and Celery's result backend.

On the demo world with `shard_rows` 150 (600 rows a night: 4 shards), nights 1-6 run
in-process (the gate's history) while Airflow starts; a copy of that event store runs
2026-11-07, the night the gate confirms the shift, in-process as the reference. Then
Airflow runs 2026-11-07 on Celery, and as soon as a worker that has finished a shard is
running another, that worker's whole process group is SIGKILLed (worker, pool process,
task supervisor and task). The scheduler's heartbeat check fails the try, the retry
runs on the other worker, and:

- the night's shards ran on both workers (task instances' `hostname`);
- the killed shard's first try ran on the killed worker, its second on the other;
- the night lands once: one batch row, each alert once;
- its rows (batch, scores, tests, event, alerts) equal the in-process run's.

Test-only settings, to keep the wall time low: each worker runs one task at a time, the
heartbeat timeout is 20 s (default 300 s) and a cluster policy
(`airflow_local_settings.py`) sets the retry delay to 1 s (the DAGs' 2-minute back-off is
for database restarts). The monitor's cron is a 29 February, so unpausing the DAG
schedules no catch-up runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.conftest import create_postgres_database
from tests.test_dags import airflow_env

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "airflow_celery.sh"
REDIS = ("127.0.0.1", 6379)
DAG_ID = "drift_nightly__digits_demo"
FIRST_NIGHT = date(2026, 11, 1)
NIGHT = date(2026, 11, 7)  # the night the gate confirms the demo's shift: alerts
SHARD_ROWS = 150  # 600 rows a night: 4 shards
WORKERS = ("worker-1", "worker-2")

RETRY_POLICY = """
from datetime import timedelta


def task_policy(task):
    # the test kills a worker mid-shard: retry at once rather than after the DAGs' back-off
    task.retry_delay = timedelta(seconds=1)
    task.retry_exponential_backoff = 0
"""


def _require_redis() -> None:
    try:
        with socket.create_connection(REDIS, timeout=3) as conn:
            conn.sendall(b"PING\r\n")
            reply = conn.recv(16)
    except OSError as exc:
        reply, error = b"", exc
    else:
        error = None
    if reply.startswith(b"+PONG"):
        return
    message = (
        f"Redis not reachable at {REDIS[0]}:{REDIS[1]} ({error or reply!r}): the Celery broker"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: the CeleryExecutor test must run)")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _night_rows(url: str, night: date) -> dict[str, list[dict]]:
    """Everything the event store holds about `night`, without ids and timestamps."""

    def rows(sql: str) -> list[dict]:
        result = conn.execute(text(sql), {"d": night}).mappings()
        keep = [
            {k: v for k, v in row.items() if k != "id" and not k.endswith(("_id", "_at"))}
            for row in result
        ]
        return sorted(keep, key=repr)

    batch = "SELECT id FROM batches WHERE batch_date = :d"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                "batches": rows("SELECT * FROM batches WHERE batch_date = :d"),
                "detector_scores": rows(
                    f"SELECT * FROM detector_scores WHERE batch_id IN ({batch})"
                ),
                "drift_tests": rows(f"SELECT * FROM drift_tests WHERE batch_id IN ({batch})"),
                "drift_events": rows("SELECT * FROM drift_events WHERE last_seen = :d"),
                "alerts": rows(
                    "SELECT * FROM alerts WHERE batch_id IN (" + batch + ") OR event_id IN "
                    "(SELECT id FROM drift_events WHERE confirmed_on = :d)"
                ),
            }
    finally:
        engine.dispose()


@dataclass
class CeleryAirflow:
    home: Path
    metadata_url: str
    api: httpx.Client
    session: subprocess.Popen
    drop_metadata: Callable[[], None]
    script_log: Path

    def query(self, sql: str, **params: Any) -> list[Any]:
        engine = create_engine(self.metadata_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql), params))
        finally:
            engine.dispose()

    def log(self, process: str) -> str:
        path = self.home / "logs" / f"{process}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs_tail(self) -> str:
        names = ("scheduler", "dag-processor", "api-server", *WORKERS)
        return "\n".join(f"--- {n}.log\n{self.log(n)[-2500:]}" for n in names)

    def wait_until_ready(self) -> None:
        """Until the api-server answers, both workers are ready and the DAG is parsed;
        then unpause it (the monitor's cron is never due: no run starts by itself)."""

        def started() -> bool:
            if self.session.poll() is not None:
                raise AssertionError(
                    f"airflow_celery.sh exited ({self.session.returncode}):\n"
                    + self.script_log.read_text()[-3000:]
                    + self.logs_tail()
                )
            try:
                self.api.get("/api/v2/version")
            except httpx.TransportError:
                return False
            return all(f"{w}@" in self.log(w) and " ready." in self.log(w) for w in WORKERS)

        _wait_for("the api-server and both workers", started, timeout=180)
        token = self.api.get("/auth/token").json()["access_token"]
        self.api.headers["Authorization"] = f"Bearer {token}"
        _wait_for(
            f"{DAG_ID} to be parsed",
            lambda: self.api.get(f"/api/v2/dags/{DAG_ID}").status_code == 200,
            timeout=120,
        )
        unpaused = self.api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
        assert unpaused.status_code == 200, unpaused.text

    def stop(self) -> None:
        """SIGTERM the script (it stops its children), SIGKILL whatever is left, drop the
        metadata database."""
        try:
            os.killpg(self.session.pid, signal.SIGTERM)
            self.session.wait(timeout=40)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
        subprocess.run(["pkill", "-KILL", "-s", str(self.session.pid)], check=False)
        self.api.close()
        self.drop_metadata()

    def trigger(self, night: date) -> str:
        response = self.api.post(
            f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": f"{night}T00:00:00Z"}
        )
        assert response.status_code == 200, response.text
        return response.json()["dag_run_id"]

    def run_state(self, run_id: str) -> str:
        return self.query("SELECT state FROM dag_run WHERE run_id = :r", r=run_id)[0][0]

    def wait_for_run(self, run_id: str, timeout: float = 300) -> str:
        try:
            done = _wait_for(
                f"dag run {run_id}",
                lambda: self.run_state(run_id) in ("success", "failed") and self.run_state(run_id),
                timeout,
                interval=1,
            )
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n{self.task_instances(run_id)}\n{self.logs_tail()}"
            ) from None
        assert done == "success", (
            f"{run_id}: {done}\n{self.task_instances(run_id)}\n{self.logs_tail()}"
        )
        return done

    def task_instances(self, run_id: str, task_id: str = "score") -> list[Any]:
        return self.query(
            "SELECT map_index, state, try_number, hostname FROM task_instance "
            "WHERE run_id = :r AND task_id = :t ORDER BY map_index",
            r=run_id, t=task_id,
        )  # fmt: skip

    def earlier_tries(self, run_id: str, task_id: str = "score") -> list[Any]:
        return self.query(
            "SELECT map_index, state, try_number, hostname FROM task_instance_history "
            "WHERE run_id = :r AND task_id = :t ORDER BY map_index, try_number",
            r=run_id, t=task_id,
        )  # fmt: skip

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker's process group: the worker, its pool, supervisors and tasks."""
        pid = int((self.home / "run" / f"{name}.pid").read_text())
        os.killpg(pid, signal.SIGKILL)


def _monitor_config(demo_world: Path, path: Path) -> Path:
    config = yaml.safe_load((resources.files("drift") / "demo_monitor.yaml").read_text())
    config["base_dir"] = str(demo_world / "demo")
    # never due: unpausing schedules no catch-up runs; the test triggers its nights
    config["monitors"][0] |= {"shard_rows": SHARD_ROWS, "schedule": "0 2 29 2 *"}
    path.write_text(yaml.safe_dump(config))
    return path


def _start_airflow(root: Path, config: Path, drift_home: Path, drift_url: str) -> CeleryAirflow:
    """scripts/airflow_celery.sh on a fresh metadata database, in a session of its own."""
    metadata_url, drop = create_postgres_database("airflow_celery")
    home = root / "airflow"
    (home / "config").mkdir(parents=True)
    (home / "config" / "airflow_local_settings.py").write_text(RETRY_POLICY)
    port = _free_port()
    env = airflow_env(
        home,
        # the script runs `python` and `airflow` from PATH: this interpreter's
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        DRIFT_HOME=str(drift_home),
        DRIFT_CONFIG=str(config),
        DRIFT_DATABASE_URL=drift_url,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata_url,
        # a queue of its own: other runs on this Redis never take its tasks
        AIRFLOW__OPERATORS__DEFAULT_QUEUE=f"drift_test_{uuid.uuid4().hex[:8]}",
        AIRFLOW_API_PORT=str(port),
        AIRFLOW__CELERY__WORKER_CONCURRENCY="1",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="20",
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="2",
    )
    with open(root / "airflow_celery.log", "w") as out:
        session = subprocess.Popen(
            ["bash", str(SCRIPT), "services"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    return CeleryAirflow(home, metadata_url, api, session, drop, root / "airflow_celery.log")


@dataclass
class Night:
    airflow: CeleryAirflow
    drift_url: str
    reference_url: str
    run_id: str
    killed_worker: str
    killed_shard: int


@pytest.fixture(scope="module")
def night(demo_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Night]:
    """The confirming night under Celery with a worker killed mid-shard, and in-process."""
    from drift import pipeline
    from drift.config import Settings, get_monitor
    from drift.store.db import get_engine, upgrade

    _require_redis()
    root = tmp_path_factory.mktemp("celery")
    config = _monitor_config(demo_world, root / "monitors.yaml")
    drops: list[Callable[[], None]] = []
    airflow = None
    try:
        drift_url, drop = create_postgres_database("drift_celery")
        drops.append(drop)
        upgrade(drift_url)
        settings = Settings(home=root / "drift", config=config, database_url=drift_url)
        # Airflow starts while this process prepares the event store: it touches the
        # store only when a run is triggered
        airflow = _start_airflow(root, config, settings.home, drift_url)

        monitor = get_monitor("digits_demo", config, settings)
        pipeline.fit_monitor(settings, monitor)
        for i in range((NIGHT - FIRST_NIGHT).days):  # the gate's history
            pipeline.run_night(settings, monitor, FIRST_NIGHT + timedelta(days=i))
        get_engine(drift_url).dispose()
        reference_url, drop = create_postgres_database("drift_reference", template=drift_url)
        drops.append(drop)
        reference = settings.model_copy(
            update={"home": root / "reference", "database_url": reference_url}
        )
        pipeline.run_night(reference, monitor, NIGHT)

        airflow.wait_until_ready()
        run_id = airflow.trigger(NIGHT)

        def worker_on_its_second_shard() -> tuple[int, str] | None:
            instances = airflow.task_instances(run_id)
            done = {host for _, state, _, host in instances if state == "success"}
            return next(
                (
                    (index, host)
                    for index, state, _, host in instances
                    if state == "running" and host in done
                ),
                None,
            )

        # a worker that has finished a shard: the night's shards then run on both workers
        shard, worker = _wait_for(
            "a worker running its second shard", worker_on_its_second_shard, 300, interval=0.2
        )
        airflow.kill_worker(worker)
        airflow.wait_for_run(run_id)
        yield Night(airflow, drift_url, reference_url, run_id, worker, shard)
    finally:
        if airflow is not None:
            airflow.stop()
        for drop in reversed(drops):
            drop()


def test_shards_ran_on_both_workers(night: Night):
    instances = night.airflow.task_instances(night.run_id)
    assert [i for i, *_ in instances] == [0, 1, 2, 3]
    assert {state for _, state, _, _ in instances} == {"success"}
    assert {host for *_, host in instances} == set(WORKERS)


def test_a_shard_of_a_killed_worker_is_retried_on_the_other(night: Night):
    survivor = next(w for w in WORKERS if w != night.killed_worker)
    instances = {
        i: (state, tries, host)
        for i, state, tries, host in night.airflow.task_instances(night.run_id)
    }
    assert instances[night.killed_shard] == ("success", 2, survivor)
    first_try = [r for r in night.airflow.earlier_tries(night.run_id) if r[0] == night.killed_shard]
    assert [(tries, host) for _, _, tries, host in first_try] == [(1, night.killed_worker)]


def test_the_night_lands_once(night: Night):
    rows = _night_rows(night.drift_url, NIGHT)
    assert [(b["status"], b["verdict"], b["n_rows"]) for b in rows["batches"]] == [
        ("succeeded", "confirm", 600)
    ]
    kinds = [a["kind"] for a in rows["alerts"]]
    assert kinds.count("event_confirmed") == 1 and len(kinds) == len(set(kinds))
    assert [e["status"] for e in rows["drift_events"]] == ["confirmed"]


def test_the_night_equals_the_in_process_run(night: Night):
    under_celery = _night_rows(night.drift_url, NIGHT)
    assert under_celery["detector_scores"] and under_celery["drift_tests"]
    assert under_celery == _night_rows(night.reference_url, NIGHT)


def test_an_asset_event_with_an_event_id_reruns_the_adaptation(night: Night):
    """README's recipe: an event on the monitor's Asset with extra {'event_id': N}
    starts a drift_adapt run for event N."""
    api = night.airflow.api
    engine = create_engine(night.drift_url)
    try:
        with engine.connect() as conn:
            event_id = conn.scalar(
                text("SELECT id FROM drift_events WHERE confirmed_on = :d"), {"d": NIGHT}
            )
    finally:
        engine.dispose()
    adapt = "drift_adapt__digits_demo"
    assert api.patch(f"/api/v2/dags/{adapt}", json={"is_paused": False}).status_code == 200
    assets = api.get("/api/v2/assets", params={"name_pattern": "digits_demo_confirmed_shift"})
    asset_id = assets.json()["assets"][0]["id"]
    created = api.post(
        "/api/v2/assets/events", json={"asset_id": asset_id, "extra": {"event_id": event_id}}
    )
    assert created.status_code == 200, created.text

    rerun = {"event_id": event_id, "from_rest_api": True}

    def newest_triggering_events() -> list[dict]:
        """Per drift_adapt run, the extra of the newest Asset event it was triggered by
        (a run gets every event since the previous run; `collect` adapts to the newest)."""
        rows = night.airflow.query(
            "SELECT r.id, e.extra FROM dag_run r JOIN dagrun_asset_event l ON l.dag_run_id = r.id "
            "JOIN asset_event e ON e.id = l.event_id WHERE r.dag_id = :d ORDER BY r.id, e.timestamp",
            d=adapt,
        )
        newest = {run: json.loads(e) if isinstance(e, str) else e for run, e in rows}
        return list(newest.values())

    assert rerun in _wait_for(
        f"a {adapt} run triggered by the new event",
        lambda: rerun in (found := newest_triggering_events()) and found,
        timeout=120,
    )
