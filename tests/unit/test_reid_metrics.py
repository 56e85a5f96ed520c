"""Re-ID mAP / CMC on hand-made distance matrices, values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mct.reid.metrics import cosine_distance, reid_metrics, split_query_gallery

# gallery: index -> (identity, camera)
#   g0 (1, A)   g1 (1, B)   g2 (2, B)   g3 (3, A)   g4 (2, A)
G_IDS = np.array([1, 1, 2, 3, 2])
G_CAMS = np.array(["A", "B", "B", "A", "A"])


def test_three_queries_by_hand():
    q_ids = np.array([1, 2, 3])
    q_cams = np.array(["A", "A", "B"])
    dist = np.array(
        [
            # query 0 = (1, A): g0 is same id + same camera -> ignored.
            # order g0 .1 (ign), g2 .3, g4 .4, g1 .5 (match), g3 .9 -> first match at rank 3, AP = 1/3
            [0.1, 0.5, 0.3, 0.9, 0.4],
            # query 1 = (2, A): g4 ignored; order g4 .05 (ign), g2 .1 (match) -> rank 1, AP = 1
            [0.2, 0.6, 0.1, 0.7, 0.05],
            # query 2 = (3, B): only g3 matches; order g4, g1, g0, g3 (match), g2 -> rank 4, AP = 1/4
            [0.3, 0.2, 0.4, 0.35, 0.1],
        ]
    )
    m = reid_metrics(dist, q_ids, G_IDS, q_cams, G_CAMS, max_rank=5)
    # mAP = (1/3 + 1 + 1/4) / 3 = 19/36
    assert m.mAP == pytest.approx(19 / 36)
    # CMC: rank-1 only query 1; rank-3 adds query 0; rank-4 adds query 2
    np.testing.assert_allclose(m.cmc, [1 / 3, 1 / 3, 2 / 3, 1, 1])
    assert m.rank1 == pytest.approx(1 / 3) and m.rank5 == pytest.approx(1.0)
    assert (m.num_queries, m.num_valid_queries, m.num_gallery) == (3, 3, 5)


def test_average_precision_with_several_true_matches():
    # query (1, A); gallery ordered by distance after dropping the same-camera g3:
    #   g0 (1,B) match, g1 (2,B), g2 (1,C) match, g4 (3,B), g5 (1,B) match
    # precision at the matches: 1/1, 2/3, 3/5 -> AP = (1 + 2/3 + 3/5) / 3 = 34/45
    g_ids = np.array([1, 2, 1, 1, 3, 1])
    g_cams = np.array(["B", "B", "C", "A", "B", "B"])
    dist = np.array([[0.1, 0.2, 0.3, 0.05, 0.4, 0.5]])
    m = reid_metrics(dist, np.array([1]), g_ids, np.array(["A"]), g_cams)
    assert m.mAP == pytest.approx(34 / 45)
    assert m.rank1 == 1.0


def test_query_without_cross_camera_match_is_skipped():
    # query (9, A) has no gallery item at all; query (3, A) only the same-camera g3 -> both skipped.
    # query (1, B): g1 ignored (same camera), g0 (1, A) is its match at distance 0.0 -> rank 1.
    dist = np.array([[0.0, 0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.5, 0.0, 0.5], [0.0, 0.0, 0.1, 0.2, 0.3]])
    m = reid_metrics(dist, np.array([9, 3, 1]), G_IDS, np.array(["A", "A", "B"]), G_CAMS)
    assert m.num_valid_queries == 1 and m.mAP == 1.0 and m.rank1 == 1.0


def test_ties_are_broken_by_gallery_order():
    # query (1, A); g1 (1,B) and g2 (2,B) tie at 0.2; the stable sort puts g1 first -> rank 1.
    m = reid_metrics(np.array([[0.9, 0.2, 0.2, 0.9, 0.9]]), np.array([1]), G_IDS, np.array(["A"]), G_CAMS)
    assert m.rank1 == 1.0


def test_no_valid_query_and_bad_shapes_are_errors():
    with pytest.raises(ValueError, match="no query has a true match"):
        reid_metrics(np.zeros((1, 5)), np.array([7]), G_IDS, np.array(["A"]), G_CAMS)
    with pytest.raises(ValueError, match=r"expected shape \(1, 5\)"):
        reid_metrics(np.zeros((1, 4)), np.array([1]), G_IDS, np.array(["A"]), G_CAMS)


def test_cosine_distance_and_query_split():
    a = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    np.testing.assert_allclose(cosine_distance(a, a), [[0, 1], [1, 0]], atol=1e-6)
    # tracks 0 (3 crops), 1 (2 crops): queries are the middle crops, indices 1 and 4
    q, g = split_query_gallery(np.array([1, 1, 1, 2, 2]), np.array(["A"] * 5), np.array([0, 0, 0, 1, 1]))
    assert q.tolist() == [1, 4] and g.tolist() == [0, 1, 2, 3, 4]
