"""Event kinds on the real store and pipeline: an input-only shift opens an ``input`` event,
gradual warnings live beside shift events (SQLite and Postgres)."""

from __future__ import annotations

import shutil
from datetime import date

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from drift import events, pipeline
from drift.gate import GateDecision
from drift.store.db import get_engine, session_scope, upgrade
from drift.store.models import Batch, DriftEvent, MonitoredModel

CLEAN = [date(2026, 11, 1), date(2026, 11, 2)]
SHIFTED = [date(2026, 11, 3), date(2026, 11, 4)]


def decision(verdict: str, kind: str | None, **state: int) -> GateDecision:
    return GateDecision(verdict, verdict != "ok", {"quiet_nights": 0, **state}, None, {}, [], kind)


def test_advisory_events_live_beside_shift_events_and_expire_on_their_own(db_url: str) -> None:
    upgrade(db_url)
    with Session(get_engine(db_url)) as session:
        monitor = MonitoredModel(name="m")
        session.add(monitor)
        session.flush()

        def night(day: int, d: GateDecision) -> DriftEvent | None:
            batch = Batch(monitor_id=monitor.id, batch_date=date(2026, 1, day))
            session.add(batch)
            session.flush()
            return events.record_decision(session, monitor.id, batch, d, advisory_expire_after=3)

        first = night(1, decision("warn", "input", advisory_quiet_nights=0))
        gradual = night(2, decision("warn", "gradual", advisory_quiet_nights=0))
        assert first is gradual and gradual.kind == "gradual"  # the input event turned gradual
        shift = night(3, decision("confirm", "shift", advisory_quiet_nights=1))
        assert shift is not gradual and shift.kind == "shift" and shift.status == "confirmed"
        assert gradual.status == "warning"  # a shift night does not end the advisory event
        night(4, decision("ok", None, quiet_nights=1, advisory_quiet_nights=2))
        assert gradual.status == "warning" and shift.status == "confirmed"
        night(5, decision("ok", None, quiet_nights=2, advisory_quiet_nights=3))
        assert gradual.status == "resolved" and shift.status == "confirmed"
        assert session.scalars(select(DriftEvent.kind).order_by(DriftEvent.id)).all() == [
            "gradual",
            "shift",
        ]


def test_advisory_events_do_not_block_recalibrating_their_nights(db_url: str) -> None:
    """docs/methods.md §4.1: input and gradual warnings "do not block `drift recalibrate` on
    their nights" (re-baselining is what they advise); a shift warning does."""
    from drift.config import CalibrationWindow
    from drift.pipeline.calibration_window import event_conflict

    upgrade(db_url)
    window = CalibrationWindow(start=date(2026, 1, 1), end=date(2026, 1, 4))
    with Session(get_engine(db_url)) as session:
        monitor = MonitoredModel(name="m")
        session.add(monitor)
        session.flush()
        for day, kind in ((1, "input"), (2, "gradual")):
            batch = Batch(monitor_id=monitor.id, batch_date=date(2026, 1, day))
            session.add(batch)
            session.flush()
            events.record_decision(
                session, monitor.id, batch, decision("warn", kind, advisory_quiet_nights=0)
            )
        (advisory,) = session.scalars(select(DriftEvent)).all()
        assert advisory.kind == "gradual" and advisory.status == "warning"
        assert event_conflict(session, monitor.id, window) is None
        batch = Batch(monitor_id=monitor.id, batch_date=date(2026, 1, 3))
        session.add(batch)
        session.flush()
        shift = events.record_decision(session, monitor.id, batch, decision("warn", "shift"))
        assert shift is not None and shift.kind == "shift"
        assert f"overlap drift event #{shift.id} (warning" in event_conflict(session, monitor.id, window)


@pytest.fixture
def fitted(drift_env, demo_monitor, db_url):
    settings = drift_env(db_url)
    pipeline.fit_monitor(settings, demo_monitor)
    return settings, demo_monitor


def test_an_input_only_shift_opens_an_input_event(fitted, tmp_path) -> None:
    """One pixel column x1.5 on 30% of a night's rows: the OOD rates stay put, the column
    tests move: an ``input`` event on its first or second night, naming the column."""
    from drift.explain import explain_night

    settings, monitor = fitted
    landing = tmp_path / "landing"
    shutil.copytree(monitor.source.landing, landing)
    monitor = monitor.model_copy(deep=True)
    monitor.source.landing = landing
    reference = pd.read_parquet(monitor.reference.path)
    column = str(reference[monitor.source.input_columns].mean().idxmax())
    for night in SHIFTED:
        path = landing / f"ds={night.isoformat()}" / "part-0.parquet"
        frame = pd.read_parquet(path)
        rows = frame.index[: int(0.3 * len(frame))]
        frame[column] = frame[column].astype("float64")
        frame.loc[rows, column] = frame.loc[rows, column] * 1.5
        frame.to_parquet(path)

    decisions = [pipeline.run_night(settings, monitor, night) for night in CLEAN + SHIFTED]
    assert [d["verdict"] for d in decisions[:2]] == ["ok", "ok"]
    opened = [d for d in decisions[2:] if d["event_id"] is not None]
    assert opened, [d["reasons"] for d in decisions]
    with session_scope(settings.db_url) as session:
        kinds = session.scalars(select(DriftEvent.kind)).all()
        assert kinds == ["input"]  # no shift event: the OOD rates did not move
    first = opened[0]
    assert any("input drift" in r and column in r for r in first["reasons"])
    explanation = explain_night(settings, monitor, date.fromisoformat(first["batch_date"]))
    assert explanation.kind == "input" and column in explanation.input_columns
    assert any(column in line for line in explanation.lines() if line.startswith("input drift"))
    # the report's event section: its kind and the reason naming the column
    from drift.report import build_report

    report = build_report(settings, monitor)
    (view,) = [e for e in report.data.events if e.kind == "input"]
    assert any("input drift" in r and column in r for r in view.reasons)
