"""Tracklets: feature rule, interpolation, minimum length, box expansion, store, MOT output."""

from pathlib import Path

import numpy as np
import pytest

from mct.track.config import TrackerConfig, TrackletConfig
from mct.track.deep_sort import DeepSortTracker
from mct.track.output import TrackerOutput
from mct.track.tracklets import (
    STORE_FORMAT,
    TrackletBuilder,
    expand_xyxy,
    interpolate_gaps,
    load_tracklets,
    occlusion_fraction,
    save_tracklets,
    tracklets_to_mot_rows,
    write_tracklets_mot,
)
from mct.types import Camera, Detections, Tracklet

CAM = Camera("S02", "c006", fps=10.0, frame_size=(1920, 1080))


def dets(f, xyxy, scores, emb=None):
    return Detections(
        f,
        np.asarray(xyxy, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32),
        embeddings=None if emb is None else np.asarray(emb, np.float32),
    )


def test_occlusion_fraction():
    boxes = [[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 110]]
    np.testing.assert_allclose(occlusion_fraction(boxes), [0.5, 0.5, 0.0])
    # a small box inside a big one is fully covered; the big one only by 1/16
    np.testing.assert_allclose(occlusion_fraction([[0, 0, 40, 40], [10, 10, 20, 20]]), [100 / 1600, 1.0])
    assert occlusion_fraction(np.zeros((0, 4))).shape == (0,)


def test_expand_xyxy_follows_the_min_rule_and_clips():
    # 100 x 50 box: width min(1.2*100, 100+10) = 110, height min(60, 60) = 60
    out = expand_xyxy(np.array([[100, 100, 200, 150]]), 1.2, 10.0)
    np.testing.assert_allclose(out, [[95, 95, 205, 155]])
    # at the frame border, clipped to the frame
    out = expand_xyxy(np.array([[0, 0, 100, 50]]), 1.2, 40.0, frame_size=(1920, 1080))
    np.testing.assert_allclose(out, [[0, 0, 110, 55]])


def test_interpolate_gaps():
    frames = np.array([1, 2, 5, 10])
    xyxy = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [8, 0, 18, 10], [18, 0, 28, 10]], float)
    # max gap 2: the 2-frame gap (3, 4) is filled, the 4-frame gap (6-9) is not
    f, b, observed = interpolate_gaps(frames, xyxy, 2)
    assert f.tolist() == [1, 2, 3, 4, 5, 10]
    np.testing.assert_allclose(b[2:4, 0], [4, 6])
    assert observed.tolist() == [True, True, False, False, True, True]
    f, _, observed = interpolate_gaps(frames, xyxy, 0)
    assert f.tolist() == [1, 2, 5, 10] and observed.all()


def add(builder, d, matches):
    """Record ``matches`` (``(track_id, det_index)``) of frame ``d`` as the ``matched`` convention writes them."""
    builder.add(d, TrackerOutput.from_matches(d, matches))


def _builder_story(cfg):
    b = TrackletBuilder(cfg, CAM)
    e0, e1 = np.eye(4)[0], np.eye(4)[1]
    # frame 1: track 7 takes det 1 (big, alone, score 0.9, feature e0); det 0 is unmatched
    add(b, dets(1, [[1000, 1000, 1010, 1010], [100, 100, 200, 200]], [0.5, 0.9], [e1, e0]), [(7, 1)])
    # frame 2: track 7 takes det 0, half covered by det 1 (occluded; feature e1 must be ignored)
    add(b, dets(2, [[100, 100, 200, 200], [150, 100, 250, 200]], [0.9, 0.9], [e1, e1]), [(7, 0)])
    # frame 3: nothing for track 7; track 9 appears once with a tiny box (area 100 px^2)
    add(b, dets(3, [[500, 500, 510, 510]], [0.8], [e1]), [(9, 0)])
    # frame 4: track 7 again, big and alone, feature e0
    add(b, dets(4, [[110, 100, 210, 200]], [0.3], [e0]), [(7, 0)])
    return b.finish()


def test_builder_feature_rule_interpolation_and_min_length():
    cfg = TrackletConfig(min_length=1, max_interpolation_gap=1, keep_frame_features=True)
    t7, t9 = _builder_story(cfg)
    assert (t7.track_id, t9.track_id) == (7, 9)
    assert (t7.scenario, t7.camera_id) == ("S02", "c006")
    # frame 3 is interpolated: score 0, det index -1, zero feature row
    assert t7.frames.tolist() == [1, 2, 3, 4]
    assert t7.det_indices.tolist() == [1, 0, -1, 0]
    np.testing.assert_allclose(t7.scores, [0.9, 0.9, 0.0, 0.3])
    np.testing.assert_allclose(t7.xyxy[2], [105, 100, 205, 200])
    assert not t7.features[2].any()
    # the occluded observation (e1) is left out of the feature: it is exactly e0
    np.testing.assert_allclose(t7.feature, np.eye(4)[0], atol=1e-6)
    # track 9 has no good observation (too small): all observations are used
    np.testing.assert_allclose(t9.feature, np.eye(4)[1], atol=1e-6)
    # min_length 2 drops track 9 (one detected frame)
    assert [t.track_id for t in _builder_story(TrackletConfig(min_length=2))] == [7]


def test_builder_feature_mixes_good_observations_by_score():
    cfg = TrackletConfig(max_feature_occlusion=1.0)  # the occluded frame counts now
    t7 = _builder_story(cfg)[0]
    # weights 0.9 (e0), 0.9 (e1), 0.3 (e0): mean (1.2, 0.9) normalised
    np.testing.assert_allclose(t7.feature[:2], np.array([1.2, 0.9]) / 1.5, atol=1e-6)
    t7u = _builder_story(TrackletConfig(max_feature_occlusion=1.0, feature_weight="uniform"))[0]
    np.testing.assert_allclose(t7u.feature[:2], np.array([2, 1]) / np.sqrt(5), atol=1e-6)


def test_builder_feature_weighted_by_score_and_sqrt_area():
    b = TrackletBuilder(TrackletConfig(feature_weight="score_sqrt_area"), CAM)
    e0, e1 = np.eye(4)[0], np.eye(4)[1]
    # frame 1: a 100 x 100 box, score 0.9, feature e0 -> weight 0.9 * 100
    add(b, dets(1, [[100, 100, 200, 200]], [0.9], [e0]), [(7, 0)])
    # frame 2: a 200 x 200 box, score 0.45, feature e1 -> weight 0.45 * 200 (the same)
    add(b, dets(2, [[100, 100, 300, 300]], [0.45], [e1]), [(7, 0)])
    # frame 3: a 200 x 200 box, score 0.9, feature e1 -> weight 0.9 * 200
    add(b, dets(3, [[100, 100, 300, 300]], [0.9], [e1]), [(7, 0)])
    (t7,) = b.finish()
    # mean (90, 90 + 180) normalised: (1, 3) / sqrt(10); score alone would give (0.9, 1.35)
    np.testing.assert_allclose(t7.feature[:2], np.array([1, 3]) / np.sqrt(10), atol=1e-6)


def test_builder_expansion_changes_boxes_not_features():
    plain = _builder_story(TrackletConfig())[0]
    grown = _builder_story(TrackletConfig(expand_scale=1.2, expand_max_px=40))[0]
    np.testing.assert_allclose(grown.xyxy[0], [90, 90, 210, 210])  # 100 px -> 120 px
    np.testing.assert_array_equal(plain.feature, grown.feature)


def test_builder_without_embeddings_and_empty():
    b = TrackletBuilder(TrackletConfig(), CAM)
    assert b.finish() == []
    add(b, dets(1, [[0, 0, 10, 10]], [0.5]), [(1, 0)])
    add(b, Detections.empty(2), [])
    (t,) = b.finish()
    assert t.feature is None and t.features is None and t.frames.tolist() == [1]


def test_builder_rejects_bad_input():
    b = TrackletBuilder(TrackletConfig(), CAM)
    add(b, dets(5, [[0, 0, 10, 10]], [0.5]), [])
    with pytest.raises(ValueError, match="c006: frame 5 added after frame 5"):
        add(b, dets(5, [[0, 0, 10, 10]], [0.5]), [])
    with pytest.raises(IndexError, match="frame 6: detection index 3 of 1"):
        add(b, dets(6, [[0, 0, 10, 10]], [0.5]), [(1, 3)])


def test_builder_takes_the_filtered_rows_coasted_frame_included():
    # one car driving right 10 px per frame under output: filtered, embeddings e0, score
    # 0.99 (mode mct starts tracks only from scores >= 0.95)
    tracker = DeepSortTracker(TrackerConfig(mode="mct", output="filtered"), 10)
    b = TrackletBuilder(TrackletConfig(keep_frame_features=True, min_feature_area_px=0.0), CAM)
    e0 = np.eye(4)[0]
    for f in range(1, 8):
        # frames 1-2: tentative (not written); frames 3-4: matched; frames 5-6: missed
        # (frame 5 written coasted, frame 6 not); frame 7: re-found
        boxes = [] if f in (5, 6) else [[100 + 10 * f, 100, 160 + 10 * f, 220]]
        d = dets(f, boxes, [0.99] * len(boxes), [e0] * len(boxes) if boxes else np.zeros((0, 4)))
        b.add(d, tracker.update(d))
    (t,) = b.finish()
    assert t.frames.tolist() == [3, 4, 5, 7]
    # the coasted frame 5 carries no detection: score 0, det index -1, zero feature row
    assert t.det_indices.tolist() == [0, 0, -1, 0]
    np.testing.assert_allclose(t.scores, [0.99, 0.99, 0.0, 0.99])
    assert not t.features[2].any() and t.features[[0, 1, 3]].any(axis=1).all()
    # its box is the prediction, moved on beyond frame 4's
    assert t.xyxy[2, 0] > t.xyxy[1, 0]
    np.testing.assert_allclose(t.feature, e0, atol=1e-6)  # only the detected rows make the feature
    # min_length counts detected rows only: 3 here, so 4 drops the track
    for min_length, expected in ((3, [3, 4, 5, 7]), (4, None)):
        b = TrackletBuilder(TrackletConfig(min_length=min_length), CAM)
        tracker = DeepSortTracker(TrackerConfig(mode="motion_only", output="filtered"), 10)
        for f in range(1, 8):
            boxes = [] if f in (5, 6) else [[100 + 10 * f, 100, 160 + 10 * f, 220]]
            d = dets(f, boxes, [0.99] * len(boxes))
            b.add(d, tracker.update(d))
        got = b.finish()
        assert (got[0].frames.tolist() if got else None) == expected


def test_builder_rejects_output_of_another_frame():
    b = TrackletBuilder(TrackletConfig(), CAM)
    d = dets(2, [[0, 0, 10, 10]], [0.5])
    with pytest.raises(ValueError, match="tracker output of frame 1 added with frame 2"):
        b.add(d, TrackerOutput.from_matches(dets(1, [[0, 0, 10, 10]], [0.5]), [(1, 0)]))


def _tracklets():
    return [
        Tracklet("S02", "c006", 3, np.array([1, 2, 4]), np.arange(12).reshape(3, 4) + [0, 0, 10, 10],
                 np.array([0.5, 0.6, 0.7]), feature=np.array([1, 0, 0], np.float32),
                 features=np.eye(3, dtype=np.float32), det_indices=np.array([0, 2, 1])),
        Tracklet("S02", "c006", 8, np.array([7]), np.array([[5, 5, 50, 50]]), np.array([0.9])),
    ]


def test_store_round_trip(tmp_path):
    path = save_tracklets(tmp_path / "run" / "tracklets.npz", _tracklets())
    assert path.is_file() and sorted(p.name for p in path.parent.iterdir()) == ["tracklets.npz"]  # no temp file left
    back = load_tracklets(path)
    for a, b in zip(_tracklets(), back):
        assert a.key == b.key
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.scores, b.scores)
        assert (a.feature is None) == (b.feature is None) and (a.features is None) == (b.features is None)
    np.testing.assert_array_equal(back[0].feature, [1, 0, 0])
    np.testing.assert_array_equal(back[0].features, np.eye(3))
    assert back[0].det_indices.tolist() == [0, 2, 1] and back[1].det_indices.tolist() == [-1]
    assert str(np.load(path)["format"]) == STORE_FORMAT


def test_store_empty_and_errors(tmp_path):
    assert load_tracklets(save_tracklets(tmp_path / "empty.npz", [])) == []
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_tracklets(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, format=np.array(STORE_FORMAT))
    with pytest.raises(ValueError, match="bad.npz: tracklet store lacks key 'scenario'"):
        load_tracklets(bad)
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(ValueError, match="junk.npz: not a readable"):
        load_tracklets(junk)
    mixed = _tracklets()
    mixed[1] = Tracklet("S02", "c006", 8, np.array([7]), np.array([[5, 5, 50, 50]]), np.array([0.9]),
                        feature=np.ones(5, np.float32))
    with pytest.raises(ValueError, match="feature of different dimensions"):
        save_tracklets(tmp_path / "mixed.npz", mixed)


def test_mot_output(tmp_path):
    rows = tracklets_to_mot_rows(_tracklets())
    assert rows.frame.tolist() == [1, 2, 4, 7] and rows.id.tolist() == [3, 3, 3, 8]
    path = write_tracklets_mot(tmp_path / "tracks.txt", _tracklets())
    first = Path(path).read_text().splitlines()[0].split(",")
    assert first[:6] == ["1", "3", "0", "1", "12", "12"]  # box 0,1,12,13
    assert len(tracklets_to_mot_rows([])) == 0
