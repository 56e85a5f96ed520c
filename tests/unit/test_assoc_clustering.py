"""Candidate pairs, k-reciprocal re-ranking and constrained agglomerative clustering."""

from __future__ import annotations

import numpy as np

from mct.associate.clustering import candidate_pairs, conflicts_within, constrained_agglomerative, k_reciprocal_rerank
from mct.associate.config import AssociationConfig
from mct.associate.constraints import Constraints
from mct.associate.table import TrackletTable

KEYS = [("S01", f"c00{i}") for i in range(1, 6)]


def angles(*degrees: float) -> np.ndarray:
    r = np.radians(degrees)
    return np.stack([np.cos(r), np.sin(r)], axis=1).astype(np.float32)


def table(cams, starts, feats) -> TrackletTable:
    starts = np.asarray(starts, float)
    return TrackletTable.from_arrays(KEYS, cams, np.arange(len(cams)), starts, starts + 5, feats)


def cluster(t: TrackletTable, a, b, min_similarity: float, max_cluster_size: int = 100) -> list[int]:
    c = Constraints.build(t, None, AssociationConfig())
    return constrained_agglomerative(t, c, t.features, np.array(a), np.array(b), min_similarity, max_cluster_size, False).tolist()


def test_centroid_linkage_stops_chaining():
    # A at 0 deg, B at 30, C at 60: A~B and B~C are 0.866 similar, A~C only 0.5
    t = table([0, 1, 2], [0, 100, 200], angles(0, 30, 60))
    # visiting A-B first: the A+B centroid (15 deg) is cos 45 = 0.71 from C, below 0.8
    assert cluster(t, [0, 1], [1, 2], 0.8) == [0, 0, 1]
    # with a looser threshold the chain is accepted
    assert cluster(t, [0, 1], [1, 2], 0.7) == [0, 0, 0]


def test_conflict_between_clusters_blocks_the_merge():
    # rows 0 and 2 are in c001 at overlapping times; row 1 (c002) resembles both
    t = table([0, 1, 0], [0, 50, 2], angles(0, 1, 2))
    labels = cluster(t, [0, 1], [1, 2], 0.5)
    assert labels[0] == labels[1] and labels[2] != labels[0]


def test_max_cluster_size():
    t = table([0, 1, 2, 3], [0, 100, 200, 300], angles(0, 0, 0, 0))
    assert cluster(t, [0, 2, 1], [1, 3, 2], 0.5, max_cluster_size=2) == [0, 0, 1, 1]


def test_labels_numbered_by_first_row_and_empty_input():
    t = table([0, 1, 2], [0, 100, 200], angles(90, 0, 0))
    assert cluster(t, [1], [2], 0.5) == [0, 1, 1]
    empty = table([], [], np.zeros((0, 2), np.float32))
    assert cluster(empty, [], [], 0.5) == []


def test_candidate_pairs_dedupe_threshold_and_constraints():
    t = table([0, 1, 0], [0, 100, 2], angles(0, 10, 20))
    c = Constraints.build(t, None, AssociationConfig())
    idx = np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0]])
    sims = (t.features[idx] * t.features[:, None]).sum(-1)
    a, b, s = candidate_pairs(t, c, idx, sims, min_similarity=0.95)
    # (0,1) found from both ends once; (1,2) too; (0,2) overlap in c001 -> blocked
    assert list(zip(a.tolist(), b.tolist())) == [(0, 1), (1, 2)]
    assert np.all(np.diff(s) <= 0)
    assert conflicts_within(t, c, np.array([0, 0, 1])) == 0
    assert conflicts_within(t, c, np.array([0, 0, 0])) == 1


def test_k_reciprocal_rerank_rewards_shared_neighbourhoods():
    # rows 0-2 form a tight group that list each other; row 3 lists 0 but 0 does not list 3
    idx = np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1], [3, 0, 1]])
    sims = np.array([[1, 0.9, 0.9], [1, 0.9, 0.9], [1, 0.9, 0.9], [1, 0.9, 0.85]], np.float32)
    new = k_reciprocal_rerank(idx, sims, lam=0.3)
    assert new[1, 1] > new[3, 1]  # 1 -> 0 (reciprocal, shared set) beats 3 -> 0 (one-way)
    assert new[0, 0] == np.float32(1.0)  # self: identical sets
    assert np.isinf(k_reciprocal_rerank(np.array([[0, -1]]), np.array([[1, -np.inf]], np.float32), 0.3)[0, 1])


def test_mutual_best_pairs_per_camera():
    from mct.associate.clustering import mutual_best

    # rows 0, 1 in c001; rows 2, 3 in c002; row 4 in c003
    t = table([0, 0, 1, 1, 2], [0, 20, 100, 120, 200], angles(0, 40, 10, 80, 5))
    a = np.array([0, 0, 1, 1, 0, 2])
    b = np.array([2, 3, 2, 3, 4, 4])
    s = np.array([0.9, 0.2, 0.8, 0.7, 0.3, 0.4])
    # 0-2: best of 0 into c002 (0.9 > 0.2) and of 2 into c001 (0.9 > 0.8): mutual
    # 0-3: not 0's best into c002; 1-2: 1's best into c002 but not 2's best into c001
    # 1-3: 3's only pair into c001 and 1's ... 1's best into c002 is 2 (0.8): not mutual
    # 0-4: 0's only pair into c003, but 4's best into c001 is row 0 (only one): mutual
    # 2-4: 2's only pair into c003 and 4's only pair into c002: mutual
    assert mutual_best(t, a, b, s).tolist() == [True, False, False, False, True, True]
    assert mutual_best(t, a[:0], b[:0], s[:0]).tolist() == []


def test_order_pairs_visits_mutual_pairs_first_at_their_threshold():
    from mct.associate.clustering import order_pairs

    t = table([0, 0, 1, 1], [0, 20, 100, 120], angles(0, 40, 10, 80))
    a, b = np.array([0, 1, 1]), np.array([2, 2, 3])
    s = np.array([0.9, 0.95, 0.35])
    # 1-2 (0.95) is mutual; 0-2 is not 2's best; 1-3 is 3's only pair but not 1's best
    oa, ob, th = order_pairs(t, a, b, s, 0.5, None)
    assert list(zip(oa.tolist(), ob.tolist())) == [(1, 2), (0, 2)] and th.tolist() == [0.5, 0.5]  # 0.35 < 0.5 dropped
    oa, ob, th = order_pairs(t, a, b, s, 0.5, 0.3)
    assert list(zip(oa.tolist(), ob.tolist())) == [(1, 2), (0, 2)] and th.tolist() == [0.3, 0.5]
    # a weak mutual pair is visited before a strong non-mutual one: rows 0, 1, 4 in c001
    t = table([0, 0, 1, 1, 0], [0, 20, 100, 120, 40], angles(0, 40, 10, 80, 5))
    a, b, s = np.array([0, 2, 1]), np.array([2, 4, 3]), np.array([0.9, 0.95, 0.35])
    # 2-4 (0.95): mutual; 1-3 (0.35): each other's only pair, mutual; 0-2 (0.9): 2 prefers 4
    oa, ob, th = order_pairs(t, a, b, s, 0.5, 0.3)
    assert list(zip(oa.tolist(), ob.tolist())) == [(2, 4), (1, 3), (0, 2)]
    assert th.tolist() == [0.3, 0.3, 0.5]
    # the others' linkage threshold may differ from their pair threshold (re-ranked scale)
    assert order_pairs(t, a, b, s, 0.5, 0.3, others_linkage=0.45)[2].tolist() == [0.3, 0.3, 0.45]


def test_order_pairs_visits_colocated_pairs_first_at_their_threshold():
    from mct.associate.clustering import order_pairs

    t = table([0, 0, 1, 1, 0], [0, 20, 100, 120, 40], angles(0, 40, 10, 80, 5))
    a, b, s = np.array([0, 2, 1, 0]), np.array([2, 4, 3, 3]), np.array([0.9, 0.95, 0.35, 0.1])
    near = np.array([False, False, True, True])
    # 1-3 (0.35) co-located: first at 0.3; 0-3 (0.1) co-located but below 0.3: dropped
    oa, ob, th = order_pairs(t, a, b, s, 0.5, None, near, 0.3)
    assert list(zip(oa.tolist(), ob.tolist())) == [(1, 3), (2, 4), (0, 2)] and th.tolist() == [0.3, 0.5, 0.5]
    # with mutual-best pairs too: co-located, then mutual (2-4), then the rest
    oa, ob, th = order_pairs(t, a, b, s, 0.5, 0.2, near, 0.3)
    assert list(zip(oa.tolist(), ob.tolist())) == [(1, 3), (2, 4), (0, 2)] and th.tolist() == [0.3, 0.2, 0.5]


def test_per_pair_linkage_thresholds():
    # A at 0 deg and B at 60 (cos 0.5): merged only when the pair's own threshold allows it
    t = table([0, 1], [0, 100], angles(0, 60))
    c = Constraints.build(t, None, AssociationConfig())
    low = constrained_agglomerative(t, c, t.features, np.array([0]), np.array([1]), np.array([0.4]), 10, False)
    high = constrained_agglomerative(t, c, t.features, np.array([0]), np.array([1]), np.array([0.6]), 10, False)
    assert low.tolist() == [0, 0] and high.tolist() == [0, 1]


def test_all_pairs_link_refuses_a_merge_that_breaks_a_pair_rule_elsewhere():
    # no topology, max_time_gap_s 60: tracklets more than 60 s apart are NO_LINK.
    # A (c001, t=0..5) ~ B (c002, t=40..45) ~ C (c003, t=80..85): A-B and B-C are LINK
    # (gaps 35 s), A-C is NO_LINK (gap 75 s). All alike, visited A-B then B-C.
    t = table([0, 1, 2], [0, 40, 80], angles(0, 1, 2))
    c = Constraints.build(t, None, AssociationConfig(max_time_gap_s=60))
    run = lambda strict: constrained_agglomerative(  # noqa: E731
        t, c, t.features, np.array([0, 1]), np.array([1, 2]), 0.5, 100, False, strict
    ).tolist()
    # chaining through B puts A and C in one id although they cannot be one vehicle
    assert run(False) == [0, 0, 0]
    # complete linkage on the rules: C may not join {A, B}
    assert run(True) == [0, 0, 1]
    # the same-camera conflict still blocks in strict mode
    t2 = table([0, 1, 0], [0, 50, 2], angles(0, 1, 2))
    c2 = Constraints.build(t2, None, AssociationConfig())
    labels = constrained_agglomerative(t2, c2, t2.features, np.array([0, 1]), np.array([1, 2]), 0.5, 100, False, True)
    assert labels[0] == labels[1] and labels[2] != labels[0]
