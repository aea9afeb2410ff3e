"""The nightly steps, one function per Airflow task of the ``drift_nightly`` DAG.

    discover -> score_shard x N -> aggregate -> decide -> send_alerts

Steps hand each other the small JSON-safe dicts of :mod:`drift.pipeline.results`;
per-row data goes to the artifact store and durable results to the event store.
:func:`run_night` runs the same steps in-process (the CLI and the demo).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from drift import alerts, gate, sources, stats
from drift.atomic import write_file
from drift.batch import InvalidBatchError
from drift.config import MonitorConfig, Settings
from drift.embed import Embedder
from drift.model_files import first_line
from drift.performance import confidence
from drift.pipeline import performance, redecide
from drift.pipeline.artifacts import (
    SAMPLE_ROWS,
    FittedMonitor,
    active_fitted,
    embedding_columns,
    feature_columns,
    required_columns,
    scores_dir,
)
from drift.pipeline.outbox import enqueue_night_alerts, send_alerts
from drift.pipeline.results import (
    BatchFailedError,
    NightAggregate,
    NightDecision,
    NightPlan,
    ShardRange,
    ShardSummary,
)
from drift.stats import Scope, TestResult
from drift.status import BatchStatus, EventStatus, Verdict
from drift.store import repo
from drift.store.db import session_scope
from drift.store.models import Batch, DriftTest
from drift.store.types import utcnow

log = logging.getLogger(__name__)


def discover(settings: Settings, monitor: MonitorConfig, batch_date: date) -> NightPlan:
    """Validate the night's files, register the batch (idempotent) and plan shards.

    A malformed batch is recorded as failed (with the reason, and an alert) and
    raises :class:`BatchFailedError`.
    """
    monitor_id, version_id, _ = active_fitted(settings, monitor)
    try:
        info = sources.inspect_batch(monitor.source, batch_date, required_columns(monitor))
    except InvalidBatchError as exc:
        record_failure(settings, monitor, batch_date, f"invalid batch: {exc}")
        raise BatchFailedError(f"{monitor.name} {batch_date}: invalid batch: {exc}") from exc
    with session_scope(settings.db_url) as session:
        batch = repo.start_batch(
            session, monitor_id, batch_date, {"files": info.files, "warnings": info.warnings}
        )
        batch.n_rows = info.n_rows
        batch.model_version_id = version_id
    shards = sources.plan_shards(info.n_rows, monitor.shard_rows)
    return {
        "monitor": monitor.name,
        "batch_date": batch_date.isoformat(),
        "n_rows": info.n_rows,
        "files": info.files,
        "sample_rate": min(1.0, SAMPLE_ROWS / info.n_rows),
        "shards": shards,
    }


def score_shard(
    settings: Settings, monitor: MonitorConfig, plan: NightPlan, shard: ShardRange
) -> ShardSummary:
    """Embed and score one shard; per-row scores go to the artifact store, a summary comes back."""
    _, _, fitted = active_fitted(settings, monitor)
    frame = sources.read_rows(
        monitor.source,
        date.fromisoformat(plan["batch_date"]),
        plan["files"],
        required_columns(monitor),
        shard["start"],
        shard["stop"],
    )
    batch = Embedder(fitted.model_spec(monitor.model), monitor.source.input_columns).embed_frame(
        frame, first_row=shard["start"]
    )

    rows = pd.DataFrame({"row": np.arange(shard["start"], shard["stop"])})
    if monitor.source.id_column:
        rows["id"] = frame[monitor.source.id_column].to_numpy()
    if batch.logits is not None:
        rows["pred"] = batch.logits.argmax(axis=1)
        rows[performance.CONFIDENCE_COLUMN] = confidence(batch.logits)
    summary: ShardSummary = {"index": shard["index"], "n_rows": len(batch), "detectors": {}}
    for name, detector in fitted.detectors.items():
        scores = detector.score(batch)
        rows[f"score__{name}"] = scores
        summary["detectors"][name] = {
            "n_flagged": int(fitted.calibrators[name].flags(scores).sum()),
            "sum_score": float(scores.sum()),
        }

    # A seeded, shard-local sample of inputs and embeddings for the batch-level tests.
    rng = np.random.default_rng(
        [shard["index"], date.fromisoformat(plan["batch_date"]).toordinal()]
    )
    keep = rng.random(len(batch)) < plan["sample_rate"]
    sample = frame.loc[keep, monitor.source.input_columns].reset_index(drop=True)
    sample = pd.concat([sample, pd.DataFrame(feature_columns(batch.take(keep)))], axis=1)

    out = scores_dir(settings, monitor, date.fromisoformat(plan["batch_date"]))
    write_file(out / f"shard-{shard['index']:05d}.parquet", lambda p: rows.to_parquet(p))
    write_file(out / f"sample-{shard['index']:05d}.parquet", lambda p: sample.to_parquet(p))
    return summary


def aggregate(
    settings: Settings,
    monitor: MonitorConfig,
    plan: NightPlan,
    summaries: list[ShardSummary],
) -> NightAggregate:
    """Merge shard results; run the registered per-night tests; store detector scores and tests."""
    batch_date = date.fromisoformat(plan["batch_date"])
    monitor_id, _, fitted = active_fitted(settings, monitor)
    indices = sorted(s["index"] for s in summaries)
    if indices != [s["index"] for s in plan["shards"]]:
        raise BatchFailedError(
            f"{monitor.name} {batch_date}: shard results {indices} do not cover the plan"
        )
    folder = scores_dir(settings, monitor, batch_date)
    rows = pd.concat(
        [pd.read_parquet(folder / f"shard-{i:05d}.parquet") for i in indices], ignore_index=True
    )
    sample = pd.concat(
        [pd.read_parquet(folder / f"sample-{i:05d}.parquet") for i in indices], ignore_index=True
    )
    reference = fitted.reference_sample()

    score_rows: list[dict[str, Any]] = []
    test_rows: list[TestResult] = []
    for name, calibrator in fitted.calibrators.items():
        scores = rows[f"score__{name}"].to_numpy()
        n_flagged = sum(s["detectors"][name]["n_flagged"] for s in summaries)
        detector_sample = stats.DetectorSample(
            name, scores, n_flagged, calibrator.scores_, calibrator.tpr
        )
        tests = [t for compute in stats.computes(Scope.DETECTOR) for t in compute(detector_sample)]
        score_rows.append(
            {
                "detector": name,
                "n_rows": len(scores),
                "n_flagged": n_flagged,
                "ood_rate": n_flagged / len(scores),
                "mean_score": float(scores.mean()),
                "threshold": calibrator.threshold_,
                # the flag-count test's p-value: the detector's own verdict on the night
                "p_value": next(t.p_value for t in tests if t.name == "flag_count"),
                "details": {
                    "quantiles": np.quantile(scores, [0.05, 0.25, 0.5, 0.75, 0.95]).tolist(),
                    "n_calibration": calibrator.m,
                    "tpr": calibrator.tpr,
                },
            }
        )
        test_rows.extend(tests)

    estimated = performance.estimate_night(fitted.path, rows)
    has_predictions = "pred" in rows and "pred" in reference
    batch_sample = stats.BatchSample(
        reference=reference,
        current=sample,
        input_columns=monitor.source.input_columns,
        embedding_columns=embedding_columns(reference),
        column_fdr=monitor.gate.column_fdr,
        predictions=rows["pred"].to_numpy() if has_predictions else None,
        reference_predictions=reference["pred"].to_numpy() if has_predictions else None,
        n_classes=fitted.manifest["n_classes"],
        estimated_accuracy=estimated.gate_estimate,
        reference_accuracy=estimated.reference_accuracy,
        max_accuracy_drop=monitor.gate.max_accuracy_drop,
    )
    # a tiny night is still scored and decided, on the tests that can read it
    for compute in stats.computes(Scope.BATCH, Scope.COLUMN, n_rows=len(sample)):
        test_rows.extend(compute(batch_sample))

    with session_scope(settings.db_url) as session:
        batch = repo.get_batch(session, monitor_id, batch_date)
        repo.save_detector_scores(session, batch.id, score_rows)
        repo.save_drift_tests(session, batch.id, [_test_row(t, monitor) for t in test_rows])
        performance.store_night(session, settings, monitor, batch, estimated)
        batch.n_rows = len(rows)
        batch.summary = {"too_small": stats.too_small(len(sample), Scope.BATCH, Scope.COLUMN)}
    return {
        "batch_date": plan["batch_date"],
        "n_rows": len(rows),
        "ood_rate": {r["detector"]: r["ood_rate"] for r in score_rows},
        "estimated_accuracy": estimated.values(),
    }


def _test_row(result: TestResult, monitor: MonitorConfig) -> dict[str, Any]:
    """A drift_tests row; ``significant`` is the test's own verdict (the gate decides on
    the whole family): per-column p-values are BH-adjusted (FDR ``column_fdr``), the
    rest are raw at the gate's ``alpha``, and both need the gate's minimum effect size.
    Whether it was *decisive* (Bonferroni across the act family) is in the gate's
    evidence on ``batches.summary``."""
    level = gate.own_level(result, monitor.gate)
    return {
        "test": result.name,
        "subject": result.subject,
        "statistic": result.statistic,
        "p_value": result.p_value,
        "effect_size": result.effect_size,
        "significant": gate.is_decisive(result, level, monitor.gate),
        "details": {
            "in_act_family": result.name in monitor.gate.act_tests,
            "own_level": level,
            "min_effect": monitor.gate.min_effect.get(result.name, 0.0),
        },
    }


def _stored_test(row: DriftTest) -> TestResult:
    """A stored drift_tests row as the gate's TestResult.

    ``aggregate`` writes every test's statistic, p-value and effect size: the
    columns are nullable in the schema only, so a None here is a damaged row.
    """
    if row.statistic is None or row.p_value is None or row.effect_size is None:
        raise BatchFailedError(
            f"drift_tests row {row.id} ({row.test} on {row.subject}): no stored result"
        )
    return TestResult(row.test, row.statistic, row.p_value, row.effect_size, row.subject)


def night_evidence(session: Session, batch: Batch, batch_date: date) -> gate.NightEvidence:
    """The gate's input for one night, rebuilt from the stored scores and tests, so
    that `decide` can run (or re-run) on any worker."""
    rows = session.scalars(select(DriftTest).where(DriftTest.batch_id == batch.id))
    tests = [_stored_test(t) for t in rows]
    detectors = {
        s.detector: gate.DetectorNight(
            n_rows=s.n_rows,
            n_flagged=s.n_flagged,
            n_calibration=s.details["n_calibration"],
            tpr=s.details["tpr"],
            tests=[t for t in tests if t.subject == s.detector],
        )
        for s in batch.scores
    }
    batch_level = [t for t in tests if t.subject not in detectors]
    return gate.NightEvidence(batch_date=batch_date, detectors=detectors, tests=batch_level)


def decide(settings: Settings, monitor: MonitorConfig, batch_date: date) -> NightDecision:
    """Run the sequential gate on the night, update drift events, close the batch.

    The night's alerts go to the outbox in the same transaction (delivered by
    :func:`send_alerts`). When later nights are already decided (a missed
    night run late), they are decided again in order after this one, in the
    same transaction (:mod:`drift.pipeline.redecide`); ``redecided`` lists them.
    Returns a :class:`~drift.pipeline.results.NightDecision`.
    """
    monitor_id, _, fitted = active_fitted(settings, monitor)
    with session_scope(settings.db_url) as session:
        later = redecide.later_decided(session, monitor_id, batch_date)
        if later:
            redecide.rewind_events(session, monitor_id, batch_date)
        decision = _decide_night(session, monitor, monitor_id, fitted, batch_date)
        decision["redecided"] = []
        for batch in later:
            was = Verdict(batch.verdict) if batch.verdict else None
            again = _decide_night(session, monitor, monitor_id, fitted, batch.batch_date)
            decision["redecided"].append(
                {"batch_date": again["batch_date"], "was": was, "verdict": again["verdict"]}
            )
        return decision


def _decide_night(
    session: Session,
    monitor: MonitorConfig,
    monitor_id: int,
    fitted: FittedMonitor,
    batch_date: date,
) -> NightDecision:
    """Decide one night on the previous decided night's gate state; enqueue its alerts."""
    from drift import events
    from drift.pipeline.calibration_window import in_sample_check

    batch = repo.get_batch(session, monitor_id, batch_date)
    previous = repo.previous_batch(session, monitor_id, batch_date)
    if previous is not None and previous.model_version_id != batch.model_version_id:
        # new thresholds, new in-control rates: a newly active version (promotion,
        # rollback, recalibration) starts the gate afresh
        previous = None
    evidence = night_evidence(session, batch, batch_date)
    decision = gate.decide(monitor.gate, previous.gate_state if previous else None, evidence)
    # sets verdict, gate_state; gradual / input warnings expire after gradual_w quiet nights
    event = events.record_decision(
        session, monitor_id, batch, decision, advisory_expire_after=monitor.gate.gradual_w
    )
    batch.status = BatchStatus.SUCCEEDED
    batch.error = None
    batch.finished_at = utcnow()
    ood_rate = {s.detector: s.ood_rate for s in batch.scores}
    too_small = list(batch.summary.get("too_small", []))
    reasons = too_small + decision.reasons
    calibration_warning = in_sample_check(session, batch, fitted, monitor.name)
    if calibration_warning:
        log.warning("%s %s: %s", monitor.name, batch_date, calibration_warning)
    # the gate's evidence as decided: `drift explain` reads it back
    batch.summary = {
        "ood_rate": ood_rate,
        "reasons": reasons,
        "too_small": too_small,
        "shift_type": decision.shift_type,
        "evidence": decision.evidence,
        "calibration_warning": calibration_warning,
    }
    night: NightDecision = {
        "monitor": monitor.name,
        "batch_date": batch_date.isoformat(),
        "verdict": decision.verdict,
        "ood_rate": ood_rate,
        "shift_type": decision.shift_type,
        "event_id": event.id if event else None,
        "event_status": EventStatus(event.status) if event else None,
        "newly_confirmed": bool(event and event.confirmed_on == batch_date),
        "reasons": reasons,
        "calibration_warning": calibration_warning,
    }
    enqueue_night_alerts(session, monitor, monitor_id, batch.id, night, event)
    return night


def record_failure(
    settings: Settings, monitor: MonitorConfig, batch_date: date, error: str
) -> None:
    """Mark the night failed with its reason and alert once; never raises over the original error."""
    log.error("%s %s: %s", monitor.name, batch_date, alerts.redact(error, monitor.alerts.secrets()))
    try:
        # the failed night and its alert commit together; delivery comes after
        with session_scope(settings.db_url) as session:
            monitor_id = repo.ensure_monitor(session, monitor.name).id
            batch_id = repo.fail_batch(session, monitor_id, batch_date, error).id
            alerts.enqueue_batch_failed(
                session, monitor.alerts, monitor.name, batch_date, error,
                monitor_id=monitor_id, batch_id=batch_id,
            )
        alerts.deliver_pending(settings.db_url, monitor.alerts, monitor_id)
    except Exception as exc:  # the database may be what failed; the caller re-raises the cause
        log.error("%s %s: could not record the failure: %s", monitor.name, batch_date, first_line(exc))


def run_night(
    settings: Settings,
    monitor: MonitorConfig,
    batch_date: date,
    progress: Callable[[int, int], None] | None = None,
) -> NightDecision:
    """One whole night in-process: what the Airflow DAG does, task by task."""
    plan = discover(settings, monitor, batch_date)
    try:
        summaries: list[ShardSummary] = []
        for shard in plan["shards"]:
            summaries.append(score_shard(settings, monitor, plan, shard))
            if progress:
                progress(len(summaries), len(plan["shards"]))
        aggregate(settings, monitor, plan, summaries)
        decision = decide(settings, monitor, batch_date)
    except Exception as exc:
        # one line: a database error's text goes on with its SQL and parameters
        reason = first_line(exc)
        record_failure(settings, monitor, batch_date, f"{type(exc).__name__}: {reason}")
        raise BatchFailedError(f"{monitor.name} {batch_date}: {reason}") from exc
    decision["alerts"] = send_alerts(settings, monitor, decision)
    return decision
