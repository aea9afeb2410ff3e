"""KNN index chosen by the work (queries × bank), and approximate search as good as exact."""

import numpy as np
import pytest

from drift.batch import FeatureBatch
from drift.detectors import Detector
from drift.detectors.knn import KNNDetector
from drift.metrics import auroc

D, N_CLUSTERS = 32, 50


def clustered(rng, centres, n, spread=0.5):
    """Rows around cluster centres: feature banks are clustered, not isotropic."""
    labels = rng.integers(0, len(centres), n)
    return (centres[labels] + spread * rng.normal(size=(n, centres.shape[1]))).astype(np.float32)


@pytest.fixture(scope="module")
def world():
    """A 10k-row bank; held-out ID rows from its clusters, OOD rows from unseen clusters
    near them. Clusters overlap (centre norm ~3, spread ~2.8), so a row's 50 neighbours
    straddle IVF cells and a partial search really is approximate."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(N_CLUSTERS, D)) * 3 / np.sqrt(D)
    ood_centres = centres[:16] + rng.normal(size=(16, D)) * 3 / np.sqrt(D)
    bank = clustered(rng, centres, 10_000)
    held_out_id = clustered(rng, centres, 2_000)
    held_out_ood = clustered(rng, ood_centres, 2_000)
    return bank, held_out_id, held_out_ood


@pytest.mark.parametrize(
    ("bank_rows", "expected_queries", "kind"),
    [
        (10_000, 1_000, "flat"),  # a small night against the bank: exact search is cheap
        (10_000, 1_000_000, "ivf"),  # the same bank, a big night: exact search would dominate
        (1_000, 1_000_000, "flat"),  # a big night against a tiny bank: still cheap
        (10_000, 200_000, "flat"),  # exactly at auto_work (2e9 pairs): still exact
    ],
)
def test_auto_chooses_the_index_by_the_work(world, bank_rows, expected_queries, kind):
    bank = world[0][:bank_rows]
    det = KNNDetector(k=10, expected_queries=expected_queries).fit(FeatureBatch(bank))
    assert det.index_kind_ == kind


def test_expected_queries_must_be_positive(world):
    with pytest.raises(ValueError, match="expected_queries must be >= 1, got 0"):
        KNNDetector(expected_queries=0).fit(FeatureBatch(world[0]))


def test_exact_search_is_one_setting_away(world):
    det = KNNDetector(k=10, index="flat", expected_queries=10**9).fit(FeatureBatch(world[0]))
    assert det.index_kind_ == "flat"


def test_auto_approximate_auroc_within_0005_of_exact(world):
    bank, held_out_id, held_out_ood = world
    exact = KNNDetector(k=50, index="flat").fit(FeatureBatch(bank))
    auto = KNNDetector(k=50, expected_queries=1_000_000).fit(FeatureBatch(bank))
    assert auto.index_kind_ == "ivf"
    exact_id, exact_ood = exact.score(FeatureBatch(held_out_id)), exact.score(FeatureBatch(held_out_ood))
    auto_id, auto_ood = auto.score(FeatureBatch(held_out_id)), auto.score(FeatureBatch(held_out_ood))
    # a search that visits only some cells: approximate, never nearer than the exact k-th neighbour
    assert auto.index_.nprobe < auto.index_.nlist
    assert (auto_ood >= exact_ood - 1e-5).all() and (auto_ood > exact_ood + 1e-5).any()
    exact_auroc = auroc(exact_id, exact_ood)
    assert 0.7 < exact_auroc < 0.99  # a task where the two searches could disagree
    assert abs(auroc(auto_id, auto_ood) - exact_auroc) <= 0.005


def test_auto_choice_is_saved_and_scores_repeat(tmp_path, world):
    bank, held_out_id, _ = world
    det = KNNDetector(k=10, expected_queries=1_000_000).fit(FeatureBatch(bank))
    loaded = Detector.load(det.save(tmp_path / "knn"))
    assert loaded.index_kind_ == "ivf"
    assert not list((tmp_path / "knn").glob("*.pkl"))
    first = loaded.score(FeatureBatch(held_out_id))
    np.testing.assert_array_equal(first, det.score(FeatureBatch(held_out_id)))
    np.testing.assert_array_equal(first, loaded.score(FeatureBatch(held_out_id)))
