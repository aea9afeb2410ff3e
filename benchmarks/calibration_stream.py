"""Calibration stream: thresholds fitted on the training set vs on a production window.

The stream of :mod:`drift.calibration_stream`: an over-fitted MLP whose reference
file is its own training set, 40 quiet nights of 500 unseen rows, then
``SHIFT_NIGHTS`` nights with 20% novel-class rows. Two monitors run it through the
real pipeline (SQLite, in-process):

* **training set** - thresholds on a held-out 30% of the reference (= training rows);
* **window** - ``reference.calibration_nights`` = the first 10 nights; it runs from
  night 11, so it sees 30 quiet nights.

Reported per monitor: each detector's flag rate per quiet night (and its mean),
false confirms on quiet nights, the first night with the in-sample warning, and
the delay to the first confirm after the shift (0 = its first night; see
``confirmed_before_shift``).

    PYTHONPATH=. python benchmarks/calibration_stream.py   # a few minutes on 2 cores
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from drift import pipeline
from drift.calibration_stream import MONITOR, build_stream, write_config
from drift.config import Settings, get_monitor
from drift.status import Verdict
from drift.store.db import upgrade

QUIET = 40
WINDOW = 10
SHIFT_NIGHTS = 3
OUT = Path(__file__).parent / "results" / "calibration_stream.json"


def run_monitor(root: Path, name: str, window: bool) -> dict:
    stream_nights = sorted(p.name[3:] for p in (root / "landing").iterdir())
    from datetime import date

    nights = [date.fromisoformat(d) for d in stream_nights]
    settings = Settings(home=root / f"home-{name}")
    settings.home.mkdir()
    upgrade(settings.db_url)
    span = (nights[0], nights[WINDOW - 1]) if window else None
    monitor = get_monitor(MONITOR, write_config(root, span, f"{name}.yaml"), settings)
    fit = pipeline.fit_monitor(settings, monitor)
    first = WINDOW if window else 0
    decisions = [pipeline.run_night(settings, monitor, night) for night in nights[first:]]
    quiet, shifted = decisions[: QUIET - first], decisions[QUIET - first :]
    warned = [i + 1 for i, d in enumerate(decisions) if d["calibration_warning"]]
    confirms = [i for i, d in enumerate(shifted) if d["verdict"] == Verdict.CONFIRM]
    return {
        "calibrated_on": fit["calibrated_on"].replace(f"{root}/", ""),
        "n_calibration": fit["n_calibration"],
        "accuracy_bank": fit["accuracy_bank"],
        "accuracy_calibration": fit["accuracy_calibration"],
        "quiet_nights": len(quiet),
        "flag_rate_per_night": {
            d: [round(n["ood_rate"][d], 4) for n in quiet] for d in fit["detectors"]
        },
        "mean_flag_rate": {
            d: round(sum(n["ood_rate"][d] for n in quiet) / len(quiet), 4) for d in fit["detectors"]
        },
        "quiet_nights_warn": sum(d["verdict"] == Verdict.WARN for d in quiet),
        "false_confirms": sum(d["newly_confirmed"] for d in quiet),
        "quiet_nights_in_confirm": sum(d["verdict"] == Verdict.CONFIRM for d in quiet),
        "in_sample_warning_first_night": warned[0] if warned else None,
        "in_sample_warning": next((d["calibration_warning"] for d in decisions if d["calibration_warning"]), None),
        # meaningless when the quiet nights already ended in a confirmed (false) shift
        "confirmed_before_shift": quiet[-1]["verdict"] == Verdict.CONFIRM,
        "shift_delay_nights": confirms[0] if confirms else None,
        "shift_flag_rate": {d: round(shifted[0]["ood_rate"][d], 4) for d in fit["detectors"]},
    }


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stream = build_stream(root, nights=QUIET + SHIFT_NIGHTS, shift_from=QUIET)
        results = {
            "setup": {
                "rows_per_night": 500,
                "quiet_nights": QUIET,
                "window_nights": WINDOW,
                "shift": "20% novel-class rows",
                "model_train_accuracy": stream.train_accuracy,
                "model_unseen_accuracy": stream.test_accuracy,
            },
            "training_set": run_monitor(root, "training_set", window=False),
            "window": run_monitor(root, "window", window=True),
        }
    results["seconds"] = round(time.perf_counter() - started, 1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    for name in ("training_set", "window"):
        r = results[name]
        print(
            f"{name:13s} mean flag rate {r['mean_flag_rate']}  false confirms {r['false_confirms']}"
            f"  in-sample warning night {r['in_sample_warning_first_night']}"
            f"  shift delay {r['shift_delay_nights']}"
        )
    print(f"{results['seconds']} s -> {OUT}")


if __name__ == "__main__":
    main()
