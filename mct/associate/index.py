"""k-nearest-neighbour search over tracklet features: the only module that imports faiss.

Three layers, each usable alone:

* :func:`search_knn` — the k most similar base vectors (inner product = cosine for
  L2-normalised features) of each query. Exact (``IndexFlatIP`` through ``faiss.knn``) while
  the base has at most ``max_exact_size`` vectors, otherwise the approximate index the config
  names (IVF-Flat, IVF-PQ or HNSW).
* :func:`blocked_knn` — many small searches: each block of queries is searched only
  against its own base rows. :func:`mct.associate.constraints.search_blocks` plans the
  blocks so that a tracklet meets only the tracklets it could be linked with (same time
  slice within the largest travel time, cameras adjacent in the transition graph); each
  search is then small enough to be exact.
* :func:`fit_pca` / :class:`Pca` — an optional compact feature (PCA to 64-128 dims) that cuts
  the cost of every search by D / d.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from tqdm import tqdm

from mct.associate.config import IndexConfig

# faiss's loader tries the AVX512 and AVX2 builds before the generic one and logs each miss
# at INFO (ModuleNotFoundError ... swigfaiss_avx512): expected fallbacks, quiet for users
_faiss_loader = logging.getLogger("faiss.loader")
_loader_level = _faiss_loader.level
_faiss_loader.setLevel(logging.WARNING)
try:
    import faiss
finally:
    _faiss_loader.setLevel(_loader_level)

#: blocks with fewer query x base pairs than this search on one thread.
SMALL_BLOCK = 2_000_000

__all__ = ["Pca", "fit_pca", "normalise", "search_knn", "blocked_knn", "exact_knn"]

log = logging.getLogger(__name__)


def normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation; ``(N, D) float32`` in, new ``(N, D) float32`` out (zero rows stay 0)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


# ---------------------------------------------------------------------------- PCA
@dataclass(frozen=True, eq=False)
class Pca:
    """A fitted PCA: ``mean (D,) float32``, ``components (D, d) float32``."""

    mean: np.ndarray
    components: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.components.shape[1])

    def apply(self, x: np.ndarray, batch: int = 65_536) -> np.ndarray:
        """Project ``(N, D)`` to ``(N, d) float32`` and L2-normalise each row."""
        out = np.empty((len(x), self.dim), np.float32)
        for lo in range(0, len(x), batch):
            out[lo : lo + batch] = normalise((x[lo : lo + batch] - self.mean) @ self.components)
        return out


def fit_pca(x: np.ndarray, dim: int, sample: int, seed: int = 0) -> Pca:
    """Fit a PCA to ``dim`` dims on at most ``sample`` rows of ``x`` ``(N, D) float32``."""
    n, d = x.shape
    if not 0 < dim <= d:
        raise ValueError(f"association.index.pca_dim: must be in 1..{d} (the feature dim), got {dim}")
    rows = np.random.default_rng(seed).choice(n, size=min(n, sample), replace=False) if n > sample else np.arange(n)
    xs = np.ascontiguousarray(x[np.sort(rows)], dtype=np.float32)
    pca = faiss.PCAMatrix(d, dim)
    pca.train(xs)
    mean = faiss.vector_to_array(pca.mean).astype(np.float32)
    # faiss stores the projection as a (dim, d) row-major matrix: y = A (x - mean)
    a = faiss.vector_to_array(pca.A).reshape(-1, d)[:dim].astype(np.float32)
    return Pca(mean=mean, components=np.ascontiguousarray(a.T))


# ---------------------------------------------------------------------------- one search
def exact_knn(xq: np.ndarray, xb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product kNN: ``(Q, k) float32`` similarities, ``(Q, k) int64`` base rows (-1 = none)."""
    k_eff = min(k, len(xb))
    if len(xq) == 0 or k_eff == 0:
        return _pad(np.zeros((len(xq), 0), np.float32), np.zeros((len(xq), 0), np.int64), k)
    sims, idx = faiss.knn(np.ascontiguousarray(xq, np.float32), np.ascontiguousarray(xb, np.float32), k_eff, faiss.METRIC_INNER_PRODUCT)
    return _pad(sims, idx, k)


def _pad(sims: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if sims.shape[1] == k:
        return sims.astype(np.float32, copy=False), idx.astype(np.int64, copy=False)
    q = len(sims)
    s = np.full((q, k), -np.inf, np.float32)
    i = np.full((q, k), -1, np.int64)
    s[:, : sims.shape[1]] = sims
    i[:, : idx.shape[1]] = idx
    return s, i


def _index_kind(n: int, cfg: IndexConfig) -> str:
    if cfg.kind == "auto":
        return "flat" if n <= cfg.max_exact_size else "ivf"
    return cfg.kind


def _build_approximate(xb: np.ndarray, kind: str, cfg: IndexConfig, seed: int = 0) -> "faiss.Index":
    n, d = xb.shape
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.hnsw_ef_construction
        index.hnsw.efSearch = cfg.hnsw_ef_search
        index.add(xb)
        return index
    nlist = cfg.ivf_nlist or int(4 * math.sqrt(n))
    nlist = max(1, min(nlist, n // 39))  # faiss wants >= 39 training points per centroid
    quantizer = faiss.IndexFlatIP(d)
    if kind == "ivfpq":
        if d % cfg.pq_m:
            raise ValueError(f"association.index.pq_m: {cfg.pq_m} does not divide the feature dim {d}")
        index = faiss.IndexIVFPQ(quantizer, d, nlist, cfg.pq_m, 8, faiss.METRIC_INNER_PRODUCT)
    elif kind == "ivf":
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        raise ValueError(f"association.index.kind: unknown index type {kind!r}")
    train_n = min(n, 256 * nlist)
    train = xb if train_n == n else xb[np.random.default_rng(seed).choice(n, train_n, replace=False)]
    index.cp.seed = seed
    index.train(np.ascontiguousarray(train))
    index.add(xb)
    index.nprobe = min(cfg.ivf_nprobe, nlist)
    return index


def search_knn(xq: np.ndarray, xb: np.ndarray, k: int, cfg: IndexConfig) -> tuple[np.ndarray, np.ndarray]:
    """kNN of ``xq (Q, D)`` in ``xb (N, D)`` (float32, L2-normalised) by inner product.

    Returns ``(Q, k) float32`` similarities (descending; -inf pads) and ``(Q, k) int64``
    rows of ``xb`` (-1 pads). Exact for small bases, the configured index above
    ``cfg.max_exact_size``.
    """
    kind = _index_kind(len(xb), cfg)
    if kind == "flat" or len(xb) <= k:
        return exact_knn(xq, xb, k)
    log.debug("building %s index over %d vectors", kind, len(xb))
    index = _build_approximate(np.ascontiguousarray(xb, np.float32), kind, cfg)
    out_s = np.empty((len(xq), k), np.float32)
    out_i = np.empty((len(xq), k), np.int64)
    for lo in range(0, len(xq), cfg.batch_size):
        s, i = index.search(np.ascontiguousarray(xq[lo : lo + cfg.batch_size], np.float32), k)
        out_s[lo : lo + len(s)] = np.where(i < 0, -np.inf, s)
        out_i[lo : lo + len(s)] = i
    return out_s, out_i


# ---------------------------------------------------------------------------- blocked search
def blocked_knn(
    features: np.ndarray,
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
    k: int,
    cfg: IndexConfig,
    n_blocks: int | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """kNN of query rows among base rows, block by block.

    Args:
        features: ``(N, D) float32`` L2-normalised features.
        blocks: ``(query_rows, base_rows)`` pairs of ``int64`` row arrays; every row is a
            query of at most one block (rows of no block get no neighbours). The search in a
            block is exact while its base has at most ``cfg.max_exact_size`` rows.
        n_blocks: for the progress bar.
        workers: blocks searched at once, each on its own thread (default: the CPUs this
            process may use). The blocks are iterated in order, at most ``2 * workers``
            ahead of the searches (so a lazy plan holds few bases at once).

    Returns:
        ``(N, k) float32`` similarities (descending, -inf pads) and ``(N, k) int64`` rows of
        ``features`` (-1 pads). The same for any ``workers``: each block writes its own rows.
    """
    from mct.associate.score import compute_threads

    n = len(features)
    out_s = np.full((n, k), -np.inf, np.float32)
    out_i = np.full((n, k), -1, np.int64)
    threads = faiss.omp_get_max_threads()
    workers = max(1, compute_threads() if workers is None else workers)
    n_pairs = n_queries = 0  # query x base pairs, queries searched

    def one(q_rows: np.ndarray, b_rows: np.ndarray) -> None:
        if len(q_rows) == 0 or len(b_rows) == 0:
            return
        # OpenMP start-up costs more than a small search itself (measured: 4.7 ms vs 0.4 ms
        # for 5 x 300 x 512 on 2 busy cores): small blocks run on one thread. The setting is
        # the calling thread's own (OpenMP keeps it per thread), restored after the search.
        faiss.omp_set_num_threads(1 if len(q_rows) * len(b_rows) < SMALL_BLOCK else threads)
        try:
            # the gathers and faiss release the GIL: blocks on several threads use several cores
            s, i = search_knn(features[q_rows], features[b_rows], k, cfg)
        finally:
            faiss.omp_set_num_threads(threads)
        out_s[q_rows] = s
        out_i[q_rows] = np.where(i >= 0, b_rows[np.maximum(i, 0)], -1)

    with tqdm(total=n_blocks, desc="kNN blocks", unit="block", leave=False, disable=not progress) as bar, \
            ThreadPoolExecutor(workers) as pool:
        pending: deque[Future[None]] = deque()
        for q_rows, b_rows in blocks:
            if len(q_rows) and len(b_rows):
                n_pairs += len(q_rows) * len(b_rows)
                n_queries += len(q_rows)
            pending.append(pool.submit(one, q_rows, b_rows))
            while len(pending) > 2 * workers:
                pending.popleft().result()
                bar.update()
        while pending:
            pending.popleft().result()
            bar.update()
    log.debug("blocked kNN: %d queries, mean base %.0f rows", n_queries, n_pairs / max(n_queries, 1))
    return out_s, out_i
