"""MOL's meta-training (the weekly ``drift_meta_train`` DAG, ``drift meta-train``).

The tasks are shifts simulated from the reference (``adaptation.meta_shift``) and,
beside them, every confirmed covariate shift that was adapted with feedback labels
(its labelled rows, stored by :func:`drift.pipeline.adapt` under ``meta/tasks/``).
Meta-training starts from the currently active model; ``meta/mol/manifest.json``
records what the meta-initialisation was trained from and on.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from drift.atomic import write_file
from drift.config import MonitorConfig, Settings
from drift.pipeline.adaptation import labelled_reference
from drift.pipeline.artifacts import active_fitted, meta_dir, meta_tasks_dir
from drift.pipeline.results import MetaTrainResult
from drift.store.types import utcnow

MANIFEST = "manifest.json"


def meta_train(settings: Settings, monitor: MonitorConfig) -> MetaTrainResult:
    """Learn MOL's meta-initialisation from the active model, on simulated and real shifts."""
    from drift.adapt import MetaOODLearner, trainable_module

    cfg = monitor.adaptation
    columns = monitor.source.input_columns
    reference = labelled_reference(monitor, monitor.reference.path)
    module_name, factory = cfg.meta_shift.split(":")
    shift_fn = getattr(importlib.import_module(module_name), factory)()
    _, _, fitted = active_fitted(settings, monitor)
    task_files = sorted(meta_tasks_dir(settings, monitor).glob("event-*.parquet"))
    tasks = [pd.read_parquet(path) for path in task_files]
    learner = MetaOODLearner(
        inner_steps=cfg.inner_steps, inner_lr=cfg.inner_lr, meta_iterations=cfg.meta_iterations
    ).meta_train(
        trainable_module(fitted.model_spec(monitor.model)),
        reference[columns].to_numpy(np.float32),
        reference["label"].to_numpy(np.int64),
        shift_fn,
        tasks=[
            (t[columns].to_numpy(np.float32), t["label"].to_numpy(np.int64)) for t in tasks
        ],
    )
    folder = learner.save(meta_dir(settings, monitor))
    manifest = {
        "trained_from": str(fitted.path),
        "trained_from_origin": fitted.manifest["origin"],
        "simulated_shifts": cfg.meta_shift,
        "real_tasks": [
            {"path": str(path), "n_rows": len(t)} for path, t in zip(task_files, tasks, strict=True)
        ],
        "meta_iterations": cfg.meta_iterations,
        "final_loss": learner.meta_losses_[-1],
        "created_at": utcnow().isoformat(),
    }

    def write(path: Path) -> None:
        path.write_text(json.dumps(manifest, indent=2))

    write_file(folder / MANIFEST, write)
    return {
        "monitor": monitor.name,
        "path": str(folder),
        "final_loss": learner.meta_losses_[-1],
        "n_real_tasks": len(tasks),
    }
