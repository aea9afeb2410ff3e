"""Operating driftwatch day to day: commands that act on an event act on that event's
monitor; ack / close / reopen with who and when; a failed adaptation leaves the event
as it was; `drift reset` clears a dead run's `adapting` and never a live one's;
versions and rollback. Real `drift` processes and real databases (SQLite and Postgres)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select, text

from drift.store.db import session_scope
from drift.store.models import Adaptation, Alert, AuditEntry, Batch, DriftEvent, ModelVersion
from drift.store.types import utcnow


@pytest.fixture
def two_monitors(tmp_path: Path, demo_world: Path) -> Path:
    """The shipped demo monitor twice, as `digits_a` (configured first) and `digits_b`."""
    from drift.config import Settings

    config = yaml.safe_load(Settings().config_path.read_text())
    config["base_dir"] = str(demo_world / "demo")
    (monitor,) = config["monitors"]
    config["monitors"] = [{**monitor, "name": "digits_a"}, {**monitor, "name": "digits_b"}]
    path = tmp_path / "monitors.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def drift(tmp_path: Path, two_monitors: Path, db_url: str):
    """`drift …` as the on-call person `oncall` runs it, on the two-monitor config."""
    env = {
        **os.environ,
        "DRIFT_HOME": str(tmp_path / "home"),
        "DRIFT_DATABASE_URL": db_url,
        "DRIFT_CONFIG": str(two_monitors),
        "USER": "oncall",
        "COLUMNS": "200",  # tables unwrapped
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "drift.cli", *args], env=env, capture_output=True, text=True, timeout=600
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    run.env = env  # type: ignore[attr-defined]
    return run


def _one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def _seed_event(url: str, monitor: str, status: str, night: date = date(2026, 11, 7)) -> int:
    """An event as the nightly gate leaves it (its monitor's row created if needed)."""
    from drift.store import repo

    with session_scope(url) as session:
        monitor_id = repo.ensure_monitor(session, monitor).id
        event = DriftEvent(
            monitor_id=monitor_id,
            status=status,
            shift_type="covariate",
            first_seen=night,
            last_seen=night,
            confirmed_on=night if status != "warning" else None,
            evidence={"nights": {}},
        )
        session.add(event)
        session.flush()
        return event.id


def _event(url: str, event_id: int) -> DriftEvent:
    with session_scope(url) as session:
        event = session.get(DriftEvent, event_id)
        session.expunge(event)
        return event


def test_event_commands_act_on_the_events_monitor(drift, db_url):
    from drift.store import repo

    a_event = _seed_event(db_url, "digits_a", "warning")
    b_event = _seed_event(db_url, "digits_b", "confirmed")

    # adapt without --monitor: digits_b's event is adapted as digits_b's, never the first monitor's.
    # The event has no stored night to adapt on, so collecting fails: the run is all-or-nothing.
    adapted = drift("adapt", "--event", str(b_event), check=False)
    _one_line_error(adapted, f"event {b_event}: adaptation failed in collect_adaptation_data", "returned to confirmed")
    assert _event(db_url, b_event).status == "confirmed" and _event(db_url, b_event).lease_owner is None
    with session_scope(db_url) as session:
        (attempt,) = session.scalars(select(Adaptation))
        assert attempt.event_id == b_event and attempt.monitor_id == repo.get_monitor_row(session, "digits_b").id
        assert attempt.status == "failed" and attempt.reason.startswith("collect_adaptation_data: ")
        # docs/architecture.md: failed before its candidates, the attempt is recorded under the policy
        assert attempt.method == "auto"
    assert _event(db_url, a_event).status == "warning"

    # a --monitor that disagrees, an unknown event: one line, nothing changes
    _one_line_error(
        drift("adapt", "--event", str(b_event), "--monitor", "digits_a", check=False),
        f"event {b_event} belongs to monitor 'digits_b', not 'digits_a'",
    )
    _one_line_error(drift("adapt", "--event", "99", check=False), "no drift event with id 99")
    _one_line_error(drift("ack", str(b_event), "--monitor", "digits_a", check=False), "belongs to monitor 'digits_b'")
    _one_line_error(
        drift("close", str(a_event), "--as", "handled", "--monitor", "digits_b", check=False),
        "belongs to monitor 'digits_a'",
    )
    for command in (["ack", "99"], ["close", "99", "--as", "handled"], ["reopen", "99"], ["reset", "99"]):
        _one_line_error(drift(*command, check=False), "no drift event with id 99")
    assert _event(db_url, b_event).acked_at is None and _event(db_url, a_event).status == "warning"

    # the right monitor named, or none: the event's own
    assert "(digits_b): acknowledged by oncall" in drift("ack", str(b_event)).stdout
    closed = drift("close", str(a_event), "--as", "false-alarm", "--note", "upstream replay", "--by", "bob")
    assert "(digits_a): closed as false-alarm by bob" in closed.stdout
    acked, closed_event = _event(db_url, b_event), _event(db_url, a_event)
    assert acked.status == "confirmed" and acked.acked_by == "oncall" and acked.acked_at is not None
    assert (closed_event.status, closed_event.closed_as, closed_event.closed_by, closed_event.note) == (
        "closed", "false-alarm", "bob", "upstream replay",
    )
    with session_scope(db_url) as session:
        audit = [(e.action, e.event_id, e.actor) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert audit == [("ack", b_event, "oncall"), ("close", a_event, "bob")]


def test_close_reopen_and_the_open_events_view(drift, db_url):
    warning = _seed_event(db_url, "digits_a", "warning")
    confirmed = _seed_event(db_url, "digits_b", "confirmed")
    adapting = _seed_event(db_url, "digits_b", "adapting")

    drift("ack", str(confirmed), "--by", "alice")
    drift("close", str(warning), "--as", "handled", "--note", "retrained upstream")
    _one_line_error(drift("close", str(adapting), "--as", "handled", check=False), "cannot go from adapting to closed")
    bad_reason = drift("close", str(warning), "--as", "nonsense", check=False)  # a usage error, from the parser
    assert bad_reason.returncode == 2 and "'nonsense' is not one of" in bad_reason.stderr
    _one_line_error(drift("reopen", str(confirmed), check=False), "only a closed event can be reopened")

    with session_scope(db_url) as session:
        view = {r.event_id: r for r in session.execute(text("SELECT * FROM v_open_events"))}
    assert set(view) == {confirmed, adapting}  # a closed event is not open
    assert view[confirmed].acked_by == "alice" and view[adapting].acked_by is None

    status = drift("status").stdout
    assert f"#{confirmed} confirmed covariate (acked by alice)" in status

    assert "reopened as warning" in drift("reopen", str(warning)).stdout  # it had never been confirmed
    reopened = _event(db_url, warning)
    assert reopened.status == "warning" and reopened.closed_as is None and reopened.closed_at is None
    drift("close", str(confirmed), "--as", "false-alarm")
    assert "reopened as confirmed" in drift("reopen", str(confirmed)).stdout


def test_an_acknowledged_event_silences_its_repeat_surge_alerts(db_url, drift_env, demo_monitor):
    from drift import pipeline
    from drift.events import acknowledge
    from drift.pipeline.outbox import enqueue_night_alerts
    from drift.store import repo

    settings = drift_env(db_url)
    quiet, acked = (_seed_event(db_url, "digits_demo", "confirmed", date(2026, 11, d)) for d in (7, 8))
    with session_scope(db_url) as session:
        acknowledge(session, acked, "alice")

    def decision(event_id: int, night: str) -> dict:
        return {
            "monitor": "digits_demo", "batch_date": night, "verdict": "confirm", "ood_rate": {"knn": 0.6},
            "shift_type": "covariate", "event_id": event_id, "event_status": "confirmed",
            "newly_confirmed": False, "reasons": [],
        }

    # the night's alerts go to the outbox with the verdict (as `decide` writes them) ...
    with session_scope(db_url) as session:
        monitor_id = repo.get_monitor_row(session, "digits_demo").id
        for event_id, night in ((quiet, "2026-11-07"), (acked, "2026-11-08"), (acked, "2026-11-08")):
            event = session.get(DriftEvent, event_id)
            enqueue_night_alerts(session, demo_monitor, monitor_id, None, decision(event_id, night), event)
    # ... and delivery sends the quiet event's surge only; a re-run stays silent
    assert pipeline.send_alerts(settings, demo_monitor, decision(quiet, "2026-11-07")) == ["ood_surge"]
    assert pipeline.flush_alerts(settings, demo_monitor) == []
    with session_scope(db_url) as session:
        alerts = {a.event_id: (a.status, a.attempts) for a in session.scalars(select(Alert))}
    assert alerts == {quiet: ("sent", 1), acked: ("silenced", 0)}


HOLDER = textwrap.dedent(
    """
    import sys, time
    from drift import leases
    from drift.store.db import session_scope
    url, event_id = sys.argv[1], int(sys.argv[2])
    with session_scope(url) as session:
        leases.take(session, event_id)
    with leases.held(url, event_id, interval=0.2):
        print("holding", flush=True)
        time.sleep(120)
    """
)


def _age_heartbeat(url: str, event_id: int, seconds: float) -> None:
    with session_scope(url) as session:
        event = session.get(DriftEvent, event_id)
        event.heartbeat_at = utcnow() - timedelta(seconds=seconds)


def test_reset_clears_a_killed_run_and_never_a_live_one(drift, db_url):
    from drift.leases import LEASE_SECONDS

    event_id = _seed_event(db_url, "digits_b", "confirmed")
    _one_line_error(drift("reset", str(event_id), check=False), "is confirmed, not adapting")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, db_url, str(event_id)], env=drift.env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        with session_scope(db_url) as session:  # the run's attempt, as adapt leaves it
            monitor_id = session.get(DriftEvent, event_id).monitor_id
            session.add(Adaptation(monitor_id=monitor_id, event_id=event_id, method="finetune"))
        held = _event(db_url, event_id)
        assert held.status == "adapting" and held.lease_owner.endswith(f":{holder.pid}")

        _one_line_error(drift("reset", str(event_id), check=False), "is alive")
        # even a heartbeat that looks old is renewed by the live run before a reset can take it
        _age_heartbeat(db_url, event_id, LEASE_SECONDS + 60)
        time.sleep(1.0)
        _one_line_error(drift("reset", str(event_id), check=False), "is alive")
        assert _event(db_url, event_id).status == "adapting"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()

    # killed: its heartbeat stops; within the lease it is still refused, after it the reset goes through
    _one_line_error(drift("reset", str(event_id), check=False), "is alive")
    _age_heartbeat(db_url, event_id, LEASE_SECONDS + 60)
    assert "reset to confirmed" in drift("reset", str(event_id), "--by", "carol").stdout
    reset = _event(db_url, event_id)
    assert reset.status == "confirmed" and reset.lease_owner is None and reset.heartbeat_at is None
    with session_scope(db_url) as session:
        (attempt,) = session.scalars(select(Adaptation))
        assert attempt.status == "failed" and attempt.reason.startswith("reset by carol: the run ")
        (entry,) = session.scalars(select(AuditEntry))
        assert (entry.action, entry.actor, entry.event_id) == ("reset", "carol", event_id)


def test_versions_and_rollback(drift, db_url):
    from drift.store import repo

    drift("init")
    drift("fit", "--monitor", "digits_b")
    drift("fit", "--monitor", "digits_b")  # v2, e.g. a refit on a new reference
    drift("fit", "--monitor", "digits_a")
    drift("run", "--date", "2026-11-05", "--monitor", "digits_b")

    # rollback names its monitor: digits_a is not touched
    rolled = drift("rollback", "--monitor", "digits_b", "--to", "1", "--by", "dave")
    assert "digits_b: v3 (rollback to v1) is active" in rolled.stdout
    records = [json.loads(line) for line in drift("versions", "--monitor", "digits_b", "--json").stdout.splitlines()]
    assert [(r["version"], r["origin"], r["status"], r["active"]) for r in records] == [
        (1, "fit", "retired", False), (2, "fit", "retired", False), (3, "rollback to v1", "active", True),
    ]
    assert records[0]["metrics"]["n_bank"] > 0 and records[2]["metrics"] == records[0]["metrics"]
    a_versions = [json.loads(line) for line in drift("versions", "--monitor", "digits_a", "--json").stdout.splitlines()]
    assert [(r["version"], r["active"]) for r in a_versions] == [(1, True)]
    assert "rollback to v1" in drift("versions", "--monitor", "digits_b").stdout

    # the next night scores with the rolled-back model, and the gate starts afresh on it
    drift("run", "--date", "2026-11-06", "--monitor", "digits_b")
    with session_scope(db_url) as session:
        b_id = repo.get_monitor_row(session, "digits_b").id
        versions = {v.version: v for v in session.scalars(select(ModelVersion).where(ModelVersion.monitor_id == b_id))}
        nights = {b.batch_date: b for b in session.scalars(select(Batch).where(Batch.monitor_id == b_id))}
        assert versions[3].artifact_path == versions[1].artifact_path
        assert nights[date(2026, 11, 5)].model_version_id == versions[2].id
        assert nights[date(2026, 11, 6)].model_version_id == versions[3].id
        assert nights[date(2026, 11, 6)].gate_state["nights"] == 1
        (entry,) = session.scalars(select(AuditEntry))
        assert (entry.action, entry.actor, entry.details["to_version"], entry.details["from_version"]) == (
            "rollback", "dave", 1, 2,
        )

    # a person's close shows in the report's event table and its false-alarm line
    event_id = _seed_event(db_url, "digits_b", "confirmed", date(2026, 11, 6))
    drift("close", str(event_id), "--as", "false-alarm", "--note", "test traffic", "--by", "eve")
    out = drift.env["DRIFT_HOME"] + "/report.html"  # type: ignore[attr-defined]
    drift("report", "--monitor", "digits_b", "--out", out)
    html = Path(out).read_text()
    assert "False alarms (digits_b): 1 of 1 event in range, 1 of 1 ever" in html
    assert "Closed as false-alarm by eve at " in html and "test traffic" in html

    _one_line_error(drift("rollback", "--monitor", "digits_b", "--to", "9", check=False), "no version v9 (versions: v1, v2, v3)")
    _one_line_error(drift("rollback", "--monitor", "digits_b", "--to", "3", check=False), "already active")
    _one_line_error(drift("rollback", "--monitor", "nope", "--to", "1", check=False), "no monitor named 'nope'")
    _one_line_error(drift("versions", "--monitor", "nope", check=False), "no monitor named 'nope'")


def test_a_failed_validation_undoes_the_run_and_a_retried_step_changes_nothing(drift_env, demo_monitor, sqlite_url):
    """The drift_adapt DAG's steps one by one, as Airflow runs them; validation fails."""
    from drift import pipeline
    from drift.demo import FIRST_NIGHT
    from drift.feedback import import_labels

    settings = drift_env(sqlite_url)
    # one method, so one candidate: `auto` would train (and record) finetune and ear
    adaptation = demo_monitor.adaptation.model_copy(update={"method": "finetune"})
    monitor = demo_monitor.model_copy(update={"adaptation": adaptation})
    pipeline.fit_monitor(settings, monitor)
    feedback = monitor.reference.path.parent / "feedback"
    decisions = []
    for i in range(12, 16):  # nights 13-16: occluded digits, confirmed
        night = FIRST_NIGHT + timedelta(days=i)
        decisions.append(pipeline.run_night(settings, monitor, night))
        import_labels(settings, monitor, feedback / f"labels-{night}.csv")
    event_id = next(d["event_id"] for d in decisions if d["newly_confirmed"])

    collected = pipeline.collect_adaptation_data(settings, monitor, event_id)
    candidate = pipeline.adapt(settings, monitor, collected)
    assert _event(sqlite_url, event_id).status == "adapting" and candidate["status"] == "candidate"
    Path(candidate["validation_path"]).unlink()  # the held-out rows are lost before validation
    with pytest.raises(pipeline.AdaptationFailedError, match="failed in validate_candidate: .*returned to confirmed"):
        pipeline.validate_candidate(settings, monitor, candidate)

    event = _event(sqlite_url, event_id)
    assert event.status == "confirmed" and event.lease_owner is None
    with session_scope(sqlite_url) as session:
        (attempt,) = session.scalars(select(Adaptation))
        assert attempt.status == "failed" and attempt.reason.startswith("validate_candidate: ")
        assert attempt.finished_at is not None
        statuses = {v.version: v.status for v in session.scalars(select(ModelVersion))}
    assert statuses == {1: "active", 2: "rejected"}

    # an Airflow retry of a later step finds the run undone: it fails and changes nothing
    fake_pass = {**candidate, "passed": True, "reasons": []}
    with pytest.raises(pipeline.AdaptationFailedError, match="is confirmed, not adapting"):
        pipeline.promote_candidate(settings, monitor, fake_pass)
    with session_scope(sqlite_url) as session:
        assert {v.version: v.status for v in session.scalars(select(ModelVersion))} == statuses
        assert session.get(DriftEvent, event_id).status == "confirmed"


def test_a_closed_event_stays_closed_and_the_next_shifted_night_opens_a_new_one(db_url):
    from drift.events import (
        InvalidTransitionError,
        acknowledge,
        close_event,
        reopen_event,
        set_event_status,
    )
    from tests.test_events import Monitor, decision

    monitor = Monitor(db_url)
    first = monitor.night(0, decision("warn"))
    assert monitor.night(1, decision("confirm")) == first
    with session_scope(db_url) as session:
        acknowledge(session, first, "alice")
        close_event(session, first, "false-alarm", "alice", "replayed traffic")
        with pytest.raises(InvalidTransitionError, match="cannot go from closed to adapting"):
            set_event_status(session, first, "adapting")
        with pytest.raises(InvalidTransitionError, match="only an open event can be acknowledged"):
            acknowledge(session, first, "bob")
    assert monitor.night(1, decision("confirm")) == first  # a re-run night leaves the closed event alone
    assert _event(db_url, first).status == "closed"
    second = monitor.night(2, decision("warn"))
    assert second != first and _event(db_url, second).status == "warning"
    with session_scope(db_url) as session:
        assert reopen_event(session, first, "alice").status == "confirmed"
        with pytest.raises(InvalidTransitionError, match="only a closed event can be reopened"):
            reopen_event(session, first, "alice")
