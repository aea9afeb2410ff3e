"""Labels landing a night late start the adaptation with no manual trigger, run by real
Airflow: `airflow dags test drift_feedback__digits_demo` on a SQLite metadata database,
the event store in a fresh Postgres database.

In-process, the occluded-digits nights 12-16 of the demo world run with each night's
labels imported the next day (`drift feedback import`): the covariate event confirmed on
night 14 has fewer labelled rows than `min_labels` (200). Then Airflow runs the
feedback DAG for

- 2026-11-17, with night 16's labels landed under `feedback_landing/ds=2026-11-17/`:
  the import types nothing new, the event reaches 200 labelled rows and the Asset
  `drift://digits_demo/confirmed_shift` gets one event carrying the event id, which
  queues a `drift_adapt__digits_demo` run;
- 2026-11-18, nothing landed: the publish task is skipped, no Asset event.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import create_postgres_database, run_module
from tests.labelled_world import event_waiting_for_labels, night, prepare_airflow, world_files
from tests.test_dags import airflow_env

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.slow]

DAG_ID = "drift_feedback__digits_demo"
ADAPT_DAG_ID = "drift_adapt__digits_demo"
LANDED = date(2026, 11, 17)  # night 16's labels arrive
NOTHING_LANDED = date(2026, 11, 18)


@dataclass
class Runs:
    airflow_home: Path
    drift_url: str
    event_id: int
    landed: subprocess.CompletedProcess
    nothing_landed: subprocess.CompletedProcess

    def metadata(self, sql: str, *params: object) -> list[tuple]:
        with sqlite3.connect(self.airflow_home / "airflow.db") as conn:
            return conn.execute(sql, params).fetchall()

    def task_states(self, day: date) -> dict[str, str]:
        rows = self.metadata(
            "SELECT ti.task_id, ti.state FROM task_instance ti JOIN dag_run dr "
            "ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
            "WHERE dr.dag_id = ? AND date(dr.logical_date) = ?",
            DAG_ID, day.isoformat(),
        )  # fmt: skip
        return dict(rows)

    def asset_events(self) -> list[dict]:
        rows = self.metadata(
            "SELECT a.uri, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE e.source_dag_id = ? ORDER BY e.id",
            DAG_ID,
        )
        return [{"uri": uri, **json.loads(extra)} for uri, extra in rows]

    def event_evidence(self) -> dict:
        engine = create_engine(self.drift_url)
        try:
            with engine.connect() as conn:
                evidence = conn.scalar(
                    text("SELECT evidence FROM drift_events WHERE id = :i"), {"i": self.event_id}
                )
        finally:
            engine.dispose()
        return evidence if isinstance(evidence, dict) else json.loads(evidence)


@pytest.fixture(scope="module")
def runs(demo_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    from drift.config import Settings, get_monitor
    from drift.store.db import upgrade

    root = tmp_path_factory.mktemp("airflow_feedback")
    config, landing = world_files(demo_world, root)
    drift_url, drop_database = create_postgres_database("drift_feedback")
    home = root / "airflow"
    try:
        settings = Settings(home=root / "drift", config=config, database_url=drift_url)
        upgrade(drift_url)
        monitor = get_monitor("digits_demo", config, settings)
        feedback = demo_world / "demo" / "feedback"
        event_id = event_waiting_for_labels(settings, monitor, feedback)
        (landing / f"ds={LANDED}").mkdir(parents=True)
        (landing / f"ds={LANDED}" / "labels.csv").symlink_to(feedback / f"labels-{night(16)}.csv")

        env = airflow_env(
            home,
            DRIFT_HOME=str(root / "drift"),
            DRIFT_CONFIG=str(config),
            DRIFT_DATABASE_URL=drift_url,
            # an Asset event queues only unpaused consumers; new DAGs start paused by default
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        )

        prepare_airflow(env)
        yield Runs(
            home,
            drift_url,
            event_id,
            landed=run_module("airflow", "dags", "test", DAG_ID, LANDED.isoformat(), env=env),
            nothing_landed=run_module(
                "airflow", "dags", "test", DAG_ID, NOTHING_LANDED.isoformat(), env=env
            ),
        )
    finally:
        drop_database()


def test_both_runs_succeed(runs: Runs):
    for run in (runs.landed, runs.nothing_landed):
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert runs.task_states(LANDED) == {
        "import_labels": "success",
        "publish_labelled_shift": "success",
    }
    assert runs.task_states(NOTHING_LANDED) == {
        "import_labels": "success",
        "publish_labelled_shift": "skipped",
    }


def test_landed_labels_emit_one_asset_event_for_the_waiting_event(runs: Runs):
    (event,) = runs.asset_events()  # the run with nothing landed emitted none
    assert event["uri"] == "drift://digits_demo/confirmed_shift"
    assert event["event_id"] == runs.event_id
    assert event["shift_type"] == "covariate" and event["n_labelled"] >= 200
    request = runs.event_evidence()["adaptation_request"]
    assert request["emitted"] is True and request["n_labelled"] == event["n_labelled"]


def test_the_asset_event_queues_the_adaptation_dag(runs: Runs):
    queued = runs.metadata("SELECT target_dag_id FROM asset_dag_run_queue")
    assert (ADAPT_DAG_ID,) in queued
