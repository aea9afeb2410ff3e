"""Every command, given a bad argument, fails with one line on stderr and a non-zero exit:
no traceback, no boxed usage panel. Real `drift` processes; the commands are read from
`drift --help`, so a new command is walked too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from drift.status import EventStatus
from tests.conftest import run_module

#: a bad value per command where one is meaningful; every command also gets an unknown option
BAD_VALUES: dict[str, list[str]] = {
    "fit": ["--monitor", "nope"],
    "run": ["--date", "2026-13-01"],
    "status": ["--monitor", "nope"],
    "backfill": ["--start", "2026-11-05", "--end", "2026-11-01"],
    "events": ["--status", "open"],
    "adapt": ["--event", "abc"],
    "meta-train": ["--monitor", "nope"],
    "explain": ["--monitor", "digits_demo", "--date", "2026-02-30"],
    "scores": ["--monitor", "digits_demo", "--date", "2026-11-01", "--out", "x.csv"],
    "report": ["--monitor", "nope"],
    "demo": ["--nights", "many"],
    "feedback import": ["no-such-labels.csv", "--monitor", "digits_demo"],
    "recalibrate": ["--monitor", "digits_demo", "--start", "2026-11-01", "--end", "2026-11-31"],
    "ack": ["abc"],
    "close": ["1", "--as", "maybe"],
    "reopen": ["abc"],
    "reset": ["abc"],
    "versions": ["--monitor", "nope"],
    "rollback": ["--monitor", "digits_demo", "--to", "abc"],
    "alerts flush": ["--monitor", "nope"],
    "performance": ["--monitor", "nope"],
}


def _drift(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_module("drift.cli", *args, env=env, timeout=300)


def _listed_commands(*group: str) -> list[str]:
    """The command names in a `drift [group] --help` Commands panel."""
    help_text = _drift(*group, "--help").stdout
    panel = help_text.split("Commands")[1]
    return re.findall(r"^│ ([a-z][a-z-]*) ", panel, flags=re.MULTILINE)


def _commands() -> list[str]:
    commands = []
    for name in _listed_commands():
        sub = _listed_commands(name) if "Commands" in _drift(name, "--help").stdout else []
        commands += [f"{name} {s}" for s in sub] or [name]
    return commands


COMMANDS = _commands()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated, empty event store and the shipped demo monitor."""
    from drift.store.db import upgrade

    tmp = tmp_path_factory.mktemp("cli_errors")
    url = f"sqlite:///{tmp / 'drift.db'}"
    upgrade(url)
    environ = {**os.environ, "DRIFT_HOME": str(tmp / "home"), "DRIFT_DATABASE_URL": url}
    environ.pop("DRIFT_CONFIG", None)
    return environ


def _assert_one_line_error(result: subprocess.CompletedProcess) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_help_lists_the_commands() -> None:
    assert {"fit", "run", "explain", "scores", "feedback import", "events"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_option_is_one_line(command: str, env: dict[str, str]) -> None:
    result = _drift(*command.split(), "--no-such-option", env=env)
    _assert_one_line_error(result)
    assert "--no-such-option" in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_value_is_one_line(command: str, env: dict[str, str]) -> None:
    bad = BAD_VALUES.get(command)
    if bad is None:
        pytest.skip(f"no meaningful bad value listed for '{command}' (unknown option is walked)")
    _assert_one_line_error(_drift(*command.split(), *bad, env=env))


def test_the_messages_say_what_is_wrong(env: dict[str, str]) -> None:
    status = _drift("events", "--status", "open", env=env)
    assert status.stderr.strip() == (
        "error: --status 'open' is not an event status (one of: " + ", ".join(EventStatus) + ")"
    )
    bad_date = _drift("run", "--date", "2026-13-01", env=env)
    assert "'2026-13-01' is not a date in the form YYYY-MM-DD" in bad_date.stderr
    missing = _drift("explain", "--date", "2026-11-01", env=env)
    assert "Missing option '--monitor'" in missing.stderr


def test_a_database_that_cannot_be_reached_is_one_line(env: dict[str, str]) -> None:
    unreachable = {**env, "DRIFT_DATABASE_URL": "postgresql+psycopg2://nobody@127.0.0.1:1/drift"}
    _assert_one_line_error(_drift("init", env=unreachable))


def test_rich_markup_does_not_eat_brackets(tmp_path: Path, env: dict[str, str]) -> None:
    config = tmp_path / "monitors.yaml"
    config.write_text("monitors:\n  - name: Bad Name\n")
    result = _drift("status", env={**env, "DRIFT_CONFIG": str(config)})
    _assert_one_line_error(result)
    assert "[a-z0-9_]" in result.stderr


def test_help_shows_real_types_and_real_monitor_names() -> None:
    top = _drift("--help").stdout
    assert "<bool>" not in top and "<str>" not in top
    fit = _drift("fit", "--help").stdout
    assert "NAME" in fit and "<str>" not in fit and "--monitor digits_demo" in fit
    explain = _drift("explain", "--help").stdout
    assert "YYYY-MM-DD" in explain and "<bool>" not in explain


def test_third_party_noise_is_filtered_at_the_entry_point() -> None:
    script = (
        "import logging, warnings\n"
        "from drift.cli import quiet_third_parties\n"
        "warnings.simplefilter('default')\n"
        "quiet_third_parties()\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "import faiss\n"
        "import torch.utils._pytree as pytree\n"
        "pytree.LeafSpec()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "LeafSpec" not in result.stderr and "faiss" not in result.stderr


def test_long_commands_print_a_line_per_step_off_a_terminal(env: dict[str, str]) -> None:
    """Off a terminal (a pipe, a log) a long command prints `[i/n] step` lines."""
    result = _drift("backfill", "--start", "2026-11-01", "--end", "2026-11-02", env=env)
    assert "[1/2] digits_demo 2026-11-01" in result.stdout
    assert "[2/2] digits_demo 2026-11-02" in result.stdout
