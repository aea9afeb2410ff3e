"""`drift explain` and `drift scores`: a night's verdict in words, its per-row scores, and
stored evidence whose fields mean what they say. Real pipeline runs on SQLite and Postgres,
real `drift` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

CLEAN = [date(2026, 11, 5), date(2026, 11, 6)]
NOVEL = [date(2026, 11, 7), date(2026, 11, 8)]
COVARIATE = [date(2026, 11, 14), date(2026, 11, 15)]


@dataclass
class World:
    """A fitted demo monitor with some nights run, and `drift` against the same store."""

    env: dict[str, str]
    settings: object
    monitor: object
    decisions: dict[date, dict]

    def drift(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "drift.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def world(
    request: pytest.FixtureRequest, demo_world: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    from drift import pipeline
    from drift.config import Settings, get_monitor
    from drift.store.db import upgrade
    from tests.conftest import create_postgres_database

    tmp = tmp_path_factory.mktemp("explain")
    config = tmp / "monitors.yaml"
    shipped = Settings().config_path.read_text()
    config.write_text(
        shipped.replace("base_dir: ${DRIFT_HOME}/demo", f"base_dir: {demo_world / 'demo'}")
    )
    url, drop = (
        create_postgres_database("drift_explain")
        if request.param == "postgres"
        else (f"sqlite:///{tmp / 'drift.db'}", None)
    )
    env = {
        "DRIFT_HOME": str(tmp / "home"),
        "DRIFT_DATABASE_URL": url,
        "DRIFT_CONFIG": str(config),
    }
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            upgrade(url)
            settings = Settings()
            monitor = get_monitor("digits_demo")
            pipeline.fit_monitor(settings, monitor)
            nights = CLEAN + NOVEL + COVARIATE
            decisions = {n: pipeline.run_night(settings, monitor, n) for n in nights}
            yield World({**os.environ, **env}, settings, monitor, decisions)
    finally:
        if drop is not None:
            drop()


def _stored_evidence(world: World, night: date) -> dict:
    from drift.store import repo
    from drift.store.db import session_scope

    with session_scope(world.settings.db_url) as session:
        return repo.find_batch(session, world.monitor.name, night).summary["evidence"]


def test_stored_evidence_fields_mean_what_they_say(world: World) -> None:
    for night in CLEAN + NOVEL + COVARIATE:
        evidence = _stored_evidence(world, night)
        family = [t for t in evidence["tests"] if t["in_act_family"]]
        assert len(family) == evidence["family_size"]
        for t in evidence["tests"]:
            assert "act" not in t
            passes = t["p_value"] <= t["bar"] and t["effect_size"] >= t["min_effect"]
            assert t["moved"] == passes, t
            # decisive: in the act family, past both bars and the practical test, nothing else
            assert t["decisive"] == (t["in_act_family"] and passes and t["practical"]), t
            if t["in_act_family"]:
                assert t["bar"] == pytest.approx(evidence["alpha"] / evidence["family_size"])
        # the gate's list of decisive tests ("test:detector", or "test" for batch-level ones)
        decisive = [t for t in evidence["tests"] if t["decisive"]]
        assert len(decisive) == len(evidence["decisive"])
        assert {t["name"] for t in decisive} == {d.split(":")[0] for d in evidence["decisive"]}
    # the novel-class surge is decided by the detectors' tests
    assert any(t["decisive"] for t in _stored_evidence(world, NOVEL[1])["tests"])


def test_reasons_are_readable_and_name_moved_columns(world: World) -> None:
    confirm = world.decisions[NOVEL[1]]
    assert confirm["verdict"] == "confirm"
    for reason in confirm["reasons"]:
        assert any(
            words in reason
            for words in (
                "below its bar", "alarm level", "nights significant", "columns moved",
                "not the practical test", "far BELOW",
            )
        ), reason
    alarms = [r for r in confirm["reasons"] if r.startswith("CUSUM")]
    assert all("crossed its alarm level" in r and "log-likelihood ratio" in r for r in alarms)
    shifted = [n for n in COVARIATE if world.decisions[n]["verdict"] != "ok"]
    assert shifted, "the occlusion nights were not caught"
    for night in shifted:
        moved = _stored_evidence(world, night)["columns_moved"]
        assert moved, f"{night}: no input column moved under occlusion"
        (line,) = [r for r in world.decisions[night]["reasons"] if r.startswith("input columns")]
        assert moved[0] in line


def test_explain_puts_each_test_against_its_bar(world: World) -> None:
    from drift.explain import explain_night

    explanation = explain_night(world.settings, world.monitor, NOVEL[1])
    assert explanation.verdict == "confirm" and explanation.event is not None
    assert explanation.tests[0]["decisive"]  # decisive first
    for t in explanation.tests:  # statistical bar, minimum effect and the practical test
        passed = t["p_value"] <= t["bar"] and t["effect_size"] >= t["min_effect"]
        assert t["decisive"] == (passed and t["practical"])
    assert {c["detector"] for c in explanation.cusum} == set(world.decisions[NOVEL[1]]["ood_rate"])
    moved = [d for d in explanation.detectors if d["moved"]]
    assert moved and all(d["ood_rate"] > d["expected_rate"] for d in moved)
    text = "\n".join(explanation.lines())
    assert "DECISIVE" in text and "alarm level" in text and "calibrated" in text

    clean = explain_night(world.settings, world.monitor, CLEAN[0])
    if clean.verdict == "ok":
        assert not any(t["decisive"] for t in clean.tests)
        assert clean.lines()[0].endswith("no test passed its bar, no CUSUM alarmed")

    covariate = explain_night(world.settings, world.monitor, COVARIATE[1])
    assert covariate.columns and covariate.columns[0]["moved"]
    ps = [c["p_value"] for c in covariate.columns if c["moved"]]
    assert ps == sorted(ps)


def test_explain_shows_the_statistical_and_the_practical_test(world: World) -> None:
    from drift.explain import explain_night

    novel = explain_night(world.settings, world.monitor, NOVEL[1])
    text = "\n".join(novel.lines())
    assert "statistical test: flag_count:" in text
    assert "practical test (a rate 1 points above, or 3 below" in text
    moved = [d for d in novel.practical if d["up"]]
    assert moved and all(d["rate"] - d["expected"] >= d["min_excess"] for d in moved)
    assert any(line.strip().startswith("PASSES (above)") for line in novel.lines())
    assert novel.kind == "shift"
    clean = explain_night(world.settings, world.monitor, CLEAN[0])
    if clean.verdict == "ok":  # a night needs both tests: none passed both
        assert not any(t["decisive"] for t in clean.tests)
        for d in clean.practical:  # the monitor's first night: no recent level yet
            assert d["recent"] is None
            assert d["up"] == (d["rate"] - d["expected"] >= d["min_excess"])
        assert "gradual: 0 of the last" in "\n".join(clean.lines())


def test_explain_re_decides_a_night_stored_without_evidence(world: World) -> None:
    """Nights decided before the evidence was stored: the gate is re-run from the stored
    tests and the previous night's state, and reaches the same verdict."""
    from drift.explain import explain_night
    from drift.store import repo
    from drift.store.db import session_scope

    night = NOVEL[0]
    stored = explain_night(world.settings, world.monitor, night)
    with session_scope(world.settings.db_url) as session:
        batch = repo.find_batch(session, world.monitor.name, night)
        summary = dict(batch.summary)
        batch.summary = {k: v for k, v in summary.items() if k != "evidence"}
    try:
        again = explain_night(world.settings, world.monitor, night)
    finally:
        with session_scope(world.settings.db_url) as session:
            repo.find_batch(session, world.monitor.name, night).summary = summary
    assert again.verdict == stored.verdict
    assert again.tests == stored.tests and again.cusum == stored.cusum


def test_drift_explain_command(world: World) -> None:
    result = world.drift("explain", "--monitor", "digits_demo", "--date", NOVEL[1].isoformat())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"digits_demo {NOVEL[1]}: CONFIRM")
    as_json = world.drift(
        "explain", "--monitor", "digits_demo", "--date", NOVEL[1].isoformat(), "--json"
    )
    document = json.loads(as_json.stdout)
    assert document["verdict"] == "confirm" and document["tests"][0]["decisive"]

    never = world.drift("explain", "--monitor", "digits_demo", "--date", "2026-11-30")
    assert never.returncode == 1
    assert never.stderr.strip() == "error: monitor 'digits_demo' has no night 2026-11-30"


def test_report_defaults_to_the_most_shifted_night(world: World) -> None:
    from drift.report.data import load_report_data

    data = load_report_data(world.settings, world.monitor)
    assert data.most_shifted in NOVEL + COVARIATE


def test_report_cusum_has_its_alarm_level_every_night(world: World) -> None:
    from drift.report.data import load_report_data

    nights = load_report_data(world.settings, world.monitor).detector_nights
    assert nights["alarm_level"].notna().all() and (nights["alarm_level"] > 0).all()
    confirm = nights[nights["night"] == NOVEL[1]]
    evidence = _stored_evidence(world, NOVEL[1])["cusum"]
    for row in confirm.itertuples():
        assert row.cusum == evidence[row.detector]["sum"]  # the sum before the reset


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_drift_scores_writes_every_row(world: World, tmp_path: Path, suffix: str) -> None:
    from drift.store import repo
    from drift.store.db import session_scope

    night = NOVEL[1]
    out = tmp_path / f"scores{suffix}"
    result = world.drift(
        "-v", "scores", "--monitor", "digits_demo", "--date", night.isoformat(), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "faiss" not in result.stderr  # the loader's lines are filtered at the entry point
    table = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    with session_scope(world.settings.db_url) as session:
        batch = repo.find_batch(session, "digits_demo", night)
        n_rows = batch.n_rows
        stored = {s.detector: (s.n_flagged, s.threshold) for s in batch.scores}
    assert len(table) == n_rows
    assert {"id", "predicted_class"} <= set(table.columns)
    assert table["id"].is_unique
    for detector, (n_flagged, threshold) in stored.items():
        flags = table[f"{detector}_flag"].astype(bool)
        assert flags.sum() == n_flagged  # the same flags the night counted
        assert table[f"{detector}_threshold"].eq(threshold).all()
        assert (table.loc[flags, f"{detector}_score"] > threshold).all()
        assert table[f"{detector}_p_value"].between(0, 1).all()
        assert (
            table.loc[flags, f"{detector}_p_value"].max()
            < table.loc[~flags, f"{detector}_p_value"].min()
        )


def test_drift_scores_refuses_an_unknown_format_in_one_line(world: World, tmp_path: Path) -> None:
    result = world.drift(
        "scores",
        "--monitor",
        "digits_demo",
        "--date",
        NOVEL[1].isoformat(),
        "--out",
        str(tmp_path / "scores.xlsx"),
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "unknown extension '.xlsx'" in result.stderr
