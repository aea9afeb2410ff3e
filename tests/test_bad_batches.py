"""The bad-input corpus (tests/bad_batches.py) through one real `drift backfill` on SQLite,
and the small defects of issue 13: a tiny night, duplicate and badly named monitors,
an unbounded backfill, a database connection terminated mid-night.

Two monitors share the nights: ``tiny`` gets one corpus case per night with clean
nights between; ``tiny_b`` gets clean nights only. Every bad night must fail with
one line naming the problem, be recorded failed with one alert and nothing partial,
and leave later nights and the other monitor untouched.
"""

from __future__ import annotations

import subprocess
from datetime import date, timedelta

import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.bad_batches import CASES, clean
from tests.test_hostile_input import NIGHT, world  # noqa: F401  (the tiny monitor fixture)

FIRST = date(2026, 1, 1)


def _plan() -> list[tuple[date, object]]:
    """(night, case or None for a clean night): clean nights first, last and every 8 cases."""
    plan: list[tuple[date, object]] = [(FIRST, None)]
    for i, case in enumerate(CASES):
        plan.append((FIRST + timedelta(days=len(plan)), case))
        if i % 8 == 7:
            plan.append((FIRST + timedelta(days=len(plan)), None))
    plan.append((FIRST + timedelta(days=len(plan)), None))
    return plan


def _two_monitors(world: dict) -> None:  # noqa: F811
    document = yaml.safe_load(world["config"].read_text())
    other = {**document["monitors"][0], "name": "tiny_b", "source": {**document["monitors"][0]["source"], "landing": "landing_b"}}
    document["monitors"].append(other)
    world["config"].write_text(yaml.safe_dump(document))


def _query(world: dict, sql: str) -> list[tuple]:  # noqa: F811
    engine = create_engine(f"sqlite:///{world['dir'] / 'drift.db'}")
    with engine.connect() as connection:
        rows = [tuple(r) for r in connection.execute(text(sql))]
    engine.dispose()
    return rows


def test_every_bad_night_fails_in_one_line_and_nothing_else_is_touched(world):  # noqa: F811
    assert len(CASES) >= 40
    plan = _plan()
    for night, case in plan:
        for landing, bad in (("landing", case), ("landing_b", None)):
            folder = world["dir"] / landing / f"ds={night}"
            folder.mkdir(parents=True)
            if bad is None:
                clean(seed=night.toordinal()).to_parquet(folder / "part-0.parquet")
            else:
                bad.write(folder)
    _two_monitors(world)
    assert world["drift"]("init").returncode == 0
    assert world["drift"]("fit").returncode == 0

    result = world["drift"]("backfill", "--start", str(plan[0][0]), "--end", str(plan[-1][0]))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "[SQL:" not in result.stderr
    failed_lines = [line for line in result.stderr.splitlines() if ": failed " in line]

    batches = {
        (name, date.fromisoformat(str(night))): (status, verdict, error, batch_id)
        for name, night, status, verdict, error, batch_id in _query(
            world,
            "select m.name, b.batch_date, b.status, b.verdict, b.error, b.id "
            "from batches b join monitored_models m on m.id = b.monitor_id",
        )
    }
    alerts = _query(world, "select batch_id, kind from alerts")
    partial = {r[0] for r in _query(world, "select batch_id from detector_scores union select batch_id from drift_tests")}
    problems = []
    for night, case in plan:
        status, verdict, error, batch_id = batches[("tiny", night)]
        assert batches[("tiny_b", night)][:2] == ("succeeded", batches[("tiny_b", night)][1])
        if case is None:
            if (status, verdict in {"ok", "warn", "confirm"}) != ("succeeded", True):
                problems.append(f"{night} clean: {status} {verdict} {error}")
            continue
        line = [entry for entry in failed_lines if f"  {night}: failed " in entry]
        missing = [n for n in case.needles if n not in (line[0] if line else "") or n not in (error or "")]
        if status != "failed" or verdict is not None or len(line) != 1 or missing:
            problems.append(f"{case.name}: {status} missing {missing} in {line} / {error!r}")
        if alerts.count((batch_id, "batch_failed")) != 1 or [k for b, k in alerts if b == batch_id] != ["batch_failed"]:
            problems.append(f"{case.name}: alerts {[k for b, k in alerts if b == batch_id]}")
        if batch_id in partial:
            problems.append(f"{case.name}: scores or tests written for a failed night")
    assert not problems, "\n".join(problems)
    assert len(failed_lines) == len(CASES), result.stderr
    assert all(batches[("tiny_b", n)][0] == "succeeded" for n, _ in plan)


# -- the small defects ------------------------------------------------------------------------------


def _one_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_a_one_row_night_gets_a_verdict_that_says_it_is_too_small(world):  # noqa: F811
    night = world["dir"] / "landing" / "ds=2026-11-02"
    night.mkdir()
    clean(n=1).to_parquet(night / "part-0.parquet")
    assert world["drift"]("init").returncode == 0 and world["drift"]("fit").returncode == 0
    result = world["drift"]("run", "--date", "2026-11-02")
    assert result.returncode == 0, result.stderr
    [(status, verdict, summary)] = _query(world, "select status, verdict, summary from batches")
    assert status == "succeeded" and verdict in {"ok", "warn", "confirm"}
    assert "too small to test: mmd needs at least 2 rows, the sample has 1" in summary


def test_two_monitors_with_the_same_name_are_refused_in_one_line(world):  # noqa: F811
    document = yaml.safe_load(world["config"].read_text())
    document["monitors"].append(document["monitors"][0])
    world["config"].write_text(yaml.safe_dump(document))
    _one_line(world["drift"]("status"), "two monitors are named 'tiny'")


def test_a_bad_monitor_name_shows_its_pattern_unmangled(world):  # noqa: F811
    world["configure"](name="Tiny Monitor")
    _one_line(world["drift"]("status"), "[a-z0-9_]")


@pytest.mark.parametrize(
    ("start", "end", "needle"),
    [
        ("2026-01-01", "9999-12-31", "--end 9999-12-31 is after today"),
        ("1990-01-01", "2020-01-01", "one backfill runs at most 731"),
    ],
)
def test_backfill_refuses_an_unbounded_plan_in_one_line(world, start, end, needle):  # noqa: F811
    _one_line(world["drift"]("backfill", "--start", start, "--end", end), needle)


def test_running_an_earlier_night_says_which_later_nights_it_re_decided(world):  # noqa: F811
    for day in ("2026-11-02", "2026-11-03"):
        folder = world["dir"] / "landing" / f"ds={day}"
        folder.mkdir()
        clean(seed=int(day[-1])).to_parquet(folder / "part-0.parquet")
    assert world["drift"]("init").returncode == 0 and world["drift"]("fit").returncode == 0
    assert world["drift"]("run", "--date", "2026-11-03").returncode == 0
    result = world["drift"]("backfill", "--start", NIGHT, "--end", "2026-11-03")
    assert result.returncode == 0, result.stderr
    assert "2 of 3 nights to run" in result.stdout
    # 11-01 and then 11-02 each re-decide 11-03, which ran first
    assert result.stdout.count("tiny: re-decided 1 later night(s) in order: 2026-11-03") == 2, result.stdout


def test_a_model_that_overflows_names_the_input_row_and_column():
    from drift.batch import InvalidBatchError
    from drift.config import ModelSpec
    from drift.embed import Embedder

    spec = ModelSpec(format="entrypoint", entrypoint="tests.bad_batches:overflowing_model", device="cpu")
    frame = clean(n=10)
    frame.loc[4, "x1"] = 1e12  # within max_abs_value; the model makes 1e42 of it
    with pytest.raises(InvalidBatchError, match=r"not finite for row 104 \(input column 'x1' = 1e\+12\)"):
        Embedder(spec, list(frame.columns)).embed_frame(frame, first_row=100)
    assert Embedder(spec, list(frame.columns)).embed_frame(clean(n=10)).features.shape == (10, 4)
