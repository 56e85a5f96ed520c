"""CLEAR-MOT / IDF1 core: golden devkit numbers, hand-built stories, empty inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mct.evaluate.metrics import TrackBoxes, evaluate_boxes, iou_distance_tlwh

DATA = Path(__file__).resolve().parents[1] / "data" / "motchallenge"


def _load(path: Path) -> TrackBoxes:
    a = np.loadtxt(path, delimiter=",")
    return TrackBoxes(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2:6])


# The MOTChallenge devkit's values for the files the motmetrics 1.4.0 wheel ships
# (py-motmetrics tests/test_metrics.py::test_motchallenge_files; cityflow.md lists the
# first five). motp is motmetrics' convention there: mean (1 - IoU) of the matches.
DEVKIT = {
    "TUD-Campus": dict(
        idf1=0.557659, idp=0.729730, idr=0.451253, recall=0.582173, precision=0.941441,
        num_unique_objects=8, mostly_tracked=1, partially_tracked=6, mostly_lost=1,
        num_false_positives=13, num_misses=150, num_switches=7, num_fragmentations=7,
        mota=0.526462, motp_distance=0.277201,
    ),
    "TUD-Stadtmitte": dict(
        idf1=0.644619, idp=0.819760, idr=0.531142, recall=0.608997, precision=0.939920,
        num_unique_objects=10, mostly_tracked=5, partially_tracked=4, mostly_lost=1,
        num_false_positives=45, num_misses=452, num_switches=7, num_fragmentations=6,
        mota=0.564014, motp_distance=0.345904,
    ),
}


@pytest.mark.parametrize("name", sorted(DEVKIT))
def test_reproduces_motchallenge_devkit(name: str) -> None:
    metrics, _ = evaluate_boxes(_load(DATA / name / "gt.txt"), _load(DATA / name / "test.txt"))
    got = metrics.as_dict()
    got["motp_distance"] = 1.0 - metrics.motp
    for key, want in DEVKIT[name].items():
        assert got[key] == pytest.approx(want, abs=1e-4), key


def _boxes(rows: list[tuple[int, int, float, float, float, float]]) -> TrackBoxes:
    if not rows:
        return TrackBoxes.empty()
    a = np.asarray(rows, dtype=np.float64)
    return TrackBoxes(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2:6])


def test_iou_distance_matches_hand_values() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 20]], float)
    # identical: IoU 1; half overlap: 50/150; disjoint: 0; contained: 100/200
    np.testing.assert_allclose(iou_distance_tlwh(a, b), [0.0, 1 - 50 / 150, 1.0, 0.5])


def test_identity_switch_story() -> None:
    # One car (gt id 1) over 4 frames; the tracker calls it 7, then 8 from frame 3.
    gt = _boxes([(f, 1, 10, 10, 20, 20) for f in range(1, 5)])
    pred = _boxes([(1, 7, 10, 10, 20, 20), (2, 7, 10, 10, 20, 20), (3, 8, 10, 10, 20, 20), (4, 8, 10, 10, 20, 20)])
    m, d = evaluate_boxes(gt, pred)
    # frame 3: 1 was matched to 7 before, now 8 -> one switch; frame 4 keeps 8 -> match
    assert m.num_switches == 1 and m.num_misses == 0 and m.num_false_positives == 0
    assert m.mota == pytest.approx(1 - 1 / 4)
    # identity: 1 <-> 7 (or 8), 2 of 4 frames each: IDTP 2, IDF1 = 2*2 / (4 + 4)
    assert m.idtp == 2 and m.idf1 == pytest.approx(0.5)
    assert d.gt_switch.tolist() == [False, False, True, False]


def test_keeps_previous_correspondence_over_a_better_iou() -> None:
    # frame 1: gt 1 matched to pred 5 (exact box); pred 6 absent.
    # frame 2: pred 6 fits gt 1 perfectly, pred 5 still overlaps (IoU 0.6): 1 keeps 5,
    #          6 becomes a false positive (py-motmetrics / devkit rule 1).
    gt = _boxes([(1, 1, 0, 0, 10, 10), (2, 1, 0, 0, 10, 10)])
    pred = _boxes([(1, 5, 0, 0, 10, 10), (2, 5, 0, 0, 10, 6), (2, 6, 0, 0, 10, 10)])
    m, d = evaluate_boxes(gt, pred)
    assert m.num_switches == 0 and m.num_false_positives == 1
    assert d.gt_iou.tolist() == pytest.approx([1.0, 0.6])


def test_fragmentation_and_track_ratios() -> None:
    # gt 1 over 6 frames; matched in 1, 2, missed 3, matched 4, missed 5, 6.
    gt = _boxes([(f, 1, 0, 0, 10, 10) for f in range(1, 7)])
    pred = _boxes([(f, 3, 0, 0, 10, 10) for f in (1, 2, 4)])
    m, _ = evaluate_boxes(gt, pred)
    # one interruption inside the matched span (frame 3); the trailing misses are no fragment
    assert m.num_fragmentations == 1
    assert (m.mostly_tracked, m.partially_tracked, m.mostly_lost) == (0, 1, 0)  # 3/6 tracked
    assert m.num_misses == 3 and m.recall == pytest.approx(0.5)


def test_threshold_is_inclusive_at_half() -> None:
    # IoU exactly 0.5 (a 10x10 box inside a 10x20 box) counts as a match.
    m, _ = evaluate_boxes(_boxes([(1, 1, 0, 0, 10, 20)]), _boxes([(1, 2, 0, 0, 10, 10)]))
    assert m.num_matches == 1 and m.idtp == 1


def test_empty_prediction_and_empty_ground_truth() -> None:
    gt = _boxes([(1, 1, 0, 0, 10, 10), (2, 1, 0, 0, 10, 10)])
    m, _ = evaluate_boxes(gt, TrackBoxes.empty())
    assert m.idf1 == 0.0 and np.isnan(m.idp) and m.idr == 0.0
    assert m.num_misses == 2 and m.mota == 0.0 and m.mostly_lost == 1
    m, _ = evaluate_boxes(TrackBoxes.empty(), gt)
    assert m.num_false_positives == 2 and np.isnan(m.mota) and m.idf1 == 0.0
    m, _ = evaluate_boxes(TrackBoxes.empty(), TrackBoxes.empty())
    assert m.num_frames == 0 and np.isnan(m.idf1)


def _crowded_scene(seed: int = 7, n_obj: int = 10, n_frames: int = 60):
    """Pairs of cars driving side by side (boxes a few pixels apart: ambiguous matches) in a small area; predicted ids change now and then; integer
    jitter (so equal IoUs occur). Returns (gt, pred) float arrays: frame, id, left, top, w, h."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, 60, (n_obj, 2)).astype(float)
    vel = rng.integers(-2, 3, (n_obj, 2)).astype(float)
    start[1::2] = start[0::2] + rng.integers(2, 6, (n_obj // 2, 2))  # cars in side-by-side pairs
    vel[1::2] = vel[0::2]
    pid = np.arange(n_obj) + 100
    gt, pred = [], []
    for f in range(1, n_frames + 1):
        pos = start + vel * f
        for o in range(n_obj):
            if rng.random() < 0.08:
                continue
            gt.append((f, o + 1, pos[o, 0], pos[o, 1], 30, 20))
            if rng.random() < 0.12:
                continue
            if rng.random() < 0.06:
                pid[o] = 100 + rng.integers(0, n_obj + 2)
            j = rng.integers(-6, 7, 2)
            pred.append((f, pid[o], pos[o, 0] + j[0], pos[o, 1] + j[1], 30 + rng.integers(-4, 5), 20))
        if rng.random() < 0.3:
            pred.append((f, 200 + rng.integers(0, 2), rng.integers(0, 120), rng.integers(0, 120), 30, 20))
    gt, pred = np.array(gt, float), np.array(pred, float)
    _, first = np.unique(pred[:, :2], axis=0, return_index=True)  # one box per (frame, id)
    return gt, pred[np.sort(first)]


def test_crowded_scene_matches_motmetrics_golden() -> None:
    # Golden numbers from py-motmetrics 1.4.0 (compare_to_groundtruth, 'iou', distth 0.5;
    # run with np.asfarray restored for NumPy 2) on this fixed-seed scene. 13 of its frames
    # need the full minimum-cost assignment (ambiguous pairs), and it has 52 switches.
    g, p = _crowded_scene()
    m, _ = evaluate_boxes(
        TrackBoxes(g[:, 0].astype(np.int64), g[:, 1].astype(np.int64), g[:, 2:6]),
        TrackBoxes(p[:, 0].astype(np.int64), p[:, 1].astype(np.int64), p[:, 2:6]),
    )
    want = dict(idf1=0.425131, idp=0.5075, idr=0.365766, mota=0.288288, num_switches=52, num_false_positives=94,
                num_misses=249, num_fragmentations=103, mostly_tracked=0, partially_tracked=9, mostly_lost=1,
                idtp=203, num_objects=555, num_predictions=400, num_frames=60)
    got = m.as_dict()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    assert 1.0 - m.motp == pytest.approx(0.353117, abs=1e-6)


def test_duplicate_ground_truth_id_in_a_frame_follows_motmetrics() -> None:
    # frame 1: gt id 1 has one box, matched to pred 20 (m[1] = 20).
    # frame 2: gt id 1 has two boxes A (at 0,0) and B (at 50,50); pred 10 sits on A, pred 20 on B.
    #   motmetrics: rule 1 gives B the remembered pred 20 (no switch); rule 2 gives A pred 10,
    #   a switch because m[1] = 20 -> exactly one switch.
    gt = _boxes([(1, 1, 50, 50, 10, 10), (2, 1, 0, 0, 10, 10), (2, 1, 50, 50, 10, 10)])
    pred = _boxes([(1, 20, 50, 50, 10, 10), (2, 10, 0, 0, 10, 10), (2, 20, 50, 50, 10, 10)])
    m, _ = evaluate_boxes(gt, pred)
    assert m.num_switches == 1 and m.num_misses == 0
