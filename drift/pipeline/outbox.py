"""The night's alerts: what goes into the outbox with the verdict, and its delivery after."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drift import alerts
from drift.config import MonitorConfig, Settings
from drift.pipeline.results import NightDecision
from drift.status import EventStatus
from drift.store import repo
from drift.store.db import session_scope

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from drift.store.models import DriftEvent


def night_alerts(monitor: MonitorConfig, decision: NightDecision) -> list[dict[str, Any]]:
    """The night's alerts: an OOD surge above the ceiling, a newly confirmed event.

    Each has a dedupe key, so deciding a night again never alerts twice.
    """
    found: list[dict[str, Any]] = []
    night = decision["batch_date"]
    ceiling = monitor.alerts.ood_rate_ceiling
    surging = {d: r for d, r in decision["ood_rate"].items() if ceiling is not None and r > ceiling}
    if surging:
        rates = ", ".join(f"{d} {r:.1%}" for d, r in surging.items())
        found.append(
            {
                "kind": "ood_surge",
                "dedupe_key": f"{monitor.name}:{night}:ood_surge",
                "message": f"[{monitor.name}] OOD surge on {night}: {rates} (ceiling {ceiling:.0%})",
                "payload": {"batch_date": night, "ood_rate": decision["ood_rate"]},
                "event_id": decision["event_id"],
            }
        )
    if decision["newly_confirmed"]:
        found.append(
            {
                "kind": "event_confirmed",
                "dedupe_key": f"{monitor.name}:event:{decision['event_id']}:confirmed",
                "message": (
                    f"[{monitor.name}] {decision['shift_type'] or 'distribution'} shift confirmed on "
                    f"{night} (event {decision['event_id']})"
                ),
                "payload": {
                    k: decision[k] for k in ("batch_date", "event_id", "shift_type", "ood_rate", "reasons")
                },
                "event_id": decision["event_id"],
            }
        )
    return found


def enqueue_night_alerts(
    session: Session,
    monitor: MonitorConfig,
    monitor_id: int,
    batch_id: int | None,
    decision: NightDecision,
    event: DriftEvent | None,
) -> None:
    """Write the night's alerts to the outbox, in the caller's (the verdict's) transaction.

    A surge on a night of an event a person acknowledged (or closed) is recorded
    ``silenced``, not sent.
    """
    seen_by_a_person = event is not None and (
        event.acked_at is not None or event.status == EventStatus.CLOSED
    )
    for alert in night_alerts(monitor, decision):
        silenced = seen_by_a_person and alert["kind"] == "ood_surge"
        alerts.enqueue(session, monitor_id=monitor_id, batch_id=batch_id, silenced=silenced, **alert)


def send_alerts(settings: Settings, monitor: MonitorConfig, decision: NightDecision) -> list[str]:
    """Deliver the monitor's outbox: this night's alerts and any a crash left pending.

    Returns the kinds of the alerts delivered or tried. ``decision`` only
    names the monitor's night (the Airflow task's input); :func:`decide`
    wrote the alerts.
    """
    return flush_alerts(settings, monitor)


def flush_alerts(settings: Settings, monitor: MonitorConfig) -> list[str]:
    """Deliver the monitor's pending (and earlier failed) alerts; the kinds delivered or tried."""
    with session_scope(settings.db_url) as session:
        row = repo.get_monitor_row(session, monitor.name)
        monitor_id = row.id if row is not None else None
    if monitor_id is None:
        return []
    return [a.kind for a in alerts.deliver_pending(settings.db_url, monitor.alerts, monitor_id)]
