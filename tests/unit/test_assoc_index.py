"""FAISS search: exact for small sets, approximate indexes above the threshold, blocks, PCA."""

from __future__ import annotations

import numpy as np
import pytest

from mct.associate.config import IndexConfig
from mct.associate.index import blocked_knn, exact_knn, fit_pca, normalise, search_knn


def clustered(n_ids: int, per_id: int, dim: int, noise: float, seed: int = 0) -> np.ndarray:
    """Re-ID-like vectors: each identity a centre, each sample centre + noise, unit length."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim))
    x = np.repeat(centres, per_id, axis=0) + noise * rng.normal(size=(n_ids * per_id, dim))
    return normalise(x.astype(np.float32))


def test_exact_knn_finds_self_first_and_pads_small_bases():
    x = normalise(np.eye(3, 4, dtype=np.float32) + 0.1)
    sims, idx = exact_knn(x, x, k=5)
    assert idx[:, 0].tolist() == [0, 1, 2]  # each vector is its own nearest neighbour
    assert (idx[:, 3:] == -1).all() and np.isinf(sims[:, 3:]).all()  # only 3 base vectors for k = 5
    assert np.all(np.diff(sims[:, :3], axis=1) <= 1e-6)  # descending


def test_exact_knn_empty_inputs():
    x = normalise(np.ones((2, 4), np.float32))
    sims, idx = exact_knn(np.zeros((0, 4), np.float32), x, 3)
    assert sims.shape == (0, 3) and idx.shape == (0, 3)
    sims, idx = exact_knn(x, np.zeros((0, 4), np.float32), 3)
    assert (idx == -1).all()


@pytest.mark.parametrize("kind", ["ivf", "ivfpq", "hnsw"])
def test_approximate_indexes_recover_most_exact_neighbours(kind):
    x = clustered(n_ids=100, per_id=20, dim=32, noise=0.3)
    cfg = IndexConfig(kind=kind, ivf_nprobe=8, pq_m=8, hnsw_ef_search=64)
    _, exact = exact_knn(x[:200], x, 10)
    _, approx = search_knn(x[:200], x, 10, cfg)
    recall = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(exact, approx)])
    assert recall > (0.6 if kind == "ivfpq" else 0.9)


def test_auto_index_is_exact_below_the_threshold():
    x = clustered(n_ids=20, per_id=10, dim=16, noise=0.5)
    cfg = IndexConfig(kind="auto", max_exact_size=1000)
    assert np.array_equal(search_knn(x, x, 5, cfg)[1], exact_knn(x, x, 5)[1])


def test_ivfpq_needs_pq_m_to_divide_the_dim():
    x = clustered(n_ids=50, per_id=20, dim=30, noise=0.3)
    with pytest.raises(ValueError, match="pq_m: 8 does not divide the feature dim 30"):
        search_knn(x, x, 5, IndexConfig(kind="ivfpq", pq_m=8))


def test_blocked_knn_searches_only_each_blocks_base():
    x = clustered(n_ids=4, per_id=5, dim=8, noise=0.1)  # rows 0-4 id 0, 5-9 id 1, ...
    blocks = [(np.arange(0, 5), np.arange(10, 20)), (np.arange(5, 10), np.arange(0, 10))]
    sims, idx = blocked_knn(x, blocks, 3, IndexConfig())
    assert set(idx[:5].ravel().tolist()) <= set(range(10, 20))  # block 1 never sees rows 0-9
    assert set(idx[5:10].ravel().tolist()) <= set(range(5, 10))  # id 1 finds id 1 within rows 0-9
    assert (idx[10:] == -1).all()  # rows in no block get no neighbours


def test_blocked_knn_on_threads_equals_one_thread():
    rng = np.random.default_rng(3)
    x = normalise(rng.normal(size=(600, 16)).astype(np.float32))
    rows = rng.permutation(600)
    # 40 blocks of 15 queries against bases of 0-200 rows (empty bases and queries included),
    # handed over lazily like the constraint plan
    plan = [(rows[15 * b : 15 * (b + 1)], rng.choice(600, size=int(rng.integers(0, 200)), replace=False)) for b in range(40)]
    plan.append((np.zeros(0, np.int64), np.arange(10)))
    one = blocked_knn(x, iter(plan), 4, IndexConfig(), workers=1)
    many = blocked_knn(x, iter(plan), 4, IndexConfig(), workers=3)
    assert np.array_equal(one[1], many[1])
    assert np.array_equal(one[0], many[0])
    for q, base in plan:  # each query's neighbours come from its own block's base, as many as it holds
        found = many[1][q]
        assert set(found[found >= 0].tolist()) <= set(base.tolist())
        assert ((found >= 0).sum(axis=1) == min(4, len(base))).all()


def test_pca_keeps_the_subspace_the_data_lives_in():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(64, 4)))[0]  # data in a 4-d subspace of 64-d
    x = normalise((rng.normal(size=(500, 4)) @ basis.T).astype(np.float32))
    pca = fit_pca(x, 4, sample=300)
    y = pca.apply(x)
    assert y.shape == (500, 4)
    assert np.allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    # neighbours in 4 dims match those in 64 dims (the mean shift changes little here)
    assert np.mean(exact_knn(x, x, 5)[1][:, 1] == exact_knn(y, y, 5)[1][:, 1]) > 0.8
    with pytest.raises(ValueError, match="pca_dim"):
        fit_pca(x, 65, sample=100)
