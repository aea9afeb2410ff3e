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
    decisions = run_demo(Settings(), console=Console(file=out, width=200))
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
        # MOL's candidate passed validation and was promoted, which resolved the shift
        assert set(adaptations) == {covariate}
        adaptation = adaptations[covariate]
        assert adaptation.method == "mol" and adaptation.status == "promoted"
        assert adaptation.metrics_after["new_domain_accuracy"] > adaptation.metrics_before["new_domain_accuracy"]
        assert session.get(DriftEvent, covariate).status == "resolved"
        assert versions == {1: ("retired", "fit"), 2: ("active", f"adapt:mol:event-{covariate}")}

    printed = out.getvalue()
    assert "scripted shifts vs what driftwatch found" in printed
    assert "acc CBPE" in printed and "acc realized" in printed and "reference accuracy" in printed
    assert "missed" not in printed
    assert "v2 promoted" in printed
