"""Commands that show a person what happened: report, demo."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from drift.cli.app import (
    app,
    console,
    fail,
    parse_date,
    select_monitors,
)
from drift.config import Settings


@app.command()
def report(
    monitor: Annotated[str, typer.Option("--monitor", "-m", help="The monitor to report on.")],
    out: Annotated[
        Path, typer.Option(help="The HTML file to write; PNG plots go beside it.")
    ] = Path("report.html"),
    start: Annotated[
        str | None, typer.Option(help="First night, YYYY-MM-DD (default: the first).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Last night, YYYY-MM-DD (default: the last).")
    ] = None,
    night: Annotated[
        str | None, typer.Option(help="Night for the score histograms (default: most shifted).")
    ] = None,
) -> None:
    """Write one self-contained HTML report (plus PNG plots) for a monitor and date range.

    Example: `drift report --monitor digits_demo --start 2026-11-01 --end 2026-11-24 --out report.html`
    """
    from drift.report import ReportError, build_report

    settings = Settings()
    (m,) = select_monitors(monitor)
    dates = [parse_date(d) if d else None for d in (start, end, night)]
    try:
        built = build_report(settings, m, dates[0], dates[1], dates[2])
    except ReportError as exc:
        fail(str(exc))
    path = built.write_html(out)
    plots = built.write_pngs(out.parent)
    console.print(
        f"report: {path} ({path.stat().st_size / 1e6:.2f} MB); plots: {', '.join(p.name for p in plots)}"
    )


class AdaptationMethod(StrEnum):
    """The values of ``adaptation.method`` (drift/config.py)."""

    AUTO = "auto"
    MOL = "mol"
    EAR = "ear"
    FINETUNE = "finetune"


@app.command()
def demo(
    nights: Annotated[int, typer.Option(help="Nights to simulate.")] = 24,
    seed: Annotated[int, typer.Option(help="Seed of the simulated stream.")] = 0,
    adaptation: Annotated[
        AdaptationMethod,
        typer.Option(help="adaptation.method for the run: auto trains every method and promotes the best."),
    ] = AdaptationMethod.AUTO,
    shifts: Annotated[
        bool, typer.Option(help="--no-shifts: every night clean, a quiet stretch where no event should open.")
    ] = True,
) -> None:
    """Simulate a production model on scikit-learn digits and run every night through the pipeline.

    Example: `DRIFT_HOME=/tmp/demo drift demo --adaptation ear`
    """
    from drift.demo import run_demo

    run_demo(
        Settings(), nights=nights, seed=seed, console=console, adaptation=adaptation.value, shifts=shifts
    )
