"""Tests on one detector's scores against its conformal calibration (docs/methods.md §3.1).

* :func:`flag_count_test` — the night's OOD-flag count against the
  beta-binomial null of a conformal threshold fitted on ``m`` rows;
* :func:`score_distribution_test` — one-sided two-sample KS of the night's
  scores against the calibration scores.
"""

from __future__ import annotations

import numpy as np

from drift.calibration import flag_ranks
from drift.stats.registry import (
    DetectorSample,
    Family,
    Scope,
    Signal,
    Statistic,
    TestResult,
    register,
)


def expected_flag_rate(tpr: float, n_calibration: int) -> float:
    """Mean in-distribution flag rate K / (m + 1) of a conformal threshold fitted on m rows.

    Examples
    --------
    >>> expected_flag_rate(0.95, 1999)
    0.05
    """
    return flag_ranks(tpr, n_calibration) / (n_calibration + 1)


def flag_count_null(n_rows: int, n_calibration: int, tpr: float):  # noqa: ANN201 (a frozen scipy law)
    """The in-distribution law of a night's flag count: beta-binomial, since the true flag
    rate of a threshold fitted on ``n_calibration`` rows is U ~ Beta(K, m - K + 1).

    Examples
    --------
    >>> round(float(flag_count_null(1000, 1999, 0.95).mean()), 6)
    50.0
    """
    from scipy import stats

    k = flag_ranks(tpr, n_calibration)
    return stats.betabinom(n_rows, k, n_calibration - k + 1)


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

    k = flag_ranks(tpr, n_calibration)
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
    null = flag_count_null(n_rows, n_calibration, tpr)
    p_value = float(null.sf(n_flagged - 1)) if n_flagged > 0 else 1.0
    return TestResult(
        name="flag_count",
        statistic=float(n_flagged),
        p_value=min(1.0, max(p_value, 0.0)),
        effect_size=n_flagged / n_rows - expected_flag_rate(tpr, n_calibration),
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


@register(
    Statistic(
        "flag_count", Scope.DETECTOR, Family.ACT, min_effect=0.01, signals=Signal.DETECTOR
    )  # excess flag rate: one row in a hundred
)
def flag_count_on_night(sample: DetectorSample) -> list[TestResult]:
    n_calibration = len(sample.calibration_scores)
    return [
        flag_count_test(
            sample.n_flagged, len(sample.scores), n_calibration, sample.tpr, sample.detector
        )
    ]


@register(
    Statistic(
        "score_distribution", Scope.DETECTOR, Family.ACT, min_effect=0.05, signals=Signal.DETECTOR
    )  # one-sided KS D
)
def score_distribution_on_night(sample: DetectorSample) -> list[TestResult]:
    return [
        score_distribution_test(sample.scores, sample.calibration_scores, subject=sample.detector)
    ]
