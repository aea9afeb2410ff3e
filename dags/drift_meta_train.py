"""`drift_meta_train`: weekly (or manual) meta-training of each monitor's MOL
initialisation, from the active model, on shifts simulated from its reference data and
the confirmed shifts it was adapted to (docs/methods.md §5.1).

One task per monitor with adaptation enabled (a monitor that never adapts needs no
meta-initialisation), so one monitor's failure neither hides nor blocks another's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import dag, task
from drift_airflow import START_DATE, pipeline_step, task_defaults

from drift.config import load_monitors


@task(execution_timeout=timedelta(hours=4))
def meta_train(monitor_name: str) -> dict[str, Any]:
    from drift import pipeline

    with pipeline_step(monitor_name) as (settings, monitor):
        return pipeline.meta_train(settings, monitor)


@dag(
    dag_id="drift_meta_train",
    schedule="@weekly",
    start_date=START_DATE,
    catchup=False,  # a missed week needs one fresh meta-training, not one per week missed
    max_active_runs=1,
    tags=["driftwatch"],
    doc_md=__doc__,
)
def meta_train_dag() -> None:
    for monitor in load_monitors():
        if not monitor.adaptation.enabled:
            continue
        meta_train.override(task_id=f"meta_train__{monitor.name}", **task_defaults(monitor.name))(
            monitor.name
        )


drift_meta_train = meta_train_dag()
