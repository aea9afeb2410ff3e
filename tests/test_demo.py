"""`drift demo`: the scripted story is found, night by night, on the embedded default (SQLite)."""

from __future__ import annotations

import io

from rich.console import Console

from drift.config import Settings
from drift.demo import demo_script, run_demo, shifts_of


def test_demo_finds_every_scripted_shift_and_adapts_the_covariate_one(tmp_path, monkeypatch):
    monkeypatch.delenv("DRIFT_CONFIG", raising=False)
    monkeypatch.delenv("DRIFT_DATABASE_URL", raising=False)
    monkeypatch.setenv("DRIFT_HOME", str(tmp_path))
    out = io.StringIO()
    decisions = run_demo(Settings(), console=Console(file=out, width=200))
    script = demo_script(len(decisions))

    for first, last, night in shifts_of(script):
        window = decisions[first : last + 1]
        assert any(d["newly_confirmed"] for d in window), f"{night.describe()} was not confirmed"
        confirmed = next(i for i, d in enumerate(window) if d["newly_confirmed"])
        assert confirmed <= 1, f"{night.describe()} took {confirmed + 1} nights"
    quiet = [d for d, n in zip(decisions, script, strict=True) if n.kind == "clean"]
    assert sum(d["verdict"] == "confirm" for d in quiet) == 0  # no false confirms on clean nights

    printed = out.getvalue()
    assert "scripted shifts vs what driftwatch found" in printed
    assert "missed" not in printed
    assert "semantic" in printed and "covariate" in printed and "prior" in printed
    assert "v2 promoted" in printed  # the covariate shift's MOL adaptation passed validation
