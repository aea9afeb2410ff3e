"""`drift_feedback__<monitor>`: delayed labels that land as files start the adaptation
(docs/architecture.md §1).

    import_labels -> publish_labelled_shift

A run for day D imports every labels file (CSV or parquet: batch_date, row_id, label)
under `<adaptation.feedback_landing>/<source.partition of D>`, types the labelled
events again and records an adaptation request for a confirmed covariate event that
now has `adaptation.min_labels` labelled rows. `publish_labelled_shift` carries the
monitor's Asset `drift://<monitor>/confirmed_shift` and emits the newest pending
request (also those `drift feedback import` recorded), so `drift_adapt__<monitor>`
runs with no manual trigger; with none pending it is skipped and emits nothing.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, dag, task
from airflow.sdk.exceptions import AirflowSkipException
from drift_airflow import confirmed_shift_asset, pipeline_step, start_date_of, task_defaults

from drift.config import MonitorConfig, load_monitors


def feedback_dag(monitor: MonitorConfig) -> DAG:
    name = monitor.name
    confirmed_shift = confirmed_shift_asset(name)

    @dag(
        dag_id=f"drift_feedback__{name}",
        schedule=CronDataIntervalTimetable(monitor.schedule, timezone="UTC"),
        start_date=start_date_of(monitor),
        catchup=False,  # importing is idempotent; a missed day's files are read by hand
        max_active_runs=1,
        default_args=task_defaults(name),
        tags=["driftwatch", name],
        doc_md=__doc__,
    )
    def feedback() -> None:
        @task(execution_timeout=timedelta(minutes=30))
        def import_labels(landed_on: str) -> list[dict[str, Any]]:
            from drift import pipeline

            with pipeline_step(name) as (settings, monitor):
                imports = pipeline.import_landed_feedback(
                    settings, monitor, date.fromisoformat(landed_on)
                )
                return [dict(i) for i in imports]

        @task(outlets=[confirmed_shift], execution_timeout=timedelta(minutes=5))
        def publish_labelled_shift(
            imports: list[dict[str, Any]], *, outlet_events: Any = None
        ) -> None:
            from drift import pipeline

            with pipeline_step(name) as (settings, monitor):
                request = pipeline.take_adaptation_request(settings, monitor)
            if request is None:
                raise AirflowSkipException(
                    f"{len(imports)} labels file(s) imported; no event waits for an adaptation"
                )
            outlet_events[confirmed_shift].extra = request

        publish_labelled_shift(import_labels(landed_on="{{ ds }}"))

    return feedback()


for _monitor in load_monitors():
    if _monitor.adaptation.enabled:
        globals()[f"drift_feedback__{_monitor.name}"] = feedback_dag(_monitor)
