"""The model's accuracy per night: drift performance."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from drift.cli.app import app, console, fail, select_monitors
from drift.config import Settings

METHODS = ("cbpe", "atc", "realized")


def _cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    return f"{entry['accuracy']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


@app.command()
def performance(
    monitor: Annotated[
        str, typer.Option("--monitor", "-m", metavar="NAME", help="The monitor, e.g. digits_demo.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Accuracy per night: estimated without labels (CBPE, ATC, 95% bands) beside realized
    accuracy from feedback labels (95% Wilson interval), against the reference accuracy.

    Example: `drift performance --monitor digits_demo --json`
    """
    from drift.pipeline.performance import performance_by_night
    from drift.store import repo
    from drift.store.db import session_scope

    (m,) = select_monitors(monitor)
    with session_scope(Settings().db_url) as session:
        row = repo.get_monitor_row(session, m.name)
        nights = performance_by_night(session, row.id) if row is not None else None
    if nights is None:
        fail(f"monitor '{m.name}' is not in the event store: run `drift fit` first")
        return
    if as_json:
        sys.stdout.write(json.dumps({"monitor": m.name, "nights": nights}) + "\n")
        return
    if not nights:
        console.print(
            f"{m.name}: no accuracy stored yet (estimators need labelled calibration rows; "
            "realized accuracy needs `drift feedback import`)",
            highlight=False, markup=False,
        )
        return
    console.print(
        f"{'night':<11} {'reference':>9}  {'CBPE [95% band]':<24}{'ATC [95% band]':<24}"
        f"{'realized [95% CI]':<24}{'labelled':>8}",
        highlight=False, markup=False,
    )
    for night in nights:
        reference = night["reference_accuracy"]
        realized = night.get("realized")
        console.print(
            f"{night['batch_date']:<11} {'-' if reference is None else f'{reference:.3f}':>9}  "
            + "".join(f"{_cell(night.get(method)):<24}" for method in METHODS)
            + f"{realized['n_rows'] if realized else '-':>8}",
            highlight=False, markup=False,
        )
