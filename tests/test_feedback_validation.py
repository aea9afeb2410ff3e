"""Validated feedback: labels of unknown rows, of nights never run and repeated labels are
left out and counted per reason; labels outside the model's classes are kept as novel-class
evidence; a file with nothing valid fails. Real pipeline runs, SQLite and Postgres, real
`drift` processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from tests.conftest import run_module

NIGHT = date(2026, 11, 5)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def world(
    request: pytest.FixtureRequest, demo_world: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple]:
    """A fitted demo monitor with one night run; (settings, monitor, env, night's row ids)."""
    from drift import pipeline
    from drift.config import Settings, get_monitor
    from drift.pipeline.artifacts import scores_dir
    from drift.store.db import upgrade
    from tests.conftest import create_postgres_database

    tmp = tmp_path_factory.mktemp("feedback")
    drop = None
    if request.param == "postgres":
        url, drop = create_postgres_database("drift_feedback")
    else:
        url = f"sqlite:///{tmp / 'drift.db'}"
    config = tmp / "monitors.yaml"
    config.write_text(
        Settings()
        .config_path.read_text()
        .replace("base_dir: ${DRIFT_HOME}/demo", f"base_dir: {demo_world / 'demo'}")
    )
    env = {"DRIFT_HOME": str(tmp / "home"), "DRIFT_DATABASE_URL": url, "DRIFT_CONFIG": str(config)}
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            upgrade(url)
            settings = Settings()
            monitor = get_monitor("digits_demo")
            pipeline.fit_monitor(settings, monitor)
            pipeline.run_night(settings, monitor, NIGHT)
            shards = sorted(scores_dir(settings, monitor, NIGHT).glob("shard-*.parquet"))
            ids = pd.concat([pd.read_parquet(p) for p in shards])["id"].astype(str).tolist()
            yield settings, monitor, {**os.environ, **env}, ids
    finally:
        if drop is not None:
            drop()


def _n_classes(settings, monitor) -> int:
    from drift.pipeline.artifacts import active_fitted

    return active_fitted(settings, monitor)[2].manifest["n_classes"]


def _labels(settings, monitor) -> dict[str, int]:
    from drift.store.db import session_scope
    from drift.store.models import FeedbackLabel

    with session_scope(settings.db_url) as session:
        rows = session.execute(select(FeedbackLabel.row_id, FeedbackLabel.label)).all()
    return dict(rows)


def test_bad_labels_are_counted_per_reason_and_novel_classes_kept(world, tmp_path: Path) -> None:
    from drift.feedback import Rejection, import_labels

    settings, monitor, _, ids = world
    novel_label = _n_classes(settings, monitor) + 2
    night = NIGHT.isoformat()
    rows = [
        (night, ids[0], 1),
        (night, ids[1], 2),
        (night, ids[1], 3),  # the same row again: the last label counts
        (night, ids[2], novel_label),  # outside the model's classes: kept
        (night, "999999", 4),
        (night, "abc", 4),
        ("2027-01-01", ids[0], 5),  # a night never run
    ]
    path = tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=["batch_date", "row_id", "label"]).to_csv(path, index=False)

    result = import_labels(settings, monitor, path)
    assert result.imported == 3 and result.novel_class == 1
    assert result.rejected == {
        Rejection.NIGHT_NEVER_RUN: 1,
        Rejection.UNKNOWN_ROW_ID: 2,
        Rejection.DUPLICATE: 1,
    }
    assert _labels(settings, monitor) == {ids[0]: 1, ids[1]: 3, ids[2]: novel_label}
    assert import_labels(settings, monitor, path) == result  # idempotent


def test_drift_feedback_import_reports_and_fails_on_nothing_valid(world, tmp_path: Path) -> None:
    settings, monitor, env, ids = world
    path = tmp_path / "labels.csv"
    pd.DataFrame(
        [
            (NIGHT.isoformat(), ids[5], 1),
            (NIGHT.isoformat(), "999999", 1),
            ("2027-01-01", ids[5], 1),
        ],
        columns=["batch_date", "row_id", "label"],
    ).to_csv(path, index=False)
    result = run_module(
        "drift.cli", "feedback", "import", str(path), "--monitor", "digits_demo", env=env
    )
    assert result.returncode == 0, result.stderr
    assert "1 labels imported" in result.stdout
    assert "1 night never run" in result.stdout and "1 unknown row id" in result.stdout

    invalid = tmp_path / "invalid.csv"
    pd.DataFrame(
        [(NIGHT.isoformat(), "abc", 1), ("2027-01-01", ids[0], 1)],
        columns=["batch_date", "row_id", "label"],
    ).to_csv(invalid, index=False)
    before = _labels(settings, monitor)
    failed = run_module(
        "drift.cli", "feedback", "import", str(invalid), "--monitor", "digits_demo", env=env
    )
    assert failed.returncode == 1
    assert failed.stderr.strip() == (
        "error: invalid.csv: no valid labels (1 night never run, 1 unknown row id)"
    )
    assert _labels(settings, monitor) == before
