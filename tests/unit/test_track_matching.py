"""Costs, Hungarian matching with the reference's clipping, the cascade and the gallery."""

import numpy as np
import pytest

from mct.track.matching import (
    INFTY_COST,
    GalleryPool,
    iou_xyxy,
    l2_normalise,
    matching_cascade,
    min_cost_matching,
    nn_cosine_distance,
)


def test_iou_golden_values():
    a = np.array([[0, 0, 10, 10]], dtype=np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20], [20, 20, 30, 30]], dtype=np.float32)
    np.testing.assert_allclose(iou_xyxy(a, b)[0], [1.0, 50 / 150, 0.0, 0.0])
    assert iou_xyxy(np.zeros((0, 4)), b).shape == (0, 4)
    assert iou_xyxy(a, np.zeros((0, 4))).shape == (1, 0)


def test_nn_cosine_distance_is_smallest_over_the_gallery():
    gallery = l2_normalise(np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    feats = l2_normalise(np.array([[0, 1, 0], [0, 0, 1], [-1, 0, 0]], dtype=np.float32))
    np.testing.assert_allclose(nn_cosine_distance(gallery, feats), [0.0, 1.0, 1.0], atol=1e-6)


def test_min_cost_matching_rejects_pairs_above_max_cost():
    cost = np.array([[0.1, 0.9], [0.8, 0.95]])
    matches, ut, ud = min_cost_matching(cost, 0.5, np.array([7, 8]), np.array([0, 1]))
    assert matches == [(7, 0)]
    assert sorted(ut) == [8] and sorted(ud) == [1]


def test_min_cost_matching_clips_impossible_pairs_like_the_reference():
    # Tracks A, B; detections 1, 2. A-1 = 0.0, A-2 = 0.1, B-1 = 0.15, B-2 impossible.
    # Reference: impossible -> max_cost + 1e-5 = 0.20001, so {A1, B2} (0.20001) beats
    # {A2, B1} (0.25): only A-1 is matched. (With a huge cost instead, both would match.)
    cost = np.array([[0.0, 0.1], [0.15, INFTY_COST]])
    matches, ut, ud = min_cost_matching(cost, 0.2, np.array([0, 1]), np.array([0, 1]))
    assert matches == [(0, 0)]
    assert ut == [1] and ud == [1]


def test_min_cost_matching_unmatched_detection_order_is_the_references():
    # 3 detections, 2 tracks: the solver pairs track 1 with one of the (tied, clipped)
    # detections 1 and 2 (scipy takes the first, 1) and the pair is rejected; the reference
    # lists the detection the solver left out (2) first, then the rejected pair's (1).
    cost = np.array([[0.05, 0.9, 0.9], [0.9, 0.6, 0.9]])
    matches, ut, ud = min_cost_matching(cost, 0.5, np.array([0, 1]), np.array([0, 1, 2]))
    assert matches == [(0, 0)]
    assert ud == [2, 1] and ut == [1]


def test_min_cost_matching_empty():
    assert min_cost_matching(np.zeros((0, 3)), 0.5, np.array([], dtype=int), np.array([0, 1, 2])) == ([], [], [0, 1, 2])
    assert min_cost_matching(np.zeros((2, 0)), 0.5, np.array([4, 5]), np.array([], dtype=int)) == ([], [4, 5], [])


def test_cascade_gives_priority_to_recently_seen_tracks():
    # Two tracks both want detection 0 at equal cost; track 11 was seen 1 frame ago,
    # track 10 three frames ago: the level-1 track takes it, the older one gets detection 1.
    cost = np.array([[0.05, 0.1], [0.05, 0.3]])
    matches, ut, ud = matching_cascade(cost, 0.2, np.array([3, 1]), 30, np.array([10, 11]), np.array([0, 1]))
    assert sorted(matches) == [(10, 1), (11, 0)]
    assert ut == [] and ud == []


def test_cascade_skips_tracks_older_than_the_depth():
    cost = np.array([[0.0]])
    matches, ut, ud = matching_cascade(cost, 0.2, np.array([5]), 4, np.array([0]), np.array([0]))
    assert matches == [] and ut == [0] and ud == [0]


def test_gallery_pool_keeps_the_last_budget_features():
    pool = GalleryPool(budget=3)
    a, b = pool.allocate(np.array([[0, 1], [100, 1]], dtype=np.float32)).tolist()
    assert len(pool) == 2 and len(pool.samples(a)) == 1
    for k in range(1, 5):
        pool.add(np.array([a]), np.array([[k, 1]], dtype=np.float32))
    assert sorted(pool.samples(a)[:, 0].tolist()) == [2, 3, 4]  # features 0 and 1 dropped
    assert pool.samples(b)[:, 0].tolist() == [100]
    # a freed slot is reused and starts empty but for its first feature
    pool.release(np.array([b]))
    assert len(pool) == 1
    (c,) = pool.allocate(np.array([[7, 7]], dtype=np.float32)).tolist()
    assert c == b and pool.samples(c).tolist() == [[7, 7]]
    with pytest.raises(ValueError, match="nn_budget"):
        GalleryPool(0)
    with pytest.raises(ValueError, match="feature dimension 3"):
        pool.allocate(np.ones((1, 3), dtype=np.float32))


@pytest.mark.parametrize("budget, dim", [(4, 6), (4, 5000)])  # batched gather; per-pair loop (>= 64 KB)
def test_gallery_pool_distance_equals_the_smallest_over_the_stored_features(budget, dim):
    rng = np.random.default_rng(0)
    pool = GalleryPool(budget=budget)
    feats = l2_normalise(rng.normal(size=(30, dim)))
    slots = pool.allocate(feats[:3])
    for k in range(3, 12):  # slot 0 gets 3 more features, slot 1 one more, slot 2 none
        if k < 6:
            pool.add(slots[:1], feats[k : k + 1])
        elif k == 6:
            pool.add(slots[1:2], feats[k : k + 1])
    queries = feats[20:26]
    pair_slots = np.repeat(slots, 2)
    got = pool.nn_cosine_distance(pair_slots, queries)
    want = [nn_cosine_distance(pool.samples(s), q[None])[0] for s, q in zip(pair_slots, queries)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert pool.nn_cosine_distance(np.zeros(0, dtype=np.int64), np.zeros((0, dim), np.float32)).shape == (0,)


def test_l2_normalise_keeps_zero_rows():
    out = l2_normalise(np.array([[3, 4], [0, 0]], dtype=np.float32))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0, 0]])
