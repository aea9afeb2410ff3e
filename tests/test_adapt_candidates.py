"""`adaptation.method` in the pipeline: auto's candidates, EAR as one model file, rollback, MOL's real tasks.

Real torch models, the real pipeline on SQLite, the demo world's occluded-digits shift.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sqlalchemy import select

from drift import pipeline
from drift.adapt import EARModel
from drift.config import DetectorSpec
from drift.embed import Embedder
from drift.pipeline.candidates import EAR_STATE
from drift.store.db import session_scope
from drift.store.models import Adaptation, Batch, ModelVersion
from drift.versions import rollback, version_records
from tests.test_adaptation import NEXT_QUIET_NIGHT, _covariate_event, _with_adaptation


@pytest.fixture
def world(drift_env, demo_monitor, sqlite_url):
    return drift_env(sqlite_url), demo_monitor


def _fit(settings, monitor, **adaptation):
    # 50 steps at 0.1: fine-tuning the deployed weights gains on the occluded digits
    monitor = _with_adaptation(monitor, inner_steps=50, inner_lr=0.1, **adaptation)
    pipeline.fit_monitor(settings, monitor)
    return monitor


def _adaptations(settings) -> list[Adaptation]:
    with session_scope(settings.db_url) as session:
        return list(session.scalars(select(Adaptation).order_by(Adaptation.id)))


def _statuses(settings) -> dict[int, str]:
    with session_scope(settings.db_url) as session:
        return {v.version: v.status for v in session.scalars(select(ModelVersion))}


def test_auto_trains_every_candidate_records_each_and_promotes_the_best(world):
    settings, monitor = world
    monitor = _fit(settings, monitor)  # method: auto (the default)
    assert monitor.adaptation.method == "auto"
    event_id = _covariate_event(settings, monitor)
    result = pipeline.adapt_for_event(settings, monitor, event_id)

    # no meta-initialisation was trained: MOL is not applicable, the others are
    assert [c["method"] for c in result["candidates"]] == ["finetune", "ear"]
    passing = [c for c in result["candidates"] if c["passed"]]
    assert result["promoted"] and passing, result["candidates"]
    best = max(passing, key=lambda c: c["after"]["new_domain_accuracy"])
    assert result["method"] == best["method"] and result["version"] == best["version"]
    # the promoted candidate is not worse than the model it replaced on either set
    before, after = result["before"], result["after"]
    assert after["new_domain_accuracy"] > before["new_domain_accuracy"]
    assert after["old_domain_accuracy"] >= before["old_domain_accuracy"] - monitor.adaptation.max_old_domain_drop

    # every candidate is recorded with its validation numbers; only the winner promoted
    rows = _adaptations(settings)
    assert [a.method for a in rows] == ["finetune", "ear"]
    for a, c in zip(rows, result["candidates"], strict=True):
        assert a.metrics_after == c["after"] and a.metrics_before["train_seconds"] > 0
        assert a.metrics_before["new_domain_accuracy"] == before["new_domain_accuracy"]
        assert a.status == ("promoted" if c["method"] == result["method"] else "rejected")
    loser = next(a for a in rows if a.status == "rejected")
    assert loser.reason  # its gate reasons, or that the winner did better
    statuses = _statuses(settings)
    assert statuses[1] == "retired" and statuses[result["version"]] == "active"
    assert sorted(statuses.values()) == ["active", "rejected", "retired"]

    # `drift versions` shows both candidates with their validation accuracies
    with session_scope(settings.db_url) as session:
        records = version_records(session, rows[0].monitor_id)
    shown = {r["origin"]: r for r in records}
    for c in result["candidates"]:
        record = shown[f"adapt event {event_id} ({c['method']})"]
        assert record["metrics"]["new_domain_accuracy"] == round(c["after"]["new_domain_accuracy"], 4)

    # the event's labelled rows joined MOL's pool; meta-training uses them, from the active model
    tasks = sorted(pipeline.meta_tasks_dir(settings, monitor).glob("*.parquet"))
    assert [t.name for t in tasks] == [f"event-{event_id}.parquet"]
    assert len(pd.read_parquet(tasks[0])) == result["n_support"]  # the support rows: never validated on
    meta = pipeline.meta_train(settings, _with_adaptation(monitor, meta_iterations=4))
    assert meta["n_real_tasks"] == 1
    manifest = json.loads((Path(meta["path"]) / "manifest.json").read_text())
    assert manifest["real_tasks"] == [{"path": str(tasks[0]), "n_rows": len(pd.read_parquet(tasks[0]))}]
    assert manifest["trained_from"] == result["path"]  # the promoted version's folder
    assert manifest["final_loss"] == meta["final_loss"]


#: the event's 163 support rows overfit an adaptor of the default 50,000-parameter budget
#: (no gain on its validation rows); a 10,000-parameter adaptor gains
EAR_BUDGET = 10_000


def _ear_event(settings, monitor):
    event_id = _covariate_event(settings, monitor)
    result = pipeline.adapt_for_event(settings, monitor, event_id)
    assert [c["method"] for c in result["candidates"]] == ["ear"]
    assert result["promoted"], result["reasons"]
    return event_id, result


def test_ear_version_is_one_model_file_the_nightly_path_loads(world):
    settings, monitor = world
    monitor = monitor.model_copy(
        update={"detectors": [*monitor.detectors, DetectorSpec(name="hdc", params={"dim": 2048})]}
    )
    monitor = _fit(settings, monitor, method="ear", ear_max_params=EAR_BUDGET)
    event_id, result = _ear_event(settings, monitor)
    version = pipeline.load_fitted(result["path"])
    assert version.manifest["model_file"] == "model.pt2" and version.manifest["attachments"] == [EAR_STATE]

    # the in-memory EAR model (state + frozen base) and the file the nightly path loads agree
    state = version.path / EAR_STATE
    ear = EARModel.load(state, torch.export.load(str(state / "base.pt2")).module())
    assert ear.domain_names_ == ["original", f"event-{event_id}"]
    rows = pd.read_parquet(result["validation_path"])
    embedded = Embedder(version.model_spec(monitor.model), monitor.source.input_columns).embed_frame(rows)
    x = rows[monitor.source.input_columns].to_numpy(np.float32)
    np.testing.assert_allclose(embedded.logits, ear.predict(x), rtol=1e-5, atol=1e-5)
    assert (ear.route(x) == 1).mean() > 0.5  # the shifted rows mostly go to their adaptor

    # the HDC detector of the version scores against EAR's own hypervectors
    hdc = version.detectors["hdc"]
    np.testing.assert_array_equal(hdc.class_vectors_, ear.hdc_.class_vectors_)

    # the next night is scored by the adapted version, with no special case
    assert pipeline.run_night(settings, monitor, NEXT_QUIET_NIGHT)["verdict"] in ("ok", "warn")
    with session_scope(settings.db_url) as session:
        batch = session.scalars(select(Batch).where(Batch.batch_date == NEXT_QUIET_NIGHT)).one()
        assert session.get(ModelVersion, batch.model_version_id).version == result["version"]


def test_rolling_back_an_ear_version_removes_its_adaptor(world):
    settings, monitor = world
    monitor = _fit(settings, monitor, method="ear", ear_max_params=EAR_BUDGET)
    _, result = _ear_event(settings, monitor)
    with session_scope(settings.db_url) as session:
        monitor_id = session.scalars(select(ModelVersion)).first().monitor_id
        rolled = rollback(session, monitor_id, to=1, by="test").version
    _, _, active = pipeline.active_fitted(settings, monitor)
    assert not (active.path / EAR_STATE).exists() and active.manifest["model_file"] is None

    # the active model is the original again: its logits, not the adaptor's, on shifted rows
    rows = pd.read_parquet(result["validation_path"])
    columns = monitor.source.input_columns
    original = Embedder(monitor.model, columns).embed_frame(rows).logits
    served = Embedder(active.model_spec(monitor.model), columns).embed_frame(rows).logits
    adapted = Embedder(pipeline.load_fitted(result["path"]).model_spec(monitor.model), columns).embed_frame(rows).logits
    np.testing.assert_array_equal(served, original)
    assert not np.allclose(adapted, original)
    pipeline.run_night(settings, monitor, NEXT_QUIET_NIGHT)
    with session_scope(settings.db_url) as session:
        batch = session.scalars(select(Batch).where(Batch.batch_date == NEXT_QUIET_NIGHT)).one()
        assert session.get(ModelVersion, batch.model_version_id).version == rolled


def test_fit_of_a_torchscript_model_says_adaptation_is_off_and_how_to_fix_it(tmp_path, demo_world, sqlite_url):
    import os
    import subprocess
    import sys

    from drift.config import Settings
    from drift.digits import DigitsNet

    scripted = tmp_path / "model.ts"
    torch.jit.trace(DigitsNet(n_classes=8).eval(), torch.zeros(2, 64)).save(str(scripted))
    shipped = Settings().config_path.read_text()
    config = tmp_path / "monitors.yaml"
    config.write_text(
        shipped.replace("base_dir: ${DRIFT_HOME}/demo", f"base_dir: {demo_world / 'demo'}")
        .replace("format: export", "format: torchscript")
        .replace("path: model.pt2", f"path: {scripted}")
    )
    env = {**os.environ, "DRIFT_HOME": str(tmp_path / "home"), "DRIFT_DATABASE_URL": sqlite_url, "DRIFT_CONFIG": str(config)}
    fit = subprocess.run([sys.executable, "-m", "drift.cli", "fit"], env=env, capture_output=True, text=True, timeout=600)
    assert fit.returncode == 0, fit.stderr
    (line,) = [line for line in fit.stdout.splitlines() if "adaptation" in line]
    assert line.strip() == (
        "adaptation is off: a torchscript model cannot be trained again - "
        "export the model with torch.export (format: export) or give an entrypoint"
    )


def test_mol_is_a_candidate_only_with_a_meta_initialisation_of_the_active_model(world):
    """README "How a shift is adapted": ``auto`` trains every applicable method, ``mol`` once
    a meta-initialisation exists; docs/methods.md §5: without one an explicit ``mol``
    fine-tunes the deployed model (recorded as ``finetune``)."""
    from safetensors.torch import save_file

    from drift.adapt.mol import WEIGHTS_FILE
    from drift.pipeline.candidates import applicable_methods

    settings, monitor = world
    pipeline.fit_monitor(settings, monitor)
    _, _, active = pipeline.active_fitted(settings, monitor)

    def methods(method: str) -> list[str]:
        return applicable_methods(settings, _with_adaptation(monitor, method=method), active)

    assert [methods(m) for m in ("auto", "mol", "ear", "finetune")] == [
        ["finetune", "ear"], ["finetune"], ["ear"], ["finetune"],
    ]  # fmt: skip
    pipeline.meta_train(settings, _with_adaptation(monitor, meta_iterations=2))
    assert methods("auto") == ["finetune", "mol", "ear"] and methods("mol") == ["mol"]
    # a meta-initialisation of another architecture (e.g. from before a model change) does not fit
    save_file({"weight": torch.zeros(3, 2)}, str(pipeline.meta_dir(settings, monitor) / WEIGHTS_FILE))
    assert methods("auto") == ["finetune", "ear"] and methods("mol") == ["finetune"]
