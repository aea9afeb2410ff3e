"""Deep nearest-neighbour OOD score (Sun, Ming, Zhu, Li, ICML 2022) on FAISS."""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Self

import numpy as np

from drift.batch import FeatureBatch
from drift.detectors import register
from drift.detectors.base import Detector, l2_normalise

#: Peak working memory of one search chunk (results + normalised queries), bytes.
CHUNK_MEMORY_BYTES = 256 * 2**20
INDEX_FILE = "index.faiss"


def _faiss() -> ModuleType:
    """FAISS with its thread count taken from ``DRIFT_NUM_THREADS`` when set."""
    import faiss

    threads = os.environ.get("DRIFT_NUM_THREADS")
    if threads:
        faiss.omp_set_num_threads(int(threads))
    return faiss


def gpu_available() -> bool:
    """Whether this FAISS build has GPU support and sees at least one CUDA device."""
    faiss = _faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


@register
class KNNDetector(Detector):
    """Distance from a row's L2-normalised features to its k-th nearest reference row.

    Higher = more OOD. The score is the Euclidean distance
    ``sqrt(FAISS squared L2)`` to the k-th neighbour in the bank of normalised
    reference features; the official code and OpenOOD use minus the *squared*
    distance, a monotone transform with the same AUROC / FPR95 and threshold
    order (only threshold values differ).

    Parameters
    ----------
    k
        which neighbour's distance is the score (50 as in the paper for CIFAR-10).
    index
        ``"flat"`` exact search; ``"ivf"`` inverted lists (approximate, for big
        work); ``"hnsw"`` graph search (approximate, CPU only); ``"auto"`` picks
        by the work at fit: flat while ``expected_queries × bank rows`` is at most
        ``auto_work``, IVF above. The choice is fitted state (saved with the
        index), so every score of a fitted detector, calibration included, uses
        the same search.
    nlist
        IVF cells; None = ``4·sqrt(bank rows)`` (capped so each cell gets ≥ 39
        training rows, FAISS's minimum for a sound k-means).
    nprobe
        IVF cells visited per query (capped at ``nlist``); ``nprobe = nlist`` is exact.
        The default keeps AUROC within 0.005 of exact search on held-out OOD rows
        (``benchmarks/scale_night.py``, ``tests/test_knn_scale.py``).
    hnsw_m
        HNSW graph degree.
    ef_search
        HNSW search breadth (raised to ``k + 1`` when smaller).
    alpha
        fraction of reference rows kept in the bank (seeded random subset), as in
        the paper's cheap α < 1 variant; also applied to rows given to :meth:`add`.
    seed
        seed of the α subsampling and of IVF k-means.
    expected_queries
        rows expected to be scored against this bank per fit period, e.g. a night's
        rows (a monitor scores in shards, but the whole night is the work):
        declare it in the monitor's detector params.
    auto_work
        query × bank row pairs above which ``index="auto"`` uses IVF: 2·10⁹ pairs
        is a few seconds of exact search on 2 idle cores (1.5–3 ns a pair at
        d = 64–128, ``benchmarks/knn_speed.py``); below it IVF's k-means costs
        about what it saves.
    chunk_size
        query rows per search call; None = as many as fit in 256 MB of results and
        normalised queries, so memory beyond the bank is bounded whatever the batch size.
    device
        ``"cpu"``, ``"cuda"`` (FAISS GPU index; error when unavailable) or
        ``"auto"`` (GPU when FAISS has GPU support and sees a device, else CPU).
        HNSW always runs on CPU (FAISS has no GPU HNSW).

    Notes
    -----
    FAISS's thread count is read from the environment variable
    ``DRIFT_NUM_THREADS`` when set, else FAISS's default (all cores).

    Examples
    --------
    >>> import numpy as np
    >>> from drift.batch import FeatureBatch
    >>> rng = np.random.default_rng(0)
    >>> det = KNNDetector(k=5).fit(FeatureBatch(rng.normal(size=(200, 8))))
    >>> det.score(FeatureBatch(rng.normal(size=(3, 8)))).shape
    (3,)
    >>> det.add(FeatureBatch(rng.normal(size=(50, 8)))).bank_size_
    250

    References
    ----------
    Sun et al., "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022.
    """

    name = "knn"

    def __init__(
        self,
        k: int = 50,
        index: str = "auto",
        nlist: int | None = None,
        nprobe: int = 16,
        hnsw_m: int = 32,
        ef_search: int = 128,
        alpha: float = 1.0,
        seed: int = 0,
        expected_queries: int = 100_000,
        auto_work: float = 2e9,
        chunk_size: int | None = None,
        device: str = "auto",
    ) -> None:
        self.k = k
        self.index = index
        self.nlist = nlist
        self.nprobe = nprobe
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.alpha = alpha
        self.seed = seed
        self.expected_queries = expected_queries
        self.auto_work = auto_work
        self.chunk_size = chunk_size
        self.device = device

    # -- fitting ----------------------------------------------------------------
    def fit(self, reference: FeatureBatch) -> Self:
        self._check_params()
        self.n_seen_ = 0
        bank = self._subsample(reference.features)
        if not 1 <= self.k <= len(bank):
            raise ValueError(f"knn: k={self.k} must be between 1 and the bank size {len(bank)}")
        self.index_kind_ = self._choose_index_kind(len(bank))
        self.index_ = self._to_device(self._build_index(bank))
        self.index_.add(bank)
        self._set_width(bank)
        return self

    def add(self, batch: FeatureBatch) -> Self:
        """Append vetted in-distribution rows to the bank (α-subsampled like ``fit``).

        IVF keeps the cells it was trained on; recalibrate thresholds after adding.
        """
        self._check_fitted()
        self.index_.add(self._subsample(self._check_width(batch.features)))
        return self

    @property
    def bank_size_(self) -> int:
        return int(self.index_.ntotal)

    def _check_params(self) -> None:
        if self.index not in ("auto", "flat", "ivf", "hnsw"):
            raise ValueError(f"knn: index must be auto, flat, ivf or hnsw, got {self.index!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"knn: device must be auto, cpu or cuda, got {self.device!r}")
        if self.device == "cuda" and not gpu_available():
            raise RuntimeError("knn: device='cuda' but FAISS has no GPU support or sees no GPU")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"knn: alpha must be in (0, 1], got {self.alpha}")
        if not self.expected_queries >= 1:
            raise ValueError(f"knn: expected_queries must be >= 1, got {self.expected_queries}")

    def _subsample(self, features: np.ndarray) -> np.ndarray:
        """The α fraction of ``features`` (normalised) picked by a seed that also
        depends on how many rows were offered before, so every call is reproducible."""
        rows = l2_normalise(features)
        offered_before, self.n_seen_ = self.n_seen_, self.n_seen_ + len(rows)
        if self.alpha == 1.0:
            return rows
        rng = np.random.default_rng([self.seed, offered_before])
        keep = max(1, round(self.alpha * len(rows)))
        return rows[np.sort(rng.choice(len(rows), size=keep, replace=False))]

    def _choose_index_kind(self, bank_rows: int) -> str:
        if self.index != "auto":
            return self.index
        return "ivf" if self.expected_queries * bank_rows > self.auto_work else "flat"

    def _build_index(self, bank: np.ndarray) -> Any:  # a faiss.Index (faiss ships no stubs)
        faiss = _faiss()
        d = bank.shape[1]
        if self.index_kind_ == "flat":
            return faiss.IndexFlatL2(d)
        if self.index_kind_ == "hnsw":
            return faiss.IndexHNSWFlat(d, self.hnsw_m)
        nlist = self.nlist or max(1, min(round(4 * math.sqrt(len(bank))), len(bank) // 39))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist, faiss.METRIC_L2)
        ivf.cp.seed = self.seed
        ivf.train(bank)
        return ivf

    def _use_gpu(self) -> bool:
        if self.index_kind_ == "hnsw":
            return False
        return self.device == "cuda" or (self.device == "auto" and gpu_available())

    def _to_device(self, index: Any) -> Any:
        if not self._use_gpu():
            return index
        faiss = _faiss()
        self._gpu_resources = faiss.StandardGpuResources()  # must outlive the GPU index
        return faiss.index_cpu_to_gpu(self._gpu_resources, 0, index)

    # -- scoring ----------------------------------------------------------------
    def score(self, batch: FeatureBatch, exclude_self: bool = False) -> np.ndarray:
        """Distance to the k-th neighbour in the bank.

        Parameters
        ----------
        exclude_self
            the rows are themselves in the bank: search ``k + 1`` neighbours and
            drop the nearest (the row's own copy), as the paper does for in-bank points.
        """
        self._check_fitted()
        n_neighbours = self.k + 1 if exclude_self else self.k
        if n_neighbours > self.bank_size_:
            raise ValueError(f"knn: needs {n_neighbours} neighbours, bank has {self.bank_size_}")
        self._set_search_breadth(n_neighbours)
        features = self._check_width(batch.features)
        chunk = self.chunk_size or max(
            1, CHUNK_MEMORY_BYTES // (n_neighbours * 12 + features.shape[1] * 4)
        )
        scores = np.empty(len(features), dtype=np.float64)
        for start in range(0, len(features), chunk):
            squared, _ = self.index_.search(
                l2_normalise(features[start : start + chunk]), n_neighbours
            )
            # FAISS returns squared L2; clip rounding below zero before the square root.
            scores[start : start + chunk] = np.sqrt(np.maximum(squared[:, -1].astype(np.float64), 0.0))
        return scores

    def _set_search_breadth(self, n_neighbours: int) -> None:
        if self.index_kind_ == "ivf":
            self.index_.nprobe = min(self.nprobe, self.index_.nlist)
        elif self.index_kind_ == "hnsw":
            self.index_.hnsw.efSearch = max(self.ef_search, n_neighbours + 1)

    # -- persistence ------------------------------------------------------------
    def _fitted_state(self, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        faiss = _faiss()
        index = self.index_
        if self._use_gpu():
            index = faiss.index_gpu_to_cpu(index)
        faiss.write_index(index, str(folder / INDEX_FILE))
        return {}, {"index_kind_": self.index_kind_, "n_seen_": self.n_seen_}

    def _restore_state(self, arrays: dict, scalars: dict, folder: Path) -> None:
        self.index_kind_ = scalars["index_kind_"]
        self.n_seen_ = scalars["n_seen_"]
        self.index_ = self._to_device(_faiss().read_index(str(folder / INDEX_FILE)))
