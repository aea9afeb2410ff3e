"""Commands that answer "why" about one night: explain, scores."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from drift.cli.app import DateOption, app, console, fail, parse_date, select_monitors
from drift.config import Settings

RequiredMonitor = Annotated[
    str, typer.Option("--monitor", "-m", metavar="NAME", help="The monitor, e.g. digits_demo.")
]


@app.command()
def explain(
    monitor: RequiredMonitor,
    batch_date: DateOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Why a night got its verdict: each deciding test against its bar, the CUSUM against its
    alarm level, the detectors and input columns that moved, the rate against calibration.

    Example: `drift explain --monitor digits_demo --date 2026-11-07`
    """
    from drift.explain import ExplainError, explain_night

    (m,) = select_monitors(monitor)
    try:
        explanation = explain_night(Settings(), m, parse_date(batch_date))
    except ExplainError as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(explanation.as_dict(), default=str) + "\n")
        return
    for line in explanation.lines():
        console.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command()
def scores(
    monitor: RequiredMonitor,
    batch_date: DateOption,
    out: Annotated[Path, typer.Option(metavar="FILE", help="Where to write: .parquet or .csv.")],
) -> None:
    """Write one night's per-row scores: id, predicted class, and per detector its score,
    threshold, flag and conformal p-value.

    Example: `drift scores --monitor digits_demo --date 2026-11-07 --out scores.csv`
    """
    from drift.row_scores import ScoresError, night_scores, write_scores

    (m,) = select_monitors(monitor)
    try:
        table = night_scores(Settings(), m, parse_date(batch_date))
        path = write_scores(table, out)
    except ScoresError as exc:
        fail(str(exc))
    console.print(
        f"{m.name} {batch_date}: {len(table)} rows written to {path}", highlight=False, markup=False
    )
