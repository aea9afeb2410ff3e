"""Event store: migrations on both dialects, portable types, idempotent concurrent upserts."""

from __future__ import annotations

import math
import multiprocessing
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text

from drift.store import repo
from drift.store.db import current_revision, downgrade, get_engine, session_scope, upgrade
from drift.store.models import Base, Batch, DetectorScore, MonitoredModel

TABLES = {
    "monitored_models", "model_versions", "batches", "detector_scores", "drift_tests",
    "drift_events", "drift_event_batches", "adaptations", "alerts", "feedback_labels", "audit_log",
    "night_performance",
}
VIEWS = {"v_daily_ood_rate", "v_open_events", "v_daily_performance"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("empty_postgres_url")


def test_migrations_upgrade_downgrade_round_trip(empty_url):
    upgrade(empty_url)
    assert current_revision(empty_url) == "0006_gate"
    inspector = inspect(get_engine(empty_url))
    assert TABLES <= set(inspector.get_table_names())
    assert VIEWS <= set(inspector.get_view_names())

    downgrade(empty_url, "base")
    inspector = inspect(get_engine(empty_url))
    assert not TABLES & set(inspector.get_table_names())
    assert current_revision(empty_url) is None

    upgrade(empty_url)  # and back up again
    assert current_revision(empty_url) == "0006_gate"


def test_models_and_migrations_agree(db_url):
    """What `alembic check` does: the ORM has no change that no migration carries."""
    with get_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert diff == []


def test_timestamps_come_back_aware_utc_and_json_drops_nan(db_url):
    local = datetime(2026, 11, 27, 3, 0, tzinfo=timezone(timedelta(hours=2)))
    with session_scope(db_url) as session:
        monitor = repo.ensure_monitor(session, "m", {"score": math.nan, "ok": 1.5, "inf": math.inf})
        monitor.created_at = local
    with session_scope(db_url) as session:
        row = session.scalars(select(MonitoredModel)).one()
        assert row.created_at == local and row.created_at.tzinfo == UTC
        assert row.config == {"score": None, "ok": 1.5, "inf": None}


def test_naive_timestamps_are_refused(sqlite_url):
    with pytest.raises(Exception, match="naive datetime"), session_scope(sqlite_url) as session:
        monitor = repo.ensure_monitor(session, "m")
        monitor.created_at = datetime(2026, 1, 1)


def test_views_report_succeeded_nights(db_url):
    with session_scope(db_url) as session:
        monitor = repo.ensure_monitor(session, "m")
        batch = repo.start_batch(session, monitor.id, date(2026, 11, 1), {})
        repo.save_detector_scores(session, batch.id, [_score_row("knn", 0.2)])
        batch.status = "succeeded"
    with get_engine(db_url).connect() as conn:
        rows = conn.execute(text("SELECT monitor, detector, ood_rate FROM v_daily_ood_rate")).all()
    assert [tuple(r) for r in rows] == [("m", "knn", 0.2)]


def _score_row(detector: str, rate: float) -> dict:
    return {
        "detector": detector, "n_rows": 100, "n_flagged": int(rate * 100), "ood_rate": rate,
        "mean_score": 1.0, "threshold": 2.0, "p_value": 0.5, "details": {},
    }


def _write_nights(url: str, nights: list[str], rate: float) -> None:
    """One worker: registers nights and their scores, each in its own transaction."""
    for night in nights:
        with session_scope(url) as session:
            monitor = repo.ensure_monitor(session, "shared")
            batch = repo.start_batch(session, monitor.id, date.fromisoformat(night), {"worker": rate})
            repo.save_detector_scores(session, batch.id, [_score_row("knn", rate), _score_row("energy", rate)])


@pytest.mark.postgres
def test_concurrent_writers_leave_no_duplicate_and_lose_no_row(postgres_url):
    days = [(date(2026, 1, 1) + timedelta(days=i)).isoformat() for i in range(30)]
    own_a, own_b = days[:10], days[10:20]
    shared = days[20:]
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_write_nights, args=(postgres_url, own_a + shared, 0.1)),
        ctx.Process(target=_write_nights, args=(postgres_url, own_b + shared, 0.2)),
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    with session_scope(postgres_url) as session:
        assert session.scalar(select(func.count()).select_from(MonitoredModel)) == 1
        dates = session.scalars(select(Batch.batch_date)).all()
        assert sorted(d.isoformat() for d in dates) == days  # every night once
        assert session.scalar(select(func.count()).select_from(DetectorScore)) == 2 * len(days)
