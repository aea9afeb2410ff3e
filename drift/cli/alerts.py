"""Commands on the alert outbox: `drift alerts flush`."""

from __future__ import annotations

import typer

from drift.cli.app import MonitorOption, app, console, select_monitors
from drift.config import Settings

alerts_app = typer.Typer(help="The alert outbox: alerts written with a verdict, delivered after.")
app.add_typer(alerts_app, name="alerts")


@alerts_app.command()
def flush(monitor: MonitorOption = None) -> None:
    """Deliver every pending (or earlier failed) alert; exit 1 if some sink still fails.

    A night's alerts are written with its verdict and delivered after it; a
    process that died in between leaves them pending until the next night, a
    backfill or this command.

    Example: `drift alerts flush --monitor digits`
    """
    from drift import alerts
    from drift.store import repo
    from drift.store.db import session_scope

    settings = Settings()
    failed = 0
    for m in select_monitors(monitor):
        with session_scope(settings.db_url) as session:
            row = repo.get_monitor_row(session, m.name)
        if row is None:
            continue
        delivered = alerts.deliver_pending(settings.db_url, m.alerts, row.id)
        failed += sum(a.status != "sent" for a in delivered)
        sent = sum(a.status == "sent" for a in delivered)
        console.print(f"{m.name}: {sent} alert(s) delivered, {len(delivered) - sent} still failing")
    if failed:
        raise typer.Exit(1)
