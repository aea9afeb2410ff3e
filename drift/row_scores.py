"""One night's per-row scores, as a table a person can open: what `drift scores` writes.

The scores are the shard files the nightly ``score_shard`` step wrote to the
artifact store; threshold, flag and conformal p-value come from the calibrators
of the model version that scored the night (not the version active today).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from drift.atomic import write_file
from drift.config import MonitorConfig, Settings
from drift.pipeline.artifacts import load_fitted, scores_dir
from drift.store import repo
from drift.store.db import session_scope
from drift.store.models import ModelVersion

#: the file formats ``write_scores`` writes, by extension
FORMATS = (".parquet", ".csv")


class ScoresError(LookupError):
    """No per-row scores for that night, or a file format we do not write."""


def night_scores(settings: Settings, monitor: MonitorConfig, night: date) -> pd.DataFrame:
    """Columns: row, id (when the source has an id column), predicted_class (when the
    model has logits), then per detector ``<d>_score``, ``<d>_threshold``, ``<d>_flag``
    and ``<d>_p_value`` (conformal: the share of calibration scores at least as high)."""
    with session_scope(settings.db_url) as session:
        batch = repo.find_batch(session, monitor.name, night)
        if batch is None:
            raise ScoresError(f"monitor '{monitor.name}' has no night {night}")
        version = batch.model_version_id and session.get(ModelVersion, batch.model_version_id)
        if not version:
            raise ScoresError(f"{monitor.name} {night}: the night was never scored")
        artifact_path = version.artifact_path
    shards = sorted(scores_dir(settings, monitor, night).glob("shard-*.parquet"))
    if not shards:
        raise ScoresError(f"{monitor.name} {night}: no per-row scores in the artifact store")
    rows = pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True)
    calibrators = load_fitted(artifact_path).calibrators
    table = rows[[c for c in ("row", "id") if c in rows]].copy()
    if "pred" in rows:
        table["predicted_class"] = rows["pred"].to_numpy()
    for name, calibrator in calibrators.items():
        scores = rows[f"score__{name}"].to_numpy()
        table[f"{name}_score"] = scores
        table[f"{name}_threshold"] = calibrator.threshold_
        table[f"{name}_flag"] = calibrator.flags(scores)
        table[f"{name}_p_value"] = calibrator.p_values(scores)
    return table


def write_scores(table: pd.DataFrame, out: Path) -> Path:
    """Write ``table`` as parquet or CSV, chosen by ``out``'s extension."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise ScoresError(f"{out}: unknown extension '{suffix}' (use {' or '.join(FORMATS)})")
    if suffix == ".csv":
        write_file(Path(out), lambda p: table.to_csv(p, index=False))
    else:
        write_file(Path(out), lambda p: table.to_parquet(p, index=False))
    return Path(out)
