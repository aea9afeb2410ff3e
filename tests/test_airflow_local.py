"""`make airflow` (scripts/airflow_local.sh): AIRFLOW_HOME and DRIFT_CONFIG come from the
environment, every configured monitor without an active model version is fitted, and
SIGTERM stops the script and every process it started.

One run: two monitors (the demo monitor twice, `alpha` and `beta`, on the session's
demo world), both unfitted; the script prepares, starts `airflow standalone`, and once
standalone has started its components the script gets SIGTERM. Afterwards no process
is left that carries this test's AIRFLOW_HOME in its environment, in or out of the
script's session.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.test_dags import airflow_env, two_monitor_config

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "airflow_local.sh"
COMPONENTS = {"scheduler", "dag-processor", "api-server", "triggerer"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _processes_with(marker: str) -> list[int]:
    """Pids whose environment contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # gone, or not ours to read
                continue
    return found


def _in_session(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _standalone_components(sid: int) -> list[str]:
    """The Airflow components (`airflow scheduler`, ...) running in session `sid`."""
    found = []
    for pid in _in_session(sid):
        argv = _cmdline(pid).split()
        found += [
            command
            for program, command in zip(argv, argv[1:], strict=False)
            if Path(program).name == "airflow" and command in COMPONENTS
        ]
    return found


def test_prepare_fits_every_monitor_and_sigterm_stops_every_process(
    demo_world: Path, tmp_path: Path
):
    config = yaml.safe_load(two_monitor_config(tmp_path / "generated.yaml").read_text())
    config["base_dir"] = str(demo_world / "demo")
    (tmp_path / "monitors.yaml").write_text(yaml.safe_dump(config))
    home, drift_home = tmp_path / "airflow_home", tmp_path / "drift"
    env = airflow_env(
        home,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        DRIFT_HOME=str(drift_home),
        DRIFT_CONFIG=str(tmp_path / "monitors.yaml"),
        # ports of their own: another Airflow on this machine must not matter
        AIRFLOW__API__PORT=str(_free_port()),
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(_free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(_free_port()),
    )
    # DAGS_FOLDER and LOAD_EXAMPLES are the script's to set
    del env["AIRFLOW__CORE__DAGS_FOLDER"], env["AIRFLOW__CORE__LOAD_EXAMPLES"]
    log = tmp_path / "airflow_local.log"
    with open(log, "w") as out:
        script = subprocess.Popen(
            ["bash", str(SCRIPT)], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        # standalone and at least two of its components (scheduler, api-server, ...)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert script.poll() is None, log.read_text()[-3000:]
            if len(_standalone_components(script.pid)) >= 2:
                break
            time.sleep(1)
        else:
            raise AssertionError(
                "airflow standalone started no components:\n" + log.read_text()[-3000:]
            )

        output = log.read_text()
        assert "fitting alpha" in output and "fitting beta" in output, output[-3000:]
        with sqlite3.connect(drift_home / "drift.db") as conn:
            active = conn.execute(
                "SELECT m.name FROM model_versions v JOIN monitored_models m ON m.id = v.monitor_id "
                "WHERE v.status = 'active' ORDER BY m.name"
            ).fetchall()
        assert active == [("alpha",), ("beta",)]
        assert (home / "airflow.cfg").is_file()  # AIRFLOW_HOME from the environment

        started = _processes_with(str(home))
        assert len(started) >= 3
        os.kill(script.pid, signal.SIGTERM)  # the script alone: it must stop the rest
        assert script.wait(timeout=60) == 143
        deadline = time.monotonic() + 5  # killed processes are reaped by init
        while (left := _processes_with(str(home))) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left == [], [_cmdline(pid) for pid in left]
        assert _in_session(script.pid) == []
    finally:
        subprocess.run(["pkill", "-KILL", "-s", str(script.pid)], check=False)
