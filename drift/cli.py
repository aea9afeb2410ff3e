"""The `drift` command.

Every command reads ``DRIFT_HOME``, ``DRIFT_DATABASE_URL`` and ``DRIFT_CONFIG``
from the environment. Errors are one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from drift.config import ConfigError, MonitorConfig, Settings, load_monitors
from drift.model_files import first_line

app = typer.Typer(
    help="driftwatch: nightly data-drift and OOD monitoring for production PyTorch models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
console = Console()
err_console = Console(stderr=True)

MonitorOption = Annotated[
    str | None,
    typer.Option("--monitor", "-m", help="Monitor name (default: every configured monitor)."),
]


def _error(message: str) -> None:
    """One line on stderr."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1) -> None:
    _error(message)
    raise typer.Exit(code)


def _monitors(name: str | None) -> list[MonitorConfig]:
    monitors = load_monitors()
    if name is None:
        return monitors
    selected = [m for m in monitors if m.name == name]
    if not selected:
        _fail(f"no monitor named '{name}' (configured: {', '.join(m.name for m in monitors)})")
    return selected


def _parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"'{value}' is not a date in the form YYYY-MM-DD") from None


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command()
def init() -> None:
    """Create or upgrade the event store schema (Alembic migrations to head).

    Example: `DRIFT_DATABASE_URL=postgresql+psycopg2://postgres@localhost/drift drift init`
    """
    from drift.store.db import upgrade

    settings = Settings()
    upgrade(settings.db_url)
    console.print(f"event store ready at {_redact(settings.db_url)}")


@app.command()
def fit(monitor: MonitorOption = None) -> None:
    """Fit detectors and calibration on the reference data; activates a new model version.

    Example: `drift fit --monitor digits`
    """
    from drift import pipeline

    settings = Settings()
    failed = False
    for m in _monitors(monitor):
        try:
            with console.status(f"fitting {m.name}"):
                result = pipeline.fit_monitor(settings, m)
        except ConfigError:
            raise
        except (FileNotFoundError, ValueError, RuntimeError) as exc:  # bad reference, model, params
            logging.getLogger(__name__).debug("fit %s failed", m.name, exc_info=True)
            _error(f"{m.name}: fit failed: {first_line(exc)}")
            failed = True  # other monitors still fit
            continue
        console.print(
            f"{m.name}: version {result['version']} active - detectors {', '.join(result['detectors'])}, "
            f"{result['n_bank']} bank rows, {result['n_calibration']} calibration rows"
        )
    if failed:
        raise typer.Exit(1)


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
    night = _parse_date(batch_date)
    failed = False
    for m in _monitors(monitor):
        try:
            decision = pipeline.run_night(settings, m, night)
        except pipeline.BatchFailedError as exc:
            _error(first_line(exc))
            failed = True  # other monitors still run
            continue
        rates = "  ".join(f"{d} {r:6.1%}" for d, r in decision["ood_rate"].items())
        console.print(f"{m.name} {night}: {decision['verdict'].upper():8s} OOD rate {rates}")
    if failed:
        raise typer.Exit(1)


@app.command()
def events(
    monitor: MonitorOption = None,
    status: Annotated[
        str | None, typer.Option(help="warning | confirmed | adapting | resolved")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only events last seen on or after YYYY-MM-DD.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON lines instead of a table.")
    ] = False,
) -> None:
    """List drift events.

    Example: `drift events --status confirmed --json`
    """
    from drift.events import list_events
    from drift.store.db import session_scope

    settings = Settings()
    with session_scope(settings.db_url) as session:
        rows = list_events(
            session, monitor=monitor, status=status, since=_parse_date(since) if since else None
        )
        records = [_event_record(e) for e in rows]
    if as_json:
        for record in records:
            sys.stdout.write(json.dumps(record, default=str) + "\n")
        return
    table = Table(title="drift events")
    for column in ("id", "monitor", "status", "shift", "first seen", "confirmed", "last seen"):
        table.add_column(column)
    for r in records:
        table.add_row(
            str(r["id"]),
            r["monitor"],
            r["status"],
            r["shift_type"] or "-",
            r["first_seen"],
            r["confirmed_on"] or "-",
            r["last_seen"],
        )
    console.print(table)


def _event_record(event) -> dict:  # noqa: ANN001
    return {
        "id": event.id,
        "monitor": event.monitor.name,
        "status": event.status,
        "shift_type": event.shift_type,
        "first_seen": event.first_seen.isoformat(),
        "confirmed_on": event.confirmed_on.isoformat() if event.confirmed_on else None,
        "last_seen": event.last_seen.isoformat(),
        "evidence": event.evidence,
    }


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
    for column in ("monitor", "last night", "verdict", "open events", "active version"):
        table.add_column(column)
    with session_scope(settings.db_url) as session:
        for m in _monitors(monitor):
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
    console.print(table)


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
    first, last = _parse_date(start), _parse_date(end)
    if last < first:
        _fail(f"--end {last} is before --start {first}")
    failures = 0
    for m in _monitors(monitor):
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


feedback_app = typer.Typer(help="Delayed true labels for production rows.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("import")
def feedback_import(
    file: Annotated[
        Path, typer.Argument(help="CSV or parquet with columns batch_date, row_id, label.")
    ],
    monitor: Annotated[
        str, typer.Option("--monitor", "-m", help="The monitor the rows belong to.")
    ],
) -> None:
    """Load delayed labels (idempotent: a re-imported row keeps one label, the latest).

    Example: `drift feedback import labels-2026-11-20.csv --monitor fraud_scorer`
    """
    from drift.feedback import import_labels

    settings = Settings()
    _monitors(monitor)  # a clear error for an unknown monitor
    n_rows = import_labels(settings.db_url, monitor, file)
    console.print(f"{monitor}: {n_rows} labels imported from {file}")


@app.command("adapt")
def adapt_event(
    event: Annotated[int, typer.Option("--event", "-e", help="Id of a confirmed drift event.")],
    monitor: MonitorOption = None,
) -> None:
    """Adapt, validate and (if better) promote a model for a confirmed event - what drift_adapt runs.

    Example: `drift adapt --event 3 --monitor digits_demo`
    """
    from drift import pipeline

    settings = Settings()
    (m,) = _monitors(monitor) if monitor else _monitors(None)[:1]
    result = pipeline.adapt_for_event(settings, m, event)
    verdict = "promoted" if result["promoted"] else "not promoted"
    console.print(f"event {event}: {verdict} - {'; '.join(result['reasons']) or 'validated'}")


@app.command("meta-train")
def meta_train(monitor: MonitorOption = None) -> None:
    """Meta-train MOL's initialisation on shifts simulated from the reference - what drift_meta_train runs.

    Example: `drift meta-train --monitor digits_demo`
    """
    from drift import pipeline

    settings = Settings()
    for m in _monitors(monitor):
        with console.status(f"meta-training {m.name}"):
            result = pipeline.meta_train(settings, m)
        console.print(
            f"{m.name}: meta-initialisation saved ({result['path']}), final loss {result['final_loss']:.3f}"
        )


@app.command()
def report(
    monitor: Annotated[str, typer.Option("--monitor", "-m", help="The monitor to report on.")],
    out: Annotated[Path, typer.Option(help="The HTML file to write; PNG plots go beside it.")] = Path("report.html"),
    start: Annotated[str | None, typer.Option(help="First night, YYYY-MM-DD (default: the first).")] = None,
    end: Annotated[str | None, typer.Option(help="Last night, YYYY-MM-DD (default: the last).")] = None,
    night: Annotated[str | None, typer.Option(help="Night for the score histograms (default: most shifted).")] = None,
) -> None:
    """Write one self-contained HTML report (plus PNG plots) for a monitor and date range.

    Example: `drift report --monitor digits_demo --start 2026-11-01 --end 2026-11-24 --out report.html`
    """
    from drift.report import ReportError, build_report

    settings = Settings()
    (m,) = _monitors(monitor)
    dates = [_parse_date(d) if d else None for d in (start, end, night)]
    try:
        built = build_report(settings, m, dates[0], dates[1], dates[2])
    except ReportError as exc:
        _fail(str(exc))
    path = built.write_html(out)
    plots = built.write_pngs(out.parent)
    console.print(f"report: {path} ({path.stat().st_size / 1e6:.2f} MB); plots: {', '.join(p.name for p in plots)}")


@app.command()
def demo(
    nights: Annotated[int, typer.Option(help="Nights to simulate.")] = 24,
    seed: Annotated[int, typer.Option(help="Seed of the simulated stream.")] = 0,
) -> None:
    """Simulate a production model on scikit-learn digits and run every night through the pipeline.

    Example: `DRIFT_HOME=/tmp/demo drift demo`
    """
    from drift.demo import run_demo

    run_demo(Settings(), nights=nights, seed=seed, console=console)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def entrypoint() -> None:
    """The console script: expected failures are one line on stderr, not a traceback."""
    from sqlalchemy.exc import OperationalError

    from drift.batch import InvalidBatchError
    from drift.model_files import ModelFileError

    try:
        app()
    except ConfigError as exc:
        _error(first_line(exc))
        sys.exit(2)
    except (FileNotFoundError, InvalidBatchError, ModelFileError, OperationalError) as exc:
        _error(first_line(exc))
        sys.exit(1)


if __name__ == "__main__":
    entrypoint()
