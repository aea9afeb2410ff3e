"""Commands about drift events and what follows them: events, feedback import, adapt, meta-train."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from drift.cli.app import (
    MonitorOption,
    app,
    console,
    event_monitor,
    fail,
    parse_date,
    select_monitors,
    steps,
)
from drift.config import MonitorConfig, Settings
from drift.status import EventStatus


@app.command()
def events(
    monitor: MonitorOption = None,
    status: Annotated[
        str | None,
        typer.Option(
            metavar="STATUS", help=f"Only events in this status: {' | '.join(EventStatus)}."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(metavar="YYYY-MM-DD", help="Only events last seen on or after this night."),
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

    if status is not None and status not in set(EventStatus):
        fail(f"--status '{status}' is not an event status (one of: {', '.join(EventStatus)})")
    settings = Settings()
    with session_scope(settings.db_url) as session:
        rows = list_events(
            session, monitor=monitor, status=status, since=parse_date(since) if since else None
        )
        records = [_event_record(e) for e in rows]
    if as_json:
        for record in records:
            sys.stdout.write(json.dumps(record, default=str) + "\n")
        return
    table = Table(title="drift events")
    # kind first: an advisory input or gradual warning is never confirmed nor adapted
    for column in ("id", "monitor", "kind", "status", "shift", "first seen", "confirmed", "last seen"):
        table.add_column(column)
    for r in records:
        table.add_row(
            str(r["id"]),
            r["monitor"],
            r["kind"],
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
        "kind": event.kind,
        "status": event.status,
        "shift_type": event.shift_type,
        "first_seen": event.first_seen.isoformat(),
        "confirmed_on": event.confirmed_on.isoformat() if event.confirmed_on else None,
        "last_seen": event.last_seen.isoformat(),
        "evidence": event.evidence,
    }


feedback_app = typer.Typer(help="Delayed true labels for production rows.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("import")
def feedback_import(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="CSV or parquet with columns batch_date, row_id, label."
        ),
    ],
    monitor: Annotated[
        str, typer.Option("--monitor", "-m", metavar="NAME", help="The monitor the rows belong to.")
    ],
) -> None:
    """Load delayed labels (idempotent: a re-imported row keeps one label, the latest).

    Labels of nights never run, of row ids the night did not have, and repeated labels of
    one row are left out and counted per reason; labels outside the model's classes are
    kept and counted as novel-class evidence. A file with no valid label exits 1. The open
    events of the labelled nights are typed again from the labels; a confirmed covariate
    event that now has `adaptation.min_labels` labelled rows gets an adaptation request,
    which the drift_feedback DAG emits as the adaptation DAG's Asset event.

    Example: `drift feedback import labels-2026-11-20.csv --monitor digits_demo`
    """
    from drift import pipeline

    settings = Settings()
    (m,) = select_monitors(monitor)  # a clear error for an unknown monitor
    result = pipeline.import_feedback(settings, m, file)
    novel = f", {result['novel_class']} outside the model's classes (novel-class evidence)"
    rejected = ", ".join(f"{n} {reason}" for reason, n in result["rejected"].items()) or "none"
    lines = [
        f"{monitor}: {result['imported']} labels imported from {file}"
        f"{novel if result['novel_class'] else ''}; left out: {rejected}"
    ]
    lines += [
        f"event {r['event_id']}: shift type {r['was'] or '-'} -> {r['now']} (by the labels)"
        for r in result["retyped"]
    ]
    lines += [
        f"event {event_id}: enough labelled rows - adaptation requested"
        for event_id in result["adaptation_requested"]
    ]
    for line in lines:
        console.print(line, markup=False, highlight=False)
    if result["adaptation_requested"]:
        _emit_adaptation_request(settings, m)


def _emit_adaptation_request(settings: Settings, monitor: MonitorConfig) -> None:
    """The request as the adaptation DAG's Asset event, through Airflow's REST API when
    DRIFT_AIRFLOW_API_URL is set; else the drift_feedback DAG emits it on its next run."""
    from drift import airflow_api, pipeline

    api = airflow_api.from_env()
    if api is None:
        console.print(
            f"not emitted here ({airflow_api.URL_ENV} is not set): the drift_feedback DAG emits "
            "it on its next run, or run `drift adapt --event N`",
            markup=False,
            highlight=False,
        )
        return
    uri = airflow_api.confirmed_shift_uri(monitor.name)
    try:
        extra = pipeline.take_adaptation_request(
            settings, monitor, emit=lambda e: api.emit_asset_event(uri, e)
        )
    except airflow_api.AirflowApiError as exc:
        fail(f"labels imported, but {exc}; the request stays pending for the drift_feedback DAG")
    if extra is not None:
        console.print(f"event {extra['event_id']}: Asset event emitted on {uri}", markup=False, highlight=False)


@app.command("adapt")
def adapt_event(
    event: Annotated[int, typer.Option("--event", "-e", help="Id of a confirmed drift event.")],
    monitor: MonitorOption = None,
) -> None:
    """Adapt, validate and (if better) promote the model of a confirmed event's monitor - what drift_adapt runs.

    The event names its monitor; `--monitor`, if given, must agree. A failure
    leaves the event confirmed, records the attempt failed and exits 1.

    Example: `drift adapt --event 3`
    """
    from drift import pipeline

    settings = Settings()
    m = event_monitor(settings, event, monitor)
    try:
        result = pipeline.adapt_for_event(settings, m, event)
    except pipeline.AdaptationFailedError as exc:
        fail(str(exc))
    verdict = "promoted" if result["promoted"] else "not promoted"
    console.print(f"event {event} ({m.name}): {verdict} - {'; '.join(result['reasons']) or 'validated'}")
    for c in result.get("candidates", []):  # every candidate of adaptation.method, and its numbers
        after = c["after"]
        won = "promoted" if result["promoted"] and c["version"] == result["version"] else "rejected"
        console.print(
            f"  {c['method']}: v{c['version']} {won}, new domain {after['new_domain_accuracy']:.3f}, "
            f"old domain {after['old_domain_accuracy']:.3f}, {c['seconds']:.1f}s",
            markup=False,
            highlight=False,
        )


@app.command("meta-train")
def meta_train(monitor: MonitorOption = None) -> None:
    """Meta-train MOL's initialisation from the active model, on simulated and confirmed shifts - what drift_meta_train runs.

    Example: `drift meta-train --monitor digits_demo`
    """
    from drift import pipeline

    settings = Settings()
    monitors = select_monitors(monitor)
    for m in monitors:
        if not m.adaptation.enabled:  # as the weekly DAG: no task for such a monitor
            console.print(f"{m.name}: adaptation is disabled - nothing to meta-train")
    trainable = [m for m in monitors if m.adaptation.enabled]
    for m in steps(trainable, lambda m: f"meta-training {m.name}"):
        result = pipeline.meta_train(settings, m)
        console.print(
            f"{m.name}: meta-initialisation saved ({result['path']}), final loss {result['final_loss']:.3f},"
            f" {result['n_real_tasks']} confirmed shift(s) beside the simulated ones"
        )
