"""`drift demo`: the scripted story is found, night by night, on the embedded default (SQLite)."""

from __future__ import annotations

import io

from rich.console import Console
from sqlalchemy import select

from drift.config import Settings
from drift.demo import demo_script, run_demo, shifts_of
from drift.store.db import session_scope
from drift.store.models import Adaptation, DriftEvent, ModelVersion

#: what each scripted shift must be typed as once its feedback labels are in
EXPECTED_TYPE = {"novel": "semantic", "covariate": "covariate", "prior": "prior"}


def test_demo_finds_every_scripted_shift_and_adapts_the_covariate_one(tmp_path, monkeypatch):
    monkeypatch.delenv("DRIFT_CONFIG", raising=False)
    monkeypatch.delenv("DRIFT_DATABASE_URL", raising=False)
    monkeypatch.setenv("DRIFT_HOME", str(tmp_path))
    out = io.StringIO()
    decisions = run_demo(Settings(), console=Console(file=out, width=300))
    script = demo_script(len(decisions))

    events: dict[str, int] = {}
    for first, last, night in shifts_of(script):
        window = decisions[first : last + 1]
        assert any(d["newly_confirmed"] for d in window), f"{night.describe()} was not confirmed"
        confirmed = next(i for i, d in enumerate(window) if d["newly_confirmed"])
        assert confirmed <= 1, f"{night.describe()} took {confirmed + 1} nights"
        events[night.kind] = window[confirmed]["event_id"]
    assert set(events) == set(EXPECTED_TYPE) and len(set(events.values())) == 3  # one event each
    quiet = [d for d, n in zip(decisions, script, strict=True) if n.kind == "clean"]
    assert sum(d["verdict"] == "confirm" for d in quiet) == 0  # no false confirms on clean nights

    with session_scope(Settings().db_url) as session:
        for kind, event_id in events.items():
            assert session.get(DriftEvent, event_id).shift_type == EXPECTED_TYPE[kind], kind
        adaptations = {a.event_id: a for a in session.scalars(select(Adaptation))}
        versions = {v.version: (v.status, v.origin) for v in session.scalars(select(ModelVersion))}
        covariate = events["covariate"]
        # only the covariate shift is adapted (novel classes and a class-mix change are not);
        # auto trained every method (MOL: the demo meta-trains), promoted the best passing one
        # on the shifted rows, which resolved the shift, and rejected the others
        assert set(adaptations) == {covariate}
        tried = list(session.scalars(select(Adaptation).order_by(Adaptation.id)))
        assert [a.method for a in tried] == ["finetune", "mol", "ear"]
        (winner,) = [a for a in tried if a.status == "promoted"]
        assert all(a.status == "rejected" and a.reason for a in tried if a is not winner)
        passing = [a for a in tried if a is winner or "did better" in (a.reason or "")]
        assert winner.metrics_after["new_domain_accuracy"] == max(
            a.metrics_after["new_domain_accuracy"] for a in passing
        )
        assert (
            winner.metrics_after["new_domain_accuracy"]
            > winner.metrics_before["new_domain_accuracy"]
        )
        assert session.get(DriftEvent, covariate).status == "resolved"
        active = [(s, o) for s, o in versions.values() if s == "active"]
        assert active == [("active", f"adapt:{winner.method}:event-{covariate}")]

    printed = out.getvalue()
    assert "scripted shifts vs what driftwatch found" in printed
    assert "acc CBPE" in printed and "acc ATC" in printed and "acc realized" in printed
    assert "reference accuracy" in printed
    assert "missed" not in printed
    assert f"{winner.method} won (tried finetune, mol, ear)" in printed


def test_demo_adapts_with_ear_and_names_it(tmp_path, monkeypatch):
    monkeypatch.delenv("DRIFT_CONFIG", raising=False)
    monkeypatch.delenv("DRIFT_DATABASE_URL", raising=False)
    monkeypatch.setenv("DRIFT_HOME", str(tmp_path))
    out = io.StringIO()
    run_demo(
        Settings(), nights=16, adaptation="ear", console=Console(file=out, width=300)
    )  # to the occlusion
    with session_scope(Settings().db_url) as session:
        (adaptation,) = session.scalars(select(Adaptation))
        assert adaptation.method == "ear" and adaptation.status == "promoted"
    assert "ear won (tried ear)" in out.getvalue()


def test_a_demo_without_shifts_opens_no_event(tmp_path, monkeypatch):
    """`drift demo --no-shifts`: every night clean; 365 of them are benchmarks/quiet_demo.py."""
    from typer.testing import CliRunner

    from drift.cli import app

    monkeypatch.delenv("DRIFT_CONFIG", raising=False)
    monkeypatch.delenv("DRIFT_DATABASE_URL", raising=False)
    monkeypatch.setenv("DRIFT_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "300")
    done = CliRunner().invoke(app, ["demo", "--no-shifts", "--nights", "8"])
    assert done.exit_code == 0, done.output
    assert done.output.count("│ clean ") == 8 and "│ ok " in done.output
    assert "events first seen on a clean night: 0" in done.output
    with session_scope(Settings().db_url) as session:
        assert session.scalars(select(DriftEvent)).all() == []
