"""Conformal calibration: p-values are uniform and the flag rate holds under no shift."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from drift.calibration import ConformalCalibrator


def test_conformal_p_values_are_uniform_under_no_shift():
    rng = np.random.default_rng(0)
    # fresh calibration set per draw block, so the test checks the marginal guarantee
    p_values = np.concatenate(
        [ConformalCalibrator().fit(rng.standard_normal(2000)).p_values(rng.standard_normal(100)) for _ in range(200)]
    )
    assert len(p_values) == 20_000
    # p-values are discrete on a 1/(m+1) grid; jitter within the cell to compare to U(0, 1)
    jittered = p_values - rng.uniform(0, 1 / 2001, size=p_values.shape)
    assert stats.kstest(jittered, "uniform").pvalue > 0.01


def test_flag_rate_at_tpr_95_is_five_percent():
    rng = np.random.default_rng(1)
    calibrator = ConformalCalibrator(tpr=0.95).fit(rng.gamma(2.0, size=5000))
    rate = calibrator.flags(rng.gamma(2.0, size=20_000)).mean()
    assert 0.04 <= rate <= 0.06


def test_threshold_matches_flags_and_shift_raises_flag_rate():
    rng = np.random.default_rng(2)
    calibrator = ConformalCalibrator(tpr=0.9).fit(rng.standard_normal(999))
    scores = rng.standard_normal(1000) + 1.0
    np.testing.assert_array_equal(calibrator.flags(scores), scores > calibrator.threshold_)
    assert calibrator.flags(scores).mean() > 0.3


def test_round_trip(tmp_path):
    calibrator = ConformalCalibrator(tpr=0.99).fit(np.arange(100.0))
    calibrator.save(tmp_path)
    loaded = ConformalCalibrator.load(tmp_path)
    assert loaded.tpr == 0.99 and loaded.threshold_ == calibrator.threshold_


@pytest.mark.parametrize("bad", [[], [1.0, np.nan]])
def test_bad_calibration_scores_are_refused(bad):
    with pytest.raises(ValueError, match="finite"):
        ConformalCalibrator().fit(np.array(bad))
