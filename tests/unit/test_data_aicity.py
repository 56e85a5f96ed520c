"""The AI City loader on tiny hand-written trees: what it reads, its rules, and its errors."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from mct.data.aicity import (
    FPS_FROM_DEFAULT,
    FPS_FROM_VIDEO,
    AICityFormatError,
    dataset_from_config,
    load_dataset,
    read_camera_table,
    read_roi,
)
from mct.data.config import DatasetConfig
from mct.data.mot import read_mot
from tests.helpers import TINY_HOMOGRAPHY, TinyCamera, write_aicity_tree


def test_loads_every_part(tmp_path: Path) -> None:
    root = write_aicity_tree(tmp_path)
    ds = load_dataset(root, "train")
    assert [c.key for c in ds.cameras] == [("S01", "c001"), ("S01", "c002")]
    assert ds.scenarios == ["S01"] and len(ds) == 2
    c1, c2 = ds.cameras
    # fps from the video headers (10 and 8), offsets from cam_timestamp, counts from cam_framenum
    assert (c1.fps, c2.fps) == (10.0, 8.0)
    assert ds.fps_sources == {c1.key: FPS_FROM_VIDEO, c2.key: FPS_FROM_VIDEO}
    assert (c1.time_offset_s, c2.time_offset_s) == (0.0, 1.5)
    assert c1.num_frames == 2 and c1.frame_size == (16, 16)
    assert c1.video_path == root / "train" / "S01" / "c001" / "vdo.avi"
    assert c1.root == root / "train" / "S01" / "c001"
    np.testing.assert_array_equal(c1.homography, TINY_HOMOGRAPHY)
    assert ds.calibration(c1).reprojection_error == 0.5
    # ROI: columns 0..11 white in the file
    assert c1.roi_mask.shape == (16, 16)
    assert c1.roi_mask[:, :12].all() and not c1.roi_mask[:, 12:].any()
    # gt, det and evaluation ground truth paths, and they parse
    assert read_mot(ds.gt_path(c1), "gt").id.tolist() == [1, 1]
    assert ds.det_names(c1) == ["test"]
    for name in ("test", "det_test", "det_test.txt"):
        assert ds.det_path(c1, name) == c1.root / "det" / "det_test.txt"
    assert read_mot(ds.det_path(("S01", "c002"), "test"), "det").conf.tolist() == pytest.approx([0.9, 0.8])
    assert ds.ground_truth_path() == root / "eval" / "ground_truth_train.txt"
    assert ds.ground_truth_path("train") == ds.ground_truth_path()
    assert ds.camera("S01", "c002") is c2
    assert ds.read_gt(c1).frame.tolist() == [1, 2] and len(ds.read_det(c2, "test")) == 2
    # provided single-camera tracking results (mtsc/), when present
    assert ds.mtsc_names(c1) == []
    (c1.root / "mtsc").mkdir()
    (c1.root / "mtsc" / "mtsc_tc_mask_rcnn.txt").write_text("1,3,2,2,6,5\n")
    assert ds.mtsc_names(c1) == ["tc_mask_rcnn"]
    assert read_mot(ds.mtsc_path(c1, "tc_mask_rcnn"), "pred").id.tolist() == [3]
    with pytest.raises(FileNotFoundError, match=re.escape("mtsc_deepsort.txt: single-camera tracking file not found (available: tc_mask_rcnn)")):
        ds.mtsc_path(c1, "deepsort")


def test_optional_parts_absent(tmp_path: Path) -> None:
    # test split: no video, no roi, no calibration, no gt, no dets, no cam_framenum, no eval file
    bare = TinyCamera("c015", video=False, roi=False, calibration=False, gt=(), dets=())
    other = TinyCamera("c041", video=False, roi=False, calibration=False, gt=(), dets=())
    root = write_aicity_tree(tmp_path, split="test", scenario="S06", cameras=(bare, other), eval_gt=False, framenum=False)
    ds = load_dataset(root, "test")
    c15, c41 = ds.cameras
    # no video: fps by the documented default (c015 runs at 8 fps in CityFlowV2, others at 10)
    assert (c15.fps, c41.fps) == (8.0, 10.0)
    assert ds.fps_sources[c15.key] == FPS_FROM_DEFAULT
    assert c15.video_path is None and c15.roi_mask is None and c15.homography is None
    assert c15.num_frames is None and c15.frame_size is None
    assert ds.calibration(c15) is None
    assert ds.gt_path(c15) is None and ds.read_gt(c15) is None and ds.det_names(c15) == []
    assert ds.ground_truth_path() is None
    with pytest.raises(FileNotFoundError, match=re.escape(f"{c15.root}/gt/gt.txt: ground truth not found")):
        ds.gt_path(c15, required=True)
    with pytest.raises(FileNotFoundError, match=re.escape("det_mask_rcnn.txt: detection file not found (available: none)")):
        ds.det_path(c15, "mask_rcnn")
    # other defaults can be configured
    ds2 = load_dataset(root, "test", default_fps=25.0, default_fps_by_camera={})
    assert [c.fps for c in ds2.cameras] == [25.0, 25.0]


def test_frame_size_from_roi_without_video(tmp_path: Path) -> None:
    root = write_aicity_tree(tmp_path, cameras=(TinyCamera("c001", video=False),), size=(20, 12))
    cam = load_dataset(root, "train").cameras[0]
    assert cam.frame_size == (20, 12) and cam.roi_mask.shape == (12, 20)
    # the frame count still comes from cam_framenum
    assert cam.num_frames == 2


def test_num_frames_from_video_without_framenum(tmp_path: Path) -> None:
    root = write_aicity_tree(tmp_path, cameras=(TinyCamera("c001", num_frames=3),), framenum=False)
    assert load_dataset(root, "train").cameras[0].num_frames == 3


def test_roi_threshold(tmp_path: Path) -> None:
    # JPEG of a flat grey: 120 is outside, 140 inside (threshold 128, documented)
    for value, inside in ((120, False), (140, True)):
        path = tmp_path / f"roi_{value}.jpg"
        cv2.imwrite(str(path), np.full((8, 8), value, np.uint8))
        assert read_roi(path).all() == inside and read_roi(path).any() == inside
    assert read_roi(tmp_path / "roi_120.jpg", min_value=100).all()
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"no image")
    with pytest.raises(AICityFormatError, match=re.escape(f"{bad}: cannot be read as an image")):
        read_roi(bad)


def test_scenario_and_camera_filters(tmp_path: Path) -> None:
    # S05 reuses S03's camera id c010: everything is keyed by (scenario, camera)
    write_aicity_tree(tmp_path, split="validation", scenario="S02", cameras=(TinyCamera("c006"), TinyCamera("c010")))
    write_aicity_tree(tmp_path, split="validation", scenario="S05", cameras=(TinyCamera("c010"), TinyCamera("c016")))
    ds = load_dataset(tmp_path, "validation")
    assert [c.key for c in ds.cameras] == [("S02", "c006"), ("S02", "c010"), ("S05", "c010"), ("S05", "c016")]
    assert ds.camera("S05", "c010") is not ds.camera("S02", "c010")
    assert [c.key for c in load_dataset(tmp_path, "validation", scenarios=("S05",)).cameras] == [("S05", "c010"), ("S05", "c016")]
    assert [c.key for c in load_dataset(tmp_path, "validation", cameras=("c010",)).cameras] == [("S02", "c010"), ("S05", "c010")]
    # a bare string is one name, not a sequence of characters
    assert [c.key for c in load_dataset(tmp_path, "validation", "S02", "c010").cameras] == [("S02", "c010")]
    assert [c.key for c in load_dataset(tmp_path, "validation", cameras=("S05/c010", "c006")).cameras] == [
        ("S02", "c006"),
        ("S05", "c010"),
    ]
    with pytest.raises(FileNotFoundError, match=re.escape("scenario S09 not found (available: S02, S05)")):
        load_dataset(tmp_path, "validation", scenarios=("S09",))
    with pytest.raises(FileNotFoundError, match=re.escape("camera c099 not found in scenarios S02, S05")):
        load_dataset(tmp_path, "validation", cameras=("c099",))
    with pytest.raises(FileNotFoundError, match=re.escape("camera S02/c016 not found")):
        load_dataset(tmp_path, "validation", cameras=("S02/c016",))
    with pytest.raises(ValueError, match="camera id 'cam1'"):
        load_dataset(tmp_path, "validation", cameras=("cam1",))
    with pytest.raises(KeyError, match="no camera S01/c006"):
        ds.camera("S01", "c006")


def test_missing_required_parts(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'nope'}: dataset folder not found")):
        load_dataset(tmp_path / "nope", "train")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path}/empty/train: no scenario folders (S01, S02, ...)")):
        load_dataset(tmp_path / "empty", "train")
    (tmp_path / "empty" / "train" / "S01").mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path}/empty/train: no camera folders (c001, c002, ...) in S01")):
        load_dataset(tmp_path / "empty", "train")
    root = write_aicity_tree(tmp_path)
    with pytest.raises(FileNotFoundError, match=re.escape(f"{root / 'test'}: split folder not found (folders in {root}: ")):
        load_dataset(root, "test")
    # no timestamp line for c002
    (root / "cam_timestamp" / "S01.txt").write_text("c001 0\n")
    with pytest.raises(FileNotFoundError, match=re.escape(f"{root}/cam_timestamp/S01.txt: no line for camera c002")):
        load_dataset(root, "train")
    (root / "cam_timestamp" / "S01.txt").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(f"{root}/cam_timestamp/S01.txt: file not found")):
        load_dataset(root, "train")


def test_require_video(tmp_path: Path) -> None:
    root = write_aicity_tree(tmp_path, cameras=(TinyCamera("c001", video=False),))
    with pytest.raises(FileNotFoundError, match=re.escape(f"{root}/train/S01/c001/vdo.avi: video not found")):
        load_dataset(root, "train", require_video=True)


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("c001 0\nc002\n", "float", "2: expected 'camera value' (2 columns), got 1: 'c002'"),
        ("c001 0\n\nc002 soon\n", "float", "3: c002: expected a number, got 'soon'"),
        ("camera1 0\n", "float", "1: expected a camera id like 'c001', got 'camera1'"),
        ("c001 0\nc001 1\n", "float", "2: camera c001 listed twice"),
        ("c001 12.5\n", "int", "1: c001: expected a frame count (integer >= 0), got '12.5'"),
        ("c001 inf\n", "float", "1: c001: expected a finite number, got 'inf'"),
    ],
)
def test_camera_table_errors(tmp_path: Path, text: str, kind: str, message: str) -> None:
    path = tmp_path / "S01.txt"
    path.write_text(text)
    with pytest.raises(AICityFormatError, match=re.escape(f"{path}:{message}")):
        read_camera_table(path, kind)


def test_camera_table_values(tmp_path: Path) -> None:
    path = tmp_path / "S01.txt"
    path.write_text("c001 0\nc002 1.640\n\nc003 -0.5\n")
    assert read_camera_table(path) == {"c001": 0.0, "c002": 1.64, "c003": -0.5}


def test_malformed_framenum_reaches_the_loader(tmp_path: Path) -> None:
    root = write_aicity_tree(tmp_path)
    (root / "cam_framenum" / "S01.txt").write_text("c001 2\nc002 two\n")
    with pytest.raises(AICityFormatError, match=re.escape(f"{root}/cam_framenum/S01.txt:2: c002: expected a number")):
        load_dataset(root, "train")


def test_roi_size_must_match_video(tmp_path: Path) -> None:
    root = write_aicity_tree(tmp_path, cameras=(TinyCamera("c001"),))
    roi = root / "train" / "S01" / "c001" / "roi.jpg"
    cv2.imwrite(str(roi), np.full((10, 16), 255, np.uint8))
    with pytest.raises(AICityFormatError, match=re.escape(f"{roi}: ROI is 16x10 but the video is 16x16 (width x height)")):
        load_dataset(root, "train")


def test_bad_calibration_reaches_the_loader(tmp_path: Path) -> None:
    root = write_aicity_tree(tmp_path, cameras=(TinyCamera("c001"),))
    cal = root / "train" / "S01" / "c001" / "calibration.txt"
    cal.write_text("Homography matrix: 1 0 0;0 1 0\n")
    with pytest.raises(ValueError, match=re.escape(f"{cal}:1: Homography matrix: expected 3 rows")):
        load_dataset(root, "train")


def test_dataset_from_config(tmp_path: Path) -> None:
    root = write_aicity_tree(tmp_path)
    custom = root / "eval" / "mine.txt"
    custom.write_text("")
    cfg = DatasetConfig(root=str(root), split="train", cameras=("c002",), ground_truth="eval/mine.txt")
    ds = dataset_from_config(cfg)
    assert [c.key for c in ds.cameras] == [("S01", "c002")]
    assert ds.ground_truth_path() == custom
    # another split still uses the standard name
    assert ds.ground_truth_path("validation") is None
    assert dataset_from_config(DatasetConfig(root=str(root), split="train")).ground_truth_path() == (
        root / "eval" / "ground_truth_train.txt"
    )


def test_config_validates_fps_overrides() -> None:
    from mct.config import ConfigError, validate

    with pytest.raises(ConfigError, match=r"dataset\.default_fps_by_camera: .*camera id 'cam15'"):
        validate({"dataset": {"default_fps_by_camera": {"cam15": 8.0}}})
    with pytest.raises(ConfigError, match=r"c015: fps must be > 0, got 0"):
        validate({"dataset": {"default_fps_by_camera": {"c015": 0}}})
    assert validate({"dataset": {"default_fps_by_camera": {"c003": 12.5}}}).dataset.default_fps_by_camera == {"c003": 12.5}
