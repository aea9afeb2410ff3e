"""The fixed vocabularies of verdicts and statuses, as string enums.

Each member *is* its string (``StrEnum``), so values stored in the database,
passed through Airflow XCom or compared with plain strings stay exactly the
strings they were: ``Verdict.CONFIRM == "confirm"``.

Examples
--------
>>> Verdict("warn") is Verdict.WARN, Verdict.CONFIRM == "confirm", f"{ShiftType.PRIOR}"
(True, True, 'prior')
>>> import json; json.dumps({"status": EventStatus.ADAPTING})
'{"status": "adapting"}'
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """The gate's verdict on one night (:func:`drift.gate.decide`)."""

    OK = "ok"
    WARN = "warn"
    CONFIRM = "confirm"


class ShiftType(StrEnum):
    """What kind of move the evidence points to (docs/methods.md §4: shift typing)."""

    COVARIATE = "covariate"
    SEMANTIC = "semantic"
    PRIOR = "prior"
    MIXED = "mixed"
    #: the unlabelled evidence cannot tell covariate from semantic; feedback labels fix it
    UNKNOWN = "unknown"


class EventKind(StrEnum):
    """What an event is about (``drift_events.kind``, docs/methods.md §4: events that matter)."""

    #: the OOD detectors (or the class mix) moved, decisively and by a practical margin
    SHIFT = "shift"
    #: input columns moved while the OOD rates did not (per-column tests)
    INPUT = "input"
    #: a small level change that persists for weeks: re-baseline, do not adapt
    GRADUAL = "gradual"


class BatchStatus(StrEnum):
    """A night's processing status (``batches.status``)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class EventStatus(StrEnum):
    """A drift event's lifecycle status (``drift_events.status``, see :mod:`drift.events`)."""

    WARNING = "warning"
    CONFIRMED = "confirmed"
    ADAPTING = "adapting"
    RESOLVED = "resolved"
    #: closed by a person (as a false alarm or as handled); `drift reopen` opens it again
    CLOSED = "closed"


class CloseReason(StrEnum):
    """Why a person closed an event (``drift_events.closed_as``)."""

    FALSE_ALARM = "false-alarm"
    HANDLED = "handled"


class VersionStatus(StrEnum):
    """A model version's status (``model_versions.status``)."""

    CANDIDATE = "candidate"
    ACTIVE = "active"
    RETIRED = "retired"
    REJECTED = "rejected"


class AdaptationStatus(StrEnum):
    """An adaptation attempt's outcome (``adaptations.status``)."""

    RUNNING = "running"
    PROMOTED = "promoted"
    REJECTED = "rejected"
    #: a step raised (or a stale run was reset); ``adaptations.reason`` says why
    FAILED = "failed"


class StepStatus(StrEnum):
    """How an adaptation step ended: what the next step does with its result."""

    SKIPPED = "skipped"
    COLLECTED = "collected"
    CANDIDATE = "candidate"
