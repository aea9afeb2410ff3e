"""The adaptation candidates (``adaptation.method``): one function per method, one interface.

A trainer takes the event's support rows (:class:`TrainingRows`) and writes one
model file, ``forward(x) -> (features, logits)``, that the nightly path loads like
any other; :func:`train_candidate` fits it as a (not yet active) model version and
records it in ``adaptations``. ``auto`` trains every applicable method
(:func:`applicable_methods`); the validate step promotes the best one that passes
the no-regression gate.

* ``finetune``: the deployed weights, a few SGD steps on the support rows plus as
  many rehearsed old-domain rows.
* ``mol``: MOL's meta-initialisation, adapted in the same steps (only where one was
  meta-trained for this architecture; an explicit ``mol`` without one fine-tunes).
* ``ear``: one adaptor for the event's domain, added to the active version's EAR
  state (or to a new one around the active model); the encoder, the original head
  and earlier adaptors stay as they were. The version keeps the state in ``ear/``,
  so rolling back to an earlier version brings back its adaptors and no later one.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from drift.config import MonitorConfig, Settings
from drift.detectors import Detector
from drift.pipeline.artifacts import FittedMonitor, meta_dir
from drift.pipeline.fit import fit_monitor
from drift.pipeline.results import CandidateModel
from drift.store import repo
from drift.store.db import session_scope

if TYPE_CHECKING:
    import torch

#: a version's EAR state: the EARModel folder plus the frozen model it wraps (``base.pt2``)
EAR_STATE = "ear"
_EAR_BASE = "base.pt2"
METHODS = ("finetune", "mol", "ear")


@dataclass
class TrainingRows:
    """What every trainer gets: the event's labelled support rows and old-domain rows."""

    settings: Settings
    monitor: MonitorConfig
    active: FittedMonitor
    event_id: int
    #: the event's labelled shifted rows (input columns + ``label``)
    support: pd.DataFrame
    #: labelled old-domain rows (input columns + ``label``)
    reference: pd.DataFrame
    folder: Path

    def xy(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        x = frame[self.monitor.source.input_columns].to_numpy(np.float32)
        return x, frame["label"].to_numpy(np.int64)

    def rehearsal(self) -> tuple[np.ndarray, np.ndarray]:
        """The support rows plus as many old-domain rows, so adapting does not forget."""
        replay = self.reference.sample(
            n=min(len(self.support), len(self.reference)), random_state=self.event_id
        )
        return self.xy(pd.concat([self.support, replay], ignore_index=True))


@dataclass
class Trained:
    """A trainer's model file, detectors it fitted itself and files kept with the version."""

    model_file: Path
    fitted_detectors: dict[str, Detector] = field(default_factory=dict)
    attachments: dict[str, Path] = field(default_factory=dict)


def _tensor(x: np.ndarray) -> torch.Tensor:
    """Two rows: the example input of ``torch.export``."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(x[:2]))


def finetune(rows: TrainingRows) -> Trained:
    from drift.adapt import export_module, fine_tune, trainable_module

    cfg = rows.monitor.adaptation
    x, y = rows.rehearsal()
    module = trainable_module(rows.active.model_spec(rows.monitor.model))
    adapted = fine_tune(module, x, y, steps=cfg.inner_steps, lr=cfg.inner_lr)
    return Trained(export_module(adapted, _tensor(x), rows.folder / "model.pt2"))


def mol(rows: TrainingRows) -> Trained:
    from drift.adapt import MetaOODLearner, export_module, trainable_module

    x, y = rows.rehearsal()
    module = trainable_module(rows.active.model_spec(rows.monitor.model))
    adapted = MetaOODLearner.load(meta_dir(rows.settings, rows.monitor), module).adapt(x, y)
    return Trained(export_module(adapted, _tensor(x), rows.folder / "model.pt2"))


def ear(rows: TrainingRows) -> Trained:
    import torch
    from torch import nn

    from drift.adapt import EARModel, export_ear, export_module
    from drift.detectors.hdc import HDCDetector

    cfg, monitor = rows.monitor.adaptation, rows.monitor
    state = rows.active.path / EAR_STATE
    x, y = rows.xy(rows.support)
    if (state / "meta.json").is_file():
        base_file = state / _EAR_BASE
        model = EARModel.load(state, torch.export.load(str(base_file)).module())
    else:  # the first domain added to this model: the active model becomes the frozen base
        from drift.embed import load_module

        base = cast(nn.Module, load_module(rows.active.model_spec(monitor.model)))
        # with an HDC detector configured, EAR's hypervectors are built as that detector's
        hdc = next((HDCDetector(**d.params) for d in monitor.detectors if d.name == "hdc"), None)
        model = EARModel(
            base,
            max_params=cfg.ear_max_params,
            hdc_dim=4096 if hdc is None else hdc.dim,
            seed=0 if hdc is None else hdc.seed,
        ).fit(*rows.xy(rows.reference))
        base_file = export_module(base, _tensor(x), rows.folder / _EAR_BASE)
    model.add_domain(x, y, f"event-{rows.event_id}")
    saved = model.save(rows.folder / EAR_STATE)
    shutil.copyfile(base_file, saved / _EAR_BASE)
    # one mechanism: a configured HDC detector scores against EAR's own hypervectors
    hdc_detector: dict[str, Detector] = (
        {"hdc": model.hdc_} if any(d.name == "hdc" for d in monitor.detectors) else {}
    )
    return Trained(
        export_ear(model, rows.folder / "model.pt2"),
        fitted_detectors=hdc_detector,
        attachments={EAR_STATE: saved},
    )


TRAINERS: dict[str, Callable[[TrainingRows], Trained]] = {
    "finetune": finetune,
    "mol": mol,
    "ear": ear,
}


def _meta_init_fits(settings: Settings, monitor: MonitorConfig, active: FittedMonitor) -> bool:
    """Whether MOL's meta-initialisation exists and has the active model's parameters."""
    from safetensors import safe_open

    from drift.adapt import trainable_module
    from drift.adapt.mol import WEIGHTS_FILE

    weights = meta_dir(settings, monitor) / WEIGHTS_FILE
    if not (meta_dir(settings, monitor) / "meta.json").is_file() or not weights.is_file():
        return False
    module = trainable_module(active.model_spec(monitor.model))
    with safe_open(str(weights), "pt") as stored:
        shapes = {k: tuple(stored.get_slice(k).get_shape()) for k in stored.keys()}
    return shapes == {k: tuple(v.shape) for k, v in module.state_dict().items()}


def applicable_methods(settings: Settings, monitor: MonitorConfig, active: FittedMonitor) -> list[str]:
    """The methods to train: ``auto`` = every applicable one; ``mol`` only with a fitting meta-init."""
    has_meta = _meta_init_fits(settings, monitor, active)
    method = monitor.adaptation.method
    if method == "auto":
        return [m for m in METHODS if m != "mol" or has_meta]
    if method == "mol" and not has_meta:
        return ["finetune"]
    return [method]


def train_candidate(rows: TrainingRows, method: str, bank: pd.DataFrame) -> CandidateModel:
    """Train ``method``, fit its model version (not active) and record it in ``adaptations``."""
    from drift.store.models import Adaptation

    started = time.perf_counter()
    rows = replace(rows, folder=rows.folder / method)
    rows.folder.mkdir(parents=True, exist_ok=True)
    trained = TRAINERS[method](rows)
    # the new domain's rows join the banks; thresholds stay calibrated on the configured
    # in-distribution rows, so "5% flagged" keeps its meaning across versions
    result = fit_monitor(
        rows.settings,
        rows.monitor,
        reference=bank,
        model_file=trained.model_file,
        origin=f"adapt:{method}:event-{rows.event_id}",
        promote=False,
        fitted_detectors=trained.fitted_detectors,
        attachments=trained.attachments,
    )
    seconds = time.perf_counter() - started
    with session_scope(rows.settings.db_url) as session:
        monitor_id = repo.require_monitor_row(session, rows.monitor.name).id
        version = repo.get_version(session, monitor_id, result["version"])
        adaptation = Adaptation(
            monitor_id=monitor_id,
            event_id=rows.event_id,
            method=method,
            candidate_version_id=version.id,
            metrics_before={"train_seconds": round(seconds, 3)},
        )
        session.add(adaptation)
        session.flush()
        adaptation_id = adaptation.id
    return {
        "method": method,
        "adaptation_id": adaptation_id,
        "version": result["version"],
        "path": result["path"],
        "seconds": seconds,
    }
