"""The low side of a detector's flag count: far *fewer* rows flagged than calibrated
(docs/methods.md §3.1, "both directions").

A model that grows more confident while it is wrong (overconfidence under
shift) pushes its confidence-based scores down: the energy detector's flag
rate falls well below nominal. That is evidence of a shift too, read against
the same beta-binomial null as :func:`~drift.stats.flag_count_test`
(:func:`~drift.stats.conformal.flag_count_null`).
"""

from __future__ import annotations

from drift.stats.conformal import expected_flag_rate, flag_count_null
from drift.stats.registry import (
    DetectorSample,
    Family,
    Scope,
    Signal,
    Statistic,
    TestResult,
    register,
)


def flag_deficit_test(
    n_flagged: int, n_rows: int, n_calibration: int, tpr: float, subject: str = ""
) -> TestResult:
    """One-sided test that fewer rows were flagged than a conformal threshold gives.

    p-value: P(count <= n_flagged) under the beta-binomial null of a threshold
    fitted on ``n_calibration`` rows. Effect size: the expected rate K / (m + 1)
    minus the observed flag rate (positive when the rate fell).

    Examples
    --------
    >>> r = flag_deficit_test(n_flagged=2, n_rows=1000, n_calibration=1999, tpr=0.95)
    >>> r.p_value < 1e-10, round(r.effect_size, 3)
    (True, 0.048)
    >>> flag_deficit_test(50, 1000, 1999, 0.95).p_value > 0.4
    True
    """
    p_value = float(flag_count_null(n_rows, n_calibration, tpr).cdf(n_flagged))
    return TestResult(
        name="flag_deficit",
        statistic=float(n_flagged),
        p_value=min(1.0, max(p_value, 0.0)),
        effect_size=expected_flag_rate(tpr, n_calibration) - n_flagged / n_rows,
        subject=subject,
    )


@register(
    Statistic(
        "flag_deficit", Scope.DETECTOR, Family.ACT, min_effect=0.01, signals=Signal.DETECTOR
    )  # deficit of the flag rate: one row in a hundred
)
def flag_deficit_on_night(sample: DetectorSample) -> list[TestResult]:
    return [
        flag_deficit_test(
            sample.n_flagged,
            len(sample.scores),
            len(sample.calibration_scores),
            sample.tpr,
            sample.detector,
        )
    ]
