"""What the driftwatch DAGs share: the Asset per monitor, settings with the Airflow
connection, the step wrapper and the failure callbacks.

This is the only module that joins `airflow` and `drift` (the `drift` package
imports no Airflow). It holds no DAG: `.airflowignore` keeps the dag processor
from parsing it, and the DAG files import it from the bundle folder, which
Airflow puts on `sys.path`. Module level imports stay light (airflow.sdk and
drift.config); the pipeline, torch and database engines load inside functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from drift.airflow_api import confirmed_shift_uri
from drift.config import MonitorConfig, Settings, get_monitor
from drift.model_files import first_line

#: Airflow connection of the event store; without it, DRIFT_DATABASE_URL (or the default) is used
DRIFT_DB_CONN_ID = "drift_db"

#: first night the scheduler creates runs for (catchup) when a monitor sets no start_date;
#: the demo's first night
START_DATE = pendulum.datetime(2026, 11, 1, tz="UTC")


def start_date_of(monitor: MonitorConfig) -> pendulum.DateTime:
    if monitor.start_date is None:
        return START_DATE
    return pendulum.datetime(monitor.start_date.year, monitor.start_date.month, monitor.start_date.day, tz="UTC")


def task_defaults(monitor_name: str) -> dict[str, Any]:
    """Retries with exponential backoff (2, 4, 8 min) for transient trouble such as a
    database restart, and an alert when a task has failed for good."""
    return {
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "on_failure_callback": alert_failed_task(monitor_name),
    }


def confirmed_shift_asset(monitor_name: str) -> Asset:
    """Updated by a monitor's nightly DAG on the night a shift is confirmed.

    Airflow 3.3 accepts the `drift://` scheme as is: schemes without a registered
    normaliser are only checked for well-formedness, and only `airflow://` is reserved.
    """
    return Asset(name=f"{monitor_name}_confirmed_shift", uri=confirmed_shift_uri(monitor_name))


def drift_settings() -> Settings:
    """Settings for a task; the event store is the `drift_db` connection when it exists."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    settings = Settings()
    # psycopg2 on purpose: the hook would build psycopg3 URLs, the project uses psycopg2
    hook = PostgresHook(postgres_conn_id=DRIFT_DB_CONN_ID, sqlalchemy_scheme="postgresql+psycopg2")
    try:
        url = hook.sqlalchemy_url
    except AirflowNotFoundException:
        return settings
    return settings.model_copy(update={"database_url": url.render_as_string(hide_password=False)})


def resolve(monitor_name: str) -> tuple[Settings, MonitorConfig]:
    settings = drift_settings()
    return settings, get_monitor(monitor_name, settings=settings)


@contextmanager
def pipeline_step(monitor_name: str) -> Iterator[tuple[Settings, MonitorConfig]]:
    """Settings and monitor config for one pipeline call.

    A `BatchFailedError` (invalid data, no fitted model) fails the task for good:
    retrying cannot fix the data. Anything else, such as the database being down,
    fails it normally so that it retries.
    """
    from drift.pipeline import BatchFailedError

    try:
        yield resolve(monitor_name)
    except BatchFailedError as exc:
        raise AirflowFailException(str(exc)) from exc


def _failure_text(context: Context) -> str:
    ti = context["ti"]
    where = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
    exc = context.get("exception")
    # one line: a database error's text goes on with its SQL and parameters
    reason = first_line(exc) if isinstance(exc, BaseException) else str(exc)
    return f"task {where} failed: {reason}"


def record_failed_night(monitor_name: str) -> Callable[[Context], None]:
    """Failure callback of the steps that produce a night's verdict: the batch is
    recorded as failed with the reason and alerts once per night (the pipeline's
    dedupe key), however many tasks or re-runs fail."""

    def callback(context: Context) -> None:
        from drift.pipeline import record_failure

        settings, monitor = resolve(monitor_name)
        record_failure(settings, monitor, date.fromisoformat(context["ds"]), _failure_text(context))

    return callback


def alert_failed_task(monitor_name: str) -> Callable[[Context], None]:
    """Failure callback of the other tasks: one `task_failed` alert per DAG run and task."""

    def callback(context: Context) -> None:
        from drift import alerts
        from drift.store import repo
        from drift.store.db import session_scope

        ti = context["ti"]
        settings, monitor = resolve(monitor_name)
        with session_scope(settings.db_url) as session:
            monitor_row = repo.get_monitor_row(session, monitor.name)
            alerts.dispatch(
                session,
                monitor.alerts,
                kind="task_failed",
                dedupe_key=f"{ti.dag_id}:{ti.run_id}:{ti.task_id}:{ti.map_index}",
                message=f"[{monitor.name}] {ti.dag_id} {ti.run_id}: {_failure_text(context)}",
                payload={
                    "dag_id": ti.dag_id,
                    "run_id": ti.run_id,
                    "task_id": ti.task_id,
                    "map_index": ti.map_index,
                    "try_number": ti.try_number,
                    "error": str(context.get("exception")),
                },
                monitor_id=monitor_row.id if monitor_row else None,
            )

    return callback


def latest_event_extra(events: Any, asset: Asset) -> dict[str, Any]:
    """The `extra` of the newest event on `asset` among a run's triggering asset events
    (events queued while a run was active arrive together; the newest supersedes them)."""
    received = sorted(events.get(asset, []), key=lambda event: event.timestamp)
    if not received:
        raise AirflowFailException(
            f"no event on {asset.uri}: this DAG runs when the nightly DAG confirms a shift "
            "(to re-run one, create an asset event with extra {'event_id': <id>})"
        )
    return dict(received[-1].extra)
