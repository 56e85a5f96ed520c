"""Hand-built Deep SORT stories, one comment per frame.

Boxes are 100 x 60 px cars; every car has its own unit appearance feature (orthogonal
axes), so the appearance cost between a car and itself is 0 and between two cars is 1.
Defaults are the reference values: n_init 3, max_age 30, gate 9.4877, max cosine 0.2.
"""

import numpy as np
import pytest

from mct.track.config import TrackerConfig
from mct.track.deep_sort import DeepSortTracker
from mct.types import Detections

DIM = 8


def car(k: int) -> np.ndarray:
    e = np.zeros(DIM, np.float32)
    e[k] = 1.0
    return e


def frame(f: int, cars: list[tuple[float, float, int]], embeddings: bool = True, score: float = 0.9) -> Detections:
    """Frame ``f`` with cars ``(centre x, centre y, car number)`` as 100 x 60 boxes scoring ``score``."""
    if not cars:
        return Detections.empty(f, DIM if embeddings else None)
    xyxy = np.array([[x - 50, y - 30, x + 50, y + 30] for x, y, _ in cars], np.float32)
    emb = np.stack([car(k) for _, _, k in cars]) if embeddings else None
    return Detections(f, xyxy, np.full(len(cars), score, np.float32), embeddings=emb)


def ids_by_car(out: list[tuple[int, int]], cars: list[tuple[float, float, int]]) -> dict[int, int]:
    return {cars[det][2]: track_id for track_id, det in out}


def test_two_cars_crossing_keep_their_ids():
    tracker = DeepSortTracker(TrackerConfig(), fps=10)
    seen: dict[int, set[int]] = {0: set(), 1: set()}
    for f in range(1, 31):
        # car 0 drives right, car 1 drives left, 20 px/frame on nearly the same row;
        # frames 1-2: tentative, nothing output; frame 3: both confirmed;
        # frames 14-18: the boxes overlap (IoU 0.71 at frame 16, where the centres pass);
        # frames 19-30: they separate; ids must not swap at any frame.
        cars = [(100 + 20 * (f - 1), 500, 0), (700 - 20 * (f - 1), 510, 1)]
        if f % 2:  # detection order alternates, so a det index cannot stand for a car
            cars = cars[::-1]
        out = tracker.update(frame(f, cars)).matches
        if f < 3:
            assert out == []
        else:
            for k, track_id in ids_by_car(out, cars).items():
                seen[k].add(track_id)
            assert len(out) == 2, f"frame {f}"
    assert len(seen[0]) == 1 and len(seen[1]) == 1 and seen[0] != seen[1]


def test_car_hidden_for_ten_frames_comes_back_with_its_id():
    tracker = DeepSortTracker(TrackerConfig(), fps=10)
    ids = set()
    for f in range(1, 31):
        x = 100 + 15 * (f - 1)  # constant velocity, 15 px/frame
        if 11 <= f <= 20:
            # frames 11-20: hidden behind a truck: no detection; the track is predicted on
            out = tracker.update(frame(f, [])).matches
            assert out == []
            assert len(tracker) == 1 and tracker.tracks()[0].time_since_update == f - 10
            continue
        # frames 1-10: seen (confirmed at 3); frames 21-30: seen again where the
        # motion model expects it: the cascade (level 11) matches it by appearance
        out = tracker.update(frame(f, [(x, 400, 0)])).matches
        if f >= 3:
            assert len(out) == 1
            ids.add(out[0][0])
    assert ids == {1}


def test_tentative_track_dies_at_its_first_miss():
    tracker = DeepSortTracker(TrackerConfig(), fps=10)
    # frame 1: a car appears: tentative track 1
    assert tracker.update(frame(1, [(300, 300, 0)])).matches == []
    assert [(t.track_id, t.confirmed, t.hits) for t in tracker.tracks()] == [(1, False, 1)]
    # frame 2: seen again: 2 hits, still tentative (n_init 3)
    assert tracker.update(frame(2, [(305, 300, 0)])).matches == []
    assert [(t.track_id, t.confirmed, t.hits) for t in tracker.tracks()] == [(1, False, 2)]
    # frame 3: missed: the tentative track is deleted at once
    assert tracker.update(frame(3, [])).matches == []
    assert tracker.tracks() == []
    # frame 4: the car is back: a new tentative track with a new id
    assert tracker.update(frame(4, [(315, 300, 0)])).matches == []
    assert [t.track_id for t in tracker.tracks()] == [2]


def test_gating_rejects_an_impossible_jump():
    tracker = DeepSortTracker(TrackerConfig(), fps=10)
    for f in range(1, 6):
        # frames 1-5: car 0 parked at x=200: confirmed track 1
        out = tracker.update(frame(f, [(200, 400, 0)])).matches
    assert out == [(1, 0)]
    # frame 6: the same-looking car is detected 1300 px away (appearance cost 0), far
    # outside the motion gate: it must not be matched to track 1; it starts track 2
    out = tracker.update(frame(6, [(1500, 400, 0)])).matches
    assert out == []
    views = {t.track_id: t for t in tracker.tracks()}
    assert views[1].time_since_update == 1 and views[1].confirmed
    assert views[2].hits == 1 and not views[2].confirmed
    # frame 7: the parked car is seen again where it was: track 1 takes it back
    out = tracker.update(frame(7, [(200, 400, 0)])).matches
    assert out == [(1, 0)]


def test_gate_threshold_is_a_config_option():
    # the same jump, but a gate wide enough to admit it: now track 1 takes the detection
    tracker = DeepSortTracker(TrackerConfig(gating_threshold=1e9), fps=10)
    for f in range(1, 6):
        tracker.update(frame(f, [(200, 400, 0)]))
    assert tracker.update(frame(6, [(1500, 400, 0)])).matches == [(1, 0)]


@pytest.mark.parametrize("max_age, max_age_s, fps", [(30, None, 10.0), (5, None, 10.0), (30, 1.0, 8.0)])
def test_confirmed_track_is_deleted_after_max_age(max_age, max_age_s, fps):
    cfg = TrackerConfig(max_age=max_age, max_age_s=max_age_s)
    age = cfg.max_age_frames(fps)
    assert age == (max_age if max_age_s is None else 8)
    tracker = DeepSortTracker(cfg, fps=fps)
    # frames 1-3: a car, confirmed at frame 3
    for f in range(1, 4):
        tracker.update(frame(f, [(500, 500, 0)]))
    assert tracker.tracks()[0].confirmed
    # frames 4 .. 3 + max_age: nothing seen; the track lives on (frames since update <= max_age)
    for f in range(4, 4 + age):
        assert tracker.update(frame(f, [])).matches == []
        assert len(tracker) == 1, f"frame {f}"
    # frame 4 + max_age: frames since update = max_age + 1 > max_age: deleted
    tracker.update(frame(4 + age, []))
    assert len(tracker) == 0


def test_empty_frames():
    tracker = DeepSortTracker(TrackerConfig(), fps=10)
    # frames 1-3: nothing at all (with and without an embedding array)
    assert tracker.update(Detections.empty(1)).matches == []
    assert tracker.update(Detections.empty(2, DIM)).matches == []
    assert tracker.update(frame(3, [])).matches == []
    assert len(tracker) == 0
    # frames 4-6: a car, confirmed at frame 6
    for f in range(4, 7):
        out = tracker.update(frame(f, [(400, 400, 0)])).matches
    assert out == [(1, 0)]
    # frame 9 after frame 6: frames 7 and 8 are processed as empty frames (the track is
    # predicted twice more); the car is matched where it stands
    assert tracker.update(frame(9, [(400, 400, 0)])).matches == [(1, 0)]
    # a frame number that does not increase is an error
    with pytest.raises(ValueError, match="frame 9: frames must increase"):
        tracker.update(frame(9, []))


def test_skipped_frames_track_like_empty_frames():
    a = DeepSortTracker(TrackerConfig(), fps=10)
    b = DeepSortTracker(TrackerConfig(), fps=10)
    stories = [(f, [(100 + 10 * f, 300, 0), (900 - 10 * f, 600, 1)]) for f in (1, 2, 3, 4, 8, 9, 10)]
    for f, cars in stories:
        # a: sees only frames with detections; b: is also given the empty frames 5-7
        if f == 8:
            for g in (5, 6, 7):
                b.update(frame(g, []))
        assert a.update(frame(f, cars)).matches == b.update(frame(f, cars)).matches


@pytest.mark.parametrize("motion_weight, swapped", [(0.0, True), (0.1, False)])
def test_combined_cost_separates_look_alikes(motion_weight, swapped):
    tracker = DeepSortTracker(TrackerConfig(motion_weight=motion_weight), fps=10)
    for f in range(1, 7):
        # frames 1-6: two identical-looking cars (same feature) parked 10 px apart, inside
        # each other's motion gate; confirmed at frame 3 as tracks 1 (x=100) and 2 (x=110)
        out = tracker.update(frame(f, [(100, 300, 0), (110, 300, 0)])).matches
    assert out == [(1, 0), (2, 1)]
    # frame 7: the detector lists them in the other order. With the pure appearance cost
    # (the reference, lambda 0) every pair costs 0: the tie is broken by order and the
    # ids swap; with lambda 0.1 the Mahalanobis term keeps each car with its track.
    out = tracker.update(frame(7, [(110, 300, 0), (100, 300, 0)])).matches
    assert out == ([(1, 0), (2, 1)] if swapped else [(1, 1), (2, 0)])


def test_motion_only_mode_needs_no_embeddings():
    tracker = DeepSortTracker(TrackerConfig(mode="motion_only"), fps=10)
    ids: dict[int, set[int]] = {0: set(), 1: set()}
    for f in range(1, 21):
        # frames 1-20: two cars 400 px apart drive down at 10 px/frame, no embeddings,
        # score 0.99 (motion_only starts tracks from 0.95, its preset's threshold);
        # frames 9-11: car 1 is missed; in frame 12 it is matched again by the gated
        # IoU of its predicted box (the motion-only cascade)
        cars = [(300, 100 + 10 * f, 0)] + ([] if 9 <= f <= 11 else [(700, 100 + 10 * f, 1)])
        out = tracker.update(frame(f, cars, embeddings=False, score=0.99)).matches
        for k, track_id in ids_by_car(out, cars).items():
            ids[k].add(track_id)
    assert ids == {0: {1}, 1: {2}}


def test_deep_sort_mode_without_embeddings_is_an_error():
    tracker = DeepSortTracker(TrackerConfig(), fps=10)
    with pytest.raises(ValueError, match="frame 1: .*no embeddings.*motion_only"):
        tracker.update(frame(1, [(100, 100, 0)], embeddings=False))


def test_degenerate_box_is_an_error():
    tracker = DeepSortTracker(TrackerConfig(mode="motion_only"), fps=10)
    dets = Detections(1, np.array([[10, 10, 10, 50]], np.float32), np.array([0.9], np.float32))
    with pytest.raises(ValueError, match="frame 1: detection 0 has box"):
        tracker.update(dets)


def test_ids_are_per_instance():
    # two cameras' trackers do not share an id counter
    a = DeepSortTracker(TrackerConfig(n_init=1), fps=10)
    b = DeepSortTracker(TrackerConfig(n_init=1), fps=10)
    for f in (1, 2):
        out_a = a.update(frame(f, [(100, 100, 0)])).matches
        out_b = b.update(frame(f, [(100, 100, 0)])).matches
    assert out_a == out_b == [(1, 0)]


# ---------------------------------------------------------------------------- tiny synthetic scenario
@pytest.fixture(scope="module")
def tiny_validation(tmp_path_factory):
    """The validation split (S02: 3 cameras of 320 x 192, one at 8 fps, ~6 s) of configs/synth/tiny.yaml."""
    from pathlib import Path

    from mct.config import load_config
    from mct.data.synth.config import SynthConfig
    from mct.data.synth.writer import generate

    root = tmp_path_factory.mktemp("tiny")
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "synth" / "tiny.yaml", model=SynthConfig)
    generate(cfg, root, ["validation"], progress=False)
    return root


def _single_camera_idf1(root, tracker_cfg, appearance_seed=None):
    """Per-camera IDF1 of tracking det/det_sim.txt (score >= 0.3) against every annotated box.

    The ground truth is ``synth_boxes.txt`` (all rendered vehicles; ``annotated = 0`` rows
    ignored), not gt.txt, which keeps only vehicles seen by two cameras (CityFlow's rule)
    and would count correct single-camera tracks as false positives.
    With ``appearance_seed``, every detection gets an oracle-like feature: the unit vector
    of the vehicle whose box it overlaps most (IoU >= 0.3) plus noise, or a random one.
    """
    from mct.data.aicity import load_dataset
    from mct.data.mot import MotRows, read_mot
    from mct.evaluate.mot import evaluate_mot
    from mct.track.config import TrackletConfig
    from mct.track.matching import iou_xyxy
    from mct.track.tracklets import TrackletBuilder, tracklets_to_mot_rows

    ds = load_dataset(root, "validation")
    rng = np.random.default_rng(appearance_seed)
    looks: dict[int, np.ndarray] = {}
    scores = {}
    for cam in ds.cameras:
        det = read_mot(ds.det_path(cam, "det_sim.txt"), "det")
        det = det[det.conf >= 0.3]
        boxes = np.loadtxt(cam.root / "synth_boxes.txt", delimiter=",", ndmin=2)
        truth = MotRows.from_arrays(boxes[:, 0].astype(int), boxes[:, 1].astype(int), boxes[:, 2:6], conf=boxes[:, 7])
        tracker = DeepSortTracker(tracker_cfg, cam.fps)
        builder = TrackletBuilder(TrackletConfig(), cam)
        for f in range(1, cam.num_frames + 1):
            dets = det.to_detections(f)
            if appearance_seed is not None:
                emb = rng.normal(size=(len(dets), 64))
                rows = truth.rows_in_frame(f)
                if len(dets) and len(rows):
                    iou = iou_xyxy(dets.xyxy, truth.xyxy[rows])
                    for i in np.flatnonzero(iou.max(axis=1) >= 0.3):
                        vid = int(truth.id[rows[iou[i].argmax()]])
                        looks.setdefault(vid, rng.normal(size=64))
                        emb[i] = looks[vid] + rng.normal(scale=0.3, size=64)
                dets = dets.with_embeddings(emb.astype(np.float32))
            builder.add(dets, tracker.update(dets))
        scores[cam.camera_id] = evaluate_mot(truth, tracklets_to_mot_rows(builder.finish())).idf1
    return scores


def test_single_camera_idf1_on_the_tiny_synthetic_scenario_motion_only(tiny_validation):
    # Measured 2026-12-05 (motion_only = the mct preset's options without appearance):
    # c001 0.701, c002 0.562, c003 0.370 (mean 0.544); the reference life cycle without
    # appearance (motion_only before issue #22) gave 0.717, 0.724, 0.626 on the same world:
    # the new-track threshold 0.95 (chosen on MOT15's detector) drops true cars here. The
    # simulated detector bounds it (boxes of 7-50 px). Floors: every camera >= 0.35, mean >= 0.5.
    scores = _single_camera_idf1(tiny_validation, TrackerConfig(mode="motion_only"))
    assert sorted(scores) == ["c001", "c002", "c003"]
    assert min(scores.values()) >= 0.35, scores
    assert np.mean(list(scores.values())) >= 0.5, scores


def test_single_camera_idf1_on_the_tiny_synthetic_scenario_with_appearance(tiny_validation):
    # The reference configuration with oracle-like features (see _single_camera_idf1).
    # On this sparse scene tracks are lost to the motion gate on tiny, jittery boxes, not
    # to ambiguity (measured 2026-11-25: the same per-camera IDF1 as the reference life
    # cycle without appearance, seeds 0-2).
    scores = _single_camera_idf1(tiny_validation, TrackerConfig(), appearance_seed=0)
    assert min(scores.values()) >= 0.35, scores
    assert np.mean(list(scores.values())) >= 0.5, scores


def test_tentative_hits_are_reported_apart_and_give_the_whole_track_to_the_tracklet():
    from mct.track.config import TrackletConfig
    from mct.track.tracklets import TrackletBuilder
    from mct.types import Camera

    cam = Camera("S01", "c001", fps=10.0, frame_size=(1280, 720))
    tracker = DeepSortTracker(TrackerConfig(), fps=10)
    faithful = TrackletBuilder(TrackletConfig(), cam)
    whole = TrackletBuilder(TrackletConfig(include_tentative=True), cam)
    for f in range(1, 9):
        # car 0 drives right from frame 1: tentative at frames 1-2, confirmed at frame 3;
        # car 1 is a false alarm at frames 4-5 only: tentative, gone at its first miss
        # (frame 6), so it must never reach a tracklet
        cars = [(100 + 20 * (f - 1), 300, 0)] + ([(900, 300, 1)] if f in (4, 5) else [])
        dets = frame(f, cars)
        out = tracker.update(dets)
        if f <= 2:
            assert out.matches == [] and [d for _, d in out.tentative] == [0]
        if f in (4, 5):
            assert [d for _, d in out.tentative] == [1]
        faithful.add(dets, out)
        whole.add(dets, out)
    (ref,), (full,) = faithful.finish(), whole.finish()
    assert ref.frames.tolist() == list(range(3, 9))  # the reference reports confirmed frames only
    assert full.frames.tolist() == list(range(1, 9))  # the tentative frames 1-2 come back
    assert full.track_id == ref.track_id
    np.testing.assert_allclose(full.xyxy[0], [50, 270, 150, 330])  # frame 1's box


def test_tentative_boxes_and_gap_filling_together_as_in_the_demo_config():
    # configs/demo.yaml turns both on: the tracklet gets the frames before confirmation and
    # the frames of a short miss (interpolated), and nothing else
    from pathlib import Path

    from mct.config import load_config
    from mct.track.tracklets import TrackletBuilder
    from mct.types import Camera

    demo = load_config(Path(__file__).resolve().parents[2] / "configs" / "demo.yaml").tracklets
    assert demo.include_tentative and demo.max_interpolation_gap == 10
    cam = Camera("S01", "c001", fps=10.0, frame_size=(1280, 720))
    tracker = DeepSortTracker(TrackerConfig(), fps=10)
    builder = TrackletBuilder(demo.model_copy(update={"min_feature_area_px": 0.0}), cam)
    for f in range(1, 11):
        # one car driving right; the detector misses it at frames 5 and 6
        dets = frame(f, [] if f in (5, 6) else [(100 + 20 * (f - 1), 300, 0)])
        builder.add(dets, tracker.update(dets))
    (t,) = builder.finish()
    assert t.frames.tolist() == list(range(1, 11))
    assert t.det_indices.tolist() == [0, 0, 0, 0, -1, -1, 0, 0, 0, 0]
    np.testing.assert_allclose(t.scores[4:6], 0.0)
    # the filled boxes lie on the line between the boxes of frames 4 and 7
    np.testing.assert_allclose(t.xyxy[4], (t.xyxy[3] * 2 + t.xyxy[6]) / 3, atol=1e-4)
