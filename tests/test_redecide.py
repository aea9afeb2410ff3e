"""A missed night run late re-decides every later night in order: the gate is sequential.

On the demo world (novel-class surge from 2026-11-07): night 7 is missed, 8-11
run, then 7 runs. The verdicts, gate states and drift events must end as in an
uninterrupted run of 4-11, and the run says which later nights it re-decided.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from drift import pipeline
from drift.config import Settings
from drift.store.db import session_scope, upgrade
from drift.store.models import Batch, DriftEvent

NIGHTS = [date(2026, 11, 4) + timedelta(days=i) for i in range(8)]
MISSED = date(2026, 11, 7)  # the first novel-class night


def _state(settings: Settings) -> tuple[list[tuple], list[tuple]]:
    with session_scope(settings.db_url) as session:
        batches = [
            (b.batch_date, b.status, b.verdict, b.gate_state)
            for b in session.scalars(select(Batch).order_by(Batch.batch_date))
        ]
        events = [
            (
                e.status, e.shift_type, e.first_seen, e.last_seen, e.confirmed_on,
                [b.batch_date for b in e.batches], sorted(e.evidence.get("nights", {})),
            )
            for e in session.scalars(select(DriftEvent).order_by(DriftEvent.first_seen))
        ]
    return batches, events


@pytest.fixture
def two_stores(tmp_path, demo_monitor, db_url):
    if db_url.startswith("postgresql"):
        from tests.conftest import create_postgres_database

        other, drop = create_postgres_database()
    else:
        other, drop = f"sqlite:///{tmp_path / 'late.db'}", lambda: None
    upgrade(other)
    stores = []
    for name, url in (("in_order", db_url), ("late", other)):
        settings = Settings(home=tmp_path / name, database_url=url)
        pipeline.fit_monitor(settings, demo_monitor)
        stores.append(settings)
    yield stores
    drop()


def test_a_late_night_re_decides_the_later_ones_like_an_uninterrupted_run(two_stores, demo_monitor):
    in_order, late = two_stores
    for night in NIGHTS:
        pipeline.run_night(in_order, demo_monitor, night)
    expected = _state(in_order)
    assert any(e[4] == MISSED for e in expected[1]), expected[1]  # the surge confirms on its first night

    for night in NIGHTS:
        if night != MISSED:
            pipeline.run_night(late, demo_monitor, night)
    before = _state(late)
    assert before[1] != expected[1]  # without the missed night the event is not what it should be

    decision = pipeline.run_night(late, demo_monitor, MISSED)
    later = [n for n in NIGHTS if n > MISSED]
    assert [d["batch_date"] for d in decision["redecided"]] == [n.isoformat() for n in later]
    was = {b[0].isoformat(): b[2] for b in before[0]}
    assert [d["was"] for d in decision["redecided"]] == [was[n.isoformat()] for n in later]
    assert _state(late) == expected

    # deciding the same night once more changes nothing
    pipeline.run_night(late, demo_monitor, MISSED)
    assert _state(late) == expected
