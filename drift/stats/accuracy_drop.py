"""One-sided test that the estimated accuracy fell more than allowed (docs/methods.md §3.7)."""

from __future__ import annotations

from drift.stats.registry import (
    BatchSample,
    Family,
    Scope,
    Signal,
    Statistic,
    TestResult,
    register,
)

#: the subject of the night's accuracy_drop row (a batch-level test)
SUBJECT = "estimated_accuracy"


def accuracy_drop_test(
    estimate: float, se: float, reference: float, max_drop: float, subject: str = SUBJECT
) -> TestResult:
    """Is the accuracy below ``reference - max_drop``? One-sided z-test on the estimate.

    H0: accuracy >= reference - max_drop, with ``se`` the estimate's standard error
    (its band's: the night's binomial spread plus the calibration rows' sampling
    error); ``p = Phi((estimate - (reference - max_drop)) / se)``. Statistic: the z
    score; effect size: the drop ``reference - estimate``. A small p-value already
    means a drop beyond ``max_drop``, so the statistic needs no minimum effect.

    Examples
    --------
    >>> quiet = accuracy_drop_test(0.94, 0.01, 0.95, 0.05)
    >>> quiet.p_value > 0.99
    True
    >>> dropped = accuracy_drop_test(0.80, 0.01, 0.95, 0.05)
    >>> dropped.p_value < 1e-10, round(dropped.effect_size, 2)
    (True, 0.15)
    """
    from scipy import stats

    z = (estimate - (reference - max_drop)) / max(se, 1e-12)
    return TestResult("accuracy_drop", float(z), float(stats.norm.cdf(z)), reference - estimate, subject)


@register(
    Statistic(
        "accuracy_drop", Scope.BATCH, Family.ACT, min_effect=0.0, signals=Signal.INPUTS
    )  # the model is less sure of the night's rows: its inputs moved where it matters
)
def accuracy_drop_on_night(sample: BatchSample) -> list[TestResult]:
    """The CBPE estimate against the reference accuracy, when the version has estimators."""
    estimate = sample.estimated_accuracy
    if estimate is None or sample.reference_accuracy is None:
        return []
    return [
        accuracy_drop_test(
            estimate.value, estimate.se, sample.reference_accuracy, sample.max_accuracy_drop
        )
    ]
