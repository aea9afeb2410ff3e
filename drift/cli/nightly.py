"""Commands that set up a monitor and run its nights: init, fit, run, status, backfill."""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from drift.cli.app import (
    DateOption,
    MonitorOption,
    app,
    console,
    err_console,
    error,
    fail,
    parse_date,
    redact_url,
    select_monitors,
    steps,
)
from drift.config import UNTRAINABLE_FIX, ConfigError, Settings
from drift.model_files import first_line

if TYPE_CHECKING:  # the CLI imports the pipeline (and torch) only when a command runs
    from drift.pipeline.results import FitResult, NightDecision
    from drift.store.models import Batch, DriftEvent

#: the most nights one `drift backfill` plans (two years): a typo in a date is not a plan
MAX_BACKFILL_NIGHTS = 731


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

    Example: `drift fit --monitor digits_demo`
    """
    from drift import pipeline

    settings = Settings()
    failed = False
    for m in steps(select_monitors(monitor), lambda m: f"fitting {m.name}"):
        try:
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
        if "performance" in result:
            console.print(f"  {result['performance']}", highlight=False, soft_wrap=True)
        if m.model.format in UNTRAINABLE_FIX:  # adaptation is off by default (refused if enabled)
            console.print(
                f"  adaptation is off: a {m.model.format} model cannot be trained again - "
                f"{UNTRAINABLE_FIX[m.model.format]}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
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
    batch_date: DateOption,
    monitor: MonitorOption = None,
) -> None:
    """Process one night: validate, embed, score, test, decide, alert.

    Example: `drift run --date 2026-11-26 --monitor digits_demo`
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
        _say_redecided(m.name, decision)
    if failed:
        raise typer.Exit(1)


def _say_redecided(name: str, decision: NightDecision) -> None:
    """The later nights that deciding this one decided again (the gate is sequential)."""
    nights = decision.get("redecided", [])
    if nights:
        changes = ", ".join(
            f"{n['batch_date']} {n['was'] or '-'}->{n['verdict']}" if n["was"] != n["verdict"]
            else f"{n['batch_date']} {n['verdict']}"
            for n in nights
        )
        console.print(
            f"{name}: re-decided {len(nights)} later night(s) in order: {changes}",
            highlight=False, markup=False, soft_wrap=True,
        )


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
                ", ".join(_open_event_label(e) for e in open_events) or "none",
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


def _open_event_label(event: DriftEvent) -> str:
    label = f"#{event.id} {event.status} {event.shift_type or ''}".strip()
    return f"{label} (acked by {event.acked_by})" if event.acked_at is not None else label


@app.command()
def backfill(
    start: Annotated[str, typer.Option(metavar="YYYY-MM-DD", help="First night.")],
    end: Annotated[str, typer.Option(metavar="YYYY-MM-DD", help="Last night (inclusive).")],
    monitor: MonitorOption = None,
    rerun: Annotated[bool, typer.Option(help="Also re-run nights that already succeeded.")] = False,
) -> None:
    """Run missed nights between START and END in order (the gate is sequential).

    A night earlier than nights already decided re-decides those in order
    (and says so). Alerts left pending by an interrupted run are delivered first.
    At most 731 nights, none after today.

    Example: `drift backfill --start 2026-11-01 --end 2026-11-24`
    """
    from datetime import date, timedelta

    from drift import pipeline
    from drift.store import repo
    from drift.store.db import session_scope

    settings = Settings()
    first, last = parse_date(start), parse_date(end)
    if last < first:
        fail(f"--end {last} is before --start {first}")
    if last > date.today():
        fail(f"--end {last} is after today ({date.today()}): only nights that have happened can run")
    span = (last - first).days + 1
    if span > MAX_BACKFILL_NIGHTS:
        fail(f"--start {first} to --end {last} is {span} nights; one backfill runs at most {MAX_BACKFILL_NIGHTS}")
    failures = 0
    for m in select_monitors(monitor):
        pipeline.flush_alerts(settings, m)
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
        for night in steps(missed, partial("{} {}".format, m.name)):
            try:
                decision = pipeline.run_night(settings, m, night)
                console.print(f"  {night}: {decision['verdict']}")
                _say_redecided(m.name, decision)
            except pipeline.BatchFailedError as exc:
                err_console.print(
                    f"  {night}: failed {first_line(exc)}", highlight=False, markup=False, soft_wrap=True
                )
                failures += 1
    if failures:
        raise typer.Exit(1)
