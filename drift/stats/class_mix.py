"""Chi-square test of the predicted-class mix: a prior shift (docs/methods.md §3.5)."""

from __future__ import annotations

import numpy as np

from drift.stats.registry import (
    BatchSample,
    Family,
    Scope,
    Signal,
    Statistic,
    TestResult,
    register,
)


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


@register(
    Statistic(
        "class_mix", Scope.BATCH, Family.ACT, min_effect=0.05, signals=Signal.CLASS_MIX
    )  # total variation: 5% of rows changed predicted class
)
def class_mix_on_night(sample: BatchSample) -> list[TestResult]:
    if sample.predictions is None or sample.reference_predictions is None:
        return []
    return [
        class_mix_test(
            np.bincount(sample.reference_predictions, minlength=sample.n_classes or 0),
            np.bincount(sample.predictions, minlength=sample.n_classes or 0),
            subject="predicted_class",
        )
    ]
