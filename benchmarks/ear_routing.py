"""EAR routing and forgetting on the digits setting, domain by domain.

Same protocol as part 2 of ``adapt_quality.py``: from the clean domain, add
rotation-4, occlusion-4, blur-5 in turn with 20 labelled rows per class; after
each addition report, for every domain so far, EAR accuracy and routing accuracy
(share of its test rows sent to its own head). Runs against whichever ``drift``
is on the path, so the same script measures the code before and after a change.

Run: ``python benchmarks/ear_routing.py [--seeds 0 1 2] [--out FILE]`` (≈ 20 s per seed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from drift.adapt import EARModel
from drift.digits import corrupt, load_digits_split, train_digits_model

DOMAINS = (("rotation", 4), ("occlusion", 4), ("blur", 5))
SHOTS = 20


def stratified_rows(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    return np.concatenate(
        [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)]
    )


def run_seed(seed: int) -> list[dict]:
    split = load_digits_split(seed)
    deployed = train_digits_model(split.x_train, split.y_train, split.n_classes, seed=seed)
    rng = np.random.default_rng(2000 + seed)  # the same rows and corruptions as adapt_quality.py
    ear = EARModel(deployed, seed=seed).fit(split.x_train, split.y_train)
    test_sets = {"clean": split.x_test}
    stages = []
    for kind, severity in DOMAINS:
        name = f"{kind}-{severity}"
        rows = stratified_rows(split.y_calib, SHOTS, rng)
        x_new, y_new = corrupt(split.x_calib[rows], kind, severity, rng), split.y_calib[rows]
        test_sets[name] = corrupt(split.x_test, kind, severity, rng)
        started = time.perf_counter()
        ear.add_domain(x_new, y_new, name)
        seconds = time.perf_counter() - started
        domains = {}
        for index, (domain, x_test) in enumerate(test_sets.items()):
            domains[domain] = {
                "accuracy": float((ear.predict(x_test).argmax(1) == split.y_test).mean()),
                "routing_accuracy": float((ear.route(x_test) == index).mean()),
            }
        stages.append({"added": name, "add_seconds": seconds, "domains": domains})
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "ear_routing.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    per_seed = {seed: run_seed(seed) for seed in args.seeds}
    summary = []
    for i, stage in enumerate(per_seed[args.seeds[0]]):
        row = {"added": stage["added"], "domains": {}}
        for domain in stage["domains"]:
            row["domains"][domain] = {
                key: float(np.mean([per_seed[s][i]["domains"][domain][key] for s in args.seeds]))
                for key in ("accuracy", "routing_accuracy")
            }
        summary.append(row)
        print(
            f"after {row['added']}:",
            ", ".join(
                f"{d} acc {v['accuracy']:.3f} route {v['routing_accuracy']:.3f}"
                for d, v in row["domains"].items()
            ),
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"seeds": args.seeds, "summary": summary, "per_seed": per_seed}, indent=2)
    )


if __name__ == "__main__":
    main()
