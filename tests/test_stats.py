"""Calibration and power of the nightly tests in drift.stats."""

from __future__ import annotations

import resource

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from drift.calibration import ConformalCalibrator
from drift.stats import (
    BinomialCusum,
    benjamini_hochberg,
    bh_adjusted,
    bonferroni,
    class_mix_test,
    column_drift_tests,
    cusum_threshold,
    flag_count_test,
    mmd_test,
    score_distribution_test,
)

ALPHA = 0.01
M, TPR = 2000, 0.95
K = int((1 - TPR) * (M + 1))


def upper_tolerance(level: float, trials: int) -> float:
    """level + 3 binomial standard errors: where an honest false-positive rate may land."""
    return level + 3 * np.sqrt(level * (1 - level) / trials)


def critical_count(n_rows: int) -> int:
    """Smallest flag count the real flag_count_test rejects at ALPHA (it is monotone in k)."""
    low, high = 0, n_rows
    while low < high:
        middle = (low + high) // 2
        if flag_count_test(middle, n_rows, M, TPR).p_value <= ALPHA:
            high = middle
        else:
            low = middle + 1
    return low


@pytest.mark.parametrize("n_rows", [200, 50_000])
def test_flag_count_level_under_the_beta_binomial_null(n_rows: int) -> None:
    # exact for continuous scores: the ID flag rate of a threshold from m rows is Beta(K, m-K+1)
    rng = np.random.default_rng(n_rows)
    nights = 40_000
    counts = rng.binomial(n_rows, rng.beta(K, M - K + 1, size=nights))
    false_positive_rate = np.mean(counts >= critical_count(n_rows))
    assert false_positive_rate <= upper_tolerance(ALPHA, nights)


@pytest.mark.parametrize("n_rows", [200, 50_000])
def test_flag_count_level_through_real_scores_and_calibrator(n_rows: int) -> None:
    rng = np.random.default_rng(7)
    replicates = 300
    critical = critical_count(n_rows)
    naive_critical = sps.binom(n_rows, K / (M + 1)).isf(ALPHA) + 1  # the binomial pitfall
    flagged = np.empty(replicates, dtype=np.int64)
    for r in range(replicates):
        calibrator = ConformalCalibrator(TPR).fit(rng.normal(size=M))
        flagged[r] = calibrator.flags(rng.normal(size=n_rows)).sum()
    assert np.mean(flagged >= critical) <= upper_tolerance(ALPHA, replicates)
    if n_rows == 50_000:  # a binomial null ignores calibration error and fires far too often
        assert np.mean(flagged >= naive_critical) > 0.2


def test_flag_count_detects_a_surge() -> None:
    assert flag_count_test(40, 200, M, TPR).p_value < 1e-6
    assert flag_count_test(0, 200, M, TPR).p_value == 1.0


def test_score_distribution_uniform_under_null_and_powerful_under_shift() -> None:
    rng = np.random.default_rng(1)
    p_null = np.array(
        [score_distribution_test(rng.normal(size=300), rng.normal(size=1000)).p_value for _ in range(400)]
    )
    assert np.mean(p_null <= 0.05) <= upper_tolerance(0.05, 400)
    assert sps.kstest(p_null, "uniform").pvalue > 0.001
    shifted = [
        score_distribution_test(rng.normal(0.3, 1, size=300), rng.normal(size=1000)) for _ in range(50)
    ]
    assert np.mean([r.p_value <= 0.01 for r in shifted]) >= 0.9
    assert all(0.05 < r.effect_size < 0.25 for r in shifted)  # D does not grow with n


def test_score_distribution_is_one_sided() -> None:
    rng = np.random.default_rng(2)
    assert score_distribution_test(rng.normal(-1, 1, 500), rng.normal(size=1000)).p_value > 0.5


def test_class_mix_uniform_under_null_at_large_nights_and_powerful_under_prior_shift() -> None:
    rng = np.random.default_rng(3)
    prior = np.full(8, 1 / 8)
    # a 1,000-row reference and 50,000-row nights: a goodness-of-fit test would over-fire here
    p_null = np.array(
        [class_mix_test(rng.multinomial(1000, prior), rng.multinomial(50_000, prior)).p_value
         for _ in range(400)]
    )
    assert np.mean(p_null <= 0.05) <= upper_tolerance(0.05, 400)
    assert sps.kstest(p_null, "uniform").pvalue > 0.001
    moved = 0.9 * prior + 0.1 * np.eye(8)[0]  # 10% of rows move to class 0
    hits = [class_mix_test(rng.multinomial(1000, prior), rng.multinomial(2000, moved)) for _ in range(50)]
    assert np.mean([r.p_value <= ALPHA for r in hits]) >= 0.9
    assert all(abs(r.effect_size - 0.0875) < 0.05 for r in hits)


def _full_unbiased_mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    def gram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * bandwidth**2))

    kxx, kyy, kxy = gram(x, x), gram(y, y), gram(x, y)
    n, m = len(x), len(y)
    return ((kxx.sum() - n) / (n * (n - 1)) + (kyy.sum() - m) / (m * (m - 1))
            - 2 * kxy.mean())


def test_mmd_blockwise_equals_the_full_matrix() -> None:
    import torch

    from drift.stats import median_bandwidth

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(37, 3)), rng.normal(0.3, 1, size=(23, 3))
    bandwidth = median_bandwidth(torch.as_tensor(np.vstack([x, y])))
    expected = _full_unbiased_mmd2(x, y, bandwidth)
    for block_size in (13, 4096):
        result = mmd_test(x, y, n_permutations=20, block_size=block_size, device="cpu")
        assert result.statistic == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # the permutation p-value does not depend on the tiling either
    p_values = {mmd_test(x, y, n_permutations=50, block_size=b, device="cpu").p_value for b in (13, 64)}
    assert len(p_values) == 1


def test_mmd_permutation_null_is_calibrated() -> None:
    rng = np.random.default_rng(5)
    p_null = np.array(
        [mmd_test(rng.normal(size=(60, 4)), rng.normal(size=(60, 4)), n_permutations=40,
                  seed=s, device="cpu").p_value for s in range(100)]
    )
    assert np.mean(p_null <= 0.1) <= upper_tolerance(0.1, 100)


def test_mmd_detects_a_mean_shift_quadratic_and_linear() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(400, 8)), rng.normal(0.4, 1, size=(400, 8))
    assert mmd_test(x, y, n_permutations=100, device="cpu").p_value <= 0.01
    big_x = rng.normal(size=(4000, 8))
    assert mmd_test(big_x, rng.normal(0.4, 1, size=(4000, 8)), linear=True, max_rows=None,
                    device="cpu").p_value <= 0.01
    assert mmd_test(big_x, rng.normal(size=(4000, 8)), linear=True, max_rows=None,
                    device="cpu").p_value > 0.001


def test_mmd_on_100k_by_100k_inputs_in_bounded_memory() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(100_000, 32)).astype(np.float32)
    y = rng.normal(size=(100_000, 32)).astype(np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    nightly = mmd_test(x, y, n_permutations=50, device="cpu")  # default: subsampled
    linear = mmd_test(x, y, linear=True, max_rows=None, device="cpu")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert nightly.p_value > 0.001 and linear.p_value > 0.001
    assert grown_mib < 400  # a full 200k × 200k kernel would need 320 GB


def test_bh_and_bonferroni() -> None:
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    assert benjamini_hochberg(p, q=0.05).tolist() == [True, True] + [False] * 8
    assert benjamini_hochberg(p, q=0.1).sum() == 6  # p(6) = 0.06 <= 6 · 0.01; p(7) = 0.074 > 0.07
    statsmodels_like = np.minimum(1, np.minimum.accumulate((p * 10 / np.arange(1, 11))[::-1])[::-1])
    np.testing.assert_allclose(bh_adjusted(p), statsmodels_like)
    assert bonferroni(p, alpha=0.05).tolist() == [True] + [False] * 9


def test_column_drift_tests_flag_the_moved_columns_with_bh() -> None:
    rng = np.random.default_rng(9)
    columns = [f"c{i}" for i in range(12)]
    reference = pd.DataFrame(rng.normal(size=(800, 12)), columns=columns)
    current = pd.DataFrame(rng.normal(size=(800, 12)), columns=columns)
    current["c3"] += 0.5
    current["c7"] *= 2.0
    reference["colour"] = rng.choice(["red", "blue"], 800)
    current["colour"] = rng.choice(["red", "blue", "green"], 800, p=[0.4, 0.4, 0.2])
    results = column_drift_tests(reference, current, [*columns, "colour"], q=0.1)
    moved = {r.subject for r in results if r.p_value <= 0.1}
    assert moved == {"c3", "c7", "colour"}
    by_column = {r.subject: r for r in results}
    assert by_column["colour"].name == "column_chisquare"
    assert by_column["colour"].effect_size == pytest.approx(0.2, abs=0.05)
    assert by_column["c3"].effect_size > 0.3 and by_column["c0"].effect_size < 0.15
    raw = np.array([r.statistic for r in results])
    np.testing.assert_allclose([r.p_value for r in results], bh_adjusted(raw))


def test_cusum_threshold_holds_its_run_length_on_fresh_streams() -> None:
    arl0, n_rows, p0, p1 = 200, 500, K / (M + 1), 2 * K / (M + 1)
    h = cusum_threshold(arl0, n_rows, p0, p1, M, n_streams=400, n_nights=1500)
    assert h == cusum_threshold(arl0, n_rows, p0, p1, M, n_streams=400, n_nights=1500)  # cached
    cusum = BinomialCusum(p0, p1, h)
    rng = np.random.default_rng(123)  # not the simulation's seed
    streams, nights = 400, 1500
    counts = rng.binomial(n_rows, rng.beta(K, M - K + 1, size=streams)[:, None], size=(streams, nights))
    s, alarms = np.zeros(streams), 0
    for night in range(nights):
        s = np.maximum(0.0, s + cusum.increment(counts[:, night], n_rows))
        alarms += int((s > h).sum())
        s[s > h] = 0.0
    assert alarms / (streams * nights) < 1.5 / arl0
    # and a doubled flag rate alarms within a few nights
    s, night = 0.0, 0
    while not cusum.alarm(s):
        s = cusum.update(s, int(rng.binomial(n_rows, 2 * p0)), n_rows)
        night += 1
    assert night <= 5
