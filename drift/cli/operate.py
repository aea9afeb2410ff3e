"""Commands a person on call uses to act on events and model versions:
ack, close, reopen, reset, versions, rollback.

Every command that takes an event acts on that event's monitor (``--monitor``,
if given, must agree) and records who (``--by``, default ``$USER``) and when.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from drift.cli.app import MonitorOption, app, console, event_monitor, fail, select_monitors
from drift.config import Settings
from drift.status import CloseReason

Result = TypeVar("Result")

EventArgument = Annotated[
    int, typer.Argument(metavar="EVENT", help="Id of a drift event (see `drift events`).", show_default=False)
]


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no $USER and no passwd entry (some containers)
        return "unknown"


ByOption = Annotated[
    str, typer.Option("--by", help="Who acts (default: $USER).", default_factory=_default_user)
]


def _act(event_id: int, monitor: str | None, action: Callable[[Session], Result]) -> Result:
    """Run ``action`` in one transaction on an event of the given monitor; one-line errors."""
    from drift.events import InvalidTransitionError
    from drift.leases import LeaseHeldError
    from drift.store.db import session_scope

    settings = Settings()
    event_monitor(settings, event_id, monitor)  # unknown event, disagreeing --monitor: one line
    try:
        with session_scope(settings.db_url) as session:
            return action(session)
    except (InvalidTransitionError, LeaseHeldError) as exc:
        fail(str(exc))
        raise  # unreachable: fail() exits


@app.command()
def ack(event: EventArgument, monitor: MonitorOption = None, by: ByOption = ...) -> None:  # type: ignore[assignment]
    """Acknowledge an open event: it stays open, its repeat alerts are silenced.

    Example: `drift ack 3 --by alice`
    """
    from drift.events import acknowledge

    acked = _act(event, monitor, lambda s: acknowledge(s, event, by))
    console.print(f"event {event} ({acked.monitor.name}): acknowledged by {acked.acked_by}")


@app.command()
def close(
    event: EventArgument,
    closed_as: Annotated[
        CloseReason, typer.Option("--as", help="false-alarm | handled", case_sensitive=False)
    ],
    note: Annotated[str | None, typer.Option(help="Why, in a sentence.")] = None,
    monitor: MonitorOption = None,
    by: ByOption = ...,  # type: ignore[assignment]
) -> None:
    """Close a warning or confirmed event as a false alarm or as handled.

    Example: `drift close 3 --as false-alarm --note "upstream backfill, not real traffic"`
    """
    from drift.events import close_event

    closed = _act(event, monitor, lambda s: close_event(s, event, closed_as, by, note))
    console.print(f"event {event} ({closed.monitor.name}): closed as {closed.closed_as} by {by}")


@app.command()
def reopen(event: EventArgument, monitor: MonitorOption = None, by: ByOption = ...) -> None:  # type: ignore[assignment]
    """Reopen a closed event (confirmed again if it had been confirmed, else a warning).

    Example: `drift reopen 3`
    """
    from drift.events import reopen_event

    reopened = _act(event, monitor, lambda s: reopen_event(s, event, by))
    console.print(f"event {event} ({reopened.monitor.name}): reopened as {reopened.status}")


@app.command()
def reset(event: EventArgument, monitor: MonitorOption = None, by: ByOption = ...) -> None:  # type: ignore[assignment]
    """Return an event stuck in `adapting` by a killed run to `confirmed`.

    Refused while the run's lease is alive (its heartbeat younger than 10 minutes).

    Example: `drift reset 3`
    """
    from drift.leases import reset_stale

    done = _act(event, monitor, lambda s: reset_stale(s, event, by))
    console.print(f"event {event} ({done.monitor.name}): reset to {done.status}; the attempt is recorded failed")


@app.command()
def versions(
    monitor: Annotated[str, typer.Option("--monitor", "-m", help="The monitor whose versions to list.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
) -> None:
    """List a monitor's model versions: created, origin, key metrics, which is active.

    Example: `drift versions --monitor digits_demo`
    """
    from drift.store import repo
    from drift.store.db import session_scope
    from drift.versions import version_records

    select_monitors(monitor)
    with session_scope(Settings().db_url) as session:
        row = repo.get_monitor_row(session, monitor)
        records = version_records(session, row.id) if row is not None else []
    if not records:
        fail(f"monitor '{monitor}' has no model versions: run `drift fit --monitor {monitor}` first")
    if as_json:
        for record in records:
            sys.stdout.write(json.dumps(record) + "\n")
        return
    table = Table(title=f"{monitor}: model versions")
    for column in ("version", "created", "origin", "key metrics", "status"):
        table.add_column(column)
    for r in records:
        metrics = ", ".join(f"{k} {v}" for k, v in r["metrics"].items())
        status = f"[bold green]{r['status']}[/]" if r["active"] else r["status"]
        table.add_row(f"v{r['version']}", r["created"], r["origin"], metrics or "-", status)
    console.print(table)


@app.command()
def rollback(
    monitor: Annotated[str, typer.Option("--monitor", "-m", help="The monitor to roll back.")],
    to: Annotated[int, typer.Option("--to", help="The version whose model to make active again.")],
    by: ByOption = ...,  # type: ignore[assignment]
) -> None:
    """Make an earlier version's model active again (atomic; the next night uses it).

    Example: `drift rollback --monitor digits_demo --to 1`
    """
    from drift.store import repo
    from drift.store.db import session_scope
    from drift.versions import RollbackError
    from drift.versions import rollback as roll_back

    select_monitors(monitor)
    try:
        with session_scope(Settings().db_url) as session:
            row = repo.get_monitor_row(session, monitor)
            if row is None:
                raise RollbackError(f"no model versions: run `drift fit --monitor {monitor}` first")
            version = roll_back(session, row.id, to, by)
    except RollbackError as exc:
        fail(f"{monitor}: {exc}")
    console.print(f"{monitor}: v{version.version} (rollback to v{to}) is active; the next night uses it")
