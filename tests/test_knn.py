"""KNN detector: exact against brute-force NumPy, approximate indexes, bank updates."""

import numpy as np
import pytest

from drift.batch import FeatureBatch
from drift.detectors import Detector, get_detector
from drift.detectors.knn import KNNDetector, gpu_available

D = 24


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-10)


def brute_force_kth(bank, queries, k, drop_nearest=False):
    """k-th smallest Euclidean distance between normalised rows, in float64."""
    b, q = unit(bank), unit(queries)
    squared = (q**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * q @ b.T
    distances = np.sort(np.sqrt(np.maximum(squared, 0)), axis=1)
    return distances[:, k] if drop_nearest else distances[:, k - 1]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(3000, D)).astype(np.float32)
    queries = (rng.normal(size=(400, D)) + 0.3).astype(np.float32)
    return bank, queries


@pytest.mark.parametrize("k", [1, 7, 50])
def test_flat_equals_brute_force(data, k):
    bank, queries = data
    det = KNNDetector(k=k, index="flat").fit(FeatureBatch(bank))
    scores = det.score(FeatureBatch(queries))
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, brute_force_kth(bank, queries, k), atol=1e-5)


def test_exclude_self_drops_the_row_itself(data):
    bank, _ = data
    det = KNNDetector(k=10, index="flat").fit(FeatureBatch(bank))
    in_bank = bank[:300]
    expected = brute_force_kth(bank, in_bank, 10, drop_nearest=True)
    np.testing.assert_allclose(det.score(FeatureBatch(in_bank), exclude_self=True), expected, atol=1e-5)
    assert (det.score(FeatureBatch(in_bank)) <= expected + 1e-6).all()


def test_chunked_search_is_identical(data):
    bank, queries = data
    whole = KNNDetector(k=5, index="flat").fit(FeatureBatch(bank)).score(FeatureBatch(queries))
    chunked = KNNDetector(k=5, index="flat", chunk_size=37).fit(FeatureBatch(bank))
    np.testing.assert_array_equal(chunked.score(FeatureBatch(queries)), whole)


def test_ivf_with_all_cells_probed_equals_flat(data):
    bank, queries = data
    flat = KNNDetector(k=20, index="flat").fit(FeatureBatch(bank)).score(FeatureBatch(queries))
    ivf = KNNDetector(k=20, index="ivf", nlist=16, nprobe=16).fit(FeatureBatch(bank))
    np.testing.assert_allclose(ivf.score(FeatureBatch(queries)), flat, atol=1e-5)


def test_hnsw_has_high_recall(data):
    bank, queries = data
    flat = KNNDetector(k=20, index="flat").fit(FeatureBatch(bank)).score(FeatureBatch(queries))
    hnsw = KNNDetector(k=20, index="hnsw").fit(FeatureBatch(bank)).score(FeatureBatch(queries))
    assert (hnsw >= flat - 1e-5).all()  # an approximate k-th neighbour is never nearer
    assert np.mean(np.abs(hnsw - flat) < 1e-5) >= 0.95


def test_add_equals_fitting_on_everything(data):
    bank, queries = data
    grown = KNNDetector(k=5, index="flat").fit(FeatureBatch(bank[:2000])).add(FeatureBatch(bank[2000:]))
    whole = KNNDetector(k=5, index="flat").fit(FeatureBatch(bank))
    assert grown.bank_size_ == len(bank)
    np.testing.assert_array_equal(grown.score(FeatureBatch(queries)), whole.score(FeatureBatch(queries)))


def test_alpha_subsamples_reproducibly(data):
    bank, queries = data
    a = KNNDetector(k=5, alpha=0.25, seed=3).fit(FeatureBatch(bank))
    b = KNNDetector(k=5, alpha=0.25, seed=3).fit(FeatureBatch(bank))
    assert a.bank_size_ == 750
    np.testing.assert_array_equal(a.score(FeatureBatch(queries)), b.score(FeatureBatch(queries)))
    assert a.add(FeatureBatch(bank[:400])).bank_size_ == 850


@pytest.mark.parametrize("index", ["flat", "ivf", "hnsw"])
def test_save_load_round_trip(tmp_path, data, index):
    bank, queries = data
    det = KNNDetector(k=5, index=index, nlist=8).fit(FeatureBatch(bank))
    loaded = Detector.load(det.save(tmp_path / index))
    assert isinstance(loaded, KNNDetector) and loaded.index_kind_ == index
    np.testing.assert_array_equal(loaded.score(FeatureBatch(queries)), det.score(FeatureBatch(queries)))


def test_thread_count_from_environment(monkeypatch, data):
    import faiss

    before = faiss.omp_get_max_threads()
    monkeypatch.setenv("DRIFT_NUM_THREADS", "1")
    try:
        KNNDetector(k=5).fit(FeatureBatch(data[0]))
        assert faiss.omp_get_max_threads() == 1
    finally:
        faiss.omp_set_num_threads(before)


def test_errors(data):
    bank, _ = data
    with pytest.raises(ValueError, match="between 1 and the bank size"):
        KNNDetector(k=5000).fit(FeatureBatch(bank))
    with pytest.raises(ValueError, match="index must be"):
        KNNDetector(index="lsh").fit(FeatureBatch(bank))
    with pytest.raises(ValueError, match="alpha"):
        KNNDetector(alpha=0.0).fit(FeatureBatch(bank))
    det = KNNDetector(k=10).fit(FeatureBatch(bank[:10]))
    with pytest.raises(ValueError, match="needs 11 neighbours"):
        det.score(FeatureBatch(bank[:2]), exclude_self=True)


@pytest.mark.skipif(gpu_available(), reason="this machine has a GPU")
def test_cuda_requested_without_gpu_is_a_clear_error(data):
    with pytest.raises(RuntimeError, match="no GPU"):
        get_detector("knn", k=5, device="cuda").fit(FeatureBatch(data[0]))


@pytest.mark.skipif(not gpu_available(), reason="needs faiss with GPU support and a CUDA device")
def test_gpu_flat_equals_cpu_flat(data):
    bank, queries = data
    cpu = KNNDetector(k=20, device="cpu").fit(FeatureBatch(bank)).score(FeatureBatch(queries))
    gpu = KNNDetector(k=20, device="cuda").fit(FeatureBatch(bank)).score(FeatureBatch(queries))
    np.testing.assert_allclose(gpu, cpu, atol=1e-5)
