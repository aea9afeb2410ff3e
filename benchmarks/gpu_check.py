"""GPU check for the KNN detector: FAISS GPU flat search equals CPU flat search, and how
much faster it is. Needs faiss with GPU support (e.g. ``pip install faiss-gpu-cu12``)
and a CUDA device; exits with status 2 and says so otherwise.

    python benchmarks/gpu_check.py   # writes benchmarks/results/gpu_check.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from drift.batch import FeatureBatch
from drift.detectors.knn import KNNDetector, gpu_available

N_BANK, N_QUERY, DIM, K = 200_000, 50_000, 128, 50


def timed_scores(det: KNNDetector, queries: FeatureBatch) -> tuple[float, np.ndarray]:
    det.score(FeatureBatch(queries.features[:100]))  # warm-up (GPU context, kernels)
    start = time.perf_counter()
    scores = det.score(queries)
    return time.perf_counter() - start, scores


def main() -> int:
    if not gpu_available():
        print("no FAISS GPU support or no CUDA device: nothing to check", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    bank = FeatureBatch(rng.standard_normal((N_BANK, DIM), dtype=np.float32))
    queries = FeatureBatch(rng.standard_normal((N_QUERY, DIM), dtype=np.float32))
    cpu_s, cpu = timed_scores(KNNDetector(k=K, index="flat", device="cpu").fit(bank), queries)
    gpu_s, gpu = timed_scores(KNNDetector(k=K, index="flat", device="cuda").fit(bank), queries)
    max_diff = float(np.abs(gpu - cpu).max())
    result = {
        "setting": {"n_bank": N_BANK, "n_query": N_QUERY, "dim": DIM, "k": K},
        "cpu_seconds": cpu_s,
        "gpu_seconds": gpu_s,
        "gpu_speedup": cpu_s / gpu_s,
        "max_abs_diff": max_diff,
        "equal_within_1e-5": max_diff <= 1e-5,
    }
    out = Path(__file__).parent / "results" / "gpu_check.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if result["equal_within_1e-5"] else 1


if __name__ == "__main__":
    sys.exit(main())
