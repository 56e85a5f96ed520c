"""Tracker options beyond Deep SORT (TrackerConfig): stories with one comment per frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mct.evaluate.metrics import TrackBoxes
from mct.evaluate.mot import evaluate_mot

from mct.track.config import TRACKER_PRESETS, TrackerConfig
from mct.track.deep_sort import DeepSortTracker
from mct.track.kalman import BatchKalman
from mct.types import Detections


#: ``motion_only`` with its preset's options (``TRACKER_PRESETS``) off: the reference life
#: cycle without appearance, the base each story below adds its option to
REFERENCE_MOTION = {"mode": "motion_only",
                    **{key: TrackerConfig.model_fields[key].default for key in TRACKER_PRESETS["motion_only"]}}


def _motion(**options: object) -> TrackerConfig:
    """``REFERENCE_MOTION`` with ``options`` on top."""
    return TrackerConfig(**{**REFERENCE_MOTION, **options})


def _box(cx: float, cy: float, w: float = 60.0, h: float = 120.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _frame(f: int, boxes: list[list[float]], scores: list[float] | None = None) -> Detections:
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    s = np.full(len(xyxy), 0.9, np.float32) if scores is None else np.array(scores, np.float32)
    return Detections(f, xyxy, s)


def _ids(out: list[tuple[int, int]]) -> dict[int, int]:
    """detection index -> track id of one frame's output."""
    return {d: t for t, d in out}


# ---------------------------------------------------------------------------- BYTE
def test_partly_occluded_object_keeps_its_id_through_the_low_score_stage() -> None:
    # a pedestrian walks right 5 px per frame; frames 6-8 a parked car hides its legs and
    # the detector's score drops to 0.4, below the high threshold 0.6
    def run(cfg: TrackerConfig) -> list[dict[int, int]]:
        tracker = DeepSortTracker(cfg, 10)
        out = []
        for f in range(1, 13):
            score = 0.4 if 6 <= f <= 8 else 0.9
            out.append(_ids(tracker.update(_frame(f, [_box(100 + 5 * f, 300)], [score])).matches))
        return out

    byte = run(_motion(byte_min_high_score=0.6, min_score=0.1))
    # frames 1-2: tentative; frames 3-5: confirmed as track 1
    assert byte[2:5] == [{0: 1}] * 3
    # frames 6-8: only the low-score box is there; BYTE's second stage keeps it on track 1
    assert byte[5:8] == [{0: 1}] * 3
    # frames 9-12: the score is back; still track 1
    assert byte[8:] == [{0: 1}] * 4

    # the same frames with the low boxes thrown away (a detector threshold of 0.6): the track
    # is not extended in frames 6-8 (nothing written)
    dropped = run(_motion(min_score=0.6))
    assert dropped[5:8] == [{}] * 3


def test_low_score_boxes_never_start_tracks() -> None:
    # frames 1-5: a lone box scoring 0.4 (below the high threshold 0.6): it is used only to
    # extend tracks, so it never becomes one (not even tentative)
    tracker = DeepSortTracker(_motion(byte_min_high_score=0.6), 10)
    for f in range(1, 6):
        out = tracker.update(_frame(f, [_box(300, 300)], [0.4]))
        assert out.matches == [] and out.tentative == () and len(tracker) == 0


def test_min_new_track_score_keeps_weak_boxes_from_starting_tracks() -> None:
    # frame 1: a box at 0.7 and one at 0.95; only the confident one starts a (tentative) track
    tracker = DeepSortTracker(_motion(min_new_track_score=0.9), 10)
    out = tracker.update(_frame(1, [_box(100, 300), _box(400, 300)], [0.7, 0.95]))
    assert [d for _, d in out.tentative] == [1]


# ---------------------------------------------------------------------------- OC-SORT
def _walk_with_gap(f: int) -> list[list[float]]:
    """A pedestrian walking right 3 px per frame (frames 1-10), slowing to 1 px per frame behind a
    pillar (frames 11-20, unseen), walking on at 1 px per frame (frames 21-40)."""
    if 11 <= f <= 20:
        return []
    x = 100 + 3 * min(f, 10) + 1 * max(f - 10, 0)
    return [_box(x, 300)]


def test_reupdate_refilters_the_coasted_frames_along_a_straight_path() -> None:
    # frames 1-10 seen; 11-20 hidden (the track coasts); frame 21 re-found 20 px behind its
    # prediction. The re-update rewinds the filter to frame 10 and runs it along the straight
    # line from the frame-10 box to the frame-21 box: afterwards its state must equal that of a
    # filter that *saw* those interpolated boxes in frames 11-20.
    oru = DeepSortTracker(_motion(oc_reupdate=True), 10)
    seen = DeepSortTracker(_motion(), 10)
    a10, a21 = np.array(_walk_with_gap(10)[0]), np.array(_walk_with_gap(21)[0])
    for f in range(1, 22):
        oru.update(_frame(f, _walk_with_gap(f)))
        virtual = [list(a10 + (a21 - a10) * (f - 10) / 11)] if 11 <= f <= 20 else _walk_with_gap(f)
        seen.update(_frame(f, virtual))
    np.testing.assert_allclose(oru._mean, seen._mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(oru._cov, seen._cov, rtol=0, atol=1e-9)
    # without the re-update the state differs, if little (this filter's first update after
    # coasting already corrects most of the drift: its covariance grew while coasting)
    plain = DeepSortTracker(_motion(min_score=1e-9), 10)
    for f in range(1, 22):
        plain.update(_frame(f, _walk_with_gap(f)))
    assert np.abs(plain._mean - oru._mean).max() > 1e-5


def test_track_lost_for_ten_frames_continues_on_its_object_after_the_reupdate() -> None:
    # frames 1-10: track 1 confirmed; frames 11-20: hidden; frames 21-40: walks on slowly
    tracker = DeepSortTracker(_motion(oc_reupdate=True, oc_recovery=True), 10)
    ids = [_ids(tracker.update(_frame(f, _walk_with_gap(f))).matches) for f in range(1, 41)]
    assert all(i == {0: 1} for i in ids[2:10])
    assert all(i == {} for i in ids[10:20])
    # frame 21 on: the same id, every frame, and no other track was started
    assert all(i == {0: 1} for i in ids[20:])
    assert len(tracker) == 1


def test_recovery_refinds_a_stopped_object_by_its_last_observed_box() -> None:
    # frames 1-10: walks right 10 px per frame; frames 11-20: stands hidden where it
    # vanished; frame 21: seen again where it stopped. The filter coasted 100 px ahead (no
    # overlap), so only the last *observed* box (OCR) finds it
    def walk(f: int) -> list[list[float]]:
        return [] if 11 <= f <= 20 else [_box(100 + 10 * min(f, 10), 300, 40, 80)]

    for recovery, expected in ((True, {0: 1}), (False, {})):
        tracker = DeepSortTracker(_motion(oc_recovery=recovery, min_score=1e-9), 10)
        out = [_ids(tracker.update(_frame(f, walk(f))).matches) for f in range(1, 22)]
        assert out[-1] == expected, f"oc_recovery={recovery}"


def test_two_objects_crossing_keep_their_ids_under_the_direction_cost() -> None:
    # two cars in opposite lanes crawl toward each other at 2 px per frame (frames 1-8),
    # then both speed up to 20 px per frame and pass each other between frames 8 and 9.
    # The filter's velocity still says 2 px: by IoU alone each predicted box lies nearer the
    # *other* car's detection. The direction of each car's last observations tells them apart.
    def run(weight: float) -> list[dict[int, int]]:
        cfg = _motion(cost="fused", matching_cascade=False, oc_direction_weight=weight)
        tracker = DeepSortTracker(cfg, 10)
        out = []
        for f in range(1, 16):
            if f <= 8:
                xa, xb = 470 + 2 * f, 530 - 2 * f
            else:
                xa, xb = 486 + 20 * (f - 8), 514 - 20 * (f - 8)
            out.append(_ids(tracker.update(_frame(f, [_box(xa, 300), _box(xb, 310)])).matches))
        return out

    with_direction = run(1.0)
    # frames 3-15: detection 0 (the car going right) is track 1, detection 1 is track 2, throughout
    assert all(i == {0: 1, 1: 2} for i in with_direction[2:])
    # without the direction term the ids swap at frame 9
    without = run(0.0)
    assert without[7] == {0: 1, 1: 2} and without[8] == {0: 2, 1: 1}


# ---------------------------------------------------------------------------- output convention
def _one_car_missed_twice(output: str) -> list:
    """One car driving right 10 px per frame, seen at frames 1-4 and 7, missed at frames 5-6."""
    tracker = DeepSortTracker(_motion(output=output), 10)
    return [tracker.update(_frame(f, [_box(100 + 10 * f, 300)] if f not in (5, 6) else [])) for f in range(1, 8)]


def test_filtered_output_writes_the_kalman_box_and_one_coasted_frame() -> None:
    written = _one_car_missed_twice("filtered")
    # frames 1-2: the track is tentative: nothing is written
    assert len(written[0]) == 0 and len(written[1]) == 0
    # frame 3: confirmed at its third hit: written, matched to detection 0
    assert written[2].track_ids.tolist() == [1] and written[2].det_indices.tolist() == [0]
    # frame 4: matched; the box written is the Kalman state's, not the detection's
    assert written[3].det_indices.tolist() == [0]
    assert not np.allclose(written[3].xyxy[0], _box(140, 300))
    assert abs(written[3].xyxy[0, 0] - _box(140, 300)[0]) < 10  # but close to it
    # frame 5: missed; updated within the last frame, so the coasted (predicted) box is
    # written, with no detection, moved on by the filter's velocity
    assert written[4].track_ids.tolist() == [1] and written[4].det_indices.tolist() == [-1]
    assert written[4].coasted.tolist() == [True] and written[4].matches == []
    assert written[4].xyxy[0, 0] > written[3].xyxy[0, 0] + 3
    # frame 6: the second missed frame: nothing is written
    assert len(written[5]) == 0
    # frame 7: re-found (IoU stage misses it, the cascade's motion gate takes it): written again
    assert written[6].matches == [(1, 0)]


def test_matched_output_writes_only_matched_detection_boxes() -> None:
    written = _one_car_missed_twice("matched")
    # frames 1-2: tentative: nothing
    assert len(written[0]) == 0 and len(written[1]) == 0
    # frames 3-4: the matched detection's own box, exactly
    for f in (3, 4):
        assert written[f - 1].matches == [(1, 0)]
        np.testing.assert_array_equal(written[f - 1].xyxy[0], _box(100 + 10 * f, 300))
    # frames 5-6: missed: nothing (no coasted box)
    assert len(written[4]) == 0 and len(written[5]) == 0
    # frame 7: re-found: its detection's box
    assert written[6].matches == [(1, 0)]
    np.testing.assert_array_equal(written[6].xyxy[0], _box(170, 300))


# ---------------------------------------------------------------------------- other options
def test_nsa_moves_the_state_further_towards_a_confident_box() -> None:
    kf = BatchKalman()
    mean, cov = kf.initiate(np.array([[100.0, 100.0, 0.5, 100.0]]))
    mean, cov = kf.predict(mean, cov)
    z = np.array([[110.0, 100.0, 0.5, 100.0]])
    plain, _ = kf.update(mean, cov, z)
    confident, _ = kf.update(mean, cov, z, scores=np.array([0.95]))
    assert abs(confident[0, 0] - 110.0) < abs(plain[0, 0] - 110.0)


def test_xywh_state_tracks_width_and_height() -> None:
    # frames 1-6: a car turning: its box widens by 8 px per frame at a fixed height
    tracker = DeepSortTracker(_motion(filter_state="xywh"), 10)
    for f in range(1, 7):
        out = tracker.update(_frame(f, [_box(300, 300, 60 + 8 * f, 80)])).matches
    assert out == [(1, 0)]
    x1, y1, x2, y2 = tracker.state_xyxy([1])[0]
    assert x2 - x1 == pytest.approx(60 + 8 * 6, abs=4.0) and y2 - y1 == pytest.approx(80, abs=1.0)


def test_ema_feature_follows_the_detections() -> None:
    # frames 1-3: a car with feature e1, then frames 4-10 with e2 (lighting changed): the EMA
    # track feature moves toward e2, so e2 is closer than e1 by frame 10
    cfg = TrackerConfig(mode="deep_sort", ema_alpha=0.5)
    tracker = DeepSortTracker(cfg, 10)
    e1, e2 = np.array([1.0, 0.0], np.float32), np.array([0.6, 0.8], np.float32)
    for f in range(1, 11):
        e = e1 if f <= 3 else e2
        d = Detections(f, np.array([_box(100, 300)], np.float32), np.array([0.9], np.float32), embeddings=e[None])
        assert tracker.update(d).matches == ([(1, 0)] if f >= 3 else [])
    slot = tracker._slots[0]
    feature = tracker._galleries.samples(int(slot))[0]
    assert feature @ e2 > feature @ e1


def test_presets_leave_the_faithful_mode_alone() -> None:
    assert TrackerConfig(mode="deep_sort").uses_options is False
    cfg = TrackerConfig(mode="mct")
    assert cfg.uses_options
    for key, value in TRACKER_PRESETS["mct"].items():
        assert getattr(cfg, key) == value
    # an explicit option beside the preset wins
    assert TrackerConfig(mode="motion_only", max_age=7).max_age == 7
    # motion_only is the mct preset's options without appearance; explicit keys win there too
    cfg = TrackerConfig(mode="motion_only", min_new_track_score=0.5)
    assert cfg.uses_options and cfg.min_new_track_score == 0.5
    assert all(getattr(cfg, k) == v for k, v in TRACKER_PRESETS["mct"].items() if k != "min_new_track_score")
    # the presets write the reference application's output; the faithful mode keeps ours unless asked
    assert TrackerConfig(mode="mct").output == TrackerConfig(mode="motion_only").output == "filtered"
    assert TrackerConfig(mode="deep_sort").output == "matched"
    assert TrackerConfig(mode="mct", output="matched").output == "matched"


def test_mct_mode_runs_with_and_without_embeddings() -> None:
    # deep_sort needs embeddings; mct uses them when the detections carry them, motion alone otherwise
    plain = _frame(1, [_box(100, 300)], [0.99])  # above the preset's new-track threshold
    with pytest.raises(ValueError, match="embeddings"):
        DeepSortTracker(TrackerConfig(mode="deep_sort"), 10).update(plain)
    DeepSortTracker(TrackerConfig(mode="mct"), 10).update(plain)
    with_features = Detections(1, plain.xyxy, plain.scores, embeddings=np.ones((1, 4), np.float32))
    tracker = DeepSortTracker(TrackerConfig(mode="mct"), 10)
    tracker.update(with_features)
    assert len(tracker) == 1 and tracker._slots[0] >= 0  # a track with a gallery was started


MOT15 = Path(__file__).resolve().parents[3] / "shared" / "data" / "mot15"


@pytest.mark.skipif(not (MOT15 / "ETH-Sunnyday").is_dir(), reason="../shared/data/mot15 not present")
def test_mct_mode_golden_on_eth_sunnyday() -> None:
    # golden numbers of benchmarks/bench_mot15.py (mode mct, matched detection boxes) on one
    # real sequence: a change of the tracker's behaviour moves them
    folder = MOT15 / "ETH-Sunnyday"
    det = np.loadtxt(folder / "det.txt", delimiter=",", ndmin=2)
    gt = np.loadtxt(folder / "gt.txt", delimiter=",", ndmin=2)
    tracker = DeepSortTracker(TrackerConfig(mode="mct"), 14.0)
    rows = []
    for f in range(1, 355):
        d = det[det[:, 0] == f]
        xyxy = np.concatenate([d[:, 2:4], d[:, 2:4] + d[:, 4:6]], axis=1).astype(np.float32)
        for track_id, k in tracker.update(Detections(f, xyxy, d[:, 6].astype(np.float32))).matches:
            rows.append((f, track_id, *d[k, 2:6]))
    pred = np.array(rows)
    keep = gt[:, 6] != 0
    m = evaluate_mot(
        TrackBoxes(gt[keep, 0].astype(np.int64), gt[keep, 1].astype(np.int64), gt[keep, 2:6]),
        TrackBoxes(pred[:, 0].astype(np.int64), pred[:, 1].astype(np.int64), pred[:, 2:6]),
    )
    assert (round(100 * m.idf1, 2), round(100 * m.mota, 2), m.num_switches) == GOLDEN_SUNNYDAY


GOLDEN_SUNNYDAY = (77.12, 59.9, 7)


@pytest.mark.parametrize(
    "options",
    [{"min_score": 1e-9}, {"matching_cascade": False}, {"oc_recovery": True}, {"matching_cascade": False, "oc_recovery": True}],
    ids=["cascade", "one_assignment", "recovery", "one_assignment_recovery"],
)
def test_a_track_refound_on_the_frame_it_expires_keeps_its_id_and_not_one_frame_later(options) -> None:
    # max_age 5. A standing car seen in frames 1-4 (confirmed at frame 3), hidden from frame 5.
    # Case A: seen again at frame 9, five frames after its last match (the last frame its
    # buffer allows): it is track 1 again. Case B: seen again at frame 10, six frames after:
    # the track has expired, whatever the association stages, and a new track starts.
    def run(back: int) -> list[dict[int, int]]:
        tracker = DeepSortTracker(_motion(max_age=5, n_init=1, **options), 10)
        out = []
        for f in range(1, back + 1):
            boxes = [_box(300, 300)] if f <= 4 or f == back else []
            out.append(_ids(tracker.update(_frame(f, boxes)).matches))
        return out

    assert run(9)[-1] == {0: 1}
    assert run(10)[-1] == {}  # a new, tentative track (n_init 1 still waits for a second hit)
