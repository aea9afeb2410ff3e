"""Per raw input column drift through Evidently's stattests, BH across columns (docs/methods.md §3.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from drift.stats.multiple import bh_adjusted
from drift.stats.registry import (
    BatchSample,
    Correction,
    Family,
    Scope,
    Signal,
    Statistic,
    TestResult,
    register,
)

if TYPE_CHECKING:
    import pandas as pd


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


#: permutations of the pooled rows behind the null level of the Wasserstein distance
NULL_PERMUTATIONS = 8


def _null_wasserstein(reference: np.ndarray, current: np.ndarray, seed: int = 0) -> float:
    """Mean normed Wasserstein distance of the pooled rows split at random into samples of
    these two sizes: the distance sampling alone gives when nothing moved.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> 0.05 < _null_wasserstein(rng.normal(size=300), rng.normal(size=500)) < 0.15
    True
    """
    from scipy.stats import wasserstein_distance

    pooled, rng, m = np.concatenate([reference, current]), np.random.default_rng(seed), len(reference)
    distances = []
    for _ in range(NULL_PERMUTATIONS):
        order = rng.permutation(pooled)
        ref, cur = order[:m], order[m:]
        distances.append(wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001))
    return float(np.mean(distances))


def column_drift_tests(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], q: float = 0.1
) -> list[TestResult]:
    """Per-column drift of raw inputs through Evidently's stattests, BH across columns.

    Numerical columns: Evidently's two-sample KS (``ks_stat_test``), effect size
    Evidently's Wasserstein distance in reference-std units less its null level
    (:func:`_null_wasserstein`): two samples of a few hundred rows of one distribution
    are 0.05-0.1 sd apart by chance, the size of the practical floor, and on a
    discrete column (pixels, counts) a tiny offset gives KS a p-value near 0, so the
    raw distance alone would let noise through. Categorical (non-numeric) columns:
    Evidently's chi-square (``chi_stat_test``), effect size the total variation
    distance. Both give p-values, so Benjamini–Hochberg is meaningful.

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
            distance = wasserstein_stat_test(ref, cur, ColumnType.Numerical, None).drift_score
            effect = max(0.0, distance - _null_wasserstein(ref.to_numpy(float), cur.to_numpy(float)))
            name = "column_ks"
        p_value = 0.0 if not np.isfinite(p_value) else float(p_value)  # unseen category: inf chi²
        raw.append((column, name, p_value, float(effect)))
    adjusted = bh_adjusted(np.array([p for _, _, p, _ in raw]))
    return [
        TestResult(name, statistic=p, p_value=float(adj), effect_size=effect, subject=column)
        for (column, name, p, effect), adj in zip(raw, adjusted, strict=True)
    ]


# per-column evidence: a near-constant column gains one unseen value and its chi-square
# p is 0; without a size floor every night "moves" some column
@register(
    Statistic(
        "column_ks",
        Scope.COLUMN,
        Family.EVIDENCE,
        min_effect=0.1,  # Wasserstein distance in reference-std units
        signals=Signal.INPUTS,
        correction=Correction.BH,
    ),
    Statistic(
        "column_chisquare",
        Scope.COLUMN,
        Family.EVIDENCE,
        min_effect=0.05,  # total variation
        signals=Signal.INPUTS,
        correction=Correction.BH,
        categorical=True,
    ),
)
def columns_on_night(sample: BatchSample) -> list[TestResult]:
    return column_drift_tests(
        sample.reference, sample.current, sample.input_columns, q=sample.column_fdr
    )
