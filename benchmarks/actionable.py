"""Alarms that matter: slow harmless drift with one costly episode, driftwatch beside peers.

Two simulated streams of ``NIGHTS`` nights, each with a model whose accuracy the
slow drift does not change and a 5-night episode that costs accuracy:

* **tabular** — 8 Gaussian inputs, 3 classes from a fixed random two-layer
  network of the inputs, a small torch MLP (embedding: its last hidden layer).
  Slow drift: x0's mean creeps by +0.6 sd and x1's by -0.4 sd over the nights;
  x0 and x1 matter little to the label (their weights in the true network are
  scaled by 0.2), so accuracy stays put. Episode (nights ``EPISODE``): a faulty feed
  puts x2..x5 off by +3 sd on 35% of rows; their labels stay those of the clean rows.
  (Noise on every input, or permuted inputs, cost as much accuracy but leave this
  model's KNN and energy flag rates within a point: no OOD detector sees them here.)
* **digits** — the shared digits setting (:mod:`drift.digits`, the demo's model,
  600-row nights drawn from held-out rows, thresholds on the held-out calibration
  split). Slow drift: two central pixels' means creep by +0.5 sd. Episode: 40% of
  rows under Gaussian noise at severity 5 (about 7 accuracy points; severity 4 cost 3.8).

driftwatch: the registered nightly statistics (:func:`drift.stats.computes`, as the
pipeline runs them: detector tests on every row, batch and column tests on a
``BATCH_ROWS`` sample) on real KNN + energy scores, :func:`drift.gate.decide` with
default settings and :func:`drift.events.record_decision` on a SQLite store: an
event is a drift event of any kind (shift, input, gradual). Peers on the same rows
(``benchmarks/actionable_peers.py`` in the peer environment): NannyML's data
reconstruction error (DRE) and univariate drift (Jensen-Shannon, any column
alerting), default thresholds from 10 reference chunks of the night's size; and
Evidently's dataset-drift flag (``DriftedColumnsCount``, share >= 0.5). A peer's
event is a run of consecutive alarm nights.

The batch and column tests' reference is the calibration rows, as ``drift fit``
stores it (``reference_sample.parquet``). 365 quiet nights of the demo itself:
``benchmarks/quiet_demo.py``.

Run: ``python benchmarks/actionable.py`` (peers need ``/work/main/.venv-bench``,
``--peer-python``) -> ``benchmarks/results/actionable.json``; ``--markdown`` prints
the README table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from drift import events, stats
from drift.batch import FeatureBatch
from drift.calibration import ConformalCalibrator
from drift.detectors import get_detector
from drift.gate import DetectorNight, GateSettings, NightEvidence, decide
from drift.stats import Scope

NIGHTS = 100
EPISODE = range(60, 65)
TPR = 0.95
BATCH_ROWS = 500  # the pipeline's batch-level sample of a night
REFERENCE_ROWS = 2000
START = date(2026, 1, 1)
RESULTS = Path(__file__).parent / "results" / "actionable.json"
PEERS = Path(__file__).parent / "actionable_peers.py"
DEFAULT_PEER_PYTHON = "/work/main/.venv-bench/bin/python"


@dataclass
class World:
    """A model, its detectors and calibration, and how a night's rows are drawn."""

    name: str
    columns: list[str]
    rows_per_night: int
    embed: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    detectors: dict
    calibrators: dict[str, ConformalCalibrator]
    #: raw inputs and embedding columns of the calibration rows: the batch and column tests'
    #: reference, as ``drift fit`` stores it
    reference: pd.DataFrame
    reference_predictions: np.ndarray
    reference_inputs: np.ndarray  # peers' reference: 10 chunks of the night's size
    n_classes: int
    #: (rng, night index, episode?) -> the night's inputs and true labels
    draw: Callable[[np.random.Generator, int, bool], tuple[np.ndarray, np.ndarray]]
    predict: Callable[[np.ndarray], np.ndarray]


def _fit(name: str, columns: list[str], rows: int, embed, x_bank, x_calib, x_peer_ref,  # noqa: ANN001
         n_classes: int, draw) -> World:  # noqa: ANN001
    bank_features, bank_logits = embed(x_bank)
    reference = FeatureBatch(bank_features, logits=bank_logits)
    detectors = {"knn": get_detector("knn", k=10).fit(reference), "energy": get_detector("energy").fit(reference)}
    cal_features, cal_logits = embed(x_calib)
    cal_batch = FeatureBatch(cal_features, logits=cal_logits)
    calibrators = {n: ConformalCalibrator(TPR).fit(d.score(cal_batch)) for n, d in detectors.items()}
    frame = pd.concat([pd.DataFrame(x_calib, columns=columns), _embedding_frame(cal_features)], axis=1)
    return World(name, columns, rows, embed, detectors, calibrators, frame, cal_logits.argmax(1),
                  x_peer_ref, n_classes, draw, lambda x: embed(x)[1].argmax(1))


def _embedding_frame(features: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(features, columns=[f"emb__{i}" for i in range(features.shape[1])])


def tabular_world(seed: int = 0) -> World:
    import torch
    from torch import nn

    rng = np.random.default_rng(seed)
    d, k = 8, 3
    a, w = rng.normal(size=(d, 16)), rng.normal(size=(16, k))
    a[:2] *= 0.2  # the creeping inputs matter little to the label: accuracy stays put

    def label(x: np.ndarray) -> np.ndarray:
        return np.tanh(x @ a).dot(w).argmax(1)

    x_train = rng.normal(size=(8000, d)).astype(np.float32)
    torch.manual_seed(seed)
    body = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
    head = nn.Linear(32, k)
    opt = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=3e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(label(x_train))
    for _ in range(40):
        for idx in torch.randperm(len(xt)).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(head(body(xt[idx])), yt[idx]).backward()
            opt.step()

    def embed(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            f = body(torch.from_numpy(np.asarray(x, np.float32)))
            return f.numpy(), head(f).numpy()

    def draw(r: np.random.Generator, t: int, episode: bool) -> tuple[np.ndarray, np.ndarray]:
        x = r.normal(size=(2000, d))
        x[:, 0] += 0.6 * t / NIGHTS
        x[:, 1] -= 0.4 * t / NIGHTS
        y = label(x)
        if episode:  # a faulty upstream feed: four inputs off by 3 sd, the truth the clean rows'
            moved = r.random(len(x)) < 0.35
            x[np.ix_(moved, [2, 3, 4, 5])] += 3.0
        return x.astype(np.float32), y

    columns = [f"x{i}" for i in range(d)]
    return _fit("tabular", columns, 2000, embed, x_train, rng.normal(size=(REFERENCE_ROWS, d)).astype(np.float32),
                rng.normal(size=(20_000, d)).astype(np.float32), k, draw)


def digits_world(seed: int = 0) -> World:
    from drift.digits import N_PIXELS, corrupt, embed, load_digits_split, train_digits_model

    split = load_digits_split(seed=seed)
    model = train_digits_model(split.x_train, split.y_train, split.n_classes, seed=seed)
    sd = split.x_train.std(0)
    creeping = np.argsort(-sd)[:2]  # the two most variable pixels

    def draw(r: np.random.Generator, t: int, episode: bool) -> tuple[np.ndarray, np.ndarray]:
        pick = r.integers(0, len(split.x_test), 600)
        x, y = split.x_test[pick].copy(), split.y_test[pick]
        x[:, creeping] += 0.5 * sd[creeping] * t / NIGHTS
        if episode:
            moved = r.random(len(x)) < 0.4
            x[moved] = corrupt(x[moved], "noise", 5, r)
        return x.astype(np.float32), y

    rng = np.random.default_rng(seed)
    columns = [f"px_{i:02d}" for i in range(N_PIXELS)]
    peer_ref = split.x_test[rng.integers(0, len(split.x_test), 6000)]
    return _fit("digits", columns, 600, lambda x: embed(model, x), split.x_train, split.x_calib,
                peer_ref, split.n_classes, draw)


def evidence(world: World, x: np.ndarray, day: date, rng: np.random.Generator,
             settings: GateSettings) -> NightEvidence:
    """The night's tests as the nightly pipeline computes them (registered statistics)."""
    features, logits = world.embed(x)
    batch = FeatureBatch(features, logits=logits)
    detectors = {}
    for name, det in world.detectors.items():
        cal = world.calibrators[name]
        scores = det.score(batch)
        n_flagged = int(cal.flags(scores).sum())
        sample = stats.DetectorSample(name, scores, n_flagged, cal.scores_, cal.tpr)
        tests = [t for compute in stats.computes(Scope.DETECTOR) for t in compute(sample)]
        detectors[name] = DetectorNight(len(x), n_flagged, cal.m, cal.tpr, tests)
    keep = rng.choice(len(x), min(BATCH_ROWS, len(x)), replace=False)
    current = pd.concat([pd.DataFrame(x[keep], columns=world.columns), _embedding_frame(features[keep])], axis=1)
    sample = stats.BatchSample(
        world.reference, current, world.columns, [c for c in current.columns if c.startswith("emb__")],
        settings.column_fdr, predictions=logits[keep].argmax(1),
        reference_predictions=world.reference_predictions, n_classes=world.n_classes,
    )
    tests = [t for compute in stats.computes(Scope.BATCH, Scope.COLUMN, n_rows=len(keep)) for t in compute(sample)]
    return NightEvidence(day, detectors, tests)


def run_driftwatch(world: World, nights: int, episode: range, seed: int) -> tuple[dict, list[np.ndarray]]:
    """Decide every night and record its events on a SQLite store; returns the per-night
    record and every night's inputs (for the peers)."""
    from sqlalchemy.orm import Session

    from drift.store.db import get_engine, upgrade
    from drift.store.models import Batch, DriftEvent, MonitoredModel

    settings = GateSettings()
    url = f"sqlite:///{tempfile.mkdtemp()}/actionable.db"
    upgrade(url)
    rng = np.random.default_rng([seed, 7])
    state, per_night, inputs = None, [], []
    with Session(get_engine(url)) as session:
        monitor = MonitoredModel(name=world.name)
        session.add(monitor)
        session.flush()
        for t in range(nights):
            x, y = world.draw(rng, t, t in episode)
            inputs.append(x)
            day = START + timedelta(days=t)
            decision = decide(settings, state, evidence(world, x, day, rng, settings))
            state = decision.state
            batch = Batch(monitor_id=monitor.id, batch_date=day)
            session.add(batch)
            session.flush()
            event = events.record_decision(session, monitor.id, batch, decision,
                                           advisory_expire_after=settings.gradual_w)
            per_night.append({
                "verdict": str(decision.verdict), "kind": decision.kind and str(decision.kind),
                "accuracy": float((world.predict(x) == y).mean()),
                "ood_rate": decision.evidence["ood_rates"],
                "event": event.id if event else None,
                "confirmed": bool(event is not None and event.confirmed_on is not None),
            })
        opened = [(e.id, e.kind, (e.first_seen - START).days, e.confirmed_on is not None)
                  for e in session.query(DriftEvent).order_by(DriftEvent.id)]
    return {"nights": per_night, "events": opened}, inputs


def score_driftwatch(run: dict, episode: range) -> dict:
    outside = [e for e in run["events"] if e[2] not in episode]
    nights = run["nights"]
    confirmed_at = [t for t in episode if nights[t]["confirmed"] and nights[t]["kind"] == "shift"]
    caught = [t for t in episode if nights[t]["verdict"] != "ok" and nights[t]["kind"] == "shift"]
    return {
        "events_outside_episode": len(outside),
        "events_outside_by_kind": {k: sum(e[1] == k for e in outside) for k in ("shift", "input", "gradual")},
        "confirmed_events_outside_episode": sum(e[3] for e in outside),
        "episode_delay": (confirmed_at[0] - episode.start + 1) if confirmed_at else None,
        "episode_nights_caught": len(caught),
    }


def score_alarms(alarms: list[bool], episode: range) -> dict:
    """A peer: an event is a run of consecutive alarm nights."""
    starts = [t for t, a in enumerate(alarms) if a and (t == 0 or not alarms[t - 1])]
    caught = [t for t in episode if alarms[t]]
    return {
        "events_outside_episode": sum(t not in episode for t in starts),
        "alarm_nights_outside_episode": sum(a for t, a in enumerate(alarms) if t not in episode),
        "episode_delay": (caught[0] - episode.start + 1) if caught else None,
        "episode_nights_caught": len(caught),
    }


def evidently_alarms(world: World, inputs: list[np.ndarray]) -> list[bool]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount

    definition = DataDefinition(numerical_columns=world.columns)
    reference = Dataset.from_pandas(world.reference[world.columns], data_definition=definition)
    out = []
    for x in inputs:
        night = Dataset.from_pandas(pd.DataFrame(x, columns=world.columns), data_definition=definition)
        snapshot = Report([DriftedColumnsCount(drift_share=0.5)]).run(night, reference)
        out.append(bool(snapshot.dict()["metrics"][0]["value"]["share"] >= 0.5))
    return out


def nannyml_alarms(world: World, inputs: list[np.ndarray], peer_python: str, peer_path: str) -> dict | str:
    """NannyML's DRE and univariate drift in the peer environment (a subprocess)."""
    if not Path(peer_python).exists():
        return f"peer environment missing: {peer_python}"
    with tempfile.TemporaryDirectory() as tmp:
        pd.DataFrame(world.reference_inputs, columns=world.columns).to_parquet(f"{tmp}/reference.parquet")
        pd.DataFrame(np.concatenate(inputs), columns=world.columns).to_parquet(f"{tmp}/analysis.parquet")
        done = subprocess.run(
            [peer_python, str(PEERS), tmp, str(world.rows_per_night)],
            capture_output=True, text=True, timeout=1200, env={**os.environ, "PYTHONPATH": peer_path},
        )
        if done.returncode != 0:
            return f"peer run failed: {done.stderr.strip().splitlines()[-1:]}"
        return json.loads(Path(f"{tmp}/alarms.json").read_text())


def stream(world: World, peer_python: str, peer_path: str, seed: int) -> dict:
    run, inputs = run_driftwatch(world, NIGHTS, EPISODE, seed)
    acc = [n["accuracy"] for n in run["nights"]]
    calm = [a for t, a in enumerate(acc) if t not in EPISODE]
    tools = {"driftwatch": score_driftwatch(run, EPISODE)}
    tools["evidently_dataset_drift"] = score_alarms(evidently_alarms(world, inputs), EPISODE)
    peers = nannyml_alarms(world, inputs, peer_python, peer_path)
    if isinstance(peers, str):
        tools["nannyml"] = {"skipped": peers}
    else:
        for name, alarms in peers.items():
            tools[f"nannyml_{name}"] = score_alarms(alarms[: len(inputs)], EPISODE)
    return {
        "accuracy": {
            "first_10_nights": round(float(np.mean(acc[:10])), 4),
            "last_10_nights": round(float(np.mean(acc[-10:])), 4),
            "outside_episode_min": round(float(min(calm)), 4),
            "episode": [round(acc[t], 4) for t in EPISODE],
            "episode_cost_points": round(100 * (float(np.mean(calm)) - float(np.mean([acc[t] for t in EPISODE]))), 1),
        },
        "tools": tools,
        "driftwatch_nights": [
            {"night": t, **{k: n[k] for k in ("verdict", "kind", "ood_rate")}}
            for t, n in enumerate(run["nights"]) if n["verdict"] != "ok"
        ],
    }


def targets(result: dict) -> dict:
    out = {}
    for name, s in result["streams"].items():
        dw = s["tools"]["driftwatch"]
        peers = {k: v for k, v in s["tools"].items() if k != "driftwatch" and "skipped" not in v}
        beats = {
            k: dw["events_outside_episode"] <= v["events_outside_episode"]
            and dw["episode_nights_caught"] >= v["episode_nights_caught"]
            and (dw["events_outside_episode"], -dw["episode_nights_caught"])
            != (v["events_outside_episode"], -v["episode_nights_caught"])
            for k, v in peers.items()
        }
        out[name] = {
            "episode_confirmed_first_night": dw["episode_delay"] == 1,
            "every_episode_night_caught": dw["episode_nights_caught"] == len(EPISODE),
            "at_most_one_event_outside_per_100_nights": dw["events_outside_episode"] <= NIGHTS / 100,
            "better_than_every_peer": beats,
        }
    return out


def markdown(result: dict) -> str:
    lines = ["| stream | tool | events outside the episode | episode delay (nights) | episode nights caught |",
             "|---|---|---:|---:|---:|"]
    for name, s in result["streams"].items():
        for tool, v in s["tools"].items():
            if "skipped" in v:
                lines.append(f"| {name} | {tool} | skipped: {v['skipped']} | | |")
                continue
            extra = ""
            if tool == "driftwatch":
                kinds = ", ".join(f"{k} {n}" for k, n in v["events_outside_by_kind"].items() if n)
                extra = f" ({kinds})" if kinds else ""
            else:
                extra = f" ({v['alarm_nights_outside_episode']} alarm nights)"
            delay = "missed" if v["episode_delay"] is None else v["episode_delay"]
            lines.append(f"| {name} | {tool} | {v['events_outside_episode']}{extra} | {delay} "
                         f"| {v['episode_nights_caught']} of {len(EPISODE)} |")
    return "\n".join(lines)


def _save(result: dict, started: float) -> None:
    result["targets"] = targets(result)
    result["runtime_seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--streams", nargs="*", default=["tabular", "digits"])
    parser.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON)
    parser.add_argument("--peer-path", default="", help="PYTHONPATH for the peer environment "
                        "(e.g. a --target folder holding statsmodels, which NannyML imports)")
    parser.add_argument("--markdown", action="store_true", help="print the README table of the saved result")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(RESULTS.read_text())))
        return
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    worlds = {"tabular": tabular_world, "digits": digits_world}
    result: dict = {"setup": {"nights": NIGHTS, "episode": [EPISODE.start, EPISODE.stop - 1], "tpr": TPR,
                              "batch_rows": BATCH_ROWS, "seed": args.seed,
                              "gate_settings": GateSettings().model_dump()}, "streams": {}}
    for name in args.streams:
        result["streams"][name] = stream(worlds[name](args.seed), args.peer_python, args.peer_path, args.seed)
        print(name, json.dumps(result["streams"][name]["tools"]), file=sys.stderr)
        _save(result, started)  # each stream as soon as it is done
    print(markdown(result))
    print(json.dumps(result["targets"], indent=2))
    print(f"runtime {result['runtime_seconds']} s")


if __name__ == "__main__":
    main()
