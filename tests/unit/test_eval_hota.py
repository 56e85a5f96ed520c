"""HOTA (mct.evaluate.hota): hand-counted stories, golden values, and TrackEval as the oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mct.data.mot import read_mot
from mct.evaluate.hota import ALPHAS, HotaCounts, hota, hota_counts, iou_tlwh_trackeval
from mct.evaluate.metrics import TrackBoxes
from mct.evaluate.mot import evaluate_mot
from mct.track.config import TrackerConfig
from mct.track.deep_sort import DeepSortTracker
from mct.types import Detections

DATA = Path(__file__).resolve().parents[1] / "data" / "motchallenge"
MOT15 = Path(__file__).resolve().parents[3] / "shared" / "data" / "mot15"


def _boxes(rows: list[tuple[int, int, float, float, float, float]]) -> TrackBoxes:
    a = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return TrackBoxes(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2:])


def test_alphas_are_trackevals() -> None:
    assert len(ALPHAS) == 19 and ALPHAS[0] == pytest.approx(0.05) and ALPHAS[-1] == pytest.approx(0.95)


def test_perfect_tracking_scores_one() -> None:
    # frames 1-3: two objects, predicted exactly, ids renamed (only consistency matters)
    gt = _boxes([(f, i, 10 * f + 100 * i, 0, 20, 40) for f in (1, 2, 3) for i in (1, 2)])
    pred = TrackBoxes(gt.frame, gt.obj_id + 7, gt.tlwh)
    h = hota(gt, pred)
    assert h.hota == pytest.approx(1.0) and h.det_a == pytest.approx(1.0)
    assert h.ass_a == pytest.approx(1.0) and h.loc_a == pytest.approx(1.0)


def test_an_id_switch_halves_association() -> None:
    # frames 1-4: one object, found exactly every frame; the tracker calls it 1 in frames
    # 1-2 and 2 in frames 3-4. Each TP's pair (gt, 1) or (gt, 2) has TPA 2, FNA 2, FPA 0:
    # A = 2 / 4; DetA = 1 at every alpha, so HOTA = sqrt(0.5)
    gt = _boxes([(f, 1, 0, 0, 10, 10) for f in (1, 2, 3, 4)])
    pred = _boxes([(1, 1, 0, 0, 10, 10), (2, 1, 0, 0, 10, 10), (3, 2, 0, 0, 10, 10), (4, 2, 0, 0, 10, 10)])
    h = hota(gt, pred)
    assert h.det_a == pytest.approx(1.0)
    assert h.ass_a == pytest.approx(0.5)
    assert h.hota == pytest.approx(np.sqrt(0.5))


def test_localisation_threshold_counts_a_loose_box_only_at_low_alphas() -> None:
    # frame 1: the predicted box overlaps the gt box with IoU 0.5: a TP for alpha <= 0.5
    # (10 of the 19 alphas), a FN and a FP above
    gt = _boxes([(1, 1, 0, 0, 10, 10)])
    pred = _boxes([(1, 1, 0, 0, 10, 5)])
    c = hota_counts(gt, pred)
    assert c.tp.tolist() == [1.0] * 10 + [0.0] * 9
    assert c.fn.tolist() == [0.0] * 10 + [1.0] * 9
    assert c.summary().det_a == pytest.approx(10 / 19)
    assert c.summary().loc_a == pytest.approx((10 * 0.5 + 9 * 1.0) / 19)  # TrackEval: LocA 1 where no TP


def test_empty_prediction_and_empty_ground_truth() -> None:
    gt = _boxes([(1, 1, 0, 0, 10, 10), (2, 1, 0, 0, 10, 10)])
    none = TrackBoxes.empty()
    c = hota_counts(gt, none)
    assert c.fn.tolist() == [2.0] * 19 and c.summary().hota == 0.0
    c = hota_counts(none, gt)
    assert c.fp.tolist() == [2.0] * 19 and c.summary().hota == 0.0


def test_counts_add_up_over_sequences() -> None:
    gt = _boxes([(f, 1, 0, 0, 10, 10) for f in (1, 2)])
    pred = _boxes([(1, 1, 0, 0, 10, 10)])
    both = hota_counts(gt, pred) + hota_counts(gt, gt)
    assert both.tp[0] == 3 and both.fn[0] == 1
    assert isinstance(both, HotaCounts)


def test_iou_is_trackevals_formula() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 10]], float)  # the second box is empty
    b = np.array([[5, 0, 10, 10]], float)
    assert iou_tlwh_trackeval(a, b)[:, 0].tolist() == pytest.approx([50 / 150, 0.0])


def test_golden_tud_campus() -> None:
    # values of trackeval 1.3.0's HOTA on these files (MOT15 rules: gt flag 0 dropped)
    gt = read_mot(DATA / "TUD-Campus" / "gt.txt", "gt")
    pred = read_mot(DATA / "TUD-Campus" / "test.txt", "pred")
    m = evaluate_mot(gt, pred)
    assert m.hota == pytest.approx(GOLDEN_TUD_CAMPUS[0], abs=1e-6)
    assert m.det_a == pytest.approx(GOLDEN_TUD_CAMPUS[1], abs=1e-6)
    assert m.ass_a == pytest.approx(GOLDEN_TUD_CAMPUS[2], abs=1e-6)
    assert m.loc_a == pytest.approx(GOLDEN_TUD_CAMPUS[3], abs=1e-6)


#: HOTA, DetA, AssA, LocA of TUD-Campus/test.txt by trackeval 1.3.0
GOLDEN_TUD_CAMPUS = (0.3913974378451139, 0.418047030142763, 0.36912068120832836, 0.770052224050817)


# ---------------------------------------------------------------------------- TrackEval oracle
def _trackeval_sequence(gt: TrackBoxes, pred: TrackBoxes) -> dict:
    """TrackEval's HOTA of one sequence, its data dict built as its MOT loader does."""
    from trackeval.datasets._base_dataset import _BaseDataset
    from trackeval.metrics import HOTA

    frames = np.union1d(gt.frame, pred.frame)
    g_u, g_c = np.unique(gt.obj_id, return_inverse=True)
    p_u, p_c = np.unique(pred.obj_id, return_inverse=True)
    data: dict = {"gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    g_order, p_order = np.argsort(gt.frame, kind="stable"), np.argsort(pred.frame, kind="stable")
    for f in frames:
        gi = g_order[gt.frame[g_order] == f]
        pi = p_order[pred.frame[p_order] == f]
        data["gt_ids"].append(g_c[gi])
        data["tracker_ids"].append(p_c[pi])
        data["similarity_scores"].append(
            _BaseDataset._calculate_box_ious(gt.tlwh[gi].copy(), pred.tlwh[pi].copy(), box_format="xywh")
        )
    data.update(num_gt_ids=len(g_u), num_tracker_ids=len(p_u), num_gt_dets=len(gt), num_tracker_dets=len(pred),
                num_timesteps=len(frames))
    return HOTA().eval_sequence(data)


def _similarities_by_trackeval(gt: TrackBoxes, pred: TrackBoxes) -> None:
    """TrackEval's own IoU function agrees with ours (so the oracle below tests the metric, not the IoU)."""
    from trackeval.datasets._base_dataset import _BaseDataset

    ours = iou_tlwh_trackeval(gt.tlwh[:50], pred.tlwh[:50])
    theirs = _BaseDataset._calculate_box_ious(gt.tlwh[:50].copy(), pred.tlwh[:50].copy(), box_format="xywh")
    np.testing.assert_array_equal(ours, theirs)


def _mot15_sequence(name: str) -> tuple[TrackBoxes, TrackBoxes]:
    """The sequence's gt (flag 0 dropped) and a motion-only track of SORT's detections."""
    folder = MOT15 / name
    det = np.loadtxt(folder / "det.txt", delimiter=",", ndmin=2)
    gt = np.loadtxt(folder / "gt.txt", delimiter=",", ndmin=2)
    tracker = DeepSortTracker(TrackerConfig(mode="motion_only"), 30.0)
    rows = []
    for f in range(1, int(det[:, 0].max()) + 1):
        d = det[det[:, 0] == f]
        xyxy = np.concatenate([d[:, 2:4], d[:, 2:4] + d[:, 4:6]], axis=1).astype(np.float32)
        dets = Detections(f, xyxy, d[:, 6].astype(np.float32))
        for track_id, k in tracker.update(dets).matches:
            rows.append((f, track_id, *d[k, 2:6]))
    keep = gt[:, 6] != 0
    return TrackBoxes(gt[keep, 0].astype(np.int64), gt[keep, 1].astype(np.int64), gt[keep, 2:6]), _boxes(rows)


MOT15_SEQUENCES = tuple(sorted(p.name for p in MOT15.iterdir() if (p / "gt.txt").is_file())) if MOT15.is_dir() else ()


@pytest.mark.skipif(not MOT15.is_dir(), reason="../shared/data/mot15 not present")
def test_equal_to_trackeval_on_mot15() -> None:
    pytest.importorskip("trackeval")
    from trackeval.metrics import HOTA

    per_seq = {}
    ours_total = HotaCounts()
    for name in MOT15_SEQUENCES:
        gt, pred = _mot15_sequence(name)
        _similarities_by_trackeval(gt, pred)
        theirs = _trackeval_sequence(gt, pred)
        counts = hota_counts(gt, pred)
        ours = counts.per_alpha()
        for key in ("HOTA", "DetA", "AssA", "LocA", "AssRe", "AssPr"):
            np.testing.assert_allclose(ours[key], theirs[key], atol=1e-9, err_msg=f"{name} {key}")
        np.testing.assert_array_equal(counts.tp, theirs["HOTA_TP"])
        per_seq[name] = theirs
        ours_total = ours_total + counts
    combined = HOTA().combine_sequences(per_seq)
    ours = ours_total.per_alpha()
    for key in ("HOTA", "DetA", "AssA", "LocA"):
        np.testing.assert_allclose(ours[key], combined[key], atol=1e-9, err_msg=f"combined {key}")
    assert ours_total.summary().hota == pytest.approx(float(np.mean(combined["HOTA"])), abs=1e-6)


def test_single_camera_table_shows_hota() -> None:
    from mct.evaluate.report import mot_rows

    gt = read_mot(DATA / "TUD-Campus" / "gt.txt", "gt")
    m = evaluate_mot(gt, read_mot(DATA / "TUD-Campus" / "test.txt", "pred"))
    row = mot_rows({1: m})[0]
    assert row["HOTA"] == f"{100 * GOLDEN_TUD_CAMPUS[0]:.2f}" and row["AssA"] == f"{100 * GOLDEN_TUD_CAMPUS[2]:.2f}"
