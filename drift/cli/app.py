"""The `drift` command's shared parts: the Typer app, consoles and argument helpers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text
from typer.core import TyperOption

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
    typer.Option(
        "--monitor",
        "-m",
        metavar="NAME",
        help="Monitor name, e.g. digits_demo (default: every configured monitor).",
    ),
]
DateOption = Annotated[
    str, typer.Option("--date", "-d", metavar="YYYY-MM-DD", help="The night, YYYY-MM-DD.")
]


def _option_type(self: TyperOption, ctx: Any) -> str | None:
    """typer labels every option with its annotation (`--verbose <bool>`, `<str>`): show a
    flag bare and a value option by its metavar (NAME, YYYY-MM-DD, FILE)."""
    if self.is_flag:
        return None
    return self.metavar if self.metavar is not None else self.display_type(ctx)


TyperOption.display_type_rich = _option_type  # type: ignore[method-assign]


def error(message: str) -> None:
    """One line on stderr, printed as it is: brackets in it (``[a-z0-9_]``) are not markup."""
    text = " ".join(str(message).split())  # one line, whatever the message held
    err_console.print(Text.assemble(("error:", "bold red"), " ", text), highlight=False, soft_wrap=True)


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


T = TypeVar("T")


def steps(items: Sequence[T], label: Callable[[T], str]) -> Iterator[T]:
    """Yield ``items`` one by one, showing where a long command is: a progress bar on a
    terminal, otherwise one line per step (``[2/5] label``) for logs and pipes."""
    if not console.is_terminal:
        for i, item in enumerate(items, 1):
            console.print(f"[{i}/{len(items)}] {label(item)}", markup=False, highlight=False)
            yield item
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("", total=len(items))
        for item in items:
            progress.update(task, description=label(item))
            yield item
            progress.advance(task)
