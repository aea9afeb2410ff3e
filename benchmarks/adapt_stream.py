"""Adaptation policies on a stream: none / finetune / mol / ear / auto, the real pipeline deciding.

The digits setting of ``drift demo`` (same model, world and code path): a few
clean nights, then three successive covariate shifts of different kinds, each
lasting a third of the rest of the stream: rotation-4 and occlusion-4 (kinds MOL
meta-trains on) and blur-5 (a kind MOL never meta-trains on). 15% of each night's
rows come back labelled one night later (``drift.demo.FEEDBACK_SHARE``). Every night
runs through ``pipeline.run_night``; a confirmed event is adapted through
``pipeline.adapt_for_event`` (collect -> candidates -> no-regression gate -> promote)
once ``min_labels`` of its rows are labelled, exactly as ``drift demo`` does; MOL's
meta-initialisation is meta-trained before the stream and again every 7 nights
(the weekly DAG) from the active model, with the confirmed shifts' rows.

Per policy and seed: deployed accuracy on each night's rows, mean over shifted
nights and over each shift; old-domain (clean test rows) accuracy at the end;
seconds per adaptation; every promotion's validation numbers before/after; for
EAR routing accuracy per domain at the end and each domain's largest accuracy
loss when later domains were added.

Run: ``python benchmarks/adapt_stream.py [--nights 30] [--rows 300] [--seeds 0 1 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from drift import digits, pipeline
from drift.adapt import EARModel, ShiftFn
from drift.config import Settings, get_monitor
from drift.demo import (
    DEMO_MONITOR,
    FEEDBACK_SHARE,
    FIRST_NIGHT,
    Night,
    build_world,
    night_rows,
)
from drift.embed import Embedder
from drift.pipeline.candidates import EAR_STATE
from drift.store.db import upgrade

# the monitor's meta_shift names "benchmarks.adapt_stream:seen_corruptions": importable from the repo root
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

POLICIES = ("none", "finetune", "mol", "ear", "auto")
SHIFTS = (("rotation", 4), ("occlusion", 4), ("blur", 5))
UNSEEN = "blur"  # never in MOL's simulated meta-training shifts
#: re-meta-train MOL every this many nights (the weekly DAG)
META_EVERY = 7


def seen_corruptions() -> ShiftFn:
    """MOL's simulated shifts here: every corruption kind but :data:`UNSEEN`."""
    return digits.random_corruption(kinds=[k for k in digits.CORRUPTIONS if k != UNSEEN])


def _labelled_rows_of(settings: Settings, event_id: int) -> int:
    from drift.pipeline.labelled import labelled_row_count
    from drift.store.db import session_scope
    from drift.store.models import DriftEvent

    with session_scope(settings.db_url) as session:
        return labelled_row_count(session, session.get_one(DriftEvent, event_id))


def _shift_name(night: Night) -> str:
    return "clean" if night.kind == "clean" else f"{night.corruption}-{int(night.strength)}"


def stream_script(nights: int) -> list[Night]:
    lead = max(4, nights // 8)
    span = (nights - lead) // len(SHIFTS)
    script = [Night()] * lead
    for kind, severity in SHIFTS:
        script += [Night("covariate", severity, kind)] * span
    return (script + [Night("covariate", SHIFTS[-1][1], SHIFTS[-1][0])] * nights)[:nights]


def night_truth(script: list[Night], seed: int, rows: int) -> list[np.ndarray]:
    """The true labels of every night's rows: ``build_world``'s draws, replayed."""
    split = digits.load_digits_split(seed=seed)
    rng = np.random.default_rng(seed)
    truth = []
    for night in script:
        x, y = night_rows(split, night, rows, rng)
        rng.random(len(x))  # the feedback draw
        truth.append(y)
    return truth


def _accuracy(settings: Settings, monitor: Any, frame: pd.DataFrame, y: np.ndarray) -> float:
    _, _, active = pipeline.active_fitted(settings, monitor)
    logits = Embedder(active.model_spec(monitor.model), monitor.source.input_columns).embed_frame(frame).logits
    return float((logits.argmax(axis=1) == y).mean())


def _ear_domains(settings: Settings, monitor: Any) -> EARModel | None:
    _, _, active = pipeline.active_fitted(settings, monitor)
    state = active.path / EAR_STATE
    if not state.is_dir():
        return None
    return EARModel.load(state, torch.export.load(str(state / "base.pt2")).module())


def run_policy(
    world: Path, seed: int, policy: str, script: list[Night], truth: list[np.ndarray], args: argparse.Namespace
) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix=f"adapt-{policy}-{seed}-"))
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'drift.db'}")
    upgrade(settings.db_url)
    monitor = get_monitor(DEMO_MONITOR)
    monitor = monitor.model_copy(
        update={
            "adaptation": monitor.adaptation.model_copy(
                update={
                    "enabled": policy != "none",
                    "method": "auto" if policy == "none" else policy,
                    "min_labels": args.min_labels,
                    "meta_shift": "benchmarks.adapt_stream:seen_corruptions",
                    "meta_iterations": args.meta_iterations,
                }
            )
        }
    )
    columns = monitor.source.input_columns
    split = digits.load_digits_split(seed=seed)
    eval_rng = np.random.default_rng(10_000 + seed)
    domain_sets = {"clean": split.x_test}
    domain_sets |= {f"{k}-{s}": digits.corrupt(split.x_test, k, s, eval_rng) for k, s in SHIFTS}
    pipeline.fit_monitor(settings, monitor)
    uses_mol = policy in ("mol", "auto")
    if uses_mol:
        pipeline.meta_train(settings, monitor)
    feedback = world / "demo" / "feedback"
    landing = world / "demo" / "landing"
    nightly: list[dict[str, Any]] = []
    adaptations: list[dict[str, Any]] = []
    pending: list[tuple[int, int]] = []  # event, labelled rows needed
    domain_of: dict[str, str] = {}  # EAR domain name -> shift
    ear_history: list[dict[str, float]] = []
    for i, night in enumerate(script):
        day = FIRST_NIGHT + timedelta(days=i)
        if i > 0:
            pipeline.import_feedback(
                settings, monitor, feedback / f"labels-{day - timedelta(days=1)}.csv"
            )
        if uses_mol and i > 0 and i % META_EVERY == 0:
            pipeline.meta_train(settings, monitor)
        decision = pipeline.run_night(settings, monitor, day)
        frame = pd.read_parquet(landing / f"ds={day.isoformat()}")
        nightly.append(
            {
                "night": i + 1,
                "truth": night.describe() + ("" if night.kind == "clean" else f" {night.corruption}"),
                "verdict": decision["verdict"],
                "accuracy": _accuracy(settings, monitor, frame, truth[i]),
            }
        )
        if decision["newly_confirmed"] and decision["event_id"] is not None:
            pending.append((decision["event_id"], args.min_labels))
        if policy == "none":
            continue
        for event_id, needed in list(pending):
            labelled = _labelled_rows_of(settings, event_id)
            if labelled < needed:
                continue
            pending.remove((event_id, needed))
            # named by the latest labelled night (yesterday): an event may start on a clean night
            shift = _shift_name(script[i - 1])
            started = time.perf_counter()
            result = pipeline.adapt_for_event(settings, monitor, event_id)
            seconds = time.perf_counter() - started
            if not result["promoted"] and result.get("candidates"):  # retried with more labels
                pending.append((event_id, labelled + args.min_labels))
            adaptations.append(
                {
                    "night": i + 1,
                    "shift": shift,
                    "seconds": seconds,
                    "promoted": result["promoted"],
                    "method": result.get("method"),
                    "reasons": result["reasons"],
                    "before": result.get("before"),
                    "after": result.get("after"),
                    "candidates": [
                        {k: c.get(k) for k in ("method", "passed", "after", "seconds")}
                        for c in result.get("candidates", [])
                    ],
                }
            )
            ear = _ear_domains(settings, monitor)
            if result["promoted"] and result.get("method") == "ear" and ear is not None:
                domain_of[ear.domain_names_[-1]] = shift
                known = list(dict.fromkeys(["clean", *(domain_of[n] for n in ear.domain_names_[1:])]))
                ear_history.append(
                    {d: float((ear.predict(domain_sets[d]).argmax(1) == split.y_test).mean()) for d in known}
                )
    shifted = [n["accuracy"] for n in nightly if n["truth"] != "clean"]
    per_shift = {
        f"{k}-{s}": float(np.mean([n["accuracy"] for n in nightly if n["truth"] == f"covariate {s} {k}"]))
        for k, s in SHIFTS
    }
    clean = pd.DataFrame(split.x_test, columns=columns)
    result: dict[str, Any] = {
        "mean_shifted_accuracy": float(np.mean(shifted)),
        "per_shift_accuracy": per_shift,
        "old_domain_accuracy_end": _accuracy(settings, monitor, clean, split.y_test),
        "seconds_per_adaptation": float(np.mean([a["seconds"] for a in adaptations])) if adaptations else None,
        "n_adaptations": len(adaptations),
        "n_promoted": sum(a["promoted"] for a in adaptations),
        "adaptations": adaptations,
        "nights": nightly,
    }
    ear = _ear_domains(settings, monitor)
    if ear is not None:
        # a shift's rows are routed right when they go to a domain added for that shift
        # (domain 0, the original head, for clean rows)
        shift_of = ["clean", *(domain_of.get(n, "?") for n in ear.domain_names_[1:])]
        result["ear_domains"] = shift_of
        result["ear_routing_accuracy"] = {
            d: float(np.isin(ear.route(domain_sets[d]), [i for i, s in enumerate(shift_of) if s == d]).mean())
            for d in dict.fromkeys(shift_of)
            if d in domain_sets
        }
        result["ear_accuracy_after_each_domain"] = ear_history
        result["ear_max_loss_of_earlier_domain"] = max(
            # a domain can leave EAR's state (auto promoted another method; a new state starts
            # around that model): only domains present before and after count as a loss
            (ear_history[j][d] - later[d] for j in range(len(ear_history)) for later in ear_history[j + 1 :]
             for d in ear_history[j] if d in later),
            default=0.0,
        )
    shutil.rmtree(home, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--rows", type=int, default=300, help="rows a night")
    parser.add_argument("--min-labels", type=int, default=90)
    parser.add_argument("--meta-iterations", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "adapt_stream.json")
    parser.add_argument(
        "--merge", type=Path, nargs="+", help="combine these results files (seeds run apart) into --out"
    )
    args = parser.parse_args()
    if args.merge:
        runs = [json.loads(path.read_text()) for path in args.merge]
        merged: dict[int, dict[str, Any]] = {}
        for run in runs:  # later files' policies replace earlier ones'
            for k, v in run["per_seed"].items():
                merged.setdefault(int(k), {}).update(v)
        args.nights, args.rows, args.min_labels = runs[0]["nights"], runs[0]["rows_per_night"], runs[0]["min_labels"]
        print(json.dumps(write_results(args, merged, sum(r["seconds"] for r in runs)), indent=2))
        return
    torch.set_num_threads(1)
    script = stream_script(args.nights)
    per_seed: dict[int, dict[str, Any]] = {}
    started = time.perf_counter()
    for seed in args.seeds:
        world = Path(tempfile.mkdtemp(prefix=f"adapt-world-{seed}-"))
        build_world(world, script, seed, args.rows)
        os.environ["DRIFT_HOME"] = str(world)  # the demo config's base_dir
        truth = night_truth(script, seed, args.rows)
        per_seed[seed] = {}
        for policy in args.policies:
            t0 = time.perf_counter()
            per_seed[seed][policy] = run_policy(world, seed, policy, script, truth, args)
            write_results(args, per_seed, time.perf_counter() - started)
            r = per_seed[seed][policy]
            print(
                f"seed {seed} {policy:8s} shifted {r['mean_shifted_accuracy']:.3f} "
                f"old {r['old_domain_accuracy_end']:.3f} adaptations {r['n_adaptations']} "
                f"promoted {r['n_promoted']} ({time.perf_counter() - t0:.0f}s)",
                flush=True,
            )
        shutil.rmtree(world, ignore_errors=True)
        summary = write_results(args, per_seed, time.perf_counter() - started)
    print(json.dumps(summary, indent=2))


def write_results(args: argparse.Namespace, per_seed: dict[int, dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Write the seeds run so far (after each seed, so a cut-off run leaves its results)."""
    summary = summarise(per_seed, args.policies)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "nights": args.nights,
                "rows_per_night": args.rows,
                "feedback_share": FEEDBACK_SHARE,
                "min_labels": args.min_labels,
                "shifts": [f"{k}-{s}" for k, s in SHIFTS],
                "unseen_by_meta_training": UNSEEN,
                "seeds": [s for s in per_seed if len(per_seed[s]) == len(args.policies)],
                "seconds": seconds,
                "summary": summary,
                "per_seed": per_seed,
            },
            indent=2,
            default=str,
        )
    )
    return summary


def summarise(per_seed: dict[int, dict[str, Any]], policies: list[str]) -> dict[str, Any]:
    """Means over the seeds run for every policy, and the targets of issue 12 checked per seed."""
    seeds = [s for s in per_seed if all(p in per_seed[s] for p in policies)]
    if not seeds:
        return {}

    def mean(policy: str, key: str) -> float | None:
        values = [per_seed[s][policy][key] for s in seeds if per_seed[s][policy].get(key) is not None]
        return float(np.mean(values)) if values else None

    summary: dict[str, Any] = {
        p: {
            "mean_shifted_accuracy": mean(p, "mean_shifted_accuracy"),
            "old_domain_accuracy_end": mean(p, "old_domain_accuracy_end"),
            "seconds_per_adaptation": mean(p, "seconds_per_adaptation"),
            "unseen_shift_accuracy": float(np.mean([per_seed[s][p]["per_shift_accuracy"][f"{UNSEEN}-5"] for s in seeds])),
        }
        for p in policies
    }
    targets: dict[str, Any] = {}
    singles = [p for p in ("finetune", "mol", "ear") if p in policies]
    if "auto" in policies and singles:
        gaps = [
            max(per_seed[s][p]["mean_shifted_accuracy"] for p in singles) - per_seed[s]["auto"]["mean_shifted_accuracy"]
            for s in seeds
        ]
        targets["auto_gap_to_best_single_per_seed"] = gaps
        targets["auto_within_0.5pt"] = all(g <= 0.005 for g in gaps)
    if "ear" in policies and "none" in policies:
        drops = [per_seed[s]["none"]["old_domain_accuracy_end"] - per_seed[s]["ear"]["old_domain_accuracy_end"] for s in seeds]
        # seeds whose EAR domains were named (a run without the names has no routing numbers)
        named = [s for s in seeds if "ear_routing_accuracy" in per_seed[s]["ear"]]
        routing = [per_seed[s]["ear"]["ear_routing_accuracy"] for s in named]
        losses = [per_seed[s]["ear"]["ear_max_loss_of_earlier_domain"] for s in named]
        targets["ear_domain_metrics_seeds"] = named
        targets["ear_old_domain_drop_per_seed"] = drops
        targets["ear_old_domain_within_1pt"] = all(d <= 0.01 for d in drops)
        targets["ear_routing_per_seed"] = routing
        targets["ear_routing_at_least_90pct"] = bool(named) and all(
            v >= 0.9 for r in routing for v in r.values()
        ) and all(len(r) == len(SHIFTS) + 1 for r in routing)
        targets["ear_max_loss_of_earlier_domain_per_seed"] = losses
        targets["ear_no_earlier_domain_loses_3pt"] = bool(named) and all(x <= 0.03 for x in losses)
    if "mol" in policies and "finetune" in policies:
        gain = [
            per_seed[s]["mol"]["per_shift_accuracy"][f"{UNSEEN}-5"] - per_seed[s]["finetune"]["per_shift_accuracy"][f"{UNSEEN}-5"]
            for s in seeds
        ]
        targets["mol_minus_finetune_on_unseen_per_seed"] = gain
        targets["mol_3pt_over_finetune_on_unseen"] = float(np.mean(gain)) >= 0.03
    worse = [
        (s, p, a["night"])
        for s in seeds
        for p in policies
        for a in per_seed[s][p]["adaptations"]
        if a["promoted"]
        and (
            a["after"]["new_domain_accuracy"] < a["before"]["new_domain_accuracy"]
            or a["after"]["old_domain_accuracy"] < a["before"]["old_domain_accuracy"]
        )
    ]
    targets["promotions_worse_than_replaced_on_a_validation_set"] = worse
    summary["targets"] = targets
    return summary


if __name__ == "__main__":
    main()
