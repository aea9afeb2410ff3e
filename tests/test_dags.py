"""DAG integrity: the DAG files parse with no import errors, generate one nightly and
one adaptation DAG per monitor, wire the tasks as designed, link nightly to
adaptation through the Asset, and import nothing heavy at parse time.

Airflow is parsed in a subprocess: it reads AIRFLOW_HOME and configures logging
when first imported, which must neither depend on nor disturb the other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"

# Parses the dags folder the way the dag processor does (BundleDagBag puts the
# bundle folder on sys.path), once per monitor config, and prints the structure.
INSPECT = r"""
import json, os, sys
from pathlib import Path
from airflow.dag_processing.dagbag import BundleDagBag

def describe(dag):
    condition = getattr(dag.timetable, "asset_condition", None)
    return {
        "schedule": getattr(dag.timetable, "expression", None),
        "timetable": type(dag.timetable).__name__,
        "triggered_by": sorted(a.uri for a in condition.objects) if condition else [],
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "tasks": {
            t.task_id: {
                "downstream": sorted(t.downstream_task_ids),
                "outlets": [o.uri for o in t.outlets],
                "mapped": t.is_mapped,
                "retries": t.retries,
                "execution_timeout": bool(t.execution_timeout),
                "has_failure_callback": bool(t.on_failure_callback),
            }
            for t in dag.tasks
        },
    }

result = {}
for label, config in json.loads(sys.argv[1]).items():
    os.environ["DRIFT_CONFIG"] = config
    bag = BundleDagBag(dag_folder=sys.argv[2], bundle_path=Path(sys.argv[2]))
    result[label] = {
        "import_errors": bag.import_errors,
        "files": sorted(Path(f).name for f in bag.file_last_changed),
        "dags": {dag_id: describe(dag) for dag_id, dag in bag.dags.items()},
    }
result["heavy_modules"] = sorted({"torch", "faiss", "evidently"} & set(sys.modules))
print("DAGS-JSON" + json.dumps(result))
"""


def airflow_env(airflow_home: Path, **extra: str) -> dict[str, str]:
    """The environment of an Airflow subprocess: its own home, this repo's dags, no examples."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DRIFT_"))}
    env.update(
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        **extra,
    )
    return env


def two_monitor_config(path: Path) -> Path:
    """The demo monitor twice, as `alpha` (adaptation on) and `beta` (off, hourly)."""
    demo = yaml.safe_load((resources.files("drift") / "demo_monitor.yaml").read_text())
    alpha = demo["monitors"][0] | {"name": "alpha"}
    beta = alpha | {"name": "beta", "schedule": "0 * * * *", "adaptation": {"enabled": False}}
    path.write_text(yaml.safe_dump(demo | {"monitors": [alpha, beta]}))
    return path


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("dagbag")
    configs = {
        "demo": str(resources.files("drift") / "demo_monitor.yaml"),
        "two": str(two_monitor_config(tmp / "two_monitors.yaml")),
    }
    done = subprocess.run(
        [sys.executable, "-c", INSPECT, json.dumps(configs), str(DAGS)],
        env=airflow_env(tmp / "airflow", DRIFT_HOME=str(tmp / "drift")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    marker = [line for line in done.stdout.splitlines() if line.startswith("DAGS-JSON")]
    assert done.returncode == 0 and marker, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(marker[0].removeprefix("DAGS-JSON"))


def test_dag_files_import_without_errors(parsed):
    for label in ("demo", "two"):
        assert parsed[label]["import_errors"] == {}
        # the helper module is not a DAG file (.airflowignore)
        dag_files = ["drift_adapt.py", "drift_feedback.py", "drift_meta_train.py", "drift_nightly.py"]
        assert parsed[label]["files"] == dag_files


def test_one_nightly_and_one_adaptation_dag_per_monitor(parsed):
    assert set(parsed["demo"]["dags"]) == {
        "drift_nightly__digits_demo",
        "drift_adapt__digits_demo",
        "drift_feedback__digits_demo",
        "drift_meta_train",
    }
    two = parsed["two"]["dags"]
    assert set(two) == {
        "drift_nightly__alpha",
        "drift_nightly__beta",
        "drift_adapt__alpha",  # beta has adaptation disabled
        "drift_feedback__alpha",
        "drift_meta_train",
    }
    # beta never adapts, so it gets no meta-initialisation either
    assert set(two["drift_meta_train"]["tasks"]) == {"meta_train__alpha"}
    assert two["drift_nightly__beta"]["schedule"] == "0 * * * *"


def test_nightly_dag_runs_the_flow_in_order(parsed):
    dag = parsed["demo"]["dags"]["drift_nightly__digits_demo"]
    downstream = {task_id: task["downstream"] for task_id, task in dag["tasks"].items()}
    assert downstream == {
        "discover": ["aggregate", "score", "shards"],
        "shards": ["score"],
        "score": ["aggregate"],
        "aggregate": ["decide"],
        "decide": ["alert", "publish_confirmed_shift"],
        "alert": [],
        "publish_confirmed_shift": [],
    }
    assert dag["tasks"]["score"]["mapped"]
    # cron from the config; the logical date is the night processed (data-interval timetable)
    assert dag["schedule"] == "0 2 * * *" and dag["timetable"] == "CronDataIntervalTimetable"
    assert dag["catchup"] is True and dag["max_active_runs"] == 1
    for task_id, task in dag["tasks"].items():
        assert task["retries"] > 0, task_id
        assert task["execution_timeout"], task_id
        assert task["has_failure_callback"], task_id


def test_the_asset_links_nightly_to_adaptation(parsed):
    dags = parsed["demo"]["dags"]
    asset = "drift://digits_demo/confirmed_shift"
    outlets = {
        task_id: task["outlets"]
        for task_id, task in dags["drift_nightly__digits_demo"]["tasks"].items()
        if task["outlets"]
    }
    assert outlets == {"publish_confirmed_shift": [asset]}
    # labels that arrive later emit the same Asset from the feedback DAG
    feedback = dags["drift_feedback__digits_demo"]["tasks"]
    assert {task_id: (task["downstream"], task["outlets"]) for task_id, task in feedback.items()} == {
        "import_labels": (["publish_labelled_shift"], []),
        "publish_labelled_shift": ([], [asset]),
    }
    adapt = dags["drift_adapt__digits_demo"]
    assert adapt["triggered_by"] == [asset]
    assert {task_id: task["downstream"] for task_id, task in adapt["tasks"].items()} == {
        "collect": ["adapt"],
        "adapt": ["validate"],
        "validate": ["promote"],
        "promote": [],
    }
    assert adapt["max_active_runs"] == 1
    # each monitor's adaptation listens to its own nightly DAG only
    assert parsed["two"]["dags"]["drift_adapt__alpha"]["triggered_by"] == [
        "drift://alpha/confirmed_shift"
    ]


def test_meta_training_is_weekly_and_manual(parsed):
    dag = parsed["demo"]["dags"]["drift_meta_train"]
    assert dag["schedule"] == "0 0 * * 0" and dag["catchup"] is False


def test_dag_files_import_no_heavy_modules(parsed):
    assert parsed["heavy_modules"] == []
