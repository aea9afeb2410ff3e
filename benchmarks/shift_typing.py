"""Shift typing on demo-style streams: the gate's type per night without labels, and each
event's type once the feedback labels (15% of rows, one night late) have arrived.

The stream (the digits demo's model and monitor, ``--rows`` rows a night): quiet nights,
then each shift for ``--shift-nights`` nights with ``--gap`` quiet nights between:
novel digits at 30% and 15%, occlusion 3, noise 3, blur 4, rotation 3, noise 5, and two
classes at 80% (prior). Every night runs through ``drift.pipeline.run_night``; every
label file through ``drift.pipeline.import_feedback``.

Per shifted night it records the gate's type and the inputs of the typing rule (surged
detectors, per-detector KS distance / excess flag rate, class mix moved) and, for
comparison, the type the former rule would have given ("every detector surged and the
surge not in bulk => semantic"). Writes ``benchmarks/results/shift_typing.json``.

    PYTHONPATH=. .venv/bin/python benchmarks/shift_typing.py [--rows 600] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from drift import demo, pipeline
from drift.config import Settings, get_monitor
from drift.store.db import session_scope, upgrade
from drift.store.models import DriftEvent

RESULTS = Path(__file__).parent / "results" / "shift_typing.json"
TRUE_TYPE = {"novel": "semantic", "covariate": "covariate", "prior": "prior"}
SHIFTS = [
    demo.Night("novel", 0.3),
    demo.Night("novel", 0.15),
    demo.Night("covariate", 3, "occlusion"),
    demo.Night("covariate", 3, "noise"),
    demo.Night("covariate", 4, "blur"),
    demo.Night("covariate", 3, "rotation"),
    demo.Night("covariate", 5, "noise"),
    demo.Night("prior", 0.8),
]


def _describe(night: demo.Night) -> str:
    return night.describe() + (f" {night.corruption}" if night.kind == "covariate" else "")


def _former_rule(surged: set[str], n_detectors: int, mix_moved: bool, ratio: float) -> str:
    """The type the gate gave before `unknown` existed (drift/gate.py before issue 11)."""
    bulk = ratio > 1.5
    if n_detectors >= 2 and len(surged) == n_detectors and not (bulk and not mix_moved):
        return "semantic"
    if mix_moved:
        return "mixed" if surged else "prior"
    return "covariate"


def _night_inputs(evidence: dict[str, Any]) -> tuple[set[str], dict[str, float], bool]:
    decisive = evidence.get("decisive", [])
    surged = {d.split(":", 1)[1] for d in decisive if ":" in d}
    surged |= {name for name, c in evidence.get("cusum", {}).items() if c.get("alarm")}
    tests = {(t["name"], t["subject"]): t for t in evidence.get("tests", [])}
    ratios = {}
    for name in surged:
        flag, ks = tests.get(("flag_count", name)), tests.get(("score_distribution", name))
        if flag and ks:
            ratios[name] = ks["effect_size"] / max(flag["effect_size"], 0.01)
    return surged, ratios, "class_mix" in decisive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shift-nights", type=int, default=3)
    parser.add_argument("--gap", type=int, default=4)
    args = parser.parse_args()
    started = time.perf_counter()
    script = [demo.Night()] * 5
    for shift in SHIFTS:
        script += [shift] * args.shift_nights + [demo.Night()] * args.gap

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        settings = Settings(home=home, database_url=f"sqlite:///{home / 'drift.db'}")
        demo.build_world(home, script, seed=args.seed, rows_per_night=args.rows)
        monitor = get_monitor(demo.DEMO_MONITOR, settings=settings)
        # typing only: no adaptation, so each event keeps the nights the gate gave it
        monitor = monitor.model_copy(
            update={"adaptation": monitor.adaptation.model_copy(update={"enabled": False})}
        )
        upgrade(settings.db_url)
        pipeline.fit_monitor(settings, monitor)
        feedback = home / "demo" / "feedback"
        nights: list[dict[str, Any]] = []
        for i, truth in enumerate(script):
            day = demo.FIRST_NIGHT + timedelta(days=i)
            if i > 0:
                pipeline.import_feedback(
                    settings, monitor, feedback / f"labels-{day - timedelta(days=1)}.csv"
                )
            decision = pipeline.run_night(settings, monitor, day)
            if truth.kind == "clean" and decision["verdict"] == "ok":
                continue
            with session_scope(settings.db_url) as session:
                from drift.store import repo

                evidence = repo.find_batch(session, monitor.name, day).summary.get("evidence", {})
            surged, ratios, mix_moved = _night_inputs(evidence)
            ratio = float(np.median(list(ratios.values()))) if ratios else 0.0
            nights.append(
                {
                    "night": i + 1,
                    "truth": _describe(truth),
                    "true_type": TRUE_TYPE.get(truth.kind),
                    "verdict": decision["verdict"],
                    "event_id": decision["event_id"],
                    "gate_type": decision["shift_type"],
                    "former_rule_type": (
                        _former_rule(surged, len(monitor.detectors), mix_moved, ratio)
                        if decision["verdict"] != "ok"
                        else None
                    ),
                    "surged": sorted(surged),
                    "ks_over_excess": {k: round(v, 3) for k, v in sorted(ratios.items())},
                    "class_mix_moved": mix_moved,
                }
            )
        with session_scope(settings.db_url) as session:
            events = {e.id: e for e in session.query(DriftEvent)}
            final = {
                eid: {
                    "type": e.shift_type,
                    "changes": [
                        {k: c.get(k) for k in ("from", "to", "nights", "n_labels", "why")}
                        for c in e.evidence.get("type_changes", [])
                    ],
                }
                for eid, e in events.items()
            }

    shifted = [n for n in nights if n["true_type"] and n["verdict"] != "ok"]
    summary = {
        rule: {
            "right": sum(n[key] == n["true_type"] for n in shifted),
            "unknown": sum(n[key] == "unknown" for n in shifted),
            "wrong": sum(n[key] not in (n["true_type"], "unknown") for n in shifted),
        }
        for rule, key in (("gate_now", "gate_type"), ("former_rule", "former_rule_type"))
    }
    per_shift = []
    for first, last, night in demo.shifts_of(script):
        ids = sorted(
            {n["event_id"] for n in nights if first + 1 <= n["night"] <= last + 3 and n["event_id"]}
        )
        per_shift.append(
            {
                "shift": _describe(night),
                "true_type": TRUE_TYPE[night.kind],
                "events": ids,
                "after_labels": [final[i]["type"] for i in ids],
                "type_changes": {str(i): final[i]["changes"] for i in ids},
            }
        )
    result = {
        "rows_per_night": args.rows,
        "seed": args.seed,
        "shift_nights": args.shift_nights,
        "nights_of_shifts_decided_non_ok": len(shifted),
        "per_night_types_without_labels": summary,
        "per_shift_after_labels": per_shift,
        "nights": nights,
        "seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str))
    print(
        json.dumps(
            {k: result[k] for k in ("per_night_types_without_labels", "per_shift_after_labels")},
            indent=1,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
