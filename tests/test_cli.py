"""The day-to-day commands, run as a user runs them (a real `drift` process, real databases)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

COMMANDS = [
    "init", "fit", "run", "events", "status", "backfill", "recalibrate", "feedback import", "report", "adapt", "meta-train", "demo",
    "ack", "close", "reopen", "reset", "versions", "rollback", "performance",
]


@pytest.fixture
def drift(tmp_path, demo_world, db_url):
    """`drift …` with its own DRIFT_HOME and database, reading the session's demo world."""
    from drift.config import Settings

    config = tmp_path / "monitors.yaml"
    shipped = Settings().config_path.read_text()
    config.write_text(shipped.replace("base_dir: ${DRIFT_HOME}/demo", f"base_dir: {demo_world / 'demo'}"))
    env = {**os.environ, "DRIFT_HOME": str(tmp_path / "home"), "DRIFT_DATABASE_URL": db_url, "DRIFT_CONFIG": str(config)}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "drift.cli", *args], env=env, capture_output=True, text=True, timeout=600
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    return run


def _status_row(stdout: str, monitor: str) -> dict[str, str]:
    """`drift status`'s table row for one monitor, as {column: cell}."""
    lines = [line.strip() for line in stdout.splitlines()]
    header = next(line for line in lines if "active version" in line)
    row = next(line for line in lines if line.strip("│┃ ").startswith(monitor + " "))

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in re.split("[│┃]", line.strip("│┃"))]

    return dict(zip(cells(header), cells(row), strict=True))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = subprocess.run(
        [sys.executable, "-m", "drift.cli", *command.split(), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout


def test_day_to_day_commands(drift, demo_world, tmp_path):
    drift("init")
    assert _status_row(drift("status").stdout, "digits_demo")["active version"] == "not fitted"
    fitted = drift("fit")
    assert "performance estimators cbpe, atc fitted on 289 labelled calibration rows" in fitted.stdout
    assert _status_row(drift("status").stdout, "digits_demo")["active version"] == "v1 (fit)"

    backfill = drift("backfill", "--start", "2026-11-05", "--end", "2026-11-08")
    assert "4 of 4 nights to run" in backfill.stdout
    again = drift("backfill", "--start", "2026-11-05", "--end", "2026-11-08")
    assert "0 of 4 nights to run" in again.stdout  # only missed nights

    row = _status_row(drift("status").stdout, "digits_demo")
    assert row["last night"] == "2026-11-08" and "confirmed" in row["open events"]

    events = [json.loads(line) for line in drift("events", "--json", "--status", "confirmed").stdout.splitlines()]
    assert len(events) == 1 and events[0]["monitor"] == "digits_demo" and events[0]["first_seen"] == "2026-11-07"
    assert events[0]["kind"] == "shift"
    assert drift("events", "--json", "--status", "resolved").stdout == ""
    assert drift("events", "--json", "--since", "2026-11-09").stdout == ""

    labels = demo_world / "demo" / "feedback" / "labels-2026-11-07.csv"
    imported = drift("feedback", "import", str(labels), "--monitor", "digits_demo")
    assert "labels imported" in imported.stdout
    # the confirmed event (novel digits, `unknown` without labels) is typed by its labels
    assert f"event {events[0]['id']}: shift type unknown -> semantic (by the labels)" in imported.stdout
    drift("feedback", "import", str(labels), "--monitor", "digits_demo")  # idempotent

    nights = json.loads(drift("performance", "--monitor", "digits_demo", "--json").stdout)["nights"]
    assert [n["batch_date"] for n in nights] == ["2026-11-05", "2026-11-06", "2026-11-07", "2026-11-08"]
    assert all({"cbpe", "atc"} <= n.keys() and 0.9 < n["reference_accuracy"] <= 1 for n in nights)
    realized = {n["batch_date"]: n["realized"] for n in nights if "realized" in n}
    assert list(realized) == ["2026-11-07"]  # the only night whose labels were imported
    assert realized["2026-11-07"]["n_rows"] == len(labels.read_text().splitlines()) - 1
    table = drift("performance", "--monitor", "digits_demo").stdout
    assert "realized" in table and "2026-11-07" in table

    out = tmp_path / "report" / "report.html"
    report = drift("report", "--monitor", "digits_demo", "--out", str(out))
    assert out.is_file() and "digits_demo-ood_rate.png" in report.stdout


def test_errors_are_one_line_and_a_non_zero_exit(drift, tmp_path):
    bad_date = drift("run", "--date", "2026-13-01", check=False)
    assert bad_date.returncode != 0 and "YYYY-MM-DD" in bad_date.stderr
    unknown = drift("status", "--monitor", "nope", check=False)
    assert unknown.returncode == 1 and "no monitor named 'nope'" in unknown.stderr
    bad_labels = tmp_path / "labels.csv"
    bad_labels.write_text("batch_date,row,label\n2026-11-01,1,3\n")
    drift("init")
    result = drift("feedback", "import", str(bad_labels), "--monitor", "digits_demo", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "missing column 'row_id'" in result.stderr
    config = tmp_path / "typo.yaml"
    config.write_text("monitors:\n  - name: x\n    modle: {}\n")
    env_result = subprocess.run(
        [sys.executable, "-m", "drift.cli", "status"],
        env={**os.environ, "DRIFT_CONFIG": str(config)},
        capture_output=True,
        text=True,
    )
    assert env_result.returncode == 2 and "monitors.0.modle: unknown key" in env_result.stderr
