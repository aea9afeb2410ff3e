"""A subset of the bad-input corpus through the nightly DAG run by real Airflow
(`airflow dags test`): each bad night fails its task with the one-line reason, is
recorded failed with one alert and nothing partial, and the next clean night succeeds."""

from __future__ import annotations

import subprocess
from datetime import date, timedelta

import pytest
from sqlalchemy import create_engine, text

from tests.bad_batches import CASES, clean
from tests.conftest import run_module
from tests.test_dags import airflow_env
from tests.test_hostile_input import world  # noqa: F401  (the tiny monitor fixture)

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

SUBSET = ("zero-byte parquet", "nan in second part", "1e38 in float32")
FIRST = date(2026, 11, 10)  # after the monitor's default start_date, so the DAG runs its tasks


def test_bad_nights_fail_their_dag_run_in_one_line(world):  # noqa: F811
    cases = [c for c in CASES if c.name in SUBSET]
    nights = [FIRST + timedelta(days=i) for i in range(len(cases) + 1)]
    for night, case in zip(nights, [*cases, None], strict=True):
        folder = world["dir"] / "landing" / f"ds={night}"
        folder.mkdir(parents=True)
        if case is None:
            clean(seed=night.toordinal()).to_parquet(folder / "part-0.parquet")
        else:
            case.write(folder)
    assert world["drift"]("init").returncode == 0 and world["drift"]("fit").returncode == 0
    url = f"sqlite:///{world['dir'] / 'drift.db'}"
    env = airflow_env(
        world["dir"] / "airflow",
        DRIFT_HOME=str(world["dir"] / "home"),
        DRIFT_CONFIG=str(world["config"]),
        DRIFT_DATABASE_URL=url,
    )

    def airflow(*args: str) -> subprocess.CompletedProcess:
        return run_module("airflow", *args, env=env)

    migrated = airflow("db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    outputs = {
        night: airflow("dags", "test", "drift_nightly__tiny", night.isoformat()) for night in nights
    }

    engine = create_engine(url)
    with engine.connect() as connection:
        rows = {
            date.fromisoformat(str(night)): (status, error, batch_id)
            for night, status, error, batch_id in connection.execute(
                text("select batch_date, status, error, id from batches")
            )
        }
        alerts = [tuple(r) for r in connection.execute(text("select batch_id, kind from alerts"))]
        partial = {
            r[0]
            for r in connection.execute(
                text("select batch_id from detector_scores union select batch_id from drift_tests")
            )
        }
    engine.dispose()
    for night, case in zip(nights, cases, strict=False):
        output = outputs[night].stdout + outputs[night].stderr
        assert night in rows, output[-3000:]
        status, error, batch_id = rows[night]
        assert status == "failed", output[-3000:]
        assert all(needle in error for needle in case.needles), error
        assert "\n" not in error
        assert all(needle in output for needle in case.needles), output[-3000:]
        assert [k for b, k in alerts if b == batch_id] == ["batch_failed"]
        assert batch_id not in partial
    assert rows[nights[-1]][0] == "succeeded", (
        outputs[nights[-1]].stdout + outputs[nights[-1]].stderr
    )[-3000:]
