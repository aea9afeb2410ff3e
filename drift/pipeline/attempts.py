"""An adaptation step is all-or-nothing: :func:`all_or_nothing` wraps each step of
:mod:`drift.pipeline.adaptation` (collect, adapt, validate, promote)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from drift import events, leases
from drift.config import MonitorConfig, Settings
from drift.model_files import first_line
from drift.pipeline.results import AdaptationFailedError, Candidate, Collected, Validation
from drift.status import StepStatus
from drift.store import repo
from drift.store.db import session_scope

StepInput = TypeVar("StepInput", int, Collected, Candidate, Validation)
StepOutput = TypeVar("StepOutput")


def all_or_nothing(
    step: Callable[[Settings, MonitorConfig, StepInput], StepOutput],
) -> Callable[[Settings, MonitorConfig, StepInput], StepOutput]:
    """An adaptation step that, when it fails, leaves the event as it was before the run.

    The step runs under the event's lease (its heartbeat renewed, see
    :mod:`drift.leases`); any exception marks the attempt failed in
    ``adaptations`` with its one-line reason, returns the event to ``confirmed``
    and is raised again as :class:`AdaptationFailedError`, so the command or
    Airflow task fails.
    """

    @functools.wraps(step)
    def run(settings: Settings, monitor: MonitorConfig, given: StepInput) -> StepOutput:
        event_id = given if isinstance(given, int) else given["event_id"]
        leased = not isinstance(given, int) and given["status"] != StepStatus.SKIPPED
        try:
            if not leased:  # collect takes the lease itself; a skipped run holds none
                return step(settings, monitor, given)
            with leases.held(settings.db_url, event_id):
                return step(settings, monitor, given)
        except (events.EventNotFoundError, events.EventMonitorMismatchError):
            raise  # refused before anything started
        except leases.LeaseLostError as exc:  # this run was undone or reset: nothing of it to undo
            raise AdaptationFailedError(str(exc)) from exc
        except Exception as exc:
            reason = f"{step.__name__}: {first_line(exc)}"
            with session_scope(settings.db_url) as session:
                row = repo.get_monitor_row(session, monitor.name)
                method = monitor.adaptation.method  # the policy; its candidates failed with it
                undone = row is not None and leases.abandon(session, event_id, row.id, method, reason)
            state = "event returned to confirmed" if undone else "event left as it was"
            raise AdaptationFailedError(f"event {event_id}: adaptation failed in {reason} ({state})") from exc

    return run
