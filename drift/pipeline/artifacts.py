"""Where a monitor's artifacts live under ``DRIFT_HOME``, and loading a fitted version.

Layout, per monitor::

    <artifacts_dir>/<monitor>/versions/v<N>/   detectors, calibration, manifest.json,
                                               reference_sample.parquet [, model.pt2]
    <artifacts_dir>/<monitor>/scores/ds=<date>/ shard-*.parquet, sample-*.parquet
    <artifacts_dir>/<monitor>/adapt/event-<id>/ collected, validation rows, adapted model
    <artifacts_dir>/<monitor>/meta/mol/        MOL's meta-initialisation (+ manifest.json)
    <artifacts_dir>/<monitor>/meta/tasks/      confirmed shifts' labelled rows: MOL's real tasks
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from drift.batch import FeatureBatch
from drift.calibration import ConformalCalibrator
from drift.config import ModelSpec, MonitorConfig, Settings
from drift.detectors import Detector
from drift.pipeline.results import BatchFailedError, Manifest
from drift.store import repo
from drift.store.db import session_scope

#: rows of embeddings / raw inputs kept per night for the MMD and per-column tests
SAMPLE_ROWS = 2_000


def monitor_dir(settings: Settings, monitor: MonitorConfig) -> Path:
    return settings.artifacts_dir / monitor.name


def scores_dir(settings: Settings, monitor: MonitorConfig, batch_date: date) -> Path:
    return monitor_dir(settings, monitor) / "scores" / f"ds={batch_date.isoformat()}"


def adapt_dir(settings: Settings, monitor: MonitorConfig, event_id: int) -> Path:
    return monitor_dir(settings, monitor) / "adapt" / f"event-{event_id}"


def meta_dir(settings: Settings, monitor: MonitorConfig) -> Path:
    """MOL's meta-initialisation; adaptation starts from it when ``meta.json`` is there."""
    return monitor_dir(settings, monitor) / "meta" / "mol"


def meta_tasks_dir(settings: Settings, monitor: MonitorConfig) -> Path:
    """MOL's real meta-training tasks: one parquet of labelled rows per adapted covariate shift."""
    return monitor_dir(settings, monitor) / "meta" / "tasks"


def ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class FittedMonitor:
    """A model version's detectors, calibrators and reference summaries, loaded from disk."""

    path: Path
    manifest: Manifest
    detectors: dict[str, Detector]
    calibrators: dict[str, ConformalCalibrator]

    def reference_sample(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "reference_sample.parquet")

    def model_spec(self, configured: ModelSpec) -> ModelSpec:
        """The model this version scores with: its own adapted model file, if it has one."""
        model_file = self.manifest.get("model_file")
        if model_file:
            return configured.model_copy(update={"format": "export", "path": self.path / model_file})
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


def active_fitted(settings: Settings, monitor: MonitorConfig) -> tuple[int, int, FittedMonitor]:
    """The monitor's id, its active version's id and that version loaded."""
    with session_scope(settings.db_url) as session:
        monitor_row = repo.get_monitor_row(session, monitor.name)
        version = None if monitor_row is None else repo.active_version(session, monitor_row.id)
        if monitor_row is None or version is None:
            raise BatchFailedError(
                f"monitor '{monitor.name}' has no fitted model version: run `drift fit` first"
            )
        return monitor_row.id, version.id, load_fitted(version.artifact_path)


#: prefix of the embedding columns in the reference and nightly samples
EMBEDDING_PREFIX = "f_"


def feature_columns(batch: FeatureBatch) -> dict[str, np.ndarray]:
    """The batch's embedding as columns ``f_0 .. f_{d-1}`` (the samples' layout)."""
    return {f"{EMBEDDING_PREFIX}{i}": batch.features[:, i] for i in range(batch.features.shape[1])}


def embedding_columns(sample: pd.DataFrame) -> list[str]:
    """The embedding columns of a sample written with :func:`feature_columns`."""
    return [c for c in sample.columns if c.startswith(EMBEDDING_PREFIX)]


def model_columns(monitor: MonitorConfig) -> list[str]:
    """The columns the model reads: raw inputs, or the precomputed embedding/logit columns."""
    spec = monitor.model
    if spec.format == "precomputed":
        # the config validator requires feature_columns for "precomputed"
        return list(dict.fromkeys([*(spec.feature_columns or []), *(spec.logit_columns or [])]))
    return monitor.source.input_columns


def required_columns(monitor: MonitorConfig) -> list[str]:
    """The columns a night's files must have."""
    columns = list(dict.fromkeys([*monitor.source.input_columns, *model_columns(monitor)]))
    if monitor.source.id_column:
        columns.append(monitor.source.id_column)
    return columns
