"""One night end to end on the demo world, on SQLite and on Postgres."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from drift import pipeline
from drift.store.db import session_scope
from drift.store.models import Alert, Batch, DetectorScore, DriftTest, ModelVersion

CLEAN_NIGHT = date(2026, 11, 2)
NOVEL_NIGHT = date(2026, 11, 8)  # demo script: 30% unseen classes


@pytest.fixture
def fitted(drift_env, demo_monitor, db_url):
    settings = drift_env(db_url)
    pipeline.fit_monitor(settings, demo_monitor)
    return settings, demo_monitor


def _night_rows(settings, night):
    with session_scope(settings.db_url) as session:
        batch = session.scalars(select(Batch).where(Batch.batch_date == night)).one()
        scores = {s.detector: (s.n_flagged, s.mean_score, s.p_value) for s in batch.scores}
        n_tests = session.scalar(select(func.count()).select_from(DriftTest).where(DriftTest.batch_id == batch.id))
        return batch.status, scores, n_tests


def test_fit_writes_an_active_version_with_held_out_calibration(fitted):
    settings, monitor = fitted
    with session_scope(settings.db_url) as session:
        version = session.scalars(select(ModelVersion)).one()
        assert version.status == "active" and version.version == 1
        manifest = version.metrics
    # the demo calibrates on its own held-out file, never on bank rows
    assert manifest["n_bank"] == len(pd.read_parquet(monitor.reference.path))
    assert manifest["n_calibration"] == len(pd.read_parquet(monitor.reference.calibration_path))
    fitted_monitor = pipeline.load_fitted(version.artifact_path)
    assert set(fitted_monitor.detectors) == {"knn", "energy"}


def _per_row_scores(settings, monitor, night) -> pd.DataFrame:
    """The night's per-row scores as the artifact store holds them (every shard file)."""
    shards = sorted(pipeline.scores_dir(settings, monitor, night).glob("shard-*.parquet"))
    assert shards, f"no per-row scores written for {night}"
    return pd.concat([pd.read_parquet(shard) for shard in shards], ignore_index=True)


def test_same_night_three_times_leaves_one_row_and_same_scores(fitted):
    settings, monitor = fitted
    results, rows, per_row = [], [], []
    for _ in range(3):
        results.append(pipeline.run_night(settings, monitor, CLEAN_NIGHT))
        rows.append(_night_rows(settings, CLEAN_NIGHT))
        per_row.append(_per_row_scores(settings, monitor, CLEAN_NIGHT))
    with session_scope(settings.db_url) as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 1
        assert session.scalar(select(func.count()).select_from(DetectorScore)) == 2
    assert rows[0][0] == "succeeded" and rows[0][2] > 0
    assert rows[0] == rows[1] == rows[2]  # stored summaries: flags, mean score, p-value, tests
    assert {"score__knn", "score__energy"} <= set(per_row[0].columns)
    for again in per_row[1:]:
        pd.testing.assert_frame_equal(per_row[0], again)
    assert results[0]["ood_rate"] == results[1]["ood_rate"] == results[2]["ood_rate"]
    assert results[0]["verdict"] == results[1]["verdict"] == results[2]["verdict"]


def test_novel_classes_raise_the_ood_rate(fitted):
    settings, monitor = fitted
    clean = pipeline.run_night(settings, monitor, CLEAN_NIGHT)
    novel = pipeline.run_night(settings, monitor, NOVEL_NIGHT)
    for detector in ("knn", "energy"):
        assert clean["ood_rate"][detector] < 0.12
        assert novel["ood_rate"][detector] > clean["ood_rate"][detector] + 0.1
    _, scores, _ = _night_rows(settings, NOVEL_NIGHT)
    assert scores["knn"][2] < 1e-6 and scores["energy"][2] < 1e-6  # flag-count p-values


def _break(landing, night, how):
    folder = landing / f"ds={night.isoformat()}"
    frame = pd.read_parquet(folder / "part-0.parquet")
    if how == "missing column":
        frame = frame.drop(columns=["px_10"])
    elif how == "nan":
        frame.loc[5, "px_20"] = np.nan
    elif how == "wrong dtype":
        frame["px_30"] = frame["px_30"].astype(str)
    elif how == "empty":
        frame = frame.iloc[:0]
    frame.to_parquet(folder / "part-0.parquet")


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing column", "missing column 'px_10'"),
        ("nan", "column 'px_20' has null/NaN at row 5"),
        ("wrong dtype", "column 'px_30' has type string"),
        ("empty", "the batch is empty"),
    ],
)
def test_malformed_batch_fails_the_run_and_is_recorded(fitted, tmp_path, how, message):
    settings, monitor = fitted
    landing = tmp_path / "landing"
    shutil.copytree(monitor.source.landing, landing)
    monitor = monitor.model_copy(deep=True)
    monitor.source.landing = landing
    night = date(2026, 11, 3)
    _break(landing, night, how)
    with pytest.raises(pipeline.BatchFailedError, match=message):
        pipeline.run_night(settings, monitor, night)
    status, _, _ = _night_rows(settings, night)
    assert status == "failed"
    with session_scope(settings.db_url) as session:
        batch = session.scalars(select(Batch)).one()
        assert message in batch.error
        assert session.scalars(select(Alert.kind)).all() == ["batch_failed"]
    # other nights still run
    assert pipeline.run_night(settings, monitor, CLEAN_NIGHT)["verdict"] in {"ok", "warn"}


def test_drift_run_command_exits_non_zero_naming_the_problem(fitted, tmp_path):
    settings, monitor = fitted
    landing = tmp_path / "landing"
    shutil.copytree(monitor.source.landing, landing)
    _break(landing, date(2026, 11, 4), "missing column")
    config = tmp_path / "monitors.yaml"
    original = settings.config_path.read_text()
    config.write_text(
        original.replace("base_dir: ${DRIFT_HOME}/demo", f"base_dir: {monitor.reference.path.parent}")
        .replace("landing: landing", f"landing: {landing}")
    )
    env = {
        **os.environ,
        "DRIFT_HOME": str(settings.home),
        "DRIFT_DATABASE_URL": settings.db_url,
        "DRIFT_CONFIG": str(config),
    }
    drift = [sys.executable, "-m", "drift.cli"]
    bad = subprocess.run([*drift, "run", "--date", "2026-11-04"], env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "missing column 'px_10'" in bad.stderr
    good = subprocess.run([*drift, "run", "--date", "2026-11-05"], env=env, capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert "digits_demo 2026-11-05" in good.stdout
    # what the two processes recorded: the broken night failed with its reason, the next ran
    failed_status, _, _ = _night_rows(settings, date(2026, 11, 4))
    good_status, good_scores, good_tests = _night_rows(settings, date(2026, 11, 5))
    assert failed_status == "failed" and good_status == "succeeded"
    assert set(good_scores) == {"knn", "energy"} and good_tests > 0
    with session_scope(settings.db_url) as session:
        failed = session.scalars(select(Batch).where(Batch.batch_date == date(2026, 11, 4))).one()
        assert "missing column 'px_10'" in failed.error
        assert session.scalars(select(Alert.kind)).all() == ["batch_failed"]
    listed = subprocess.run([*drift, "events", "--json"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == ""  # a quiet night after a failed one opens no drift event
