"""A night in a bucket (moto's real S3 API server on loopback) through `airflow dags test`
gives the same per-row scores and summary as the same files on local disk in-process."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sqlalchemy import select

from tests.conftest import run_module
from tests.test_dags import airflow_env
from tests.test_sources_real import NIGHT, _row_scores, _split_night, s3_server  # noqa: F401

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

DAG_ID = "drift_nightly__digits_demo"
BUCKET = "driftwatch-airflow"


def _config(path: Path, demo_world: Path, landing: str) -> Path:
    from drift.config import Settings

    raw = yaml.safe_load(Settings().config_path.read_text())
    raw["base_dir"] = str(demo_world / "demo")
    raw["monitors"][0]["source"]["landing"] = landing
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_night_in_a_bucket_through_airflow_scores_like_local_files(
    s3_server,  # noqa: F811
    demo_world,
    tmp_path,
    monkeypatch,
):
    import fsspec

    from drift import pipeline
    from drift.config import Settings, get_monitor
    from drift.store.db import session_scope, upgrade
    from drift.store.models import Batch

    aws = {
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "driftwatch-test",
        "AWS_SECRET_ACCESS_KEY": "driftwatch-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key, value in aws.items():
        monkeypatch.setenv(key, value)
    fsspec.filesystem("s3").clear_instance_cache()
    fs = fsspec.filesystem("s3")
    fs.mkdir(BUCKET)
    local = tmp_path / "landing" / f"ds={NIGHT}"
    local.mkdir(parents=True)
    for i, part in enumerate(_split_night(demo_world, NIGHT)):
        part.to_parquet(local / f"part-{i}.parquet")
        fs.pipe(
            f"{BUCKET}/digits/ds={NIGHT}/part-{i}.parquet",
            (local / f"part-{i}.parquet").read_bytes(),
        )

    in_bucket = _config(tmp_path / "s3.yaml", demo_world, f"s3://{BUCKET}/digits")
    on_disk = _config(tmp_path / "disk.yaml", demo_world, str(tmp_path / "landing"))
    db_url = f"sqlite:///{tmp_path / 'drift.db'}"
    settings = Settings(home=tmp_path / "drift", database_url=db_url)
    upgrade(db_url)
    monitor = get_monitor("digits_demo", on_disk, settings)
    pipeline.fit_monitor(settings, monitor)

    env = airflow_env(
        tmp_path / "airflow",
        DRIFT_HOME=str(settings.home),
        DRIFT_CONFIG=str(in_bucket),
        DRIFT_DATABASE_URL=db_url,
        **aws,
    )

    def airflow(*args: str) -> subprocess.CompletedProcess:
        return run_module("airflow", *args, env=env)

    migrated = airflow("db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    done = airflow("dags", "test", DAG_ID, NIGHT.isoformat())
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    bucket_scores = _row_scores(settings, monitor, NIGHT)
    with session_scope(db_url) as session:
        batch = session.scalars(select(Batch)).one()
        assert batch.status == "succeeded"
        assert batch.source["files"][0].startswith(f"s3://{BUCKET}/")
        bucket_summary = batch.summary

    pipeline.run_night(settings, monitor, NIGHT)  # the same files on local disk, in-process
    pd.testing.assert_frame_equal(_row_scores(settings, monitor, NIGHT), bucket_scores)
    with session_scope(db_url) as session:
        assert session.scalars(select(Batch)).one().summary == bucket_summary
