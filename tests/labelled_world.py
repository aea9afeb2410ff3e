"""The world both Airflow label tests start from (test_airflow_feedback, test_airflow_api).

The demo world's files with a feedback landing folder; in-process, the occluded-digits
nights 12-16 run with each night's labels imported the next day, so the covariate event
confirmed on night 14 waits for labels (fewer than ``min_labels``, 200).
"""

from __future__ import annotations

from datetime import date, timedelta
from importlib import resources
from pathlib import Path

FIRST_NIGHT = date(2026, 11, 1)
NIGHTS = range(12, 17)  # quiet 12-13, occluded from 14 (the demo script)


def night(n: int) -> date:
    return FIRST_NIGHT + timedelta(days=n - 1)


def world_files(demo_world: Path, root: Path) -> tuple[Path, Path]:
    """The demo world's files (linked) with a feedback landing folder; returns the config
    and the folder the labels land in."""
    demo, source = root / "demo", demo_world / "demo"
    demo.mkdir(parents=True)
    for item in source.iterdir():
        (demo / item.name).symlink_to(item)
    config = (resources.files("drift") / "demo_monitor.yaml").read_text()
    config = config.replace("base_dir: ${DRIFT_HOME}/demo", f"base_dir: {demo}")
    config = config.replace(
        "    adaptation:\n", "    adaptation:\n      feedback_landing: labels_landing\n"
    )
    path = root / "monitors.yaml"
    path.write_text(config)
    return path, demo / "labels_landing"


def event_waiting_for_labels(settings, monitor, feedback: Path) -> int:
    """Fit, run nights 12-16 with the day-late labels; the confirmed event's id."""
    from drift import pipeline

    pipeline.fit_monitor(settings, monitor)
    event_id = None
    for n in NIGHTS:
        if n > NIGHTS[0]:
            imported = pipeline.import_feedback(
                settings, monitor, feedback / f"labels-{night(n - 1)}.csv"
            )
            assert imported["adaptation_requested"] == []
        decision = pipeline.run_night(settings, monitor, night(n))
        event_id = event_id or (decision["event_id"] if decision["newly_confirmed"] else None)
    assert event_id is not None
    return event_id


def prepare_airflow(env: dict[str, str]) -> None:
    """`airflow db migrate` and `airflow dags reserialize` in the environment ``env``."""
    from tests.conftest import run_module

    for step in (("db", "migrate"), ("dags", "reserialize")):
        done = run_module("airflow", *step, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
