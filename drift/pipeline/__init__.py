"""The nightly and adaptation steps as plain functions.

The CLI calls them in-process; the Airflow DAGs call the same functions, one
per task. Steps hand each other the typed, JSON-safe dicts of
:mod:`drift.pipeline.results`; per-row data goes to the artifact store under
``DRIFT_HOME`` and durable results go to the event store.

Modules: :mod:`~drift.pipeline.artifacts` (artifact paths, loading a fitted
version), :mod:`~drift.pipeline.fit` (fitting a version),
:mod:`~drift.pipeline.calibration_window` (thresholds from production nights),
:mod:`~drift.pipeline.nightly` (``discover -> score_shard x N -> aggregate ->
decide -> send_alerts``), :mod:`~drift.pipeline.adaptation` (``collect -> adapt -> validate ->
promote``), :mod:`~drift.pipeline.candidates` (one trainer per ``adaptation.method``),
:mod:`~drift.pipeline.meta` (MOL's meta-training), :mod:`~drift.pipeline.labelled` (feedback
labels: typing events, adaptation requests), :mod:`~drift.pipeline.results`
(the step results). Callers import the names below from ``drift.pipeline``.
"""

from drift.pipeline.adaptation import (
    adapt,
    adapt_for_event,
    collect_adaptation_data,
    promote_candidate,
    validate_candidate,
)
from drift.pipeline.artifacts import (
    SAMPLE_ROWS,
    FittedMonitor,
    active_fitted,
    adapt_dir,
    load_fitted,
    meta_dir,
    meta_tasks_dir,
    monitor_dir,
    scores_dir,
)
from drift.pipeline.calibration_window import recalibrate
from drift.pipeline.candidates import METHODS, applicable_methods
from drift.pipeline.fit import fit_monitor
from drift.pipeline.labelled import (
    NOVEL_LABEL_SHARE,
    import_feedback,
    import_landed_feedback,
    retype_event,
    take_adaptation_request,
)
from drift.pipeline.meta import meta_train
from drift.pipeline.nightly import (
    aggregate,
    decide,
    discover,
    record_failure,
    run_night,
    score_shard,
)
from drift.pipeline.outbox import flush_alerts, send_alerts
from drift.pipeline.results import (
    AdaptationFailedError,
    AdaptationOutcome,
    BatchFailedError,
    Candidate,
    CandidateModel,
    Collected,
    FeedbackImport,
    FitResult,
    Manifest,
    MetaTrainResult,
    NightAggregate,
    NightDecision,
    NightPlan,
    Promotion,
    RedecidedNight,
    ShardRange,
    ShardSummary,
    Validation,
)

__all__ = [
    "METHODS",
    "NOVEL_LABEL_SHARE",
    "SAMPLE_ROWS",
    "AdaptationOutcome",
    "AdaptationFailedError",
    "BatchFailedError",
    "Candidate",
    "CandidateModel",
    "Collected",
    "FitResult",
    "FeedbackImport",
    "FittedMonitor",
    "Manifest",
    "MetaTrainResult",
    "NightAggregate",
    "NightDecision",
    "NightPlan",
    "Promotion",
    "RedecidedNight",
    "ShardRange",
    "ShardSummary",
    "Validation",
    "active_fitted",
    "adapt",
    "adapt_dir",
    "adapt_for_event",
    "applicable_methods",
    "aggregate",
    "collect_adaptation_data",
    "decide",
    "discover",
    "fit_monitor",
    "import_feedback",
    "import_landed_feedback",
    "flush_alerts",
    "load_fitted",
    "meta_dir",
    "meta_tasks_dir",
    "meta_train",
    "monitor_dir",
    "promote_candidate",
    "recalibrate",
    "record_failure",
    "retype_event",
    "run_night",
    "score_shard",
    "scores_dir",
    "send_alerts",
    "take_adaptation_request",
    "validate_candidate",
]
