"""A simulated production setting for `drift demo`, with no downloads.

A small CNN is trained on scikit-learn's digits (classes 8 and 9 held out as
"never seen"), exported with ``torch.export``, and watched by the monitor
``digits_demo`` (config shipped as ``drift/demo_monitor.yaml``). Each night a
batch of production rows lands as parquet, and the true labels of a share of
the rows arrive one night later as feedback. The script below decides which
nights are clean and which are shifted. Every night runs through the same code
path as ``drift run``; a confirmed shift runs the same adaptation steps as the
``drift_adapt`` DAG.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from drift import digits
from drift.config import MonitorConfig, Settings, get_monitor

if TYPE_CHECKING:
    from drift.pipeline import NightDecision

DEMO_MONITOR = "digits_demo"
FIRST_NIGHT = date(2026, 11, 1)
INPUT_COLUMNS = [f"px_{i:02d}" for i in range(digits.N_PIXELS)]
#: share of each night's rows whose true label comes back, one night later
FEEDBACK_SHARE = 0.15


@dataclass(frozen=True)
class Night:
    """What the script does to one night's batch."""

    kind: str = "clean"  # clean | novel | covariate | prior
    #: novel: share of rows from unseen classes; covariate: corruption severity 1..5;
    #: prior: share of rows from the two favoured classes
    strength: float = 0.0
    corruption: str = "noise"

    def describe(self) -> str:
        return "clean" if self.kind == "clean" else f"{self.kind} {self.strength:g}"


def demo_script(nights: int) -> list[Night]:
    """Quiet nights, a novel-class surge, quiet, a covariate shift, quiet, a prior shift."""
    pattern = (
        [Night()] * 6
        + [Night("novel", 0.3)] * 3
        + [Night()] * 4
        + [Night("covariate", 3, "occlusion")] * 4
        + [Night()] * 4
        + [Night("prior", 0.8)] * 3
    )
    return (pattern + [Night()] * nights)[:nights]


def shifts_of(script: list[Night]) -> list[tuple[int, int, Night]]:
    """The scripted shifts as (first night index, last night index, night)."""
    spans: list[tuple[int, int, Night]] = []
    for i, night in enumerate(script):
        if night.kind == "clean":
            continue
        if spans and spans[-1][1] == i - 1 and spans[-1][2] == night:
            spans[-1] = (spans[-1][0], i, night)
        else:
            spans.append((i, i, night))
    return spans


def _frame(x: np.ndarray, ids: np.ndarray, labels: np.ndarray | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(x, columns=INPUT_COLUMNS)
    frame.insert(0, "row_id", ids)
    if labels is not None:
        frame["label"] = labels
    return frame


def night_rows(
    split: digits.DigitsSplit, night: Night, n_rows: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n_rows`` production inputs for one night and their true labels, drawn (with
    replacement) from rows the model never trained on. Novel rows keep their
    original digit (8 or 9), which the model has no class for."""
    pool, labels = split.x_test, split.y_test
    if night.kind == "prior":
        # most rows from two classes: the mix moves, each class still looks like itself
        favoured = np.isin(labels, [0, 1])
        weights = np.where(
            favoured, night.strength / favoured.sum(), (1 - night.strength) / (~favoured).sum()
        )
        pick = rng.choice(len(pool), n_rows, p=weights)
        return pool[pick], labels[pick]
    pick = rng.integers(0, len(pool), n_rows)
    rows, truth = pool[pick], labels[pick]
    if night.kind == "novel":
        n_novel = int(round(night.strength * n_rows))
        novel = rng.integers(0, len(split.x_novel), n_novel)
        rows[:n_novel], truth[:n_novel] = split.x_novel[novel], split.y_novel[novel]
    elif night.kind == "covariate":
        rows = digits.corrupt(rows, night.corruption, int(night.strength), rng)
    return rows, truth


def build_world(home: Path, script: list[Night], seed: int, rows_per_night: int) -> None:
    """Model file, reference, calibration, landing folders and feedback files under ``home/demo``."""
    import torch

    root = home / "demo"
    shutil.rmtree(root, ignore_errors=True)
    (root / "landing").mkdir(parents=True)
    (root / "feedback").mkdir()
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
        x, y = night_rows(split, night, rows_per_night, rng)
        row_ids = np.arange(len(x)) + i * 1_000_000
        _frame(x, row_ids).to_parquet(folder / "part-0.parquet")
        labelled = rng.random(len(x)) < FEEDBACK_SHARE
        pd.DataFrame(
            {"batch_date": day.isoformat(), "row_id": row_ids[labelled], "label": y[labelled]}
        ).to_csv(root / "feedback" / f"labels-{day.isoformat()}.csv", index=False)


def _reset_monitor(settings: Settings) -> None:
    """Forget earlier demo runs of the demo monitor (only that monitor's rows)."""
    from sqlalchemy import delete

    from drift.store.db import session_scope
    from drift.store.models import MonitoredModel

    with session_scope(settings.db_url) as session:
        session.execute(delete(MonitoredModel).where(MonitoredModel.name == DEMO_MONITOR))
    shutil.rmtree(settings.artifacts_dir / DEMO_MONITOR, ignore_errors=True)


def _event_types(settings: Settings) -> dict[int, str | None]:
    """Each demo event's shift type as stored now (fixed by the labels where they could)."""
    from sqlalchemy import select

    from drift.store.db import session_scope
    from drift.store.models import DriftEvent

    with session_scope(settings.db_url) as session:
        return {e.id: e.shift_type for e in session.scalars(select(DriftEvent))}


def run_stream(
    settings: Settings, monitor: MonitorConfig, script: list[Night], console: Console
) -> tuple[list[NightDecision], list[dict[str, Any]]]:
    """Every night in order: yesterday's feedback labels arrive (typing the events they
    label), the night runs, and an event the labels made ready is adapted, as the
    drift_feedback DAG's Asset event makes the drift_adapt DAG do."""
    from drift import pipeline

    # the demo writes its reference and feedback files locally, never to a URL
    feedback = Path(monitor.reference.path).parent / "feedback"
    decisions: list[NightDecision] = []
    adaptations: list[dict[str, Any]] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("nights", total=len(script))
        for i in range(len(script)):
            night = FIRST_NIGHT + timedelta(days=i)
            if i > 0:
                pipeline.import_feedback(
                    settings, monitor, feedback / f"labels-{night - timedelta(days=1)}.csv"
                )
            decisions.append(pipeline.run_night(settings, monitor, night))
            request = pipeline.take_adaptation_request(settings, monitor)
            if request is not None:
                result = pipeline.adapt_for_event(settings, monitor, request["event_id"])
                adaptations.append({"night": night, **result})
            progress.advance(task)
    return decisions, adaptations


def run_demo(
    settings: Settings,
    nights: int = 24,
    seed: int = 0,
    rows_per_night: int = 800,
    console: Console | None = None,
    adaptation: str = "auto",
    shifts: bool = True,
) -> list[NightDecision]:
    """Build the world, fit, meta-train, run every night; print the nightly table and a summary.

    ``adaptation`` is the monitor's ``adaptation.method`` for this run (auto | mol | ear | finetune);
    ``shifts=False`` makes every night clean (a quiet stretch of production: no event expected).
    """
    from drift import pipeline
    from drift.store.db import upgrade

    console = console or Console()
    script = demo_script(nights) if shifts else [Night()] * nights
    with console.status("training the digits model and writing the nightly batches"):
        build_world(settings.home, script, seed, rows_per_night)
    monitor = get_monitor(DEMO_MONITOR, settings.config if settings.config else None, settings)
    method = monitor.adaptation.model_copy(update={"method": adaptation})
    monitor = monitor.model_copy(update={"adaptation": method})
    upgrade(settings.db_url)
    _reset_monitor(settings)
    with console.status("fitting detectors and calibration; meta-training MOL"):
        pipeline.fit_monitor(settings, monitor)
        pipeline.meta_train(settings, monitor)
    decisions, adaptations = run_stream(settings, monitor, script, console)
    console.print(
        nightly_table(monitor, script, decisions, rows_per_night, accuracy_by_night(settings))
    )
    console.print(summary_table(script, decisions, adaptations, _event_types(settings)))
    for line in explain_hints(monitor, decisions):
        console.print(line, markup=False, highlight=False)
    return decisions


def explain_hints(monitor: MonitorConfig, decisions: list[NightDecision]) -> list[str]:
    """One `drift explain` command per confirmed night: where to read why it alarmed.

    >>> from types import SimpleNamespace
    >>> explain_hints(SimpleNamespace(name="digits_demo"), [{"batch_date": "2026-11-08", "newly_confirmed": True}])
    ['why a night alarmed: drift explain --monitor digits_demo --date 2026-11-08']
    """
    return [
        f"why a night alarmed: drift explain --monitor {monitor.name} --date {d['batch_date']}"
        for d in decisions
        if d["newly_confirmed"]
    ]


def accuracy_by_night(settings: Settings) -> dict[str, dict[str, Any]]:
    """The demo monitor's stored accuracy per night (estimated and realized), by night."""
    from drift.pipeline.performance import performance_by_night
    from drift.store import repo
    from drift.store.db import session_scope

    with session_scope(settings.db_url) as session:
        row = repo.require_monitor_row(session, DEMO_MONITOR)
        return {n["batch_date"]: n for n in performance_by_night(session, row.id)}


def _accuracy(night: dict[str, Any], method: str) -> str:
    entry = night.get(method)
    return f"{entry['accuracy']:.1%}" if entry else "-"


def nightly_table(
    monitor: MonitorConfig,
    script: list[Night],
    decisions: list[NightDecision],
    rows_per_night: int,
    accuracy: dict[str, dict[str, Any]],
) -> Table:
    """Per night: truth, OOD rates, accuracy estimated (CBPE, ATC) and realized (the
    night's feedback labels, which arrive one night later), verdict and event."""
    detectors = [d.name for d in monitor.detectors]
    reference = next((n["reference_accuracy"] for n in accuracy.values()), None)
    title = f"driftwatch demo - monitor {monitor.name}, {rows_per_night} rows a night"
    if reference is not None:
        title += f", reference accuracy {reference:.1%}"
    table = Table(title=title)
    accuracy_columns = ("acc CBPE", "acc ATC", "acc realized")
    for column in ("night", "truth", *[f"OOD {d}" for d in detectors], *accuracy_columns, "verdict", "event"):
        table.add_column(
            column, justify="right" if column.startswith(("OOD", "acc")) else "left"
        )
    styles = {"ok": "green", "warn": "yellow", "confirm": "bold red"}
    for night, decision in zip(script, decisions, strict=True):
        event = (
            f"#{decision['event_id']} {decision['event_status']}" if decision["event_id"] else ""
        )
        table.add_row(
            decision["batch_date"],
            night.describe(),
            *[f"{decision['ood_rate'][d]:.1%}" for d in detectors],
            *[
                _accuracy(accuracy.get(decision["batch_date"], {}), method)
                for method in ("cbpe", "atc", "realized")
            ],
            f"[{styles[decision['verdict']]}]{decision['verdict']}[/]",
            event,
        )
    return table


def summary_table(
    script: list[Night],
    decisions: list[NightDecision],
    adaptations: list[dict[str, Any]],
    event_types: dict[int, str | None],
) -> Table:
    """Each scripted shift: the event that caught it, its type now (fixed by the labels
    where they could), the delay, and what adaptation did."""
    first_night: dict[int, int] = {}
    for i, d in enumerate(decisions):
        if d["event_id"] is not None:
            first_night.setdefault(d["event_id"], i)
    false_alarms = sorted(e for e, i in first_night.items() if script[i].kind == "clean")
    table = Table(
        title="scripted shifts vs what driftwatch found",
        caption=f"events first seen on a clean night: {len(false_alarms)}"
        + (f" ({', '.join(f'#{e}' for e in false_alarms)})" if false_alarms else ""),
    )
    for column in ("shift", "nights", "event", "type found", "delay", "adaptation"):
        table.add_column(column)
    for first, last, night in shifts_of(script):
        window = decisions[first : min(last + 3, len(decisions))]
        confirmed = next((i for i, d in enumerate(window) if d["newly_confirmed"]), None)
        if confirmed is None:
            table.add_row(night.describe(), f"{first + 1}-{last + 1}", "[red]missed[/]", "", "", "")
            continue
        decision = window[confirmed]
        done = [a for a in adaptations if a["event_id"] == decision["event_id"]]
        adaptation, shift_type = "-", event_types.get(decision["event_id"] or 0)
        if done:
            a = done[-1]
            tried = ", ".join(c["method"] for c in a.get("candidates", []))
            if a["promoted"]:
                before, after = (
                    a["before"]["new_domain_accuracy"],
                    a["after"]["new_domain_accuracy"],
                )
                adaptation = (
                    f"v{a['version']} promoted, {a['method']} won (tried {tried}): "
                    f"accuracy on shifted rows {before:.0%} -> {after:.0%}"
                )
            else:
                adaptation = "not promoted: " + "; ".join(a["reasons"])
        table.add_row(
            night.describe(),
            f"{first + 1}-{last + 1}",
            f"#{decision['event_id']}",
            shift_type or "-",
            f"confirmed on shifted night {confirmed + 1}",
            adaptation,
        )
    return table
