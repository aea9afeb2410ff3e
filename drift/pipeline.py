"""The nightly and adaptation steps as plain functions.

The CLI calls them in-process; the Airflow DAGs call the same functions, one
per task. Steps hand each other small JSON-able dicts; per-row data goes to the
artifact store under ``DRIFT_HOME`` and durable results go to the event store.

Nightly flow (docs/architecture.md §1)::

    discover -> score_shard x N -> aggregate -> decide -> send_alerts
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drift import sources
from drift.atomic import write_file
from drift.batch import FeatureBatch, InvalidBatchError
from drift.calibration import ConformalCalibrator
from drift.config import ModelSpec, MonitorConfig, Settings
from drift.detectors import Detector, get_detector
from drift.embed import Embedder
from drift.store import repo
from drift.store.db import session_scope
from drift.store.types import utcnow

log = logging.getLogger(__name__)

#: rows of embeddings / raw inputs kept per night for the MMD and per-column tests
SAMPLE_ROWS = 2_000


class BatchFailedError(RuntimeError):
    """The night could not be processed; it is recorded as failed with this message."""


# -- artifacts -------------------------------------------------------------------------------------


def monitor_dir(settings: Settings, monitor: MonitorConfig) -> Path:
    return settings.artifacts_dir / monitor.name


def scores_dir(settings: Settings, monitor: MonitorConfig, batch_date: date) -> Path:
    return monitor_dir(settings, monitor) / "scores" / f"ds={batch_date.isoformat()}"


@dataclass
class FittedMonitor:
    """A model version's detectors, calibrators and reference summaries, loaded from disk."""

    path: Path
    manifest: dict[str, Any]
    detectors: dict[str, Detector]
    calibrators: dict[str, ConformalCalibrator]

    def reference_sample(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "reference_sample.parquet")

    def model_spec(self, configured: ModelSpec) -> ModelSpec:
        """The model this version scores with: its own adapted model file, if it has one."""
        if self.manifest.get("model_file"):
            return configured.model_copy(
                update={"format": "export", "path": self.path / self.manifest["model_file"]}
            )
        return configured


@lru_cache(maxsize=8)
def load_fitted(path: str) -> FittedMonitor:
    folder = Path(path)
    manifest = json.loads((folder / "manifest.json").read_text())
    detectors = {name: Detector.load(folder / "detectors" / name) for name in manifest["detectors"]}
    calibrators = {
        name: ConformalCalibrator.load(folder / "calibration" / name)
        for name in manifest["detectors"]
    }
    return FittedMonitor(folder, manifest, detectors, calibrators)


def _feature_columns(batch: FeatureBatch) -> dict[str, np.ndarray]:
    return {f"f_{i}": batch.features[:, i] for i in range(batch.features.shape[1])}


def _model_columns(monitor: MonitorConfig) -> list[str]:
    """The columns the model reads: raw inputs, or the precomputed embedding/logit columns."""
    spec = monitor.model
    if spec.format == "precomputed":
        return list(dict.fromkeys([*spec.feature_columns, *(spec.logit_columns or [])]))
    return monitor.source.input_columns


def _required_columns(monitor: MonitorConfig) -> list[str]:
    columns = list(dict.fromkeys([*monitor.source.input_columns, *_model_columns(monitor)]))
    if monitor.source.id_column:
        columns.append(monitor.source.id_column)
    return columns


# -- fit ---------------------------------------------------------------------------------------------


def fit_monitor(
    settings: Settings,
    monitor: MonitorConfig,
    *,
    reference: pd.DataFrame | None = None,
    calibration: pd.DataFrame | None = None,
    model_file: Path | None = None,
    origin: str = "fit",
    promote: bool = True,
) -> dict[str, Any]:
    """Reference -> fitted detectors + conformal calibration, as a new model version.

    Thresholds are calibrated on rows in no detector bank (docs/methods.md §2): the
    ``reference.calibration_path`` file when configured (best: rows the model
    never trained on), else a held-out share ``calibration_fraction`` of the
    reference. ``model_file`` (an adapted ``torch.export`` program) is stored
    with the version and replaces the configured model for it.
    """
    ref_cfg = monitor.reference
    columns = list(dict.fromkeys([*_model_columns(monitor), *monitor.source.input_columns]))
    if ref_cfg.label_column:
        columns.append(ref_cfg.label_column)
    if reference is None:
        reference = sources.read_reference(ref_cfg.path, columns)
    if calibration is None and ref_cfg.calibration_path is not None:
        calibration = sources.read_reference(ref_cfg.calibration_path, columns)
    if calibration is None:
        order = np.random.default_rng(ref_cfg.seed).permutation(len(reference))
        n_calib = max(1, int(round(len(reference) * ref_cfg.calibration_fraction)))
        calibration = reference.iloc[np.sort(order[:n_calib])]
        reference = reference.iloc[np.sort(order[n_calib:])]
    calibration = calibration.reset_index(drop=True)

    spec = monitor.model
    if model_file is not None:
        spec = spec.model_copy(update={"format": "export", "path": Path(model_file)})
    embedder = Embedder(spec, monitor.source.input_columns)

    def embed(frame: pd.DataFrame) -> FeatureBatch:
        embedded = embedder.embed_frame(frame)
        labels = frame[ref_cfg.label_column].to_numpy(np.int64) if ref_cfg.label_column else None
        return FeatureBatch(embedded.features, embedded.logits, labels=labels)

    bank, calibration_batch = embed(reference), embed(calibration)

    with tempfile.TemporaryDirectory(dir=_ensure(monitor_dir(settings, monitor))) as tmp:
        staging = Path(tmp) / "version"
        for spec in monitor.detectors:
            detector = get_detector(spec.name, **spec.params).fit(bank)
            detector.save(staging / "detectors" / spec.name)
            ConformalCalibrator(tpr=monitor.tpr).fit(detector.score(calibration_batch)).save(
                staging / "calibration" / spec.name
            )
        if model_file is not None:
            shutil.copyfile(model_file, staging / "model.pt2")
        # the batch-level tests compare each night with unseen in-distribution rows
        sample = calibration[monitor.source.input_columns]
        sample = pd.concat([sample, pd.DataFrame(_feature_columns(calibration_batch))], axis=1)
        if calibration_batch.logits is not None:
            sample["pred"] = calibration_batch.logits.argmax(axis=1)
        sample.head(SAMPLE_ROWS).to_parquet(staging / "reference_sample.parquet")
        manifest = {
            "monitor": monitor.name,
            "detectors": [d.name for d in monitor.detectors],
            "tpr": monitor.tpr,
            "n_bank": len(bank),
            "n_calibration": len(calibration_batch),
            "n_classes": None if bank.logits is None else int(bank.logits.shape[1]),
            "feature_dim": int(bank.features.shape[1]),
            "origin": origin,
            "model_file": "model.pt2" if model_file is not None else None,
            "created_at": utcnow().isoformat(),
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))

        with session_scope(settings.db_url) as session:
            monitor_row = repo.ensure_monitor(
                session, monitor.name, monitor.model_dump(mode="json")
            )
            version = repo.add_version(session, monitor_row.id, "", origin=origin, metrics=manifest)
            final = monitor_dir(settings, monitor) / "versions" / f"v{version.version}"
            if final.exists():  # left by a run whose transaction rolled back
                shutil.rmtree(final)
            final.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(final)
            version.artifact_path = str(final.resolve())
            if promote:
                repo.promote_version(session, version)
            return {"version": version.version, "path": version.artifact_path, **manifest}


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _active_fitted(settings: Settings, monitor: MonitorConfig) -> tuple[int, int, FittedMonitor]:
    with session_scope(settings.db_url) as session:
        monitor_row = repo.get_monitor_row(session, monitor.name)
        version = monitor_row and repo.active_version(session, monitor_row.id)
        if version is None:
            raise BatchFailedError(
                f"monitor '{monitor.name}' has no fitted model version: run `drift fit` first"
            )
        return monitor_row.id, version.id, load_fitted(version.artifact_path)


# -- nightly steps -----------------------------------------------------------------------------------


def discover(settings: Settings, monitor: MonitorConfig, batch_date: date) -> dict[str, Any]:
    """Validate the night's files, register the batch (idempotent) and plan shards.

    A malformed batch is recorded as failed (with the reason, and an alert) and
    raises :class:`BatchFailedError`.
    """
    monitor_id, version_id, _ = _active_fitted(settings, monitor)
    try:
        info = sources.inspect_batch(monitor.source, batch_date, _required_columns(monitor))
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
    settings: Settings, monitor: MonitorConfig, plan: dict[str, Any], shard: dict[str, int]
) -> dict[str, Any]:
    """Embed and score one shard; per-row scores go to the artifact store, a summary comes back."""
    _, _, fitted = _active_fitted(settings, monitor)
    frame = sources.read_rows(
        monitor.source,
        date.fromisoformat(plan["batch_date"]),
        plan["files"],
        _required_columns(monitor),
        shard["start"],
        shard["stop"],
    )
    batch = Embedder(fitted.model_spec(monitor.model), monitor.source.input_columns).embed_frame(
        frame
    )

    rows = pd.DataFrame({"row": np.arange(shard["start"], shard["stop"])})
    if monitor.source.id_column:
        rows["id"] = frame[monitor.source.id_column].to_numpy()
    if batch.logits is not None:
        rows["pred"] = batch.logits.argmax(axis=1)
    summary: dict[str, Any] = {"index": shard["index"], "n_rows": len(batch), "detectors": {}}
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
    sample = pd.concat([sample, pd.DataFrame(_feature_columns(batch.take(keep)))], axis=1)

    out = scores_dir(settings, monitor, date.fromisoformat(plan["batch_date"]))
    write_file(out / f"shard-{shard['index']:05d}.parquet", lambda p: rows.to_parquet(p))
    write_file(out / f"sample-{shard['index']:05d}.parquet", lambda p: sample.to_parquet(p))
    return summary


def aggregate(
    settings: Settings,
    monitor: MonitorConfig,
    plan: dict[str, Any],
    summaries: list[dict[str, Any]],
) -> dict[str, Any]:
    """Merge shard results; run the per-night tests; store detector scores and tests."""
    from drift import stats

    batch_date = date.fromisoformat(plan["batch_date"])
    monitor_id, _, fitted = _active_fitted(settings, monitor)
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

    score_rows, test_rows = [], []
    for name, calibrator in fitted.calibrators.items():
        scores = rows[f"score__{name}"].to_numpy()
        n_flagged = sum(s["detectors"][name]["n_flagged"] for s in summaries)
        tests = [
            stats.flag_count_test(
                n_flagged, len(scores), calibrator.m, calibrator.tpr, subject=name
            ),
            stats.score_distribution_test(scores, calibrator.scores_, subject=name),
        ]
        score_rows.append(
            {
                "detector": name,
                "n_rows": len(scores),
                "n_flagged": n_flagged,
                "ood_rate": n_flagged / len(scores),
                "mean_score": float(scores.mean()),
                "threshold": calibrator.threshold_,
                "p_value": tests[0].p_value,
                "details": {
                    "quantiles": np.quantile(scores, [0.05, 0.25, 0.5, 0.75, 0.95]).tolist(),
                    "n_calibration": calibrator.m,
                    "tpr": calibrator.tpr,
                },
            }
        )
        test_rows.extend(tests)

    feature_cols = [c for c in reference.columns if c.startswith("f_")]
    test_rows.append(
        stats.mmd_test(
            reference[feature_cols].to_numpy(np.float32),
            sample[feature_cols].to_numpy(np.float32),
            subject="embedding",
        )
    )
    test_rows.extend(
        stats.column_drift_tests(
            reference, sample, monitor.source.input_columns, q=monitor.gate.column_fdr
        )
    )
    if "pred" in rows and "pred" in reference:
        n_classes = fitted.manifest["n_classes"]
        test_rows.append(
            stats.class_mix_test(
                np.bincount(reference["pred"], minlength=n_classes),
                np.bincount(rows["pred"], minlength=n_classes),
                subject="predicted_class",
            )
        )

    with session_scope(settings.db_url) as session:
        batch = repo.get_batch(session, monitor_id, batch_date)
        repo.save_detector_scores(session, batch.id, score_rows)
        repo.save_drift_tests(session, batch.id, [_test_row(t, monitor) for t in test_rows])
        batch.n_rows = len(rows)
    return {
        "batch_date": plan["batch_date"],
        "n_rows": len(rows),
        "ood_rate": {r["detector"]: r["ood_rate"] for r in score_rows},
    }


def _test_row(result: Any, monitor: MonitorConfig) -> dict[str, Any]:
    """A drift_tests row; ``significant`` is the test's own verdict (the gate decides on
    the whole family): per-column p-values are BH-adjusted (FDR ``column_fdr``), the
    rest are raw at the gate's ``alpha``, and both need the gate's minimum effect size."""
    from drift.gate import is_decisive

    level = monitor.gate.column_fdr if result.name.startswith("column_") else monitor.gate.alpha
    return {
        "test": result.name,
        "subject": result.subject,
        "statistic": result.statistic,
        "p_value": result.p_value,
        "effect_size": result.effect_size,
        "significant": is_decisive(result, level, monitor.gate),
        "details": {},
    }


def _night_evidence(session: Any, batch: Any, batch_date: date) -> Any:
    """The gate's input for one night, rebuilt from the stored scores and tests, so
    that `decide` can run (or re-run) on any worker."""
    from sqlalchemy import select

    from drift import gate
    from drift.stats import TestResult
    from drift.store.models import DriftTest

    tests = [
        TestResult(t.test, t.statistic, t.p_value, t.effect_size, t.subject)
        for t in session.scalars(select(DriftTest).where(DriftTest.batch_id == batch.id))
    ]
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


def decide(settings: Settings, monitor: MonitorConfig, batch_date: date) -> dict[str, Any]:
    """Run the sequential gate on the night, update drift events, close the batch.

    Returns a small summary; ``newly_confirmed`` is true on the night an event is
    confirmed, which is when the adaptation DAG's Asset is emitted.
    """
    from drift import events, gate

    monitor_id, _, _ = _active_fitted(settings, monitor)
    with session_scope(settings.db_url) as session:
        batch = repo.get_batch(session, monitor_id, batch_date)
        previous = repo.previous_batch(session, monitor_id, batch_date)
        evidence = _night_evidence(session, batch, batch_date)
        decision = gate.decide(monitor.gate, previous.gate_state if previous else None, evidence)
        event = events.record_decision(
            session, monitor_id, batch, decision
        )  # sets verdict, gate_state
        batch.status = "succeeded"
        batch.error = None
        batch.finished_at = utcnow()
        ood_rate = {s.detector: s.ood_rate for s in batch.scores}
        batch.summary = {"ood_rate": ood_rate, "reasons": decision.reasons}
        return {
            "monitor": monitor.name,
            "batch_date": batch_date.isoformat(),
            "verdict": decision.verdict,
            "ood_rate": ood_rate,
            "shift_type": decision.shift_type,
            "event_id": event.id if event else None,
            "event_status": event.status if event else None,
            "newly_confirmed": bool(event and event.confirmed_on == batch_date),
            "reasons": decision.reasons,
        }


def send_alerts(settings: Settings, monitor: MonitorConfig, decision: dict[str, Any]) -> list[str]:
    """The night's alerts: an OOD surge above the ceiling, a newly confirmed event.

    Each alert has a dedupe key, so re-running a night never alerts twice.
    """
    from drift import alerts

    sent = []
    ceiling = monitor.alerts.ood_rate_ceiling
    surging = {d: r for d, r in decision["ood_rate"].items() if ceiling is not None and r > ceiling}
    with session_scope(settings.db_url) as session:
        monitor_id = repo.get_monitor_row(session, monitor.name).id
        if surging:
            rates = ", ".join(f"{d} {r:.1%}" for d, r in surging.items())
            alert = alerts.dispatch(
                session,
                monitor.alerts,
                kind="ood_surge",
                dedupe_key=f"{monitor.name}:{decision['batch_date']}:ood_surge",
                message=f"[{monitor.name}] OOD surge on {decision['batch_date']}: {rates} (ceiling {ceiling:.0%})",
                payload={"batch_date": decision["batch_date"], "ood_rate": decision["ood_rate"]},
                monitor_id=monitor_id,
            )
            sent.append(alert.kind)
        if decision["newly_confirmed"]:
            alert = alerts.dispatch(
                session,
                monitor.alerts,
                kind="event_confirmed",
                dedupe_key=f"{monitor.name}:event:{decision['event_id']}:confirmed",
                message=(
                    f"[{monitor.name}] {decision['shift_type'] or 'distribution'} shift confirmed on "
                    f"{decision['batch_date']} (event {decision['event_id']})"
                ),
                payload={
                    k: decision[k]
                    for k in ("batch_date", "event_id", "shift_type", "ood_rate", "reasons")
                },
                monitor_id=monitor_id,
                event_id=decision["event_id"],
            )
            sent.append(alert.kind)
    return sent


def record_failure(
    settings: Settings, monitor: MonitorConfig, batch_date: date, error: str
) -> None:
    """Mark the night failed with its reason and alert once; never raises over the original error."""
    from drift import alerts

    log.error("%s %s: %s", monitor.name, batch_date, alerts.redact(error, monitor.alerts.secrets()))
    try:
        with session_scope(settings.db_url) as session:
            monitor_id = repo.ensure_monitor(session, monitor.name).id
            batch_id = repo.fail_batch(session, monitor_id, batch_date, error).id
        # a session of its own: whatever delivery does, the failed night stays recorded
        with session_scope(settings.db_url) as session:
            alerts.alert_batch_failed(
                session, monitor.alerts, monitor.name, batch_date, error,
                monitor_id=monitor_id, batch_id=batch_id,
            )
    except Exception:  # the database may be what failed; the caller re-raises the cause
        log.exception("%s %s: could not record the failure", monitor.name, batch_date)


def run_night(
    settings: Settings,
    monitor: MonitorConfig,
    batch_date: date,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """One whole night in-process: what the Airflow DAG does, task by task."""
    plan = discover(settings, monitor, batch_date)
    try:
        summaries = []
        for shard in plan["shards"]:
            summaries.append(score_shard(settings, monitor, plan, shard))
            if progress:
                progress(len(summaries), len(plan["shards"]))
        aggregate(settings, monitor, plan, summaries)
        decision = decide(settings, monitor, batch_date)
    except Exception as exc:
        record_failure(settings, monitor, batch_date, f"{type(exc).__name__}: {exc}")
        raise BatchFailedError(f"{monitor.name} {batch_date}: {exc}") from exc
    decision["alerts"] = send_alerts(settings, monitor, decision)
    return decision


# -- adaptation (the drift_adapt and drift_meta_train DAGs) -----------------------------------------


def _adapt_dir(settings: Settings, monitor: MonitorConfig, event_id: int) -> Path:
    return monitor_dir(settings, monitor) / "adapt" / f"event-{event_id}"


def _meta_dir(settings: Settings, monitor: MonitorConfig) -> Path:
    return monitor_dir(settings, monitor) / "meta" / "mol"


def _labelled_reference(monitor: MonitorConfig, path: Path) -> pd.DataFrame:
    if monitor.reference.label_column is None:
        raise BatchFailedError(f"{monitor.name}: adaptation needs reference.label_column")
    columns = [*monitor.source.input_columns, monitor.reference.label_column]
    return sources.read_reference(path, columns).rename(
        columns={monitor.reference.label_column: "label"}
    )


def meta_train(settings: Settings, monitor: MonitorConfig) -> dict[str, Any]:
    """Learn MOL's meta-initialisation from shifts simulated on the reference (weekly DAG)."""
    import importlib

    from drift.adapt import MetaOODLearner, trainable_module

    cfg = monitor.adaptation
    reference = _labelled_reference(monitor, monitor.reference.path)
    module_name, factory = cfg.meta_shift.split(":")
    shift_fn = getattr(importlib.import_module(module_name), factory)()
    _, _, fitted = _active_fitted(settings, monitor)
    learner = MetaOODLearner(
        inner_steps=cfg.inner_steps, inner_lr=cfg.inner_lr, meta_iterations=cfg.meta_iterations
    ).meta_train(
        trainable_module(fitted.model_spec(monitor.model)),
        reference[monitor.source.input_columns].to_numpy(np.float32),
        reference["label"].to_numpy(np.int64),
        shift_fn,
    )
    learner.save(_meta_dir(settings, monitor))
    return {
        "monitor": monitor.name,
        "path": str(_meta_dir(settings, monitor)),
        "final_loss": learner.meta_losses_[-1],
    }


#: share of feedback labels outside the model's classes that makes a shift semantic
NOVEL_LABEL_SHARE = 0.05


def _retype_by_feedback(
    settings: Settings, monitor: MonitorConfig, event: Any, labels: pd.DataFrame
) -> str | None:
    """The shift type, corrected by the event's feedback labels where they exist.

    Unlabelled evidence cannot always tell novel classes from a strong covariate
    shift (both make every detector surge). Labels can: classes the model does
    not have mean a semantic shift; known classes only mean the inputs moved.
    """
    if labels.empty or event.shift_type == "prior":
        return event.shift_type
    _, _, fitted = _active_fitted(settings, monitor)
    novel_share = float((~labels["label"].between(0, fitted.manifest["n_classes"] - 1)).mean())
    shift_type = "semantic" if novel_share >= NOVEL_LABEL_SHARE else "covariate"
    event.evidence = {
        **event.evidence,
        "feedback": {
            "n_labels": len(labels),
            "novel_label_share": novel_share,
            "typed_as": shift_type,
        },
    }
    event.shift_type = shift_type
    return shift_type


def collect_adaptation_data(
    settings: Settings, monitor: MonitorConfig, event_id: int
) -> dict[str, Any]:
    """The event's nightly rows joined with their feedback labels; moves the event to `adapting`."""
    from sqlalchemy import select

    from drift import events
    from drift.store.models import DriftEvent, FeedbackLabel

    with session_scope(settings.db_url) as session:
        event = session.get(DriftEvent, event_id)
        if event is None:
            raise LookupError(f"no drift event with id {event_id}")
        if event.status != "confirmed":  # e.g. a re-run night emitted the Asset again
            return {
                "event_id": event_id,
                "status": "skipped",
                "reason": f"event {event_id} is {event.status}",
            }
        nights = {
            b.batch_date: b.source.get("files", [])
            for b in event.batches
            if b.status == "succeeded"
        }
        labels = pd.DataFrame(
            session.execute(
                select(FeedbackLabel.batch_date, FeedbackLabel.row_id, FeedbackLabel.label).where(
                    FeedbackLabel.monitor_id == event.monitor_id,
                    FeedbackLabel.batch_date.in_(list(nights)),
                )
            ).all(),
            columns=["batch_date", "row_id", "label"],
        )
        shift_type = _retype_by_feedback(settings, monitor, event, labels)
        events.set_event_status(session, event_id, "adapting")

    id_column = monitor.source.id_column
    columns = [*monitor.source.input_columns, *([id_column] if id_column else [])]
    frames = []
    for night, files in sorted(nights.items()):
        frame = sources.read_rows(monitor.source, night, files, columns)
        frame["batch_date"] = night
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    if id_column and not labels.empty:
        rows["row_id"] = rows[id_column].astype(str)
        rows = rows.merge(labels, on=["batch_date", "row_id"], how="left")
    else:
        rows["label"] = np.nan
    path = _adapt_dir(settings, monitor, event_id) / "collected.parquet"
    write_file(path, lambda p: rows.to_parquet(p))
    return {
        "event_id": event_id,
        "status": "collected",
        "shift_type": shift_type,
        "path": str(path),
        "n_rows": len(rows),
        "n_labelled": int(rows["label"].notna().sum()),
    }


def adapt(settings: Settings, monitor: MonitorConfig, collected: dict[str, Any]) -> dict[str, Any]:
    """Adapt the model to the shifted nights' labelled rows and fit a candidate version.

    The labelled rows are split in two: support (two thirds: adapts the model,
    with as many old-domain rows rehearsed, and joins the detector banks) and
    validation (judges the candidate, never trained on). MOL adapts from its
    meta-initialisation when one was meta-trained; otherwise the deployed model
    is fine-tuned with the same steps. Novel classes cannot be learned by a
    fixed classifier: a semantic shift is left to a human.
    """
    from drift.adapt import MetaOODLearner, export_module, fine_tune, trainable_module
    from drift.store.models import Adaptation

    cfg = monitor.adaptation
    event_id = collected["event_id"]
    if collected["status"] == "skipped":
        return collected
    rows = pd.read_parquet(collected["path"])
    labelled = rows[rows["label"].notna()].astype({"label": np.int64})
    _, _, fitted = _active_fitted(settings, monitor)
    n_classes = fitted.manifest["n_classes"]
    reason = None
    if not cfg.enabled:
        reason = "adaptation is disabled in the monitor config"
    elif collected["shift_type"] == "prior":
        reason = (
            "prior shift: each class's inputs did not move, only the class mix; nothing to retrain"
        )
    elif collected["shift_type"] == "semantic":
        reason = (
            "semantic shift (novel classes): a fixed classifier cannot learn them; needs a human"
        )
    elif len(labelled) < cfg.min_labels:
        reason = f"{len(labelled)} feedback-labelled rows, need {cfg.min_labels}"
    elif n_classes is None or labelled["label"].max() >= n_classes:
        reason = "feedback labels outside the model's classes"
    if reason is not None:
        return {"event_id": event_id, "status": "skipped", "reason": reason}

    order = np.random.default_rng(event_id).permutation(len(labelled))
    n_validation = len(order) // 3
    support = labelled.iloc[np.sort(order[n_validation:])]
    validation = labelled.iloc[np.sort(order[:n_validation])]
    folder = _adapt_dir(settings, monitor, event_id)
    write_file(folder / "validation.parquet", lambda p: validation.to_parquet(p))

    columns = monitor.source.input_columns
    label = monitor.reference.label_column
    reference = _labelled_reference(monitor, monitor.reference.path)
    # rehearsal: as many old-domain rows as new ones, so adapting does not forget the old domain
    replay = reference.sample(n=min(len(support), len(reference)), random_state=event_id)
    rehearsal = pd.concat([support[[*columns, "label"]], replay], ignore_index=True)
    x_support = rehearsal[columns].to_numpy(np.float32)
    y_support = rehearsal["label"].to_numpy(np.int64)
    module = trainable_module(fitted.model_spec(monitor.model))
    if (_meta_dir(settings, monitor) / "meta.json").exists():
        learner = MetaOODLearner.load(_meta_dir(settings, monitor), module)
        adapted, method = learner.adapt(x_support, y_support), "mol"
    else:
        adapted = fine_tune(module, x_support, y_support, steps=cfg.inner_steps, lr=cfg.inner_lr)
        method = "finetune"
    model_file = export_module(adapted, _as_tensor(x_support[:2]), folder / "model.pt2")

    # the new domain's rows join the banks; thresholds stay calibrated on the configured
    # in-distribution rows, so "5% flagged" keeps its meaning across versions
    result = fit_monitor(
        settings,
        monitor,
        reference=pd.concat([reference, support[[*columns, "label"]]], ignore_index=True).rename(
            columns={"label": label}
        ),
        model_file=model_file,
        origin=f"adapt:{method}:event-{event_id}",
        promote=False,
    )
    with session_scope(settings.db_url) as session:
        monitor_id = repo.get_monitor_row(session, monitor.name).id
        version = repo.get_version(session, monitor_id, result["version"])
        adaptation = Adaptation(
            monitor_id=monitor_id, event_id=event_id, method=method, candidate_version_id=version.id
        )
        session.add(adaptation)
        session.flush()
        adaptation_id = adaptation.id
    return {
        "event_id": event_id,
        "status": "candidate",
        "method": method,
        "adaptation_id": adaptation_id,
        "version": result["version"],
        "path": result["path"],
        "validation_path": str(folder / "validation.parquet"),
        "n_support": len(support),
    }


def _as_tensor(x: np.ndarray):  # noqa: ANN202
    import torch

    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _accuracy(spec: ModelSpec, columns: list[str], frame: pd.DataFrame) -> float:
    logits = Embedder(spec, columns).embed_frame(frame).logits
    return float((logits.argmax(axis=1) == frame["label"].to_numpy()).mean())


def validate_candidate(
    settings: Settings, monitor: MonitorConfig, candidate: dict[str, Any]
) -> dict[str, Any]:
    """The no-regression gate: better on the new domain's held-out rows, not worse on the old."""
    from drift.store.models import Adaptation

    if candidate["status"] != "candidate":
        return {"passed": False, "reasons": [candidate["reason"]], **candidate}
    _, _, current = _active_fitted(settings, monitor)
    proposed = load_fitted(candidate["path"])
    columns = monitor.source.input_columns
    new_domain = pd.read_parquet(candidate["validation_path"])
    old_path = monitor.reference.calibration_path or monitor.reference.path
    old_domain = _labelled_reference(monitor, old_path)
    before = {
        "new_domain_accuracy": _accuracy(current.model_spec(monitor.model), columns, new_domain),
        "old_domain_accuracy": _accuracy(current.model_spec(monitor.model), columns, old_domain),
    }
    after = {
        "new_domain_accuracy": _accuracy(proposed.model_spec(monitor.model), columns, new_domain),
        "old_domain_accuracy": _accuracy(proposed.model_spec(monitor.model), columns, old_domain),
    }
    reasons = []
    if after["new_domain_accuracy"] <= before["new_domain_accuracy"]:
        reasons.append("no gain on the new domain")
    if (
        after["old_domain_accuracy"]
        < before["old_domain_accuracy"] - monitor.adaptation.max_old_domain_drop
    ):
        reasons.append("regresses on the old domain")
    with session_scope(settings.db_url) as session:
        adaptation = session.get(Adaptation, candidate["adaptation_id"])
        adaptation.metrics_before = {**before, "n_validation": len(new_domain)}
        adaptation.metrics_after = after
    return {
        **candidate,
        "passed": not reasons,
        "reasons": reasons,
        "before": before,
        "after": after,
    }


def promote_candidate(
    settings: Settings, monitor: MonitorConfig, validation: dict[str, Any]
) -> dict[str, Any]:
    """Promote a validated candidate in one transaction and resolve the event; else reject it."""
    from drift import events
    from drift.store.models import Adaptation, DriftEvent

    event_id = validation["event_id"]
    with session_scope(settings.db_url) as session:
        monitor_id = repo.get_monitor_row(session, monitor.name).id
        if validation["status"] != "candidate":  # skipped: the shift stays confirmed for a human
            if session.get(DriftEvent, event_id).status == "adapting":
                events.set_event_status(session, event_id, "confirmed")
            return {"event_id": event_id, "promoted": False, "reasons": validation["reasons"]}
        adaptation = session.get(Adaptation, validation["adaptation_id"])
        version = repo.get_version(session, monitor_id, validation["version"])
        adaptation.finished_at = utcnow()
        if validation["passed"]:
            repo.promote_version(session, version)
            adaptation.status = "promoted"
            events.set_event_status(session, event_id, "resolved")
        else:
            version.status = "rejected"
            adaptation.status = "rejected"
            adaptation.reason = "; ".join(validation["reasons"])
            events.set_event_status(session, event_id, "confirmed")
    return {
        "event_id": event_id,
        "promoted": validation["passed"],
        "version": validation["version"],
        "reasons": validation["reasons"],
    }


def adapt_for_event(settings: Settings, monitor: MonitorConfig, event_id: int) -> dict[str, Any]:
    """collect -> adapt -> validate -> promote in-process: what the drift_adapt DAG runs task by task."""
    collected = collect_adaptation_data(settings, monitor, event_id)
    candidate = adapt(settings, monitor, collected)
    validation = validate_candidate(settings, monitor, candidate)
    outcome = promote_candidate(settings, monitor, validation)
    return {"shift_type": collected.get("shift_type"), **validation, **outcome}
