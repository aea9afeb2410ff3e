"""A night from a real S3 API (moto's server on loopback) and from a Postgres prediction-log
table gives the same scores as the same rows on local disk; bad input fails in one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sqlalchemy import create_engine, select, text

from drift import pipeline, sources
from drift.batch import InvalidBatchError
from drift.config import SourceSpec
from drift.store.db import session_scope
from drift.store.models import Alert, Batch

NIGHT = date(2026, 11, 2)
BUCKET = "driftwatch-landing"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server() -> str:
    """moto's S3 API server in its own process on loopback; its endpoint URL."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("moto's S3 server did not start") from None
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def s3_env(s3_server, monkeypatch) -> dict[str, str]:
    env = {
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "driftwatch-test",
        "AWS_SECRET_ACCESS_KEY": "driftwatch-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import fsspec

    fsspec.filesystem("s3").clear_instance_cache()
    return env


def _split_night(demo_world: Path, night: date, parts: int = 3) -> list[pd.DataFrame]:
    frame = pd.read_parquet(demo_world / "demo" / "landing" / f"ds={night}" / "part-0.parquet")
    size = -(-len(frame) // parts)
    return [frame.iloc[i : i + size].reset_index(drop=True) for i in range(0, len(frame), size)]


def _row_scores(settings, monitor, night) -> pd.DataFrame:
    folder = pipeline.scores_dir(settings, monitor, night)
    return pd.concat(
        [pd.read_parquet(p) for p in sorted(folder.glob("shard-*.parquet"))], ignore_index=True
    )


def _config(tmp_path: Path, demo_world: Path, name: str, **source) -> Path:
    from drift.config import Settings

    raw = yaml.safe_load(Settings().config_path.read_text())
    raw["base_dir"] = str(demo_world / "demo")
    raw["monitors"][0]["source"].update(source)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_night_in_a_bucket_runs_like_the_same_files_on_disk(
    s3_env, demo_world, drift_env, sqlite_url, tmp_path
):
    import fsspec

    parts = _split_night(demo_world, NIGHT)
    local = tmp_path / "landing" / f"ds={NIGHT}"
    local.mkdir(parents=True)
    fs = fsspec.filesystem("s3")
    fs.mkdir(BUCKET)
    for i, part in enumerate(parts):
        part.to_parquet(local / f"part-{i}.parquet")
        fs.pipe(
            f"{BUCKET}/digits/ds={NIGHT}/part-{i}.parquet",
            (local / f"part-{i}.parquet").read_bytes(),
        )

    settings = drift_env(sqlite_url)
    env = {
        **os.environ,
        **s3_env,
        "DRIFT_HOME": str(settings.home),
        "DRIFT_DATABASE_URL": sqlite_url,
    }
    on_disk = _config(tmp_path, demo_world, "disk.yaml", landing=str(tmp_path / "landing"))
    in_bucket = _config(tmp_path, demo_world, "s3.yaml", landing=f"s3://{BUCKET}/digits")
    drift = [sys.executable, "-m", "drift.cli"]

    def run(config: Path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*drift, *args],
            env={**env, "DRIFT_CONFIG": str(config)},
            capture_output=True,
            text=True,
            timeout=600,
        )

    assert run(on_disk, "fit").returncode == 0
    first = run(on_disk, "run", "--date", str(NIGHT))
    assert first.returncode == 0, first.stderr
    from drift.config import get_monitor

    monitor = get_monitor("digits_demo", on_disk)
    disk_scores = _row_scores(settings, monitor, NIGHT)
    with session_scope(sqlite_url) as session:
        batch = session.scalars(select(Batch)).one()
        disk_summary = batch.summary
        assert len(batch.source["files"]) == 3

    second = run(in_bucket, "run", "--date", str(NIGHT))
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout  # same verdict and OOD rates
    pd.testing.assert_frame_equal(_row_scores(settings, monitor, NIGHT), disk_scores)
    with session_scope(sqlite_url) as session:
        batch = session.scalars(select(Batch)).one()
        assert batch.summary == disk_summary
        assert batch.source["files"][0] == f"s3://{BUCKET}/digits/ds={NIGHT}/part-0.parquet"

    # a missing partition in the bucket: one line, recorded failed, an alert
    missing = run(in_bucket, "run", "--date", "2026-11-03")
    assert missing.returncode == 1
    line = f"error: digits_demo 2026-11-03: invalid batch: no parquet files in s3://{BUCKET}/digits/ds=2026-11-03"
    assert line in missing.stderr.splitlines()
    with session_scope(sqlite_url) as session:
        failed = session.scalars(select(Batch).where(Batch.batch_date == date(2026, 11, 3))).one()
        assert failed.status == "failed"
        assert session.scalars(select(Alert.kind)).all() == ["batch_failed"]


def test_an_unreachable_bucket_fails_in_one_line(s3_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    import fsspec

    fsspec.filesystem("s3").clear_instance_cache()
    source = SourceSpec(landing=f"s3://{BUCKET}/digits", input_columns=["px_00"])
    with pytest.raises(
        InvalidBatchError, match=f"s3://{BUCKET}/digits/ds={NIGHT}: cannot list"
    ) as error:
        sources.inspect_batch(source, NIGHT, ["px_00"])
    assert "\n" not in str(error.value) and "driftwatch-test-secret" not in str(error.value)


def test_a_reference_in_a_bucket_reads_like_the_local_file(s3_env, demo_world):
    import fsspec

    path = demo_world / "demo" / "reference.parquet"
    fs = fsspec.filesystem("s3")
    fs.mkdir(f"{BUCKET}-ref")
    fs.pipe(f"{BUCKET}-ref/reference.parquet", path.read_bytes())
    columns = ["px_00", "px_63", "label"]
    pd.testing.assert_frame_equal(
        sources.read_reference(f"s3://{BUCKET}-ref/reference.parquet", columns),
        pd.read_parquet(path, columns=columns),
    )


# -- a prediction-log table ---------------------------------------------------------------------------


@pytest.fixture
def prediction_log(postgres_url, demo_world, monkeypatch) -> str:
    """A prediction-log table holding two nights of the demo's rows; the URL is in ${PREDLOG_URL}."""
    engine = create_engine(postgres_url)
    frames = []
    for night in (NIGHT, date(2026, 11, 3)):
        frame = pd.read_parquet(demo_world / "demo" / "landing" / f"ds={night}" / "part-0.parquet")
        frames.append(frame.assign(logged_on=night))
    with engine.begin() as connection:
        pd.concat(frames).iloc[::-1].to_sql(
            "prediction_log", connection, index=False
        )  # stored out of order
        connection.execute(text("ALTER TABLE prediction_log ADD COLUMN note text DEFAULT 'x'"))
    engine.dispose()
    monkeypatch.setenv("PREDLOG_URL", postgres_url)
    return "SELECT * FROM prediction_log WHERE logged_on = :batch_date"


@pytest.mark.postgres
def test_the_same_night_from_a_table_and_from_parquet_scores_the_same(
    prediction_log, demo_monitor, drift_env, sqlite_url
):
    settings = drift_env(sqlite_url)
    pipeline.fit_monitor(settings, demo_monitor)
    from_files = pipeline.run_night(settings, demo_monitor, NIGHT)
    file_scores = _row_scores(settings, demo_monitor, NIGHT)

    monitor = demo_monitor.model_copy(deep=True)
    monitor.source = SourceSpec(
        sql=prediction_log,
        url="${PREDLOG_URL}",
        id_column="row_id",
        input_columns=demo_monitor.source.input_columns,
    )
    assert monitor.shard_rows < 600  # several shards, each its own LIMIT/OFFSET range
    from_table = pipeline.run_night(settings, monitor, NIGHT)
    pd.testing.assert_frame_equal(_row_scores(settings, monitor, NIGHT), file_scores)
    assert from_table["ood_rate"] == from_files["ood_rate"]
    assert from_table["verdict"] == from_files["verdict"]
    with session_scope(sqlite_url) as session:
        assert "postgresql" not in str(session.scalars(select(Batch)).one().source)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("query", "night", "message"),
    [
        (
            "SELECT * FROM prediction_log WHERE logged_on = :batch_date",
            date(2026, 1, 1),
            "the query returned 0 rows",
        ),
        (
            "SELECT row_id, px_00 FROM prediction_log WHERE logged_on = :batch_date",
            NIGHT,
            "no column 'px_01'",
        ),
        (
            "SELECT row_id, note AS px_00, px_01 FROM prediction_log WHERE logged_on = :batch_date",
            NIGHT,
            "input column 'px_00' has type string, expected a number",
        ),
        (
            "SELECT CASE WHEN row_id = 1000012 THEN NULL ELSE row_id END AS row_id, px_00, px_01"
            " FROM prediction_log WHERE logged_on = :batch_date",
            NIGHT,
            "id column 'row_id' has nulls at row",
        ),
        ("SELECT * FROM no_such_table WHERE logged_on = :batch_date", NIGHT, "no_such_table"),
    ],
)
def test_bad_queries_fail_in_one_line(prediction_log, query, night, message):
    source = SourceSpec(
        sql=query, url="${PREDLOG_URL}", id_column="row_id", input_columns=["px_00", "px_01"]
    )
    with pytest.raises(InvalidBatchError, match=message) as error:
        sources.inspect_batch(source, night, ["px_00", "px_01", "row_id"])
    assert "\n" not in str(error.value)


def test_an_unreachable_database_fails_in_one_line_without_the_password(monkeypatch):
    monkeypatch.setenv("PREDLOG_PASSWORD", "hunter2-secret")
    source = SourceSpec(
        sql="SELECT * FROM t WHERE d = :batch_date",
        url=f"postgresql+psycopg2://drift:${{PREDLOG_PASSWORD}}@127.0.0.1:{_free_port()}/logs",
        id_column="row_id",
        input_columns=["x"],
    )
    with pytest.raises(InvalidBatchError, match="query on postgresql") as error:
        sources.inspect_batch(source, NIGHT, ["x", "row_id"])
    assert "hunter2-secret" not in str(error.value) and "\n" not in str(error.value)
    unset = source.model_copy(update={"url": "postgresql://u:${NOT_SET_ANYWHERE}@h/db"})
    with pytest.raises(InvalidBatchError, match="environment variable NOT_SET_ANYWHERE is not set"):
        sources.inspect_batch(unset, NIGHT, ["x", "row_id"])


def test_unreadable_files_fail_their_night_in_one_line_and_later_nights_run(
    demo_monitor, demo_world, drift_env, sqlite_url, tmp_path
):
    settings = drift_env(sqlite_url)
    pipeline.fit_monitor(settings, demo_monitor)
    monitor = demo_monitor.model_copy(deep=True)
    monitor.source.landing = tmp_path / "landing"
    good = pd.read_parquet(demo_world / "demo" / "landing" / f"ds={NIGHT}" / "part-0.parquet")
    cases = {
        date(2026, 11, 3): ("empty", "part-0.parquet: not a readable parquet file"),
        date(2026, 11, 4): ("truncated", "part-0.parquet: not a readable parquet file"),
        date(2026, 11, 5): ("csv", "part-0.parquet: not a readable parquet file"),
        date(2026, 11, 6): ("directory", "x.parquet: is a directory, not a parquet file"),
    }
    for night, (how, _) in cases.items():
        folder = monitor.source.landing / f"ds={night}"
        folder.mkdir(parents=True)
        target = folder / "part-0.parquet"
        if how == "empty":
            target.write_bytes(b"")
        elif how == "truncated":
            good.to_parquet(target)
            target.write_bytes(target.read_bytes()[:5000])
        elif how == "csv":
            good.to_csv(target, index=False)
        else:
            good.to_parquet(target)
            (folder / "x.parquet").mkdir()
    for night, (_, message) in cases.items():
        with pytest.raises(pipeline.BatchFailedError, match=message) as error:
            pipeline.run_night(settings, monitor, night)
        assert "\n" not in str(error.value)
    (monitor.source.landing / f"ds={NIGHT}").mkdir()
    good.to_parquet(monitor.source.landing / f"ds={NIGHT}" / "part-0.parquet")
    assert pipeline.run_night(settings, monitor, NIGHT)["verdict"] in {"ok", "warn"}
    with session_scope(sqlite_url) as session:
        statuses = dict(session.execute(select(Batch.batch_date, Batch.status)).all())
        assert statuses == {**{night: "failed" for night in cases}, NIGHT: "succeeded"}
        assert session.scalars(select(Alert.kind)).all() == ["batch_failed"] * len(cases)
        for night in cases:  # nothing partial: no per-row scores of a failed night
            assert not pipeline.scores_dir(settings, monitor, night).exists()
