"""Commands about thresholds: recalibrate a monitor on production nights declared clean."""

from __future__ import annotations

from typing import Annotated

import typer

from drift.cli.app import app, console, fail, parse_date, select_monitors
from drift.config import Settings
from drift.model_files import first_line


@app.command()
def recalibrate(
    monitor: Annotated[str, typer.Option("--monitor", "-m", help="The monitor to recalibrate.")],
    start: Annotated[str, typer.Option(help="First clean night, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last clean night, YYYY-MM-DD (inclusive).")],
) -> None:
    """Refit the thresholds on the scores stored for clean nights START..END (no re-embedding).

    The nights must have succeeded under the active model version and overlap no
    confirmed or open-warning drift event. The result is a new active model version
    (same model and detectors, new thresholds); the gate restarts on its first night.

    Example: `drift recalibrate --monitor digits --start 2026-11-01 --end 2026-11-10`
    """
    from drift import pipeline
    from drift.cli.nightly import fitted_on
    from drift.config import CalibrationWindow

    settings = Settings()
    (config,) = select_monitors(monitor)
    first, last = parse_date(start), parse_date(end)
    if last < first:
        fail(f"--end {last} is before --start {first}")
    try:
        result = pipeline.recalibrate(settings, config, CalibrationWindow(start=first, end=last))
    except ValueError as exc:
        fail(f"{config.name}: recalibrate refused: {first_line(exc)}")
    console.print(f"{config.name}: version {result['version']} active ({result['origin']})")
    console.print(f"  {fitted_on(result)}", highlight=False, soft_wrap=True)
