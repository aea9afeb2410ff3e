"""Commands that set up a monitor and run its nights: init, fit, run, status, backfill."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from drift.cli.app import (
    MonitorOption,
    app,
    console,
    err_console,
    error,
    fail,
    parse_date,
    redact_url,
    select_monitors,
)
from drift.config import ConfigError, Settings
from drift.model_files import first_line

if TYPE_CHECKING:
    from drift.pipeline.results import FitResult
    from drift.store.models import Batch


@app.command()
def init() -> None:
    """Create or upgrade the event store schema (Alembic migrations to head).

    Example: `DRIFT_DATABASE_URL=postgresql+psycopg2://postgres@localhost/drift drift init`
    """
    from drift.store.db import upgrade

    settings = Settings()
    upgrade(settings.db_url)
    console.print(f"event store ready at {redact_url(settings.db_url)}")


@app.command()
def fit(monitor: MonitorOption = None) -> None:
    """Fit detectors and calibration on the reference data; activates a new model version.

    Example: `drift fit --monitor digits`
    """
    from drift import pipeline

    settings = Settings()
    failed = False
    for m in select_monitors(monitor):
        try:
            with console.status(f"fitting {m.name}"):
                result = pipeline.fit_monitor(settings, m)
        except ConfigError:
            raise
        except (FileNotFoundError, ValueError, RuntimeError) as exc:  # bad reference, model, params
            logging.getLogger(__name__).debug("fit %s failed", m.name, exc_info=True)
            error(f"{m.name}: fit failed: {first_line(exc)}")
            failed = True  # other monitors still fit
            continue
        console.print(
            f"{m.name}: version {result['version']} active - detectors {', '.join(result['detectors'])}, "
            f"{result['n_bank']} bank rows, {result['n_calibration']} calibration rows"
        )
        console.print(f"  {fitted_on(result)}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def fitted_on(result: FitResult) -> str:
    """What the thresholds were fitted on, and the model's accuracy on bank and calibration rows."""
    line = (
        f"thresholds of {', '.join(result['detectors'])} fitted on "
        f"{result.get('calibrated_on', 'held-out rows')}: {result['n_calibration']} rows"
    )
    bank, calibration = result.get("accuracy_bank"), result.get("accuracy_calibration")
    if bank is not None and calibration is not None:
        # rows the model trained on score better than unseen ones, on accuracy as on OOD scores
        line += f"; model accuracy {calibration:.1%} on calibration rows, {bank:.1%} on bank rows"
    return line


@app.command()
def run(
    batch_date: Annotated[
        str, typer.Option("--date", "-d", help="The night to process, YYYY-MM-DD.")
    ],
    monitor: MonitorOption = None,
) -> None:
    """Process one night: validate, embed, score, test, decide, alert.

    Example: `drift run --date 2026-11-26 --monitor digits`
    """
    from drift import pipeline

    settings = Settings()
    night = parse_date(batch_date)
    failed = False
    for m in select_monitors(monitor):
        try:
            decision = pipeline.run_night(settings, m, night)
        except pipeline.BatchFailedError as exc:
            error(first_line(exc))
            failed = True  # other monitors still run
            continue
        rates = "  ".join(f"{d} {r:6.1%}" for d, r in decision["ood_rate"].items())
        console.print(f"{m.name} {night}: {decision['verdict'].upper():8s} OOD rate {rates}")
    if failed:
        raise typer.Exit(1)


@app.command()
def status(monitor: MonitorOption = None) -> None:
    """Per monitor: the last night and its verdict, open events, the active model version.

    Example: `drift status`
    """
    from drift.events import OPEN_STATUSES, list_events
    from drift.store import repo
    from drift.store.db import session_scope

    settings = Settings()
    table = Table(title="driftwatch status")
    warnings = []
    for column in ("monitor", "last night", "verdict", "open events", "active version"):
        table.add_column(column)
    with session_scope(settings.db_url) as session:
        for m in select_monitors(monitor):
            row = repo.get_monitor_row(session, m.name)
            if row is None:
                table.add_row(m.name, "-", "never run", "-", "not fitted")
                continue
            batches = repo.list_batches(session, row.id)
            last = batches[-1] if batches else None
            verdict = (last.verdict or last.status) if last else "-"
            open_events = list_events(session, monitor=row.id, status=OPEN_STATUSES)
            version = repo.active_version(session, row.id)
            table.add_row(
                m.name,
                last.batch_date.isoformat() if last else "-",
                f"{verdict} ({last.error})" if last and last.status == "failed" else verdict,
                ", ".join(f"#{e.id} {e.status} {e.shift_type or ''}".strip() for e in open_events)
                or "none",
                f"v{version.version} ({version.origin})" if version else "not fitted",
            )
            warning = version and calibration_warning(batches, version.id)
            if warning:
                warnings.append((m.name, warning))
    console.print(table)
    for name, warning in warnings:
        console.print(f"{name}: {warning}", highlight=False, soft_wrap=True)


def calibration_warning(batches: list[Batch], version_id: int) -> str | None:
    """The latest in-sample warning stored on a night of the active version."""
    for batch in reversed(batches):
        if batch.model_version_id == version_id and (batch.summary or {}).get("calibration_warning"):
            return str(batch.summary["calibration_warning"])
    return None


@app.command()
def backfill(
    start: Annotated[str, typer.Option(help="First night, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last night, YYYY-MM-DD (inclusive).")],
    monitor: MonitorOption = None,
    rerun: Annotated[bool, typer.Option(help="Also re-run nights that already succeeded.")] = False,
) -> None:
    """Run missed nights between START and END in order (the gate is sequential).

    Example: `drift backfill --start 2026-11-01 --end 2026-11-24`
    """
    from datetime import timedelta

    from drift import pipeline
    from drift.store import repo
    from drift.store.db import session_scope

    settings = Settings()
    first, last = parse_date(start), parse_date(end)
    if last < first:
        fail(f"--end {last} is before --start {first}")
    failures = 0
    for m in select_monitors(monitor):
        with session_scope(settings.db_url) as session:
            row = repo.get_monitor_row(session, m.name)
            done = set()
            if row is not None and not rerun:
                done = {
                    b.batch_date
                    for b in repo.list_batches(session, row.id, first, last)
                    if b.status == "succeeded"
                }
        nights = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        missed = [n for n in nights if n not in done]
        console.print(f"{m.name}: {len(missed)} of {len(nights)} nights to run")
        for night in missed:
            try:
                decision = pipeline.run_night(settings, m, night)
                console.print(f"  {night}: {decision['verdict']}")
            except pipeline.BatchFailedError as exc:
                err_console.print(
                    f"  [red]{night}: failed[/] {exc}", highlight=False, soft_wrap=True
                )
                failures += 1
    if failures:
        raise typer.Exit(1)
