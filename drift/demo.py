"""A simulated production setting for `drift demo`, with no downloads.

A small CNN is trained on scikit-learn's digits (classes 8 and 9 held out as
"never seen"), exported with ``torch.export``, and watched by the monitor
``digits_demo`` (config shipped as ``drift/demo_monitor.yaml``). Each night a
batch of production rows lands as parquet; the script below decides which
nights are clean and which are shifted. Every night runs through the same code
path as ``drift run``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from drift import digits
from drift.config import Settings, get_monitor

DEMO_MONITOR = "digits_demo"
FIRST_NIGHT = date(2026, 11, 1)
INPUT_COLUMNS = [f"px_{i:02d}" for i in range(digits.N_PIXELS)]


@dataclass(frozen=True)
class Night:
    """What the script does to one night's batch."""

    kind: str = "clean"  # clean | novel | covariate | prior
    #: novel: share of rows from unseen classes; covariate: corruption severity 1..5
    strength: float = 0.0
    corruption: str = "noise"


def demo_script(nights: int) -> list[Night]:
    """Quiet nights, a novel-class surge, quiet, a covariate shift, quiet, a prior shift."""
    pattern = (
        [Night()] * 6
        + [Night("novel", 0.3)] * 3
        + [Night()] * 4
        + [Night("covariate", 3, "noise")] * 3
        + [Night()] * 4
        + [Night("prior", 0.8)] * 3
    )
    return (pattern + [Night()] * nights)[:nights]


def _frame(x: np.ndarray, ids: np.ndarray, labels: np.ndarray | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(x, columns=INPUT_COLUMNS)
    frame.insert(0, "row_id", ids)
    if labels is not None:
        frame["label"] = labels
    return frame


def night_rows(
    split: digits.DigitsSplit, night: Night, n_rows: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_rows`` production inputs for one night, drawn (with replacement) from held-out rows."""
    pool = split.x_test
    if night.kind == "prior":
        # most rows from two classes: the mix moves, each class still looks like itself
        favoured = np.isin(split.y_test, [0, 1])
        weights = np.where(
            favoured, night.strength / favoured.sum(), (1 - night.strength) / (~favoured).sum()
        )
        return pool[rng.choice(len(pool), n_rows, p=weights)]
    rows = pool[rng.integers(0, len(pool), n_rows)]
    if night.kind == "novel":
        n_novel = int(round(night.strength * n_rows))
        rows[:n_novel] = split.x_novel[rng.integers(0, len(split.x_novel), n_novel)]
    elif night.kind == "covariate":
        rows = digits.corrupt(rows, night.corruption, int(night.strength), rng)
    return rows


def build_world(home: Path, script: list[Night], seed: int, rows_per_night: int) -> None:
    """Model file, reference and landing folders under ``home/demo``, from scratch."""
    import torch

    root = home / "demo"
    shutil.rmtree(root, ignore_errors=True)
    (root / "landing").mkdir(parents=True)
    split = digits.load_digits_split(seed=seed)
    # 12 epochs reach ~99% test accuracy; the demo's time budget is minutes, not hours
    model = digits.train_digits_model(
        split.x_train, split.y_train, split.n_classes, seed=seed, epochs=12
    )
    program = torch.export.export(
        model, (torch.zeros(2, digits.N_PIXELS),), dynamic_shapes=({0: torch.export.Dim("rows")},)
    )
    torch.export.save(program, str(root / "model.pt2"))

    # bank = the training rows; thresholds = rows the model never saw, like production's
    _frame(split.x_train, np.arange(len(split.x_train)), split.y_train).to_parquet(
        root / "reference.parquet"
    )
    ids = np.arange(len(split.x_calib)) + len(split.x_train)
    _frame(split.x_calib, ids, split.y_calib).to_parquet(root / "calibration.parquet")

    rng = np.random.default_rng(seed)
    for i, night in enumerate(script):
        day = FIRST_NIGHT + timedelta(days=i)
        folder = root / "landing" / f"ds={day.isoformat()}"
        folder.mkdir()
        x = night_rows(split, night, rows_per_night, rng)
        _frame(x, np.arange(len(x)) + i * 1_000_000).to_parquet(folder / "part-0.parquet")


def _reset_monitor(settings: Settings) -> None:
    """Forget earlier demo runs of the demo monitor (only that monitor's rows)."""
    from sqlalchemy import delete

    from drift.store.db import session_scope
    from drift.store.models import MonitoredModel

    with session_scope(settings.db_url) as session:
        session.execute(delete(MonitoredModel).where(MonitoredModel.name == DEMO_MONITOR))
    shutil.rmtree(settings.artifacts_dir / DEMO_MONITOR, ignore_errors=True)


def run_demo(
    settings: Settings,
    nights: int = 24,
    seed: int = 0,
    rows_per_night: int = 800,
    console: Console | None = None,
) -> list[dict]:
    """Build the world, fit, run every night; print the per-night table. Returns the decisions."""
    from drift import pipeline
    from drift.store.db import upgrade

    console = console or Console()
    script = demo_script(nights)
    with console.status("training the digits model and writing the nightly batches"):
        build_world(settings.home, script, seed, rows_per_night)
    monitor = get_monitor(
        DEMO_MONITOR, Path(str(settings.config_path)) if settings.config else None, settings
    )
    upgrade(settings.db_url)
    _reset_monitor(settings)
    with console.status("fitting detectors and calibration"):
        pipeline.fit_monitor(settings, monitor)

    decisions = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("nights", total=len(script))
        for i in range(len(script)):
            decisions.append(pipeline.run_night(settings, monitor, FIRST_NIGHT + timedelta(days=i)))
            progress.advance(task)

    detectors = [d.name for d in monitor.detectors]
    table = Table(title=f"driftwatch demo - monitor {DEMO_MONITOR}, {rows_per_night} rows a night")
    for column in ("night", "truth", "rows", *[f"OOD {d}" for d in detectors], "verdict", "event"):
        table.add_column(
            column, justify="right" if column.startswith("OOD") or column == "rows" else "left"
        )
    styles = {"ok": "green", "warn": "yellow", "confirm": "bold red"}
    for night, decision in zip(script, decisions, strict=True):
        truth = night.kind if night.kind == "clean" else f"{night.kind} {night.strength:g}"
        event = (
            f"#{decision['event_id']} {decision['event_status']}" if decision["event_id"] else ""
        )
        table.add_row(
            decision["batch_date"],
            truth,
            str(rows_per_night),
            *[f"{decision['ood_rate'][d]:.1%}" for d in detectors],
            f"[{styles[decision['verdict']]}]{decision['verdict']}[/]",
            event,
        )
    console.print(table)
    return decisions
