"""What each pipeline step hands the next: typed, JSON-safe dicts.

The Airflow DAGs pass these through XCom unchanged, so they are TypedDicts
(plain dicts at run time) of JSON values only: strings, numbers, lists and
dicts. Status and verdict fields are :mod:`drift.status` string enums, which
serialise as their plain strings.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from drift.status import EventStatus, ShiftType, StepStatus, Verdict


class AdaptationFailedError(RuntimeError):
    """An adaptation step failed; the attempt is recorded failed and the event left as it was."""


class BatchFailedError(RuntimeError):
    """The night could not be processed; it is recorded as failed with this message."""


# -- fit ---------------------------------------------------------------------------------------------


class Manifest(TypedDict):
    """``manifest.json`` of a fitted model version."""

    monitor: str
    detectors: list[str]
    tpr: float
    n_bank: int
    n_calibration: int
    n_classes: int | None
    feature_dim: int
    origin: str
    model_file: str | None
    created_at: str
    #: what the thresholds were fitted on: a file, a share of the reference or production nights
    calibrated_on: NotRequired[str]
    #: ``{"start", "end"}`` of the production nights the thresholds were fitted on
    calibration_nights: NotRequired[dict[str, str] | None]
    #: the model's accuracy on the bank and on the calibration rows, when they have labels
    accuracy_bank: NotRequired[float | None]
    accuracy_calibration: NotRequired[float | None]
    #: the performance estimators fitted with the version, or why they were skipped
    performance: NotRequired[str]
    #: files or folders stored with the version beside the model (``ear``: EAR's state)
    attachments: NotRequired[list[str]]


class FitResult(Manifest):
    """:func:`~drift.pipeline.fit_monitor`: the new version's number and folder, and its manifest."""

    version: int
    path: str


# -- nightly -----------------------------------------------------------------------------------------


class ShardRange(TypedDict):
    """Rows ``[start, stop)`` of the night, scored by one ``score_shard`` task."""

    index: int
    start: int
    stop: int


class NightPlan(TypedDict):
    """:func:`~drift.pipeline.discover`: the night's files, size and shards."""

    monitor: str
    batch_date: str
    n_rows: int
    files: list[str]
    sample_rate: float
    shards: list[ShardRange]


class DetectorShardSummary(TypedDict):
    n_flagged: int
    sum_score: float


class ShardSummary(TypedDict):
    """:func:`~drift.pipeline.score_shard`: per-detector flag counts of one shard."""

    index: int
    n_rows: int
    detectors: dict[str, DetectorShardSummary]


class NightAggregate(TypedDict):
    """:func:`~drift.pipeline.aggregate`: the night's size, OOD rate per detector and
    estimated accuracy per estimator (empty when the version has none)."""

    batch_date: str
    n_rows: int
    ood_rate: dict[str, float]
    estimated_accuracy: dict[str, float]


class RedecidedNight(TypedDict):
    """A later night decided again after an earlier one: its verdict before and now."""

    batch_date: str
    was: Verdict | None
    verdict: Verdict


class NightDecision(TypedDict):
    """:func:`~drift.pipeline.decide`: the gate's verdict and the event it touched.

    ``newly_confirmed`` is true on the night an event is confirmed (when the
    adaptation DAG's Asset is emitted); ``redecided`` lists the later nights
    decided again after this one; :func:`~drift.pipeline.run_night` adds
    the kinds of the ``alerts`` it sent.
    """

    monitor: str
    batch_date: str
    verdict: Verdict
    ood_rate: dict[str, float]
    shift_type: ShiftType | None
    event_id: int | None
    event_status: EventStatus | None
    newly_confirmed: bool
    reasons: list[str]
    redecided: NotRequired[list[RedecidedNight]]
    #: the in-sample sentence of :func:`drift.calibration.in_sample_warning`, or None
    calibration_warning: NotRequired[str | None]
    alerts: NotRequired[list[str]]


# -- adaptation --------------------------------------------------------------------------------------


class MetaTrainResult(TypedDict):
    """:func:`~drift.pipeline.meta_train`: where the meta-initialisation went, its last loss."""

    monitor: str
    path: str
    final_loss: float
    #: confirmed shifts' labelled rows meta-trained on beside the simulated shifts
    n_real_tasks: int


class Collected(TypedDict):
    """:func:`~drift.pipeline.collect_adaptation_data`: the event's rows, or why it was skipped."""

    event_id: int
    status: StepStatus
    reason: NotRequired[str]
    shift_type: NotRequired[ShiftType | None]
    path: NotRequired[str]
    n_rows: NotRequired[int]
    n_labelled: NotRequired[int]


class DomainAccuracy(TypedDict):
    new_domain_accuracy: float
    old_domain_accuracy: float


class CandidateModel(TypedDict):
    """One method's candidate version (``adaptation.method``; ``auto`` trains several)."""

    method: str
    adaptation_id: int
    version: int
    path: str
    #: wall-clock seconds to train the candidate and fit its version
    seconds: float
    #: set by :func:`~drift.pipeline.validate_candidate`
    passed: NotRequired[bool]
    reasons: NotRequired[list[str]]
    after: NotRequired[DomainAccuracy]


class Candidate(TypedDict):
    """:func:`~drift.pipeline.adapt`: the candidate model versions, or why there is none.

    The top-level ``method`` / ``adaptation_id`` / ``version`` / ``path`` are the
    chosen candidate's (after validation: the winner, or the best rejected one).
    """

    event_id: int
    status: StepStatus
    reason: NotRequired[str]
    method: NotRequired[str]
    adaptation_id: NotRequired[int]
    version: NotRequired[int]
    path: NotRequired[str]
    validation_path: NotRequired[str]
    n_support: NotRequired[int]
    candidates: NotRequired[list[CandidateModel]]


class Validation(Candidate):
    """:func:`~drift.pipeline.validate_candidate`: the no-regression gate's verdict."""

    passed: bool
    reasons: list[str]
    before: NotRequired[DomainAccuracy]
    after: NotRequired[DomainAccuracy]


class Promotion(TypedDict):
    """:func:`~drift.pipeline.promote_candidate`: promoted or not, and why."""

    event_id: int
    promoted: bool
    version: NotRequired[int]
    reasons: list[str]


class AdaptationOutcome(Validation):
    """:func:`~drift.pipeline.adapt_for_event`: the whole flow's result for one event."""

    shift_type: ShiftType | None
    promoted: bool


# -- feedback labels ---------------------------------------------------------------------------------


class Retyped(TypedDict):
    """An event whose shift type the labels changed."""

    event_id: int
    was: str | None
    now: ShiftType | None


class FeedbackImport(TypedDict):
    """:func:`~drift.pipeline.import_feedback`: what one labels file did."""

    monitor: str
    imported: int
    #: rows left out, per reason (only reasons that occurred)
    rejected: dict[str, int]
    #: imported labels outside the model's classes (novel-class evidence)
    novel_class: int
    retyped: list[Retyped]
    #: confirmed events whose adaptation the labels now allow (emitted by the drift_feedback DAG)
    adaptation_requested: list[int]
