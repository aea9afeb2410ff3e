"""No regression of the gate benchmark's misses under issue 14's rules (practical floor,
recent level, the low side), on the shift that moves the fewest flags: noise at 10%.

Same streams as ``benchmarks/gate_quality.py`` (its pools, calibration and draws), fewer
seeds, and on each night the gate decided under three settings from the same evidence:

* ``old`` — the rules before issue 14: no practical test (every act test practical, no
  floor, no step rule) and no ``flag_deficit`` in the act family;
* ``new`` — the default settings;
* ``new_nodef`` — the default settings without ``flag_deficit`` in the act family.

Run: ``python benchmarks/gate_quality_practical.py [SEEDS]`` ->
``benchmarks/results/gate_quality_practical.json`` (misses of ``noise@10%`` within 5
nights, and confirms / advisory warnings on the 60 quiet nights, per batch size).
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import gate_quality as gq

from drift.gate import DetectorNight, GateSettings, NightEvidence, decide
from drift.stats import flag_deficit_test
from drift.stats.registry import default_act_tests

ALL = tuple(default_act_tests())
WITHOUT_DEFICIT = tuple(t for t in ALL if t != "flag_deficit")
VARIANTS = {
    "old": GateSettings(practical_tests=ALL, act_tests=WITHOUT_DEFICIT, min_excess_rate=0.0,
                        min_deficit_rate=0.0, step_z=0.0),
    "new": GateSettings(),
    "new_nodef": GateSettings(act_tests=WITHOUT_DEFICIT),
}
SCENARIOS = [gq.Scenario("noise", 0.10)]
SIZES = (1000, 5000, 50_000)
RESULTS = Path(__file__).parent / "results" / "gate_quality_practical.json"


def _evidence(stream: gq.Stream, night: gq.Pool, day: object, seed: int) -> NightEvidence:
    base = stream.evidence(night, day, seed)
    detectors = {
        d: DetectorNight(det.n_rows, det.n_flagged, det.n_calibration, det.tpr, [
            *det.tests, flag_deficit_test(det.n_flagged, det.n_rows, det.n_calibration, det.tpr, d)])
        for d, det in base.detectors.items()
    }
    return NightEvidence(base.batch_date, detectors, base.tests)


def run(args: tuple[int, int]) -> tuple[int, int, dict, dict]:
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    size, seed = args
    stream = gq.Stream(gq.POOLS, gq.N_CLASSES, size, seed)
    rng = np.random.default_rng([seed, size, 1])
    states: dict = dict.fromkeys(VARIANTS)
    quiet = {k: [0, 0] for k in VARIANTS}
    for t in range(gq.QUIET_NIGHTS):
        evidence = _evidence(stream, stream.draw(rng, None), gq.START + timedelta(t), t)
        for k, settings in VARIANTS.items():
            decision = decide(settings, states[k], evidence)
            states[k] = decision.state
            quiet[k][0] += decision.verdict == "confirm"
            quiet[k][1] += decision.kind in ("input", "gradual")
    missed = {}
    for i, scenario in enumerate(SCENARIOS):
        rng = np.random.default_rng([seed, size, 100 + i])
        branch, first = dict(states), dict.fromkeys(VARIANTS)
        for t in range(gq.HORIZON):
            evidence = _evidence(stream, stream.draw(rng, scenario),
                                 gq.START + timedelta(gq.QUIET_NIGHTS + t), 1000 + t)
            for k, settings in VARIANTS.items():
                if first[k] is None:
                    decision = decide(settings, branch[k], evidence)
                    branch[k] = decision.state
                    first[k] = t + 1 if decision.verdict == "confirm" else None
        missed[scenario.name] = {k: first[k] is None for k in VARIANTS}
    return size, seed, quiet, missed


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    gq.POOLS, gq.N_CLASSES = gq.build_pools()
    tasks = [(size, seed) for seed in range(seeds) for size in SIZES]
    with multiprocessing.get_context("fork").Pool(2) as workers:
        runs = list(workers.imap_unordered(run, tasks))
    summary: dict = {}
    for size, _, quiet, missed in runs:
        for k in VARIANTS:
            cell = summary.setdefault(str(size), {}).setdefault(
                k, {"quiet_confirms": 0, "quiet_advisory": 0, "quiet_nights": 0, "streams": 0})
            cell["quiet_confirms"] += quiet[k][0]
            cell["quiet_advisory"] += quiet[k][1]
            cell["quiet_nights"] += gq.QUIET_NIGHTS
            cell["streams"] += 1
            for name, m in missed.items():
                cell[f"misses {name}"] = cell.get(f"misses {name}", 0) + int(m[k])
    result = {"seeds": seeds, "sizes": list(SIZES), "summary": summary}
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
