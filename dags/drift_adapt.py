"""`drift_adapt__<monitor>`: adapt a monitored model after a confirmed shift (docs/architecture.md §1).

    collect -> adapt -> validate -> promote

Scheduled on the monitor's Asset `drift://<monitor>/confirmed_shift`, which its
nightly DAG updates on the night a shift is confirmed; the drift event id comes
in the Asset event's `extra`.

One DAG per monitor rather than one DAG on `asset_a | asset_b | ...`: each
model's adaptations have their own run history and failures, one model's long
adaptation never queues another's, and `max_active_runs=1` serialises exactly
what must be serial, the promotions of one model's versions. Events that arrive
while a run is active come together in the next run, which adapts to the newest.
`adapt` trains the candidates of `adaptation.method` (auto: every applicable
method), `validate` judges each and `promote` promotes the best that passed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, dag, task
from drift_airflow import (
    confirmed_shift_asset,
    latest_event_extra,
    pipeline_step,
    start_date_of,
    task_defaults,
)

from drift.config import MonitorConfig, load_monitors


def adapt_dag(monitor: MonitorConfig) -> DAG:
    name = monitor.name
    confirmed_shift = confirmed_shift_asset(name)

    @dag(
        dag_id=f"drift_adapt__{name}",
        schedule=[confirmed_shift],
        start_date=start_date_of(monitor),
        catchup=False,
        max_active_runs=1,  # one model's candidates are promoted one at a time
        default_args=task_defaults(name),
        tags=["driftwatch", name],
        doc_md=__doc__,
    )
    def adaptation() -> None:
        @task(execution_timeout=timedelta(minutes=30))
        def collect(*, triggering_asset_events: Any = None) -> dict[str, Any]:
            from drift import pipeline

            shift = latest_event_extra(triggering_asset_events, confirmed_shift)
            with pipeline_step(name) as (settings, monitor):
                return pipeline.collect_adaptation_data(settings, monitor, shift["event_id"])

        @task(execution_timeout=timedelta(hours=2))
        def adapt(collected: dict[str, Any]) -> dict[str, Any]:
            from drift import pipeline

            with pipeline_step(name) as (settings, monitor):
                return pipeline.adapt(settings, monitor, collected)

        @task(execution_timeout=timedelta(hours=1))
        def validate(candidate: dict[str, Any]) -> dict[str, Any]:
            from drift import pipeline

            with pipeline_step(name) as (settings, monitor):
                return pipeline.validate_candidate(settings, monitor, candidate)

        @task(execution_timeout=timedelta(minutes=30))
        def promote(validation: dict[str, Any]) -> dict[str, Any]:
            from drift import pipeline

            with pipeline_step(name) as (settings, monitor):
                return pipeline.promote_candidate(settings, monitor, validation)

        promote(validate(adapt(collect())))

    return adaptation()


for _monitor in load_monitors():
    if _monitor.adaptation.enabled:
        globals()[f"drift_adapt__{_monitor.name}"] = adapt_dag(_monitor)
