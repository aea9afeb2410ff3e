"""The nightly DAG run by real Airflow: `airflow dags test` subprocesses on a SQLite
metadata database, the event store in a fresh Postgres database.

On the demo world (conftest's `demo_world`: nights from 2026-11-01, the novel-class
surge from 2026-11-07), nights 1-5 run in-process to give the sequential gate its
history, then Airflow runs:

- 2026-11-06, a quiet night (event store from DRIFT_DATABASE_URL): no Asset event;
- 2026-11-07, the night the gate confirms (event store from the `drift_db`
  connection): one Asset event that carries the drift event id;
- 2026-11-07 again: no row in the event store changes count;
- 2026-11-20, a batch with a missing column: `discover` fails at once with the
  reason, and the night is recorded as failed.

Airflow's CLI takes about 15 s to start and the first task imports torch, so
everything runs once per module and the tests assert on what it left.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import create_postgres_database, run_module
from tests.test_dags import airflow_env

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.slow]

DAG_ID = "drift_nightly__digits_demo"
FIRST_NIGHT = date(2026, 11, 1)
QUIET_NIGHT = date(2026, 11, 6)
CONFIRMING_NIGHT = date(2026, 11, 7)  # first novel-class night: the CUSUM alarms
MALFORMED_NIGHT = date(2026, 11, 20)
MISSING_COLUMN = "px_10"
EVENT_STORE_TABLES = ("batches", "detector_scores", "drift_tests", "drift_events", "alerts")


@dataclass
class Run:
    night: date
    returncode: int
    output: str
    #: event store row counts right after the run
    counts: dict[str, int]


def _world(demo_world: Path, root: Path) -> Path:
    """A monitor config whose files are the demo world's (linked, not copied), plus
    a malformed night written here, so the shared world stays untouched."""
    demo, source = root / "demo", demo_world / "demo"
    (demo / "landing").mkdir(parents=True)
    for item in source.iterdir():  # model, reference, calibration rows
        if item.name != "landing":
            (demo / item.name).symlink_to(item)
    for i in range((CONFIRMING_NIGHT - FIRST_NIGHT).days + 1):
        folder = f"ds={FIRST_NIGHT + timedelta(days=i)}"
        (demo / "landing" / folder).symlink_to(source / "landing" / folder)
    malformed = demo / "landing" / f"ds={MALFORMED_NIGHT}"
    malformed.mkdir()
    rows = pd.read_parquet(source / "landing" / f"ds={FIRST_NIGHT}" / "part-0.parquet")
    rows.drop(columns=[MISSING_COLUMN]).to_parquet(malformed / "part-0.parquet")

    config = (resources.files("drift") / "demo_monitor.yaml").read_text()
    path = root / "monitors.yaml"
    path.write_text(config.replace("base_dir: ${DRIFT_HOME}/demo", f"base_dir: {demo}"))
    return path


def _connection_json(url: str) -> str:
    """`url` as the JSON form of an Airflow connection (AIRFLOW_CONN_DRIFT_DB)."""
    parsed = make_url(url)
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": parsed.host,
            "port": parsed.port,
            "login": parsed.username,
            "password": parsed.password,
            "schema": parsed.database,
        }
    )


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {t: conn.scalar(text(f"SELECT count(*) FROM {t}")) for t in EVENT_STORE_TABLES}
    finally:
        engine.dispose()


@dataclass
class Runs:
    airflow_home: Path
    drift_url: str
    quiet: Run
    confirmed: Run
    repeated: Run
    malformed: Run

    def metadata(self, sql: str, *params) -> list[tuple]:
        """Rows from Airflow's metadata database."""
        with sqlite3.connect(self.airflow_home / "airflow.db") as conn:
            return conn.execute(sql, params).fetchall()

    def task_states(self, night: date) -> dict[tuple[str, int], tuple[str, int]]:
        """(task_id, map_index) -> (state, try_number) of the latest run of `night`."""
        rows = self.metadata(
            "SELECT ti.task_id, ti.map_index, ti.state, ti.try_number FROM task_instance ti "
            "JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
            "WHERE dr.dag_id = ? AND date(dr.logical_date) = ? "
            "AND dr.id = (SELECT max(id) FROM dag_run WHERE dag_id = ? AND date(logical_date) = ?)",
            DAG_ID, night.isoformat(), DAG_ID, night.isoformat(),
        )  # fmt: skip
        return {(task, index): (state, tries) for task, index, state, tries in rows}

    def asset_events(self, night: date) -> list[dict]:
        """Extras of the Asset events the nightly DAG emitted for `night`. (The event's
        run id is not joined: `dags test` of a date run before reuses that date's
        dag_run row under a new run id.)"""
        rows = self.metadata(
            "SELECT a.uri, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE e.source_dag_id = ? ORDER BY e.id",
            DAG_ID,
        )
        events = [{"uri": uri, **json.loads(extra)} for uri, extra in rows]
        return [event for event in events if event["batch_date"] == night.isoformat()]


@pytest.fixture(scope="module")
def runs(demo_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    from drift import pipeline
    from drift.config import Settings, get_monitor
    from drift.store.db import upgrade

    root = tmp_path_factory.mktemp("airflow_runs")
    config = _world(demo_world, root)
    drift_url, drop_database = create_postgres_database("drift_airflow")
    home = root / "airflow"
    try:
        drift_env = {"DRIFT_HOME": str(root / "drift"), "DRIFT_CONFIG": str(config)}
        settings = Settings(home=root / "drift", config=config, database_url=drift_url)
        upgrade(drift_url)
        monitor = get_monitor("digits_demo", config, settings)
        pipeline.fit_monitor(settings, monitor)
        for i in range((QUIET_NIGHT - FIRST_NIGHT).days):
            pipeline.run_night(settings, monitor, FIRST_NIGHT + timedelta(days=i))

        def airflow(*args: str, **env: str) -> subprocess.CompletedProcess:
            return run_module("airflow", *args, env=airflow_env(home, **drift_env, **env))

        migrated = airflow("db", "migrate")
        assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]

        def night(day: date, **env: str) -> Run:
            done = airflow("dags", "test", DAG_ID, day.isoformat(), **env)
            return Run(day, done.returncode, done.stdout + done.stderr, _counts(drift_url))

        by_url = {"DRIFT_DATABASE_URL": drift_url}
        by_connection = {"AIRFLOW_CONN_DRIFT_DB": _connection_json(drift_url)}
        # in this order: the gate continues night 6's state on night 7
        yield Runs(
            home,
            drift_url,
            quiet=night(QUIET_NIGHT, **by_url),
            confirmed=night(CONFIRMING_NIGHT, **by_connection),
            repeated=night(CONFIRMING_NIGHT, **by_connection),
            malformed=night(MALFORMED_NIGHT, **by_connection),
        )
    finally:
        drop_database()


def test_quiet_and_confirming_nights_succeed(runs: Runs):
    for run in (runs.quiet, runs.confirmed, runs.repeated):
        assert run.returncode == 0, run.output[-5000:]


def test_score_is_mapped_over_shards(runs: Runs):
    # 600 rows a night, shard_rows 400 in the demo config
    states = runs.task_states(CONFIRMING_NIGHT)
    assert states[("score", 0)][0] == states[("score", 1)][0] == "success"
    assert ("score", 2) not in states


def test_the_night_lands_in_the_event_store(runs: Runs):
    engine = create_engine(runs.drift_url)
    try:
        with engine.connect() as conn:
            batch = conn.execute(
                text("SELECT id, status, verdict, n_rows FROM batches WHERE batch_date = :d"),
                {"d": CONFIRMING_NIGHT},
            ).one()
            assert (batch.status, batch.verdict, batch.n_rows) == ("succeeded", "confirm", 600)
            scores = conn.execute(
                text("SELECT detector FROM detector_scores WHERE batch_id = :b"), {"b": batch.id}
            ).scalars()
            assert sorted(scores) == ["energy", "knn"]
            n_tests = conn.scalar(
                text("SELECT count(*) FROM drift_tests WHERE batch_id = :b"), {"b": batch.id}
            )
            assert n_tests > 0
            event = conn.execute(text("SELECT id, status, confirmed_on FROM drift_events")).one()
            assert event.status == "confirmed" and event.confirmed_on == CONFIRMING_NIGHT
    finally:
        engine.dispose()


def test_an_asset_event_is_emitted_on_confirmation_only(runs: Runs):
    assert runs.asset_events(QUIET_NIGHT) == []
    assert runs.task_states(QUIET_NIGHT)[("publish_confirmed_shift", -1)][0] == "skipped"
    events = runs.asset_events(CONFIRMING_NIGHT)
    # one per run of the confirming night: the repeated run re-emits the same evidence
    assert len(events) == 2 and events[0] == events[1]
    engine = create_engine(runs.drift_url)
    try:
        with engine.connect() as conn:
            event_id = conn.scalar(text("SELECT id FROM drift_events"))
    finally:
        engine.dispose()
    assert events[0]["uri"] == "drift://digits_demo/confirmed_shift"
    assert events[0]["event_id"] == event_id
    assert events[0]["batch_date"] == CONFIRMING_NIGHT.isoformat()
    assert events[0]["shift_type"] and events[0]["ood_rate"]


def test_running_a_night_again_changes_no_row_counts(runs: Runs):
    assert runs.repeated.counts == runs.confirmed.counts


def test_a_malformed_batch_fails_discover_once_with_the_reason(runs: Runs):
    run = runs.malformed
    assert run.returncode != 0
    assert "invalid batch" in run.output and MISSING_COLUMN in run.output
    states = runs.task_states(MALFORMED_NIGHT)
    assert states[("discover", -1)] == ("failed", 1)  # invalid data: no retries
    assert states[("shards", -1)][0] == "upstream_failed"
    engine = create_engine(runs.drift_url)
    try:
        with engine.connect() as conn:
            batch = conn.execute(
                text("SELECT id, status, error FROM batches WHERE batch_date = :d"),
                {"d": MALFORMED_NIGHT},
            ).one()
            assert batch.status == "failed" and MISSING_COLUMN in batch.error
            kinds = conn.execute(
                text("SELECT kind FROM alerts WHERE batch_id = :b"), {"b": batch.id}
            ).scalars()
            assert list(kinds) == ["batch_failed"]  # alerted once
    finally:
        engine.dispose()
