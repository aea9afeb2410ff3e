"""Drift-event lifecycle on SQLite and Postgres: open, extend, confirm, expire, re-run."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drift.events import InvalidTransitionError, list_events, record_decision, set_event_status
from drift.gate import GateDecision
from drift.store.db import get_engine
from drift.store.models import Batch, DriftEvent, DriftEventBatch, MonitoredModel

START = date(2025, 5, 1)


def decision(verdict: str, quiet_nights: int = 0, shift_type: str | None = "semantic") -> GateDecision:
    return GateDecision(
        verdict=verdict,
        significant=verdict != "ok",
        state={"version": 1, "quiet_nights": quiet_nights},
        shift_type=None if verdict == "ok" else shift_type,
        evidence={"decisive": ["flag_count:knn"] if verdict != "ok" else []},
        reasons=[f"{verdict} reason"],
    )


class Monitor:
    """A monitor row and a helper that records one night's decision in its own transaction."""

    def __init__(self, url: str, name: str = "digits"):
        self.engine = get_engine(url)
        with Session(self.engine) as session, session.begin():
            row = MonitoredModel(name=name)
            session.add(row)
            session.flush()
            self.id = row.id

    def night(self, day: int, gate_decision: GateDecision) -> int | None:
        with Session(self.engine) as session, session.begin():
            batch_date = START + timedelta(days=day)
            batch = session.scalars(
                select(Batch).where(Batch.monitor_id == self.id, Batch.batch_date == batch_date)
            ).first()
            if batch is None:
                batch = Batch(monitor_id=self.id, batch_date=batch_date)
                session.add(batch)
                session.flush()
            event = record_decision(session, self.id, batch, gate_decision)
            return event.id if event else None

    def counts(self) -> tuple[int, int]:
        with Session(self.engine) as session:
            events = session.scalar(select(func.count()).select_from(DriftEvent))
            links = session.scalar(select(func.count()).select_from(DriftEventBatch))
            return events, links


def test_warning_then_confirm_then_adapt_then_resolve(db_url: str) -> None:
    monitor = Monitor(db_url)
    assert monitor.night(0, decision("ok", quiet_nights=1)) is None
    first = monitor.night(1, decision("warn"))
    assert monitor.night(2, decision("confirm")) == first
    assert monitor.night(3, decision("warn")) == first  # extends the confirmed event
    with Session(monitor.engine) as session, session.begin():
        event = session.get(DriftEvent, first)
        assert event.status == "confirmed"
        assert (event.first_seen, event.confirmed_on, event.last_seen) == (
            START + timedelta(1), START + timedelta(2), START + timedelta(3)
        )
        assert event.shift_type == "semantic"
        assert event.evidence["first_seen"] == (START + timedelta(1)).isoformat()
        assert set(event.evidence["nights"]) == {(START + timedelta(d)).isoformat() for d in (1, 2, 3)}
        assert [b.batch_date.day for b in event.batches] == [2, 3, 4]
        assert event.batches[1].verdict == "confirm"
        assert event.batches[1].gate_state["quiet_nights"] == 0
        with pytest.raises(InvalidTransitionError):
            set_event_status(session, first, "warning")
        set_event_status(session, first, "adapting")
        set_event_status(session, first, "adapting")  # a retried task: no-op
        set_event_status(session, first, "resolved")
        assert event.resolved_at is not None
        with pytest.raises(InvalidTransitionError):
            set_event_status(session, first, "confirmed")
    # a new shift after the resolved one opens a new event
    assert monitor.night(10, decision("confirm")) not in (None, first)


def test_re_deciding_a_night_gives_the_same_rows(db_url: str) -> None:
    monitor = Monitor(db_url)
    for day, verdict in enumerate(["warn", "confirm", "warn"]):
        monitor.night(day, decision(verdict))
    before = monitor.counts()
    for day, verdict in enumerate(["warn", "confirm", "warn"]):  # the whole stretch re-run
        monitor.night(day, decision(verdict))
    assert monitor.counts() == before == (1, 3)
    with Session(monitor.engine) as session:
        (event,) = list_events(session)
        assert event.confirmed_on == START + timedelta(1)  # not moved by the re-run


def test_an_unconfirmed_warning_expires_after_quiet_nights(db_url: str) -> None:
    monitor = Monitor(db_url)
    event_id = monitor.night(0, decision("warn"))
    for day, quiet in ((1, 1), (2, 2)):
        monitor.night(day, decision("ok", quiet_nights=quiet))
    with Session(monitor.engine) as session:
        assert session.get(DriftEvent, event_id).status == "warning"
    monitor.night(3, decision("ok", quiet_nights=3))
    with Session(monitor.engine) as session:
        event = session.get(DriftEvent, event_id)
        assert event.status == "resolved" and "expired" in event.evidence["resolution"]
    assert monitor.night(4, decision("warn")) != event_id


def test_a_confirmed_shift_that_recedes_is_resolved_and_the_next_shift_is_new(db_url: str) -> None:
    monitor = Monitor(db_url)
    event_id = monitor.night(0, decision("confirm"))
    monitor.night(1, decision("ok", quiet_nights=1))
    monitor.night(2, decision("ok", quiet_nights=2))
    with Session(monitor.engine) as session:
        assert session.get(DriftEvent, event_id).status == "confirmed"
    monitor.night(3, decision("ok", quiet_nights=3))
    with Session(monitor.engine) as session:
        event = session.get(DriftEvent, event_id)
        assert event.status == "resolved" and "receded" in event.evidence["resolution"]
    assert monitor.night(4, decision("confirm")) != event_id


def test_list_events_filters(db_url: str) -> None:
    digits, other = Monitor(db_url, "digits"), Monitor(db_url, "other")
    digits.night(0, decision("warn"))
    digits.night(1, decision("confirm"))
    other.night(5, decision("warn"))
    with Session(digits.engine) as session:
        assert len(list_events(session)) == 2
        assert [e.monitor_id for e in list_events(session, monitor="other")] == [other.id]
        assert [e.status for e in list_events(session, monitor=digits.id)] == ["confirmed"]
        assert [e.monitor_id for e in list_events(session, status="warning")] == [other.id]
        assert len(list_events(session, status=["warning", "confirmed"], since=START + timedelta(3))) == 1


def test_gate_decisions_end_to_end(db_url: str) -> None:
    from drift.gate import DetectorNight, GateSettings, NightEvidence, decide
    from drift.stats import flag_count_test

    monitor, state, settings = Monitor(db_url), None, GateSettings()
    for day, flagged in enumerate([50, 48, 52, 160, 170, 49]):
        tests = [flag_count_test(flagged, 1000, 1999, 0.95, subject="knn")]
        night = NightEvidence(START + timedelta(day), {"knn": DetectorNight(1000, flagged, 1999, 0.95, tests)})
        result = decide(settings, state, night)
        state = result.state
        monitor.night(day, result)
    with Session(monitor.engine) as session:
        (event,) = list_events(session, monitor="digits")
        assert event.status == "confirmed" and event.confirmed_on == START + timedelta(3)


def test_an_events_type_is_what_its_nights_agree_on_until_labels_fix_it(db_url: str) -> None:
    """docs/methods.md §4 item 5: an event's type is the type its nights agree on, ``unknown``
    when they disagree; once feedback labels fixed it, later nights no longer change it."""
    monitor = Monitor(db_url)
    event_id = monitor.night(0, decision("warn", shift_type="covariate"))
    monitor.night(1, decision("confirm", shift_type=None))  # an untyped night agrees with any
    with Session(monitor.engine) as session:
        assert session.get(DriftEvent, event_id).shift_type == "covariate"
    assert monitor.night(2, decision("warn", shift_type="prior")) == event_id
    with Session(monitor.engine) as session, session.begin():
        event = session.get(DriftEvent, event_id)
        assert event.shift_type == "unknown"  # covariate one night, prior the next: no type
        # what drift.pipeline.labelled records when labels type the event
        event.shift_type = "semantic"
        event.evidence = {**event.evidence, "type_changes": [{"from": "unknown", "to": "semantic"}]}
    monitor.night(3, decision("warn", shift_type="covariate"))
    monitor.night(1, decision("confirm", shift_type="prior"))  # a night re-decided, too
    with Session(monitor.engine) as session:
        assert session.get(DriftEvent, event_id).shift_type == "semantic"
