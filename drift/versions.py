"""A monitor's model versions, as a person reads them, and rolling back to one.

Every version keeps its folder under ``versions/v<N>/``; a rollback to ``V``
adds a new version (origin ``rollback:v<V>``) that uses ``V``'s folder and
makes it the only active one, in one transaction, so the history reads in
order and the next night scores with it. The gate starts afresh on the first
night of any newly active version (see :func:`drift.pipeline.decide`), as
after a promotion.

Examples
--------
>>> describe_origin("adapt:finetune:event-3"), describe_origin("rollback:v1"), describe_origin("fit")
('adapt event 3 (finetune)', 'rollback to v1', 'fit')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from drift.status import VersionStatus
from drift.store import repo
from drift.store.models import Adaptation, ModelVersion

#: the manifest entries `drift versions` shows (an adapted version adds its validation accuracies)
KEY_METRICS = ("n_bank", "n_calibration", "n_classes")


class RollbackError(ValueError):
    """A rollback that cannot be done (unknown version, already active, artifacts gone)."""


def describe_origin(origin: str) -> str:
    """``origin`` in words: fit / recalibrate / adapt event N (method) / rollback to vN."""
    kind, _, rest = origin.partition(":")
    if kind == "adapt":
        method, _, event = rest.partition(":")
        return f"adapt event {event.removeprefix('event-')} ({method})"
    if kind == "rollback":
        return f"rollback to {rest}"
    return origin


def version_records(session: Session, monitor_id: int) -> list[dict[str, Any]]:
    """Every version of the monitor, oldest first: number, created, origin, key metrics, status."""
    adaptations = {
        a.candidate_version_id: a
        for a in session.scalars(select(Adaptation).where(Adaptation.monitor_id == monitor_id))
    }
    records = []
    for v in repo.list_versions(session, monitor_id):
        metrics: dict[str, Any] = {k: v.metrics[k] for k in KEY_METRICS if k in v.metrics}
        adaptation = adaptations.get(v.id)
        if adaptation is not None:  # every candidate of an adaptation, with its validation numbers
            metrics.update({k: round(x, 4) for k, x in adaptation.metrics_after.items()})
            if adaptation.reason:
                metrics["rejected because"] = adaptation.reason
        records.append(
            {
                "version": v.version,
                "created": v.created_at.isoformat(timespec="seconds"),
                "origin": describe_origin(v.origin),
                "metrics": metrics,
                "status": v.status,
                "active": v.status == VersionStatus.ACTIVE,
            }
        )
    return records


def rollback(session: Session, monitor_id: int, to: int, by: str) -> ModelVersion:
    """Make version ``to``'s model and detectors active again, as a new version (atomic).

    Written to ``audit_log`` (action ``rollback``). Raises :class:`RollbackError`.
    """
    target = session.scalars(
        select(ModelVersion).where(ModelVersion.monitor_id == monitor_id, ModelVersion.version == to)
    ).one_or_none()
    known = [v.version for v in repo.list_versions(session, monitor_id)]
    if target is None:
        raise RollbackError(f"no version v{to} (versions: {', '.join(f'v{n}' for n in known) or 'none'})")
    if target.promoted_at is None:
        raise RollbackError(f"v{to} was never active (it is {target.status})")
    active = repo.active_version(session, monitor_id)
    if active is not None and active.artifact_path == target.artifact_path:
        raise RollbackError(f"v{to}'s model is already active (v{active.version})")
    if not (Path(target.artifact_path) / "manifest.json").is_file():
        raise RollbackError(f"v{to}'s artifacts are gone: no manifest.json in {target.artifact_path}")
    version = repo.add_version(
        session, monitor_id, target.artifact_path, origin=f"rollback:v{to}", metrics=dict(target.metrics)
    )
    repo.promote_version(session, version)
    repo.record_audit(
        session, monitor_id, "rollback", by,
        to_version=to, new_version=version.version, from_version=active.version if active else None,
    )
    session.flush()
    return version
