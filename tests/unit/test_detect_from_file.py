"""Precomputed detections (det files) and gt-as-detections, through the common filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mct.detect import DETECTORS, build_detector
from mct.detect.config import DetectorConfig
from mct.detect.filters import in_roi
from mct.types import Camera


def _camera(tmp_path: Path, roi: np.ndarray | None = None) -> Camera:
    folder = tmp_path / "train" / "S01" / "c001"
    (folder / "det").mkdir(parents=True)
    (folder / "gt").mkdir(parents=True)
    # frame 1: a big confident box, a faint one, a tiny one; frame 3: one box low in the image
    (folder / "det" / "det_mask_rcnn.txt").write_text(
        "1,-1,10,10,40,30,0.95,-1,-1,-1\n"
        "1,-1,60,10,40,30,0.20,-1,-1,-1\n"
        "1,-1,5,50,3,3,0.90,-1,-1,-1\n"
        "3,-1,20,60,30,19,0.80,-1,-1,-1\n"
    )
    # MOTChallenge gt: the second row of frame 2 is flagged "ignore" (column 7 = 0)
    (folder / "gt" / "gt.txt").write_text("2,7,10,10,40,30,1,-1,-1,-1\n2,8,60,10,40,30,0,-1,-1,-1\n")
    return Camera("S01", "c001", frame_size=(100, 80), roi_mask=roi, root=folder)


def test_file_source_applies_score_and_area_filters(tmp_path):
    cam = _camera(tmp_path)
    det = DETECTORS["file"](DetectorConfig(source="file", det_file="det_mask_rcnn.txt", min_score=0.3, min_area=20), cam)
    assert det.needs_frames is False
    out = det.detect([1, 2, 3], None)
    # frame 1: the faint box (0.20) and the 3x3 box (9 px^2) go; frame 2: nothing; frame 3: one
    assert [d.frame for d in out] == [1, 2, 3]
    assert [len(d) for d in out] == [1, 0, 1]
    np.testing.assert_allclose(out[0].xyxy, [[10, 10, 50, 40]])
    assert out[0].scores.tolist() == pytest.approx([0.95]) and out[0].class_ids.tolist() == [0]


def test_file_source_roi_rule(tmp_path):
    roi = np.ones((80, 100), bool)
    roi[70:, :] = False  # the bottom strip is outside the ROI
    cam = _camera(tmp_path, roi)
    cfg = DetectorConfig(source="file", det_file="det_mask_rcnn.txt", min_score=0.0)
    # frame 3's box bottom edge is y = 79: its bottom-centre pixel is outside the ROI
    assert len(build_detector(cfg, cam).detect([3])[0]) == 0
    # with the ROI ignored it stays
    assert len(build_detector(cfg.model_copy(update={"roi_rule": "none"}), cam).detect([3])[0]) == 1


def test_class_filter_drops_file_boxes_without_the_vehicle_class(tmp_path):
    cam = _camera(tmp_path)
    cfg = DetectorConfig(source="file", det_file="det_mask_rcnn.txt", min_score=0.0, classes=("car", "truck"))
    assert sum(len(d) for d in build_detector(cfg, cam).detect([1, 3])) == 0
    with pytest.raises(ValueError, match="unknown class 'lorry'"):
        build_detector(cfg.model_copy(update={"classes": ("lorry",)}), cam).detect([1])


def test_gt_source_feeds_gt_boxes_with_score_one(tmp_path):
    cam = _camera(tmp_path)
    out = DETECTORS["gt"](DetectorConfig(source="gt", min_score=0.5), cam).detect([1, 2])
    # frame 2: only the evaluated row (id 7); the ignored one is left out
    assert [len(d) for d in out] == [0, 1]
    assert out[1].scores.tolist() == [1.0]
    np.testing.assert_allclose(out[1].xyxy, [[10, 10, 50, 40]])


def test_missing_files_are_clear_errors(tmp_path):
    cam = _camera(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"det/det_yolo3.txt"):
        build_detector(DetectorConfig(source="file", det_file="det_yolo3.txt"), cam)
    with pytest.raises(ValueError, match="has no folder"):
        build_detector(DetectorConfig(source="gt"), Camera("S01", "c002"))


def test_det_file_may_be_a_path(tmp_path):
    cam = _camera(tmp_path)
    path = tmp_path / "elsewhere.txt"
    path.write_text("4,-1,1,1,10,10,0.5\n")  # MOT det file with 7 columns
    out = build_detector(DetectorConfig(source="file", det_file=str(path), min_score=0.0, roi_rule="none"), cam).detect([4])
    np.testing.assert_allclose(out[0].xyxy, [[1, 1, 11, 11]])


def test_roi_rules_by_hand():
    roi = np.zeros((10, 10), bool)
    roi[5:, :] = True  # the lower half
    xyxy = np.array([[2, 1, 6, 8], [2, 1, 6, 4], [-5, 6, 3, 12]], np.float32)
    # box 0: bottom-centre (4, 7) inside; top corners outside -> fails all_corners
    # box 1: bottom-centre (4, 3) outside
    # box 2: bottom-centre clipped to (0, 9) inside; corners outside the image are ignored
    assert in_roi(xyxy, roi, "bottom_centre").tolist() == [True, False, True]
    assert in_roi(xyxy, roi, "all_corners").tolist() == [False, False, True]
    assert in_roi(xyxy, None, "all_corners").tolist() == [True, True, True]
    assert in_roi(np.zeros((0, 4)), roi, "bottom_centre").shape == (0,)
