"""Candidate pairs, mutual-best and margin selection, and constrained average-linkage clustering."""

from __future__ import annotations

import numpy as np

from mct.associate.clustering import best_per_camera, candidate_pairs, conflicts_within, constrained_agglomerative, mutual_best, second_best_margin
from mct.associate.links import CameraLinks
from mct.associate.score import AppearanceModel, ColocationModel, DirectionModel, LinkTable, PairModel, pair_log_lr
from mct.associate.table import TrackletTable

KEYS = [("S01", f"c00{i}") for i in range(1, 6)]


def angles(*degrees: float) -> np.ndarray:
    r = np.radians(degrees)
    return np.stack([np.cos(r), np.sin(r)], axis=1).astype(np.float32)


def table(cams, starts, feats) -> TrackletTable:
    starts = np.asarray(starts, float)
    return TrackletTable.from_arrays(KEYS, cams, np.arange(len(cams)), starts, starts + 5, feats)


def model(t: TrackletTable, prior: float = 0.5) -> PairModel:
    """Appearance only: different vehicles z = atanh(cosine) ~ N(0.3, 0.3), one vehicle
    N(1.3, 0.3): the ratio is linear in z, (2 z - 1.6) / 0.18, even odds at cosine 0.66."""
    links = LinkTable.from_arrays(CameraLinks(links={}, camera_keys=t.camera_keys).compile(t))
    return PairModel(AppearanceModel(0.3, 0.3, 1.3, 0.3, prior, "labels"), DirectionModel(), ColocationModel(), links,
                     np.array([True, False, False, False]))


def cluster(t: TrackletTable, a, b, max_cluster_size: int = 100, prior: float = 0.5) -> list[int]:
    m = model(t, prior)
    a, b = np.array(a, np.int64), np.array(b, np.int64)
    return constrained_agglomerative(t, m, a, b, pair_log_lr(t, m, a, b), 0.0, max_cluster_size).tolist()


def test_average_linkage_stops_chaining():
    # A at 0 deg, B at 35, C at 70: A~B and B~C are cosine 0.82 (log-LR +3.9), A~C only 0.34
    # (-4.9): {A, B} + C averages the two, below even odds
    t = table([0, 1, 2], [0, 100, 200], angles(0, 35, 70))
    m = model(t)
    llr = pair_log_lr(t, m, np.array([0, 1, 0]), np.array([1, 2, 2]))
    assert llr[0] > 0 and llr[1] > 0 and llr[2] < 0 and (llr[1] + llr[2]) / 2 < 0
    assert cluster(t, [0, 1], [1, 2]) == [0, 0, 1]
    # with a closer C (40 deg: A~C at 0.77, +2.3) the average holds: one vehicle
    t2 = table([0, 1, 2], [0, 100, 200], angles(0, 20, 40))
    assert cluster(t2, [0, 1], [1, 2]) == [0, 0, 0]


def test_the_cut_is_on_the_likelihood_ratio_whatever_the_candidates_prior():
    # cosine 0.72 is above even odds for the likelihoods alone (+1.2). A prior of 1 : 9 (10 %
    # of candidates are one vehicle, as with more neighbours asked) must not undo the merge:
    # the share of true pairs among candidates is a property of the search, not of the pair.
    t = table([0, 1], [0, 100], angles(0, 44))
    assert cluster(t, [0], [1], prior=0.5) == [0, 0]
    assert cluster(t, [0], [1], prior=0.1) == [0, 0]
    # and the evidence still decides: 75 degrees apart (cosine 0.26) stays two vehicles
    t2 = table([0, 1], [0, 100], angles(0, 75))
    assert cluster(t2, [0], [1], prior=0.5) == [0, 1]


def test_conflict_between_clusters_blocks_the_merge():
    # rows 0 and 2 are in c001 at overlapping times; row 1 (c002) resembles both
    t = table([0, 1, 0], [0, 50, 2], angles(0, 1, 2))
    labels = cluster(t, [0, 1], [1, 2])
    assert labels[0] == labels[1] and labels[2] != labels[0]
    assert conflicts_within(t, model(t), np.array(labels)) == 0
    assert conflicts_within(t, model(t), np.array([0, 0, 0])) == 1


def test_max_cluster_size():
    t = table([0, 1, 2, 3], [0, 100, 200, 300], angles(0, 0, 0, 0))
    assert cluster(t, [0, 2, 1], [1, 3, 2], max_cluster_size=2) == [0, 0, 1, 1]


def test_labels_numbered_by_first_row_and_empty_input():
    t = table([0, 1, 2], [0, 100, 200], angles(90, 0, 0))
    assert cluster(t, [1], [2]) == [0, 1, 1]
    empty = table([], [], np.zeros((0, 2), np.float32))
    assert cluster(empty, [], []) == []


def test_candidate_pairs_dedupe_and_drop_self():
    idx = np.array([[0, 1, 2], [1, 0, -1], [2, 1, 0]])
    a, b = candidate_pairs(idx)
    # (0,1) found from both ends once; itself and the -1 pad never
    assert list(zip(a.tolist(), b.tolist())) == [(0, 1), (0, 2), (1, 2)]


def test_mutual_best_and_margin_per_camera():
    # rows 0, 1 in c001; rows 2, 3 in c002; row 4 in c003
    t = table([0, 0, 1, 1, 2], [0, 20, 100, 120, 200], angles(0, 40, 10, 80, 5))
    a = np.array([0, 0, 1, 1, 0, 2])
    b = np.array([2, 3, 2, 3, 4, 4])
    s = np.array([9.0, 2.0, 8.0, 7.0, 3.0, 4.0])
    # 0-2: best of 0 into c002 (9 > 2) and of 2 into c001 (9 > 8): mutual
    # 0-3: not 0's best into c002; 1-2: 1's best into c002 but not 2's best into c001
    # 1-3: 1's best into c002 is 2: not mutual; 0-4 and 2-4: each other's only pairs
    assert mutual_best(t, a, b, s).tolist() == [True, False, False, False, True, True]
    assert mutual_best(t, a[:0], b[:0], s[:0]).tolist() == []
    # 0-2 leads 0's other c002 pair by 7 and 2's other c001 pair by 1: margin 1
    margin = second_best_margin(t, a, b, s)
    assert margin[0] == 1.0 and margin[1] == -7.0 and np.isinf(margin[5])


def _sorted_mutual_and_margin(t: TrackletTable, a: np.ndarray, b: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sort-based forms mutual_best / second_best_margin had before the compiled pass
    (np.unique + np.maximum.at; np.lexsort by key and descending score)."""
    n_c = len(t.camera_keys)
    cam = t.camera.astype(np.int64)
    keys = np.concatenate([a * n_c + cam[b], b * n_c + cam[a]])
    vals = np.concatenate([s, s]).astype(np.float64)
    m = len(a)
    uniq, inv = np.unique(keys, return_inverse=True)
    best = np.full(len(uniq), -np.inf)
    with np.errstate(invalid="ignore"):
        np.maximum.at(best, inv, vals)
    mutual = (vals[:m] >= best[inv[:m]]) & (vals[m:] >= best[inv[m:]])
    order = np.lexsort((-vals, keys))
    k_sorted, v_sorted = keys[order], vals[order]
    first = np.ones(len(order), bool)
    first[1:] = k_sorted[1:] != k_sorted[:-1]
    starts = np.flatnonzero(first)
    top = v_sorted[starts]
    has2 = np.append(starts[1:], len(order)) - starts > 1
    second = np.where(has2, v_sorted[np.minimum(starts + 1, len(order) - 1)], -np.inf)
    rank = np.empty(len(order), np.int64)
    rank[order] = np.cumsum(first) - 1
    other = np.where(vals >= top[rank], second[rank], top[rank])
    with np.errstate(invalid="ignore"):
        margin = np.where(np.isneginf(other), np.inf, vals - other)
    return mutual, np.minimum(margin[:m], margin[m:])


def test_mutual_best_and_margin_equal_the_sort_based_selection():
    # ties, -inf, +inf and NaN scores included: the compiled pass gives the same answers
    rng = np.random.default_rng(0)
    for trial in range(200):
        n, n_c, e = int(rng.integers(2, 30)), int(rng.integers(1, 5)), int(rng.integers(1, 60))
        keys = [("S01", f"c00{i}") for i in range(1, n_c + 1)]
        t = TrackletTable.from_arrays(keys, rng.integers(n_c, size=n), np.arange(n), np.zeros(n), np.ones(n), np.zeros((n, 2), np.float32))
        a, b = rng.integers(n, size=e), rng.integers(n, size=e)
        s = rng.choice([-np.inf, np.inf, np.nan, -3.0, 0.0, 1.0, 2.0], size=e) if trial % 2 else rng.normal(size=e).round(1)
        mutual, margin = _sorted_mutual_and_margin(t, a, b, s)
        assert mutual_best(t, a, b, s).tolist() == mutual.tolist()
        assert np.array_equal(second_best_margin(t, a, b, s), margin, equal_nan=True)


def test_mutual_best_and_margin_hold_few_temporaries():
    # the sort-based forms held 16 and 26 arrays of E float64 at once (1.1 GB on the 1M
    # benchmark's pairs); the compiled pass holds the (2E,) keys and their order
    import tracemalloc

    rng = np.random.default_rng(1)
    n, e = 20_000, 200_000
    t = TrackletTable.from_arrays(KEYS, rng.integers(len(KEYS), size=n), np.arange(n), np.zeros(n), np.ones(n), np.zeros((n, 2), np.float32))
    a, b, s = rng.integers(n, size=e), rng.integers(n, size=e), rng.normal(size=e)
    mutual_best(t, a, b, s)  # compiled before measuring
    for f in (mutual_best, second_best_margin):
        tracemalloc.start()
        try:
            f(t, a, b, s)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 6 * 8 * e, (f.__name__, peak / (8 * e))


def test_best_per_camera_keeps_the_m_best_of_each_tracklet_into_each_camera():
    # row 0 in c001 against rows 1-3 in c002 and row 4 in c003; row 5 in c002 against row 4
    t = table([0, 1, 1, 1, 2, 1], [0, 10, 20, 30, 40, 50], angles(0, 0, 0, 0, 0, 0))
    a = np.array([0, 0, 0, 0, 5])
    b = np.array([1, 2, 3, 4, 4])
    s = np.array([1.0, 3.0, 2.0, -5.0, np.nan])
    # best 1: row 0's best into c002 is pair 1; into c003 pair 3 (its only one); rows 1-3's
    # only pair into c001 is their own, so each is its row's best: all but the NaN
    assert best_per_camera(t, a, b, s, 1).tolist() == [True, True, True, True, False]
    # rows 1-3 have a better pair into c001 (with row 6): pair (0, b) stays only as row 0's own best
    a2, b2 = np.array([0, 0, 0, 6, 6, 6]), np.array([1, 2, 3, 1, 2, 3])
    t2 = table([0, 1, 1, 1, 2, 1, 0], [0, 10, 20, 30, 40, 50, 60], angles(*[0] * 7))
    s2 = np.array([1.0, 3.0, 2.0, 9.0, 9.0, 9.0])
    assert best_per_camera(t2, a2, b2, s2, 1).tolist() == [False, True, False, True, True, True]
    # m = 2: row 0 keeps its two best into c002, rows 1-3 both of theirs into c001
    assert best_per_camera(t2, a2, b2, s2, 2).tolist() == [True] * 6
    assert best_per_camera(t2, a2, b2, s2, 0).tolist() == [False] * 6
