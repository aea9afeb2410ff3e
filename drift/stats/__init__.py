"""Per-night statistical tests. Pure numerics: no database, no files, no Airflow.

Every test returns a :class:`TestResult` with a statistic, a p-value and an
effect size. The gate (:mod:`drift.gate`) needs both: with tens of thousands of
rows a p-value alone flags shifts too small to matter (Evidently #20, #50), so
a night only counts as significant when the p-value is small *and* the effect
is large enough. Each statistic is registered once in
:mod:`drift.stats.registry` with its family, minimum effect, multiple-testing
rule and the kind of move it signals; the gate, the pipeline and the report
read those records instead of matching names.

What is here (docs/methods.md §3):

* :mod:`~drift.stats.conformal` — :func:`flag_count_test` (the night's
  OOD-flag count against the beta-binomial null of a conformal threshold
  fitted on ``m`` rows) and :func:`score_distribution_test` (one-sided
  two-sample KS of the night's scores against the calibration scores);
* :mod:`~drift.stats.deficit` — :func:`flag_deficit_test`, the low side of the
  flag count (far fewer flags than calibrated: overconfidence under shift);
* :mod:`~drift.stats.mmd` — :func:`mmd_test`, a kernel two-sample test on
  embeddings with a pooled permutation null, blockwise in torch (or the
  linear-time estimator);
* :mod:`~drift.stats.columns` — :func:`column_drift_tests`, per raw input
  column through Evidently's stattests, Benjamini–Hochberg across columns;
* :mod:`~drift.stats.class_mix` — :func:`class_mix_test`, chi-square test of
  the predicted-class mix (prior shift);
* :mod:`~drift.stats.accuracy_drop` — :func:`accuracy_drop_test`, one-sided
  test that the estimated accuracy fell more than ``max_accuracy_drop``;
* :mod:`~drift.stats.cusum` — :class:`BinomialCusum` and
  :func:`cusum_threshold`: sequential evidence on the nightly flag counts,
  with the alarm level set by simulation for a target in-control run length;
* :mod:`~drift.stats.multiple` — :func:`benjamini_hochberg`,
  :func:`bh_adjusted`, :func:`bonferroni`.
"""

# isort: off
# import order is registration order: the order the pipeline runs and stores the tests
from drift.stats.conformal import (
    expected_flag_rate,
    flag_count_test,
    flag_rate_quantile,
    score_distribution_test,
)
from drift.stats.deficit import flag_deficit_test
from drift.stats.mmd import median_bandwidth, mmd_test
from drift.stats.columns import column_drift_tests
from drift.stats.class_mix import class_mix_test
from drift.stats.accuracy_drop import accuracy_drop_test

# isort: on
from drift.stats.cusum import BinomialCusum, cusum_threshold, round_rows
from drift.stats.multiple import benjamini_hochberg, bh_adjusted, bonferroni
from drift.stats.registry import (
    BatchSample,
    Correction,
    DetectorSample,
    Family,
    Scope,
    Signal,
    Statistic,
    TestResult,
    column_statistics,
    computes,
    find,
    register,
    statistic,
    statistics,
    too_small,
)

__all__ = [
    "BatchSample",
    "BinomialCusum",
    "Correction",
    "DetectorSample",
    "Family",
    "Scope",
    "Signal",
    "Statistic",
    "TestResult",
    "accuracy_drop_test",
    "benjamini_hochberg",
    "bh_adjusted",
    "bonferroni",
    "class_mix_test",
    "column_drift_tests",
    "column_statistics",
    "computes",
    "too_small",
    "cusum_threshold",
    "expected_flag_rate",
    "find",
    "flag_count_test",
    "flag_deficit_test",
    "flag_rate_quantile",
    "median_bandwidth",
    "mmd_test",
    "register",
    "round_rows",
    "score_distribution_test",
    "statistic",
    "statistics",
]
