"""Kernel two-sample test (MMD²) on embeddings, blockwise in torch (docs/methods.md §3.3)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from drift.stats.registry import (
    BatchSample,
    Family,
    Scope,
    Signal,
    Statistic,
    TestResult,
    add,
    register,
)

if TYPE_CHECKING:
    import torch


def _subsample(x: np.ndarray, max_rows: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_rows is None or len(x) <= max_rows:
        return x
    return x[np.sort(rng.choice(len(x), size=max_rows, replace=False))]


def median_bandwidth(pooled: torch.Tensor, max_rows: int = 1000, seed: int = 0) -> float:
    """Median pairwise Euclidean distance of (up to ``max_rows`` of) the pooled rows.

    Examples
    --------
    >>> import torch
    >>> median_bandwidth(torch.tensor([[0.0], [1.0], [3.0]]))
    2.0
    """
    import torch

    if len(pooled) > max_rows:
        generator = torch.Generator().manual_seed(seed)
        pooled = pooled[torch.randperm(len(pooled), generator=generator)[:max_rows]]
    distances = torch.pdist(pooled.double())
    bandwidth = float(distances.median()) if len(distances) else 1.0
    return bandwidth if bandwidth > 0 else 1.0


def _gaussian_kernel(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    import torch

    return torch.exp(-torch.cdist(a, b).square() / (2.0 * bandwidth**2))


def _block_sums(
    pooled: torch.Tensor, in_x: torch.Tensor, bandwidth: float, block_size: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Kernel sums over the pooled rows without materialising the full matrix.

    ``in_x`` is an (N, P) 0/1 matrix, one column per labelling (the observed one
    and each permutation). Returns per labelling ``a'Ka`` and ``a'K1`` and the
    total ``1'K1``, accumulating one (block × block) kernel tile at a time, so
    memory is O(block² + N·P) whatever N is. Symmetry halves the tiles.
    """
    import torch

    n_total = len(pooled)
    s_xx = torch.zeros(in_x.shape[1], dtype=torch.float64, device=pooled.device)
    row_sums = torch.zeros(n_total, dtype=torch.float64, device=pooled.device)
    for i in range(0, n_total, block_size):
        rows_i = slice(i, min(i + block_size, n_total))
        a_i = in_x[rows_i].to(pooled.dtype)
        for j in range(i, n_total, block_size):
            rows_j = slice(j, min(j + block_size, n_total))
            tile = _gaussian_kernel(pooled[rows_i], pooled[rows_j], bandwidth)
            weight = 1.0 if i == j else 2.0  # an off-diagonal tile stands for its mirror too
            s_xx += weight * (a_i * (tile @ in_x[rows_j].to(pooled.dtype))).sum(0).double()
            row_sums[rows_i] += tile.sum(1).double()
            if i != j:
                row_sums[rows_j] += tile.sum(0).double()
    a_k_1 = (in_x.double() * row_sums[:, None]).sum(0)
    return s_xx, a_k_1, float(row_sums.sum())


def _unbiased_mmd2(
    s_xx: torch.Tensor, a_k_1: torch.Tensor, total: float, n_x: int, n_y: int
) -> torch.Tensor:
    """Unbiased MMD² from kernel sums (k(z, z) = 1 for the Gaussian kernel)."""
    s_xy = a_k_1 - s_xx
    s_yy = total - s_xx - 2.0 * s_xy
    return (
        (s_xx - n_x) / (n_x * (n_x - 1))
        + (s_yy - n_y) / (n_y * (n_y - 1))
        - 2.0 * s_xy / (n_x * n_y)
    )


def _linear_mmd(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> tuple[float, float]:
    """Linear-time MMD² (Gretton et al. 2012, §6) and its one-sided normal p-value."""
    import torch
    from scipy import stats

    n_pairs = min(len(x), len(y)) // 2
    if n_pairs < 2:
        raise ValueError("mmd_test: the linear estimator needs at least 4 rows per sample")
    x1, x2 = x[0 : 2 * n_pairs : 2], x[1 : 2 * n_pairs : 2]
    y1, y2 = y[0 : 2 * n_pairs : 2], y[1 : 2 * n_pairs : 2]

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-(a - b).square().sum(1) / (2.0 * bandwidth**2))

    h = (k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)).double()
    mmd2 = float(h.mean())
    std_error = float(h.std()) / math.sqrt(n_pairs)
    p_value = float(stats.norm.sf(mmd2 / std_error)) if std_error > 0 else float(mmd2 <= 0)
    return mmd2, p_value


def mmd_test(
    x: np.ndarray,
    y: np.ndarray,
    n_permutations: int = 200,
    max_rows: int | None = 2000,
    linear: bool = False,
    seed: int = 0,
    device: str | None = None,
    block_size: int = 2048,
    subject: str = "",
) -> TestResult:
    """Kernel two-sample test (MMD², Gaussian kernel) of embeddings ``x`` vs ``y``.

    * Bandwidth: median pairwise distance of the pooled sample.
    * Quadratic (default): unbiased MMD² with a permutation null that relabels
      the **pooled** sample — a reference-only bootstrap ignores the current
      sample's variability and fires all the time (modyn #414). All
      permutations share each kernel tile, computed blockwise in torch, so
      memory is bounded by ``block_size`` and N × ``n_permutations``, never N².
    * ``linear=True``: the linear-time estimator with its asymptotic normal
      null; O(N) time and memory, less power per row.
    * Each sample is first subsampled (seeded) to ``max_rows`` rows: a nightly
      embedding test needs a few thousand rows, not 100k (None: use all).

    Statistic: MMD²; effect size: MMD = sqrt(max(MMD², 0)), a kernel distance
    on a scale set by the bandwidth, so it does not grow with the sample size.
    ``device`` defaults to CUDA when available.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(300, 5))
    >>> mmd_test(ref, rng.normal(size=(300, 5)), n_permutations=100).p_value > 0.05
    True
    >>> shifted = mmd_test(ref, rng.normal(0.5, 1, size=(300, 5)), n_permutations=100)
    >>> shifted.p_value <= 0.01, shifted.effect_size > 0.1
    (True, True)
    >>> mmd_test(ref, rng.normal(0.5, 1, size=(300, 5)), linear=True).p_value < 0.01
    True
    """
    import torch

    rng = np.random.default_rng(seed)
    x = _subsample(np.asarray(x), max_rows, rng)
    y = _subsample(np.asarray(y), max_rows, rng)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"mmd_test: need two 2-D arrays with equal columns, got {x.shape}, {y.shape}"
        )
    if min(len(x), len(y)) < 2:
        raise ValueError("mmd_test: each sample needs at least 2 rows")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # float64 on CPU for exact sums; float32 on a GPU where it is many times faster
    dtype = torch.float64 if device == "cpu" else torch.float32
    tx = torch.as_tensor(x, dtype=dtype, device=device)
    ty = torch.as_tensor(y, dtype=dtype, device=device)
    bandwidth = median_bandwidth(torch.cat([tx, ty]).cpu(), seed=seed)

    if linear:
        mmd2, p_value = _linear_mmd(tx, ty, bandwidth)
        name = "mmd_linear"
    else:
        n_x, n_y = len(tx), len(ty)
        labels = np.zeros((n_x + n_y, n_permutations + 1), dtype=np.uint8)
        labels[:n_x, 0] = 1  # column 0: the observed labelling
        for p in range(1, n_permutations + 1):
            labels[rng.permutation(n_x + n_y)[:n_x], p] = 1
        in_x = torch.as_tensor(labels, device=device)
        sums = _block_sums(torch.cat([tx, ty]), in_x, bandwidth, block_size)
        mmd2_all = _unbiased_mmd2(*sums, n_x, n_y).cpu().numpy()
        mmd2 = float(mmd2_all[0])
        p_value = float((1 + np.sum(mmd2_all[1:] >= mmd2 - 1e-12)) / (n_permutations + 1))
        name = "mmd"
    return TestResult(name, mmd2, p_value, math.sqrt(max(mmd2, 0.0)), subject)


@register(Statistic("mmd", Scope.BATCH, Family.ACT, signals=Signal.INPUTS, min_rows=2))
def mmd_on_night(sample: BatchSample) -> list[TestResult]:
    columns = sample.embedding_columns
    return [
        mmd_test(
            sample.reference[columns].to_numpy(np.float32),
            sample.current[columns].to_numpy(np.float32),
            subject="embedding",
        )
    ]


# the linear-time estimator's results (``mmd_test(linear=True)``) are judged like MMD's;
# the nightly pipeline computes the quadratic one
add(Statistic("mmd_linear", Scope.BATCH, Family.ACT, signals=Signal.INPUTS))
