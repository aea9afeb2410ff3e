"""One night at scale: wall time and peak memory of a real `drift run`, against its floor.

Setting (issue 13): nights of 100k / 300k / 1M rows × 32 inputs, an MLP exported as
``.pt2`` (forward -> 64-d features, 10 logits), a 100k-row reference (70k bank rows +
30k calibration rows), detectors knn (k = 50, ``index: auto`` with the night size
declared as ``expected_queries``) and energy, SQLite event store, default shard size.

For each size: a fresh ``DRIFT_HOME`` under /tmp, ``drift init`` and ``drift fit``,
then ``drift run`` as a subprocess, timed; its peak RSS comes from ``os.wait4`` (that
child only). The floor is the same night's forward pass plus the KNN search, timed
alone in this process right after; ratio = run / floor. The 1-minute load average is
recorded before and after each run: the machine is shared, so absolute times are
inflated by other work. Once, on held-out rows: AUROC of the auto-chosen index vs
exact (flat) search, ID rows from the training clusters vs OOD rows from unseen ones.
The smallest size is run twice to check the night's scores are identical on re-run.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/scale_night.py [--sizes 100000 300000]
    PYTHONPATH=$PWD .venv/bin/python benchmarks/scale_night.py --profile 300000

Writes ``benchmarks/results/scale_night.json`` (merged by size, so sizes may be run
separately); ``--profile N`` runs one night in-process under cProfile and writes
``benchmarks/results/scale_night_profile.txt``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch

RESULTS = Path(__file__).parent / "results"
N_INPUTS, N_CLASSES, N_OOD_CLUSTERS, FEATURE_DIM = 32, 10, 4, 64
N_BANK, N_CALIBRATION, N_HELD_OUT = 70_000, 30_000, 20_000
NIGHT = date(2026, 11, 20)
SIZES = (100_000, 300_000, 1_000_000)


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(N_INPUTS, 128), torch.nn.ReLU(),
            torch.nn.Linear(128, FEATURE_DIM), torch.nn.ReLU(),
        )
        self.head = torch.nn.Linear(FEATURE_DIM, N_CLASSES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return features, self.head(features)


class World:
    """Seeded Gaussian clusters in input space: 10 ID classes and 4 unseen OOD clusters."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.centres = rng.normal(scale=1.5, size=(N_CLASSES, N_INPUTS)).astype(np.float32)
        # OOD clusters sit near ID ones (offset ~5.7, the within-cluster spread),
        # so the task is not trivially separable
        near = self.centres[rng.integers(0, N_CLASSES, N_OOD_CLUSTERS)]
        self.ood_centres = (near + rng.normal(scale=1.0, size=near.shape)).astype(np.float32)

    def rows(self, n: int, rng: np.random.Generator, ood: bool = False) -> tuple[np.ndarray, np.ndarray]:
        centres = self.ood_centres if ood else self.centres
        labels = rng.integers(0, len(centres), n)
        x = centres[labels] + rng.normal(size=(n, N_INPUTS)).astype(np.float32)
        return x.astype(np.float32), labels


def frame(x: np.ndarray, labels: np.ndarray | None = None, first_id: int = 0) -> pd.DataFrame:
    data = {f"x_{i:02d}": x[:, i] for i in range(N_INPUTS)}
    data["row_id"] = np.arange(first_id, first_id + len(x))
    if labels is not None:
        data["label"] = labels
    return pd.DataFrame(data)


def build_home(home: Path, world: World, night_rows: int) -> Path:
    """Model, reference, calibration, one night and the config under ``home``; returns the config."""
    shutil.rmtree(home, ignore_errors=True)
    landing = home / "landing" / f"ds={NIGHT.isoformat()}"
    landing.mkdir(parents=True)
    rng = np.random.default_rng(1)
    torch.manual_seed(0)
    model = MLP()
    x, y = world.rows(20_000, rng)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for step in range(200):
        batch = slice((step * 500) % 20_000, (step * 500) % 20_000 + 500)
        loss = torch.nn.functional.cross_entropy(model(xt[batch])[1], yt[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    program = torch.export.export(
        model, (torch.zeros(2, N_INPUTS),), dynamic_shapes=({0: torch.export.Dim("rows")},)
    )
    torch.export.save(program, str(home / "model.pt2"))
    frame(*world.rows(N_BANK, rng)).to_parquet(home / "reference.parquet")
    frame(*world.rows(N_CALIBRATION, rng), first_id=N_BANK).to_parquet(home / "calibration.parquet")
    # a night is mostly ID with 2% OOD rows, shuffled
    n_ood = night_rows // 50
    x = np.vstack([world.rows(night_rows - n_ood, rng)[0], world.rows(n_ood, rng, ood=True)[0]])
    frame(x[rng.permutation(len(x))]).to_parquet(landing / "part-0.parquet")
    columns = "".join(f"\n        - x_{i:02d}" for i in range(N_INPUTS))
    config = home / "monitors.yaml"
    config.write_text(f"""monitors:
  - name: scale
    model: {{format: export, path: {home / 'model.pt2'}}}
    source:
      landing: {home / 'landing'}
      id_column: row_id
      input_columns:{columns}
    reference:
      path: {home / 'reference.parquet'}
      calibration_path: {home / 'calibration.parquet'}
      label_column: label
    detectors:
      - name: knn
        params: {{k: 50, expected_queries: {night_rows}}}
      - name: energy
    adaptation: {{enabled: false}}
""")
    return config


def drift_env(home: Path, config: Path) -> dict[str, str]:
    repo = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "DRIFT_HOME": str(home), "DRIFT_CONFIG": str(config),
            "DRIFT_DATABASE_URL": f"sqlite:///{home / 'drift.db'}",
            "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}


def drift(env: dict[str, str], *args: str) -> tuple[float, float]:
    """Run ``drift ARGS`` as a child; its wall seconds and peak RSS in GB (of that child only)."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "drift.cli", *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"drift {' '.join(args)} failed:\n{output.decode()}")
    return seconds, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def fitted_version(home: Path) -> Path:
    return max((home / "artifacts" / "scale" / "versions").iterdir(), key=lambda p: int(p.name[1:]))


def night_scores(home: Path) -> pd.DataFrame:
    folder = home / "artifacts" / "scale" / "scores" / f"ds={NIGHT.isoformat()}"
    return pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("shard-*.parquet"))])


def floor(home: Path, config: Path) -> dict[str, float]:
    """The night's forward pass and KNN search timed alone (the fitted version's own index)."""
    from drift.config import load_monitors
    from drift.detectors import Detector
    from drift.embed import Embedder

    monitor = load_monitors(config)[0]
    rows = pd.read_parquet(home / "landing" / f"ds={NIGHT.isoformat()}", columns=monitor.source.input_columns)
    knn = Detector.load(fitted_version(home) / "detectors" / "knn")
    start = time.perf_counter()
    batch = Embedder(monitor.model, monitor.source.input_columns).embed_frame(rows)
    forward = time.perf_counter() - start
    start = time.perf_counter()
    knn.score(batch)
    search = time.perf_counter() - start
    return {"forward_s": forward, "search_s": search, "floor_s": forward + search, "index": knn.index_kind_}


def auroc_check(world: World, home: Path, config: Path) -> dict[str, float]:
    """AUROC of the fitted (auto) index vs exact search: held-out ID rows vs unseen-cluster OOD rows."""
    from drift.batch import FeatureBatch
    from drift.config import load_monitors
    from drift.detectors import Detector
    from drift.detectors.knn import KNNDetector
    from drift.embed import Embedder
    from drift.metrics import auroc

    monitor = load_monitors(config)[0]
    embedder = Embedder(monitor.model, monitor.source.input_columns)
    rng = np.random.default_rng(7)
    held_out_id = embedder.embed_array(world.rows(N_HELD_OUT, rng)[0])
    held_out_ood = embedder.embed_array(world.rows(N_HELD_OUT, rng, ood=True)[0])
    bank = embedder.embed_frame(pd.read_parquet(home / "reference.parquet"))
    fitted = Detector.load(fitted_version(home) / "detectors" / "knn")
    exact = KNNDetector(k=fitted.k, index="flat").fit(FeatureBatch(bank.features))
    result = {"index": fitted.index_kind_, "nlist": int(getattr(fitted.index_, "nlist", 0)),
              "nprobe": fitted.nprobe, "n_id": N_HELD_OUT, "n_ood": N_HELD_OUT}
    for name, det in (("exact", exact), ("auto", fitted)):
        result[f"auroc_{name}"] = auroc(det.score(held_out_id), det.score(held_out_ood))
    result["auroc_auto_minus_exact"] = result["auroc_auto"] - result["auroc_exact"]
    return result


def run_size(world: World, n: int, check_rerun: bool) -> dict:
    home = Path(f"/tmp/drift-scale-{n}")
    config = build_home(home, world, n)
    env = drift_env(home, config)
    drift(env, "init")
    fit_s, _ = drift(env, "fit")
    load_before = os.getloadavg()[0]
    run_s, peak_gb = drift(env, "run", "--date", NIGHT.isoformat())
    load_after = os.getloadavg()[0]
    result = {"rows": n, "run_s": run_s, "peak_rss_gb": peak_gb, "fit_s": fit_s,
              "load_average_1m_before": load_before, "load_average_1m_after": load_after,
              "shards": -(-n // 20_000)}
    if check_rerun:
        first = night_scores(home)
        rerun_s, _ = drift(env, "run", "--date", NIGHT.isoformat())
        result["rerun_s"] = rerun_s
        result["rerun_scores_identical"] = bool(first.equals(night_scores(home)))
    result.update(floor(home, config))
    result["ratio_run_to_floor"] = run_s / result["floor_s"]
    if check_rerun:
        result["auroc"] = auroc_check(world, home, config)
    shutil.rmtree(home, ignore_errors=True)
    return result


def profile(world: World, n: int) -> None:
    """One night in-process under cProfile: where the time goes after the search."""
    from drift import pipeline
    from drift.config import Settings, load_monitors
    from drift.store.db import upgrade

    home = Path(f"/tmp/drift-scale-profile-{n}")
    config = build_home(home, world, n)
    os.environ.update(drift_env(home, config))
    settings = Settings()
    upgrade(settings.db_url)
    monitor = load_monitors(config)[0]
    pipeline.fit_monitor(settings, monitor)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(pipeline.run_night, settings, monitor, NIGHT)
    seconds = time.perf_counter() - start
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    header = (f"cProfile of pipeline.run_night, {n} rows, {seconds:.1f} s wall "
              f"(load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores)\n")
    (RESULTS / "scale_night_profile.txt").write_text(header + text.getvalue())
    print(header + text.getvalue()[:6000])
    shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--profile", type=int, metavar="ROWS")
    args = parser.parse_args()
    world = World()
    if args.profile:
        profile(world, args.profile)
        return
    path = RESULTS / "scale_night.json"
    results = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    results["machine"] = {"cpu_cores": os.cpu_count(), "torch": torch.__version__,
                          "faiss_threads": __import__("faiss").omp_get_max_threads()}
    smallest = min(args.sizes)
    for n in sorted(args.sizes):
        results["runs"][str(n)] = run_size(world, n, check_rerun=n == smallest)
        path.write_text(json.dumps(results, indent=2))
        r = results["runs"][str(n)]
        print(f"{n:>9} rows: run {r['run_s']:.1f} s, peak RSS {r['peak_rss_gb']:.2f} GB, floor "
              f"{r['floor_s']:.1f} s (forward {r['forward_s']:.1f}, search {r['search_s']:.1f}, "
              f"{r['index']}), ratio {r['ratio_run_to_floor']:.2f}, load {r['load_average_1m_before']:.1f}")
    runs = sorted(results["runs"].values(), key=lambda r: r["rows"])
    results["seconds_per_million_rows"] = {str(r["rows"]): r["run_s"] / r["rows"] * 1e6 for r in runs}
    path.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
