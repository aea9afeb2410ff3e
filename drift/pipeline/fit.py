"""Fitting a model version: detectors on the reference bank, conformal thresholds on held-out rows."""

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
from drift.config import MonitorConfig, Settings
from drift.detectors import get_detector
from drift.embed import Embedder
from drift.pipeline.artifacts import (
    SAMPLE_ROWS,
    ensure_dir,
    feature_columns,
    model_columns,
    monitor_dir,
)
from drift.pipeline.results import FitResult, Manifest
from drift.store import repo
from drift.store.db import session_scope
from drift.store.types import utcnow


def fit_monitor(
    settings: Settings,
    monitor: MonitorConfig,
    *,
    reference: pd.DataFrame | None = None,
    calibration: pd.DataFrame | None = None,
    model_file: Path | None = None,
    origin: str = "fit",
    promote: bool = True,
) -> FitResult:
    """Reference -> fitted detectors + conformal calibration, as a new model version.

    Thresholds are calibrated on rows in no detector bank (docs/methods.md §2): the
    ``reference.calibration_path`` file when configured (best: rows the model
    never trained on), else a held-out share ``calibration_fraction`` of the
    reference. ``model_file`` (an adapted ``torch.export`` program) is stored
    with the version and replaces the configured model for it.
    """
    ref_cfg = monitor.reference
    columns = list(dict.fromkeys([*model_columns(monitor), *monitor.source.input_columns]))
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

    with tempfile.TemporaryDirectory(dir=ensure_dir(monitor_dir(settings, monitor))) as tmp:
        staging = Path(tmp) / "version"
        for detector_spec in monitor.detectors:
            detector = get_detector(detector_spec.name, **detector_spec.params).fit(bank)
            detector.save(staging / "detectors" / detector_spec.name)
            ConformalCalibrator(tpr=monitor.tpr).fit(detector.score(calibration_batch)).save(
                staging / "calibration" / detector_spec.name
            )
        if model_file is not None:
            shutil.copyfile(model_file, staging / "model.pt2")
        # the batch-level tests compare each night with unseen in-distribution rows
        sample = calibration[monitor.source.input_columns]
        sample = pd.concat([sample, pd.DataFrame(feature_columns(calibration_batch))], axis=1)
        if calibration_batch.logits is not None:
            sample["pred"] = calibration_batch.logits.argmax(axis=1)
        sample.head(SAMPLE_ROWS).to_parquet(staging / "reference_sample.parquet")
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
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))

        with session_scope(settings.db_url) as session:
            monitor_row = repo.ensure_monitor(
                session, monitor.name, monitor.model_dump(mode="json")
            )
            version = repo.add_version(
                session, monitor_row.id, "", origin=origin, metrics=dict(manifest)
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
