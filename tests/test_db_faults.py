"""A Postgres connection terminated mid-night: the night fails in one line, recorded with
its alert, and no SQL or parameters reach the error, the batch row or the alert."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import create_engine, event, select, text

from drift import pipeline
from drift.store.db import get_engine, session_scope
from drift.store.models import Alert, Batch

pytestmark = pytest.mark.postgres

NIGHT = date(2026, 11, 2)


def test_a_connection_terminated_mid_night_is_one_line(drift_env, demo_monitor, postgres_url):
    settings = drift_env(postgres_url)
    pipeline.fit_monitor(settings, demo_monitor)
    admin = create_engine(postgres_url)
    killed: list[int] = []

    def terminate_before_the_tests_are_saved(connection, cursor, statement, *_):
        if "INSERT INTO drift_tests" in statement and not killed:
            pid = connection.connection.dbapi_connection.get_backend_pid()
            with admin.begin() as other:
                other.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid})
            killed.append(pid)

    engine = get_engine(postgres_url)
    event.listen(engine, "before_cursor_execute", terminate_before_the_tests_are_saved)
    try:
        with pytest.raises(pipeline.BatchFailedError) as failure:
            pipeline.run_night(settings, demo_monitor, NIGHT)
    finally:
        event.remove(engine, "before_cursor_execute", terminate_before_the_tests_are_saved)
        admin.dispose()
    assert killed
    message = str(failure.value)
    assert "\n" not in message and "[SQL" not in message and "parameters" not in message, message
    assert "OperationalError" in message and "connection" in message, message

    with session_scope(postgres_url) as session:
        batch = session.scalars(select(Batch)).one()
        alert = session.scalars(select(Alert)).one()
        assert batch.status == "failed" and "\n" not in batch.error and "[SQL" not in batch.error
        assert alert.kind == "batch_failed" and "\n" not in alert.message and "[SQL" not in alert.message
    # the next night runs on a fresh connection
    assert pipeline.run_night(settings, demo_monitor, date(2026, 11, 3))["verdict"] in {"ok", "warn", "confirm"}
