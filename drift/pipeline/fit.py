"""Fitting a model version: detectors on the reference bank, conformal thresholds on held-out rows.

The thresholds' rows come from one of three places (:func:`calibration_rows`):
production nights declared clean (``reference.calibration_nights``; the whole
reference is then the bank), a held-out file (``reference.calibration_path``)
or a held-out share of the reference (``reference.calibration_fraction``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from drift import sources
from drift.batch import FeatureBatch
from drift.calibration import ConformalCalibrator
from drift.config import MonitorConfig, ReferenceSpec, Settings
from drift.detectors import Detector, get_detector
from drift.embed import Embedder
from drift.pipeline.artifacts import (
    SAMPLE_ROWS,
    ensure_dir,
    feature_columns,
    model_columns,
    monitor_dir,
)
from drift.pipeline.calibration_window import read_window_rows
from drift.pipeline.performance import fit_estimators
from drift.pipeline.results import FitResult, Manifest
from drift.store import repo
from drift.store.db import session_scope
from drift.store.types import utcnow


def calibration_rows(
    settings: Settings,
    monitor: MonitorConfig,
    reference: pd.DataFrame,
    columns: list[str],
    calibration: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """``(bank, calibration, what the thresholds are fitted on)`` for a fit.

    ``calibration_nights`` reads those landed nights through :mod:`drift.sources`
    like the nightly run does; the bank is then the whole reference (the
    thresholds' rows are production rows, in no bank by construction).
    """
    ref_cfg: ReferenceSpec = monitor.reference
    if calibration is not None:
        return reference, calibration.reset_index(drop=True), "rows given to fit_monitor"
    if ref_cfg.calibration_nights is not None:
        window = ref_cfg.calibration_nights
        rows = read_window_rows(settings, monitor, window)
        return reference, rows, f"production nights {window.label()}"
    if ref_cfg.calibration_path is not None:
        rows = sources.read_reference(ref_cfg.calibration_path, columns)
        return reference, rows.reset_index(drop=True), f"file {ref_cfg.calibration_path}"
    order = np.random.default_rng(ref_cfg.seed).permutation(len(reference))
    n_calib = max(1, int(round(len(reference) * ref_cfg.calibration_fraction)))
    held_out = reference.iloc[np.sort(order[:n_calib])].reset_index(drop=True)
    bank = reference.iloc[np.sort(order[n_calib:])]
    return bank, held_out, f"{ref_cfg.calibration_fraction:g} of {ref_cfg.path} held out of the bank"


def _accuracy(batch: FeatureBatch) -> float | None:
    if batch.labels is None or batch.logits is None:
        return None
    return float((batch.logits.argmax(axis=1) == batch.labels).mean())


def fit_monitor(
    settings: Settings,
    monitor: MonitorConfig,
    *,
    reference: pd.DataFrame | None = None,
    calibration: pd.DataFrame | None = None,
    model_file: Path | None = None,
    origin: str = "fit",
    promote: bool = True,
    fitted_detectors: dict[str, Detector] | None = None,
    attachments: dict[str, Path] | None = None,
) -> FitResult:
    """Reference -> fitted detectors + conformal calibration, as a new model version.

    Thresholds are calibrated on rows in no detector bank (docs/methods.md §2),
    chosen by :func:`calibration_rows`. ``model_file`` (an adapted
    ``torch.export`` program) is stored with the version and replaces the
    configured model for it. The manifest records ``calibrated_on`` and, when
    the rows have labels, the model's accuracy on bank and calibration rows;
    the performance estimators (CBPE, ATC) are fitted on labelled calibration
    rows (``performance`` says so, or why they were skipped).
    ``fitted_detectors`` are stored as they are instead of fitted on the bank (EAR's
    HDC detector); ``attachments`` (name -> file or folder) are copied into the
    version's folder and listed in the manifest (EAR's state).
    """
    ref_cfg = monitor.reference
    columns = list(dict.fromkeys([*model_columns(monitor), *monitor.source.input_columns]))
    if ref_cfg.label_column:
        columns.append(ref_cfg.label_column)
    if reference is None:
        reference = sources.read_reference(ref_cfg.path, columns)
    window = ref_cfg.calibration_nights if calibration is None else None
    reference, calibration, calibrated_on = calibration_rows(
        settings, monitor, reference, columns, calibration
    )
    spec = monitor.model
    if model_file is not None:
        spec = spec.model_copy(update={"format": "export", "path": Path(model_file)})
    embedder = Embedder(spec, monitor.source.input_columns)

    def embed(frame: pd.DataFrame) -> FeatureBatch:
        embedded = embedder.embed_frame(frame)
        has_labels = ref_cfg.label_column is not None and ref_cfg.label_column in frame
        labels = frame[ref_cfg.label_column].to_numpy(np.int64) if has_labels else None
        return FeatureBatch(embedded.features, embedded.logits, labels=labels)

    bank, calibration_batch = embed(reference), embed(calibration)

    with tempfile.TemporaryDirectory(dir=ensure_dir(monitor_dir(settings, monitor))) as tmp:
        staging = Path(tmp) / "version"
        for detector_spec in monitor.detectors:
            detector = (fitted_detectors or {}).get(detector_spec.name) or get_detector(
                detector_spec.name, **detector_spec.params
            ).fit(bank)
            detector.save(staging / "detectors" / detector_spec.name)
            ConformalCalibrator(tpr=monitor.tpr).fit(detector.score(calibration_batch)).save(
                staging / "calibration" / detector_spec.name
            )
        if model_file is not None:
            shutil.copyfile(model_file, staging / "model.pt2")
        for name, source in (attachments or {}).items():
            if Path(source).is_dir():
                shutil.copytree(source, staging / name)
            else:
                shutil.copyfile(source, staging / name)
        # the batch-level tests compare each night with unseen in-distribution rows
        sample = calibration[monitor.source.input_columns]
        sample = pd.concat([sample, pd.DataFrame(feature_columns(calibration_batch))], axis=1)
        if calibration_batch.logits is not None:
            sample["pred"] = calibration_batch.logits.argmax(axis=1)
        sample.head(SAMPLE_ROWS).to_parquet(staging / "reference_sample.parquet")
        performance = fit_estimators(staging, calibration_batch, calibrated_on)
        manifest: Manifest = {
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
            "calibrated_on": calibrated_on,
            "calibration_nights": window.model_dump(mode="json") if window is not None else None,
            "accuracy_bank": _accuracy(bank),
            "accuracy_calibration": _accuracy(calibration_batch),
            "performance": performance,
            "attachments": sorted(attachments or {}),
        }
        return register_version(settings, monitor, staging, manifest, promote=promote)


def register_version(
    settings: Settings, monitor: MonitorConfig, staging: Path, manifest: Manifest, *, promote: bool
) -> FitResult:
    """Write ``manifest`` into ``staging``, number it as the monitor's next version, move it
    into place and (``promote``) make it active, in one transaction."""
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
    with session_scope(settings.db_url) as session:
        monitor_row = repo.ensure_monitor(session, monitor.name, monitor.model_dump(mode="json"))
        version = repo.add_version(
            session, monitor_row.id, "", origin=manifest["origin"], metrics=dict(manifest)
        )
        final = monitor_dir(settings, monitor) / "versions" / f"v{version.version}"
        if final.exists():  # left by a run whose transaction rolled back
            shutil.rmtree(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(final)
        version.artifact_path = str(final.resolve())
        if promote:
            repo.promote_version(session, version)
        return {"version": version.version, "path": version.artifact_path, **manifest}
