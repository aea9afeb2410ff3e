"""`drift_nightly__<monitor>`: one nightly DAG per monitor in the config (docs/architecture.md §1).

    discover -> shards -> score (mapped: one task per shard) -> aggregate -> decide
        -> alert
        -> publish_confirmed_shift

A run processes the night of its logical date, `{{ ds }}`. The schedule is a
`CronDataIntervalTimetable`: the run for night D starts when D's interval ends
(the monitor's cron time on D+1) and its logical date is D, so the scheduler,
a backfill and `airflow dags test drift_nightly__<monitor> D` all read
`landing/ds=D`.

`publish_confirmed_shift` carries the Asset `drift://<monitor>/confirmed_shift`
and is skipped unless the night newly confirmed a shift: a skipped task emits no
Asset event, so `drift_adapt__<monitor>` runs only on confirmed shifts.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, dag, task
from airflow.sdk.exceptions import AirflowSkipException
from drift_airflow import (
    confirmed_shift_asset,
    pipeline_step,
    record_failed_night,
    start_date_of,
    task_defaults,
)

from drift.config import MonitorConfig, load_monitors

#: what travels with the Asset event to the adaptation DAG
EVENT_EVIDENCE = ("event_id", "batch_date", "shift_type", "verdict", "ood_rate", "reasons")


def nightly_dag(monitor: MonitorConfig) -> DAG:
    name = monitor.name
    confirmed_shift = confirmed_shift_asset(name)
    # a failed verdict step marks the night failed in the event store (one alert per night)
    verdict_step = {"on_failure_callback": record_failed_night(name)}

    @dag(
        dag_id=f"drift_nightly__{name}",
        schedule=CronDataIntervalTimetable(monitor.schedule, timezone="UTC"),
        start_date=start_date_of(monitor),
        catchup=True,  # a new monitor or an outage: every missed night runs, oldest first
        # The gate is sequential: night D continues the CUSUM state left by the last
        # decided night before D. One run at a time keeps nights in date order.
        max_active_runs=1,
        default_args=task_defaults(name),
        tags=["driftwatch", name],
        doc_md=__doc__,
    )
    def nightly() -> None:
        @task(execution_timeout=timedelta(minutes=15), **verdict_step)
        def discover(batch_date: str) -> dict[str, Any]:
            from drift import pipeline

            with pipeline_step(name) as (settings, monitor):
                return pipeline.discover(settings, monitor, date.fromisoformat(batch_date))

        @task(execution_timeout=timedelta(minutes=5))
        def shards(plan: dict[str, Any]) -> list[dict[str, int]]:
            """The plan's row ranges: Airflow maps only over a task's whole return value."""
            return plan["shards"]

        @task(execution_timeout=timedelta(hours=1), **verdict_step)
        def score(plan: dict[str, Any], shard: dict[str, int]) -> dict[str, Any]:
            from drift import pipeline

            with pipeline_step(name) as (settings, monitor):
                return pipeline.score_shard(settings, monitor, plan, shard)

        @task(execution_timeout=timedelta(minutes=30), **verdict_step)
        def aggregate(plan: dict[str, Any], summaries: list[dict[str, Any]]) -> dict[str, Any]:
            from drift import pipeline

            with pipeline_step(name) as (settings, monitor):
                return pipeline.aggregate(settings, monitor, plan, list(summaries))

        @task(execution_timeout=timedelta(minutes=10), **verdict_step)
        def decide(night: dict[str, Any]) -> dict[str, Any]:
            from drift import pipeline

            with pipeline_step(name) as (settings, monitor):
                return pipeline.decide(settings, monitor, date.fromisoformat(night["batch_date"]))

        @task(execution_timeout=timedelta(minutes=10))
        def alert(decision: dict[str, Any]) -> list[str]:
            from drift import pipeline

            with pipeline_step(name) as (settings, monitor):
                return pipeline.send_alerts(settings, monitor, decision)

        @task(outlets=[confirmed_shift], execution_timeout=timedelta(minutes=5))
        def publish_confirmed_shift(decision: dict[str, Any], *, outlet_events: Any = None) -> None:
            if not decision["newly_confirmed"]:
                night, verdict = decision["batch_date"], decision["verdict"]
                raise AirflowSkipException(f"{night}: verdict {verdict}, no newly confirmed shift")
            outlet_events[confirmed_shift].extra = {key: decision[key] for key in EVENT_EVIDENCE}

        plan = discover(batch_date="{{ ds }}")
        summaries = score.partial(plan=plan).expand(shard=shards(plan))
        decision = decide(aggregate(plan, summaries))
        alert(decision)
        publish_confirmed_shift(decision)

    return nightly()


for _monitor in load_monitors():
    globals()[f"drift_nightly__{_monitor.name}"] = nightly_dag(_monitor)
