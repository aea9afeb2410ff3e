"""Per-night statistical tests. Pure numerics: no database, no files, no Airflow.

Every test returns a :class:`TestResult` with a statistic, a p-value and an
effect size. The gate (:mod:`drift.gate`) needs both: with tens of thousands of
rows a p-value alone flags shifts too small to matter (Evidently #20, #50), so
a night only counts as significant when the p-value is small *and* the effect
is large enough.

What is here (docs/methods.md §3):

* :func:`flag_count_test` — the night's OOD-flag count against the
  beta-binomial null of a conformal threshold fitted on ``m`` rows;
* :func:`score_distribution_test` — one-sided two-sample KS of the night's
  scores against the calibration scores;
* :func:`mmd_test` — kernel two-sample test on embeddings with a pooled
  permutation null, blockwise in torch (or the linear-time estimator);
* :func:`column_drift_tests` — per raw input column through Evidently's
  stattests, Benjamini–Hochberg across columns;
* :func:`class_mix_test` — chi-square test of the predicted-class mix (prior shift);
* :class:`BinomialCusum` and :func:`cusum_threshold` — sequential evidence on
  the nightly flag counts, with the alarm level set by simulation for a target
  in-control run length;
* :func:`benjamini_hochberg`, :func:`bh_adjusted`, :func:`bonferroni`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import torch


@dataclass(frozen=True)
class TestResult:
    """One test on one night: its statistic, p-value and an effect size."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    statistic: float
    p_value: float
    effect_size: float
    #: what was tested: a detector, a column, "" for the whole batch
    subject: str = ""

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


def _flag_ranks(tpr: float, n_calibration: int) -> int:
    """K = floor((1 - tpr)(m + 1)), as in :class:`drift.calibration.ConformalCalibrator`."""
    return math.floor((1.0 - tpr) * (n_calibration + 1) + 1e-9)


def expected_flag_rate(tpr: float, n_calibration: int) -> float:
    """Mean in-distribution flag rate K / (m + 1) of a conformal threshold fitted on m rows.

    Examples
    --------
    >>> expected_flag_rate(0.95, 1999)
    0.05
    """
    return _flag_ranks(tpr, n_calibration) / (n_calibration + 1)


def flag_rate_quantile(tpr: float, n_calibration: int, quantile: float) -> float:
    """A quantile of the true ID flag rate U ~ Beta(K, m - K + 1) of a conformal threshold.

    An upper quantile bounds how far an unlucky calibration set can push the
    ID flag rate above its nominal value (docs/methods.md §2, "bound the true FPR").

    Examples
    --------
    >>> round(flag_rate_quantile(0.95, 1999, 0.5), 4), round(flag_rate_quantile(0.95, 1999, 0.99), 3)
    (0.0499, 0.062)
    """
    from scipy import stats

    k = _flag_ranks(tpr, n_calibration)
    return float(stats.beta(k, n_calibration - k + 1).ppf(quantile))


def flag_count_test(
    n_flagged: int, n_rows: int, n_calibration: int, tpr: float, subject: str = ""
) -> TestResult:
    """One-sided test that more rows were flagged than a conformal threshold allows.

    The threshold was estimated from ``n_calibration`` rows, so the true ID flag
    rate is itself random: U ~ Beta(K, m - K + 1) with K = floor((1 - tpr)(m + 1)).
    The count's null is then beta-binomial, not binomial, and the test keeps its
    level whatever the batch size (docs/methods.md §3.1).

    Effect size: observed flag rate minus the expected rate K / (m + 1).

    Examples
    --------
    >>> r = flag_count_test(n_flagged=30, n_rows=200, n_calibration=1999, tpr=0.95)
    >>> r.p_value < 1e-6, round(r.effect_size, 3)
    (True, 0.1)
    >>> flag_count_test(10, 200, 1999, 0.95).p_value > 0.4
    True
    """
    from scipy import stats

    m = n_calibration
    k = _flag_ranks(tpr, m)
    null = stats.betabinom(n_rows, k, m - k + 1)
    p_value = float(null.sf(n_flagged - 1)) if n_flagged > 0 else 1.0
    return TestResult(
        name="flag_count",
        statistic=float(n_flagged),
        p_value=min(1.0, max(p_value, 0.0)),
        effect_size=n_flagged / n_rows - k / (m + 1),
        subject=subject,
    )


def score_distribution_test(
    scores: np.ndarray, calibration_scores: np.ndarray, subject: str = ""
) -> TestResult:
    """One-sided two-sample KS test that the night's scores are larger (more OOD).

    Catches shifts that move scores without pushing many rows over the
    threshold. One-sided because only a move towards "more OOD" matters here;
    a batch that looks *more* in-distribution than the calibration rows is no
    reason to act. The statistic D⁺ = max_s (F_calib(s) - F_night(s)) is also
    the effect size: it is the largest excess flag rate over every possible
    threshold, in [0, 1] and independent of the sample sizes, so the gate can
    ask for a minimum D as well as a small p-value (a 50,000-row night makes a
    D of 0.01 "significant"). The two-sample p-value accounts for the finite
    calibration set as well as the night's size.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> calib = rng.normal(size=2000)
    >>> quiet = score_distribution_test(rng.normal(size=500), calib)
    >>> shifted = score_distribution_test(rng.normal(0.5, 1, size=500), calib)
    >>> quiet.p_value > 0.01, shifted.p_value < 1e-6, round(shifted.effect_size, 1)
    (True, True, 0.2)
    >>> score_distribution_test(rng.normal(-0.5, 1, size=500), calib).p_value > 0.5
    True
    """
    from scipy import stats

    scores = np.asarray(scores, dtype=np.float64)
    calibration_scores = np.asarray(calibration_scores, dtype=np.float64)
    # exact p-values cost O(n·m); beyond small samples the asymptotic one is accurate
    method = "exact" if len(scores) * len(calibration_scores) <= 250_000 else "asymp"
    # alternative="less": the night's CDF lies below the calibration CDF, i.e. larger scores
    result = stats.ks_2samp(scores, calibration_scores, alternative="less", method=method)
    return TestResult(
        name="score_distribution",
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        effect_size=float(result.statistic),
        subject=subject,
    )


# ----------------------------------------------------------------------------- MMD


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


# ---------------------------------------------------------------- multiple testing


def bh_adjusted(p_values: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values: reject at FDR q exactly where adjusted <= q.

    Examples
    --------
    >>> bh_adjusted(np.array([0.01, 0.04, 0.03, 0.5])).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * len(p) / np.arange(1, len(p) + 1)
    # running minimum from the largest p down gives the step-up rule
    adjusted_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(adjusted_sorted, 1.0)
    return adjusted


def benjamini_hochberg(p_values: np.ndarray, q: float = 0.1) -> np.ndarray:
    """Boolean rejections of the BH step-up procedure at false discovery rate ``q``.

    Examples
    --------
    >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5]), q=0.05).tolist()
    [True, False, False, False]
    >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5]), q=0.06).tolist()
    [True, True, True, False]
    """
    return bh_adjusted(p_values) <= q


def bonferroni(p_values: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    """Boolean rejections at family-wise level ``alpha``: p <= alpha / (number of tests).

    Examples
    --------
    >>> bonferroni(np.array([0.004, 0.006]), alpha=0.01).tolist()
    [True, False]
    """
    p = np.asarray(p_values, dtype=np.float64)
    return p <= alpha / max(len(p), 1)


# ------------------------------------------------------------- raw input columns


def _is_categorical(reference: pd.Series, current: pd.Series) -> bool:
    """Non-numeric (or boolean) columns are categorical.

    Unlike Evidently's default, a numeric column with few distinct values stays
    numeric (KS): as categorical, a near-constant column that gains one value the
    reference sample never saw gets a chi-square p-value of 0 every night.
    """
    import pandas as pd

    return not pd.api.types.is_numeric_dtype(reference) or pd.api.types.is_bool_dtype(reference)


def _total_variation(reference: pd.Series, current: pd.Series) -> float:
    ref = reference.value_counts(normalize=True)
    cur = current.value_counts(normalize=True)
    return 0.5 * float(ref.subtract(cur, fill_value=0.0).abs().sum())


def column_drift_tests(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], q: float = 0.1
) -> list[TestResult]:
    """Per-column drift of raw inputs through Evidently's stattests, BH across columns.

    Numerical columns: Evidently's two-sample KS (``ks_stat_test``), effect size
    Evidently's Wasserstein distance in reference-std units. Categorical (non-numeric)
    columns: Evidently's chi-square
    (``chi_stat_test``), effect size the total variation distance. Both give
    p-values, so Benjamini–Hochberg is meaningful.

    The returned ``p_value`` is the **BH-adjusted** p-value across ``columns``:
    a column drifted (FDR ``q``) exactly where ``p_value <= q``. The statistic
    is the raw per-column p-value. Used to attribute a shift to columns, not
    to decide whether to act. A categorical value the reference never saw
    makes the chi-square p-value 0.

    Examples
    --------
    >>> import pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500),
    ...                     "c": rng.choice(["x", "y"], 500)})
    >>> cur = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(1, 1, size=500),
    ...                     "c": rng.choice(["x", "y"], 500)})
    >>> [(r.subject, r.name, r.p_value <= 0.1) for r in column_drift_tests(ref, cur, ["a", "b", "c"])]
    [('a', 'column_ks', False), ('b', 'column_ks', True), ('c', 'column_chisquare', False)]
    """
    from evidently.legacy.calculations.stattests import (
        chi_stat_test,
        ks_stat_test,
        wasserstein_stat_test,
    )
    from evidently.legacy.core import ColumnType

    raw: list[tuple[str, str, float, float]] = []
    for column in columns:
        ref, cur = reference[column].dropna(), current[column].dropna()
        if _is_categorical(ref, cur):
            p_value = chi_stat_test(
                ref.astype(str), cur.astype(str), ColumnType.Categorical, q
            ).drift_score
            name, effect = "column_chisquare", _total_variation(ref.astype(str), cur.astype(str))
        else:
            p_value = ks_stat_test(ref, cur, ColumnType.Numerical, q).drift_score
            effect = wasserstein_stat_test(ref, cur, ColumnType.Numerical, None).drift_score
            name = "column_ks"
        p_value = 0.0 if not np.isfinite(p_value) else float(p_value)  # unseen category: inf chi²
        raw.append((column, name, p_value, float(effect)))
    adjusted = bh_adjusted(np.array([p for _, _, p, _ in raw]))
    return [
        TestResult(name, statistic=p, p_value=float(adj), effect_size=effect, subject=column)
        for (column, name, p, effect), adj in zip(raw, adjusted, strict=True)
    ]


# -------------------------------------------------------------------- class mix


def class_mix_test(
    reference_counts: np.ndarray, current_counts: np.ndarray, subject: str = ""
) -> TestResult:
    """Chi-square test that the predicted-class mix moved from the reference (prior shift).

    A test of homogeneity on the 2 × C table (reference counts, current
    counts), not goodness of fit to the reference proportions: the reference
    mix is itself estimated from finitely many rows, and treating it as exact
    inflates the false-positive rate once the night is much larger than the
    reference — the same trap as a binomial flag-count null. Classes seen in
    neither are dropped. Effect size: total variation distance between the two
    mixes (the share of rows that would have to change class).

    Examples
    --------
    >>> class_mix_test([500, 500], [260, 240]).p_value > 0.05
    True
    >>> r = class_mix_test([500, 500], [350, 150])
    >>> r.p_value < 1e-6, round(r.effect_size, 2)
    (True, 0.2)
    """
    from scipy import stats

    ref = np.asarray(reference_counts, dtype=np.float64)
    cur = np.asarray(current_counts, dtype=np.float64)
    if ref.shape != cur.shape or ref.ndim != 1:
        raise ValueError(
            f"class_mix_test: need two count vectors of one length, got {ref.shape}, {cur.shape}"
        )
    seen = (ref + cur) > 0
    table = np.vstack([ref[seen], cur[seen]])
    if table.shape[1] < 2 or table.sum(1).min() == 0:
        return TestResult("class_mix", 0.0, 1.0, 0.0, subject)
    chi2, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    tvd = 0.5 * float(np.abs(table[0] / table[0].sum() - table[1] / table[1].sum()).sum())
    return TestResult("class_mix", float(chi2), float(p_value), tvd, subject)


# ------------------------------------------------------------------------ CUSUM


@dataclass(frozen=True)
class BinomialCusum:
    """Page's CUSUM on nightly flag counts: in-control rate ``p0``, out-of-control ``p1``.

    Increment z = k ln(p1/p0) + (n - k) ln((1 - p1)/(1 - p0)) (the log-likelihood
    ratio of the night's count); S_t = max(0, S_{t-1} + z_t); alarm when
    S_t > ``threshold``. The sum is in nats of evidence, so nights of different
    sizes add up correctly; the threshold comes from :func:`cusum_threshold`.

    Examples
    --------
    >>> cusum = BinomialCusum(p0=0.05, p1=0.10, threshold=5.0)
    >>> round(cusum.increment(n_flagged=10, n_rows=200), 2)
    -3.34
    >>> s = cusum.update(0.0, n_flagged=25, n_rows=200); round(s, 2)
    7.87
    >>> cusum.alarm(s)
    True
    """

    p0: float
    p1: float
    threshold: float = math.inf

    def __post_init__(self) -> None:
        if not 0.0 < self.p0 < self.p1 < 1.0:
            raise ValueError(f"BinomialCusum: need 0 < p0 < p1 < 1, got p0={self.p0}, p1={self.p1}")

    def increment(self, n_flagged: float, n_rows: float) -> float:
        up = math.log(self.p1 / self.p0)
        down = math.log((1.0 - self.p1) / (1.0 - self.p0))
        return n_flagged * up + (n_rows - n_flagged) * down

    def update(self, previous: float, n_flagged: int, n_rows: int) -> float:
        return max(0.0, previous + self.increment(n_flagged, n_rows))

    def alarm(self, statistic: float) -> bool:
        return statistic > self.threshold


def round_rows(n_rows: int) -> int:
    """``n_rows`` to two significant digits: the grid on which CUSUM thresholds are cached.

    Examples
    --------
    >>> round_rows(1234), round_rows(50_000), round_rows(87)
    (1200, 50000, 87)
    """
    digits = max(len(str(int(n_rows))) - 2, 0)
    return max(1, int(round(n_rows, -digits)))


@lru_cache(maxsize=256)
def cusum_threshold(
    arl0_nights: float,
    n_rows: int,
    p0: float,
    p1: float,
    n_calibration: int,
    expected_rate: float | None = None,
    n_streams: int = 1000,
    n_nights: int = 3000,
    seed: int = 0,
) -> float:
    """Alarm level h of a :class:`BinomialCusum` for one false alarm per ``arl0_nights``.

    Simulated under the beta-binomial null: each of ``n_streams`` streams draws
    its true ID flag rate U ~ Beta(K, m - K + 1) once (one calibration set
    serves a stream for its whole life) and then ``n_nights`` counts
    Binomial(``n_rows``, U). K = ``expected_rate`` (m + 1); ``expected_rate``
    defaults to ``p0``, but the CUSUM's ``p0`` may be set above it (an upper
    quantile of U, as :mod:`drift.gate` does) so that an unlucky calibration
    set does not keep it near its alarm level. h is the smallest level whose alarm rate per
    night, restarting after each alarm, is <= 1 / ``arl0_nights``; found by
    bisection on common random numbers, so it is deterministic for a seed.
    Vectorised over streams; cached per argument tuple.

    Nightly sizes vary: pass the night's own size rounded with :func:`round_rows`
    (that is what :mod:`drift.gate` does), so the level matches the night being
    judged and the cache stays small. When calibration is too small for the
    batch size (m ≪ n), a stream whose U lies above the CUSUM's reference value
    alarms every night whatever h is; then the target cannot be met and the
    largest h searched is returned — fit calibration on more rows.

    Examples
    --------
    >>> h = cusum_threshold(365, n_rows=200, p0=0.05, p1=0.10, n_calibration=1999,
    ...                     n_streams=300, n_nights=1500)
    >>> 2.0 < h < 10.0
    True
    """
    k = round((p0 if expected_rate is None else expected_rate) * (n_calibration + 1))
    rng = np.random.default_rng(seed)
    rates = rng.beta(k, n_calibration - k + 1, size=n_streams)
    counts = rng.binomial(n_rows, rates[:, None], size=(n_streams, n_nights))
    increments = BinomialCusum(p0, p1).increment(counts, n_rows)
    target = 1.0 / arl0_nights

    def alarm_rate(h: float) -> float:
        s = np.zeros(n_streams)
        alarms = 0
        for night in range(n_nights):
            s = np.maximum(0.0, s + increments[:, night])
            fired = s > h
            alarms += int(fired.sum())
            s[fired] = 0.0  # restart after an alarm, as the gate does
        return alarms / (n_streams * n_nights)

    low, high = 0.0, max(1.0, float(increments.max(initial=0.0)))
    for _ in range(8):  # bracket: grow h until the target is met, or give up
        if alarm_rate(high) <= target:
            break
        low, high = high, 2.0 * high
    else:
        return high
    for _ in range(30):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if alarm_rate(middle) > target else (low, middle)
        if high - low < 1e-3 * high:
            break
    return high
