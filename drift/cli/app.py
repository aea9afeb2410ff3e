"""The `drift` command's shared parts: the Typer app, consoles and argument helpers."""

from __future__ import annotations

import logging
from datetime import date
from typing import Annotated

import typer
from rich.console import Console

from drift.config import MonitorConfig, Settings, load_monitors

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


def error(message: str) -> None:
    """One line on stderr."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    error(message)
    raise typer.Exit(code)


def select_monitors(name: str | None) -> list[MonitorConfig]:
    monitors = load_monitors()
    if name is None:
        return monitors
    selected = [m for m in monitors if m.name == name]
    if not selected:
        fail(f"no monitor named '{name}' (configured: {', '.join(m.name for m in monitors)})")
    return selected


def event_monitor(settings: Settings, event_id: int, monitor: str | None) -> MonitorConfig:
    """The configured monitor an event belongs to; one-line errors for an unknown event,
    a ``--monitor`` that disagrees, or an event of a monitor no longer configured."""
    from drift.events import EventMonitorMismatchError, EventNotFoundError, get_event
    from drift.store.db import session_scope

    with session_scope(settings.db_url) as session:
        try:
            name = get_event(session, event_id, monitor=monitor).monitor.name
        except (EventNotFoundError, EventMonitorMismatchError) as exc:
            fail(str(exc))
    (selected,) = select_monitors(name)
    return selected


def parse_date(value: str) -> date:
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


def redact_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
