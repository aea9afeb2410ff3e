"""Thresholds from production nights: calibration_nights, drift recalibrate, the in-sample warning.

The stream (drift.calibration_stream): an over-fitted MLP whose reference file is
its own training set; nights are unseen rows of the same population, the last one
with 20% novel rows.
"""

from __future__ import annotations

import math
import shutil
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from drift import pipeline
from drift.calibration_stream import MONITOR, build_stream, write_config
from drift.config import CalibrationWindow, Settings, get_monitor
from drift.stats import expected_flag_rate
from drift.status import Verdict
from drift.store.db import session_scope
from drift.store.models import Batch, ModelVersion

QUIET_NIGHTS = 40  # 10 window nights + 30 quiet nights, then the shift


@pytest.fixture(scope="session")
def stream(tmp_path_factory: pytest.TempPathFactory):
    return build_stream(
        tmp_path_factory.mktemp("calibration_stream"), nights=QUIET_NIGHTS + 1, shift_from=QUIET_NIGHTS
    )


@pytest.fixture
def settings_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DRIFT_CONFIG", raising=False)

    def make(db_url: str) -> Settings:
        return Settings(home=tmp_path / "home", database_url=db_url)

    return make


def _monitor(stream, settings: Settings, window: tuple[date, date] | None, tmp_path: Path):
    name = f"monitor-{tmp_path.name}-{window[0] if window else 'none'}.yaml"
    return get_monitor(MONITOR, write_config(stream.root, window, name), settings)


def _versions(settings: Settings) -> int:
    with session_scope(settings.db_url) as session:
        return session.scalar(select(func.count()).select_from(ModelVersion))


def _run_cli(settings: Settings, config: Path, *args: str):
    from drift.cli import app

    env = {"DRIFT_HOME": str(settings.home), "DRIFT_DATABASE_URL": settings.database_url,
           "DRIFT_CONFIG": str(config)}
    return CliRunner().invoke(app, list(args), env=env)


def test_without_a_window_the_in_sample_warning_appears_in_the_first_week(
    stream, settings_for, sqlite_url, tmp_path
):
    from drift.report import build_report

    settings = settings_for(sqlite_url)
    monitor = _monitor(stream, settings, None, tmp_path)
    config = stream.root / f"monitor-{tmp_path.name}-none.yaml"
    fitted = _run_cli(settings, config, "fit")
    assert fitted.exit_code == 0, fitted.output
    assert "thresholds of knn, energy fitted on 0.3 of " in fitted.output
    with session_scope(settings.db_url) as session:
        manifest = session.scalars(select(ModelVersion)).one().metrics
    # fitted on a held-out share of the training file: the model knows it as well as the bank
    assert manifest["calibrated_on"].startswith("0.3 of ")
    assert f"model accuracy {manifest['accuracy_calibration']:.1%} on calibration rows" in fitted.output
    assert manifest["accuracy_calibration"] == pytest.approx(manifest["accuracy_bank"], abs=0.02)
    assert manifest["accuracy_calibration"] > stream.test_accuracy + 0.1

    warnings = []
    for night in stream.nights[:7]:
        warnings.append(pipeline.run_night(settings, monitor, night)["calibration_warning"])
    first = next(i for i, w in enumerate(warnings) if w)
    sentence = [w for w in warnings if w][-1]  # the latest, the one `drift status` shows
    assert sentence.startswith("calibration looks in-sample: energy flagged ")
    assert "calibration_nights" in sentence and "drift recalibrate --monitor overfit" in sentence
    with session_scope(settings.db_url) as session:
        stored = session.scalars(select(Batch).where(Batch.batch_date == stream.nights[first])).one()
        assert stored.summary["calibration_warning"] == warnings[first]

    status = _run_cli(settings, config, "status")
    assert status.exit_code == 0 and f"overfit: {sentence}" in " ".join(status.output.split())
    html = build_report(settings, monitor).html
    assert "calibration looks in-sample: energy flagged" in html


def test_with_a_window_quiet_nights_flag_at_nominal_and_a_shift_confirms_at_once(
    stream, settings_for, sqlite_url, tmp_path
):
    settings = settings_for(sqlite_url)
    window = (stream.nights[0], stream.nights[9])
    monitor = _monitor(stream, settings, window, tmp_path)
    result = pipeline.fit_monitor(settings, monitor)
    assert result["calibrated_on"] == f"production nights {window[0]}..{window[1]}"
    assert result["calibration_nights"] == {"start": window[0].isoformat(), "end": window[1].isoformat()}
    assert result["n_calibration"] == 10 * 500 and result["n_bank"] == 1500  # all of the reference
    decisions = [pipeline.run_night(settings, monitor, n) for n in stream.nights[10:QUIET_NIGHTS]]
    assert [d["verdict"] for d in decisions].count(Verdict.CONFIRM) == 0
    assert not any(d["calibration_warning"] for d in decisions)
    expected = expected_flag_rate(monitor.tpr, result["n_calibration"])
    n_rows = 30 * 500
    # binomial noise of the pooled count plus the threshold's own estimation noise (m rows)
    noise = 3 * math.sqrt(expected * (1 - expected) * (1 / n_rows + 1 / result["n_calibration"]))
    for detector in result["detectors"]:
        pooled = np.mean([d["ood_rate"][detector] for d in decisions])
        assert abs(pooled - expected) <= noise, (detector, pooled)

    shifted = pipeline.run_night(settings, monitor, stream.nights[QUIET_NIGHTS])
    assert shifted["verdict"] == Verdict.CONFIRM and shifted["newly_confirmed"]


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_recalibrate_from_stored_scores_matches_a_fit_on_the_same_window(
    stream, settings_for, db, request, tmp_path
):
    db_url = request.getfixturevalue(f"{db}_url")
    settings = settings_for(db_url)
    monitor = _monitor(stream, settings, (stream.nights[0], stream.nights[9]), tmp_path)
    pipeline.fit_monitor(settings, monitor)
    for night in stream.nights[10:20]:
        pipeline.run_night(settings, monitor, night)

    window = CalibrationWindow(start=stream.nights[10], end=stream.nights[19])
    recalibrated = pipeline.recalibrate(settings, monitor, window)
    assert recalibrated["version"] == 2 and recalibrated["origin"] == f"recalibrate:{window.label()}"
    assert recalibrated["calibration_nights"] == window.model_dump(mode="json")
    refit_monitor = _monitor(stream, settings, (window.start, window.end), tmp_path)
    refit = pipeline.fit_monitor(settings, refit_monitor, promote=False)
    stored, embedded = pipeline.load_fitted(recalibrated["path"]), pipeline.load_fitted(refit["path"])
    for name, calibrator in stored.calibrators.items():
        # same bank, same rows: the stored nightly scores are the re-embedded ones up to
        # float rounding of a different batching
        assert calibrator.m == embedded.calibrators[name].m == 5000
        assert calibrator.threshold_ == pytest.approx(embedded.calibrators[name].threshold_, rel=1e-5)

    # the gate restarts on the new version's first night
    decision = pipeline.run_night(settings, monitor, stream.nights[20])
    with session_scope(settings.db_url) as session:
        batch = session.scalars(select(Batch).where(Batch.batch_date == stream.nights[20])).one()
        assert batch.gate_state["nights"] == 1
    assert decision["verdict"] == Verdict.OK

    # nights scored by v1 cannot calibrate v2 (now active)
    with pytest.raises(ValueError, match="scored by model version v1, not the active v2"):
        pipeline.recalibrate(settings, monitor, window)
    assert _versions(settings) == 3


def test_bad_windows_are_refused_in_one_line_and_write_nothing(
    stream, settings_for, sqlite_url, tmp_path
):
    settings = settings_for(sqlite_url)
    late = stream.nights[-1] + timedelta(days=5)
    outside = write_config(stream.root, (stream.nights[-1], late), f"outside-{tmp_path.name}.yaml")
    result = _run_cli(settings, outside, "fit")
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0  # the error is one line (progress goes to stdout)
    assert f"night {stream.nights[-1] + timedelta(days=1)} is not a landed" in result.output
    assert _versions(settings) == 0

    # a window over a confirmed event: the shift night confirms at once
    monitor = _monitor(stream, settings, (stream.nights[0], stream.nights[9]), tmp_path)
    pipeline.fit_monitor(settings, monitor)
    for night in stream.nights[QUIET_NIGHTS - 2 :]:
        pipeline.run_night(settings, monitor, night)
    start, end = stream.nights[QUIET_NIGHTS - 2], stream.nights[QUIET_NIGHTS]
    over_event = write_config(stream.root, (start, end), f"event-{tmp_path.name}.yaml")
    result = _run_cli(settings, over_event, "fit")
    assert result.exit_code == 1 and "overlap drift event #1 (confirmed" in result.output
    result = _run_cli(settings, over_event, "recalibrate", "--monitor", MONITOR,
                      "--start", start.isoformat(), "--end", end.isoformat())
    assert result.exit_code == 1 and result.stderr.strip().count("\n") == 0
    assert "overlap drift event #1 (confirmed" in result.output
    # nights never run, and too few rows
    never = [stream.nights[20].isoformat(), stream.nights[21].isoformat()]
    result = _run_cli(settings, over_event, "recalibrate", "-m", MONITOR, "--start", never[0], "--end", never[1])
    assert result.exit_code == 1 and f"night {never[0]} has not succeeded (never run)" in result.output
    one = stream.nights[QUIET_NIGHTS - 2].isoformat()
    result = _run_cli(settings, over_event, "recalibrate", "-m", MONITOR, "--start", one, "--end", one)
    assert result.exit_code == 1 and "hold 500 rows; thresholds at tpr 0.95 need at least" in result.output
    assert _versions(settings) == 1
    assert not list((settings.artifacts_dir / MONITOR / "versions").glob("v2"))
    shutil.rmtree(settings.home)


def test_config_refuses_two_calibration_sources_and_a_reversed_window(tmp_path):
    from drift.config import ConfigError, load_monitors

    def config(reference: str) -> Path:
        path = tmp_path / "m.yaml"
        path.write_text(
            "monitors:\n  - name: m\n    model: {format: export, path: m.pt2}\n"
            "    source: {landing: l, input_columns: [a]}\n"
            f"    reference: {{path: r.parquet, {reference}}}\n"
        )
        return path

    with pytest.raises(ConfigError, match="either 'calibration_path' or 'calibration_nights'"):
        load_monitors(config("calibration_path: c.parquet, calibration_nights: {start: 2026-11-01, end: 2026-11-02}"))
    with pytest.raises(ConfigError, match="reference.calibration_nights: .*end 2026-10-01 is before start 2026-11-01"):
        load_monitors(config("calibration_nights: {start: 2026-11-01, end: 2026-10-01}"))


def test_in_sample_warning_stays_quiet_when_one_night_carries_the_excess():
    from drift.calibration import in_sample_warning

    even = [(1000, 90)] * 5
    assert in_sample_warning({"knn": even}, {"knn": (1999, 0.95)}, "m") is not None
    # the same pooled excess in one night is a shift starting, the gate's business
    one_night = [(1000, 50)] * 4 + [(1000, 250)]
    assert in_sample_warning({"knn": one_night}, {"knn": (1999, 0.95)}, "m") is None
