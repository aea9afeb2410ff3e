"""Per-night statistical tests. Pure numerics: no database, no files, no Airflow."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from scipy import stats


@dataclass(frozen=True)
class TestResult:
    """One test on one night: its statistic, p-value and an effect size."""

    name: str
    statistic: float
    p_value: float
    effect_size: float
    #: what was tested: a detector, a column, "" for the whole batch
    subject: str = ""

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


def flag_count_test(
    n_flagged: int, n_rows: int, n_calibration: int, tpr: float, subject: str = ""
) -> TestResult:
    """One-sided test that more rows were flagged than a conformal threshold allows.

    The threshold was estimated from ``n_calibration`` rows, so the true ID flag
    rate is itself random: U ~ Beta(K, m - K + 1) with K = floor((1 - tpr)(m + 1)).
    The count's null is then beta-binomial, not binomial, and the test keeps its
    level whatever the batch size (methods.md §8.1).

    Effect size: observed flag rate minus the expected rate K / (m + 1).
    """
    import math

    m = n_calibration
    k = math.floor((1.0 - tpr) * (m + 1) + 1e-9)
    null = stats.betabinom(n_rows, k, m - k + 1)
    p_value = float(null.sf(n_flagged - 1)) if n_flagged > 0 else 1.0
    expected = k / (m + 1)
    return TestResult(
        name="flag_count",
        statistic=float(n_flagged),
        p_value=min(1.0, max(p_value, 0.0)),
        effect_size=n_flagged / n_rows - expected,
        subject=subject,
    )
