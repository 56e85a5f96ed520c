"""Re-ID crops from AI City style ground truth: selection, cutting, cache, and `mct eval-reid`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mct.reid.config import EmbedderConfig, ReidCropConfig
from mct.reid.dataset import build_crop_set, find_gt_cameras, occlusion_fraction, select_gt_boxes
from mct.reid.model import build_model, save_checkpoint

W, H = 160, 120
# vehicle id -> BGR colour; both cameras see both vehicles
COLOURS = {7: (0, 0, 255), 9: (255, 0, 0)}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _write_camera(cam_dir: Path, boxes_by_frame: dict[int, list[tuple[int, tuple[int, int, int, int]]]], frames: int = 6) -> None:
    """A tiny camera: a grey MJPG video with solid rectangles, and its gt.txt (tlwh)."""
    (cam_dir / "gt").mkdir(parents=True)
    writer = cv2.VideoWriter(str(cam_dir / "vdo.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    lines = []
    for f in range(1, frames + 1):
        img = np.full((H, W, 3), 128, np.uint8)
        for vid, (left, top, w, h) in boxes_by_frame.get(f, []):
            img[top : top + h, left : left + w] = COLOURS[vid]
            lines.append(f"{f},{vid},{left},{top},{w},{h},1,-1,-1,-1")
        writer.write(img)
    writer.release()
    (cam_dir / "gt" / "gt.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def tiny_root(tmp_path) -> Path:
    root = tmp_path / "data"
    # camera c001: vehicle 7 in frames 1-5 moving right, vehicle 9 in frames 2-6;
    # frame 4: a 10 x 10 box of vehicle 9 (too small, dropped)
    c1: dict[int, list] = {}
    for f in range(1, 6):
        c1.setdefault(f, []).append((7, (10 + 5 * f, 20, 40, 30)))
    for f in range(2, 7):
        c1.setdefault(f, []).append((9, (100, 60, 40, 40) if f != 4 else (100, 60, 10, 10)))
    _write_camera(root / "validation" / "S02" / "c006", c1)
    # camera c007: both vehicles in every frame, far apart
    c2 = {f: [(7, (5, 5, 50, 40)), (9, (90, 50, 50, 50))] for f in range(1, 7)}
    _write_camera(root / "validation" / "S02" / "c007", c2)
    return root


def test_occlusion_fraction_by_hand():
    # box 0 (area 100) is half covered by box 1; box 1 (area 200) has 50 of its area covered
    xyxy = np.array([[0, 0, 10, 10], [5, 0, 25, 10], [100, 100, 110, 110]], np.float32)
    np.testing.assert_allclose(occlusion_fraction(xyxy), [0.5, 0.25, 0.0])
    assert occlusion_fraction(np.zeros((0, 4))).shape == (0,)


def test_select_drops_small_and_occluded_boxes_and_spreads_samples():
    frame = np.array([1, 2, 3, 4, 5, 6, 1, 1])
    ids = np.array([1, 1, 1, 1, 1, 1, 2, 3])
    xyxy = np.array([[0, 0, 30, 30]] * 6 + [[100, 100, 110, 110], [200, 200, 240, 240]], np.float32)
    xyxy[6] = [0, 0, 30, 30]  # frame 1: id 2 sits exactly on id 1 -> both fully occluded
    cfg = ReidCropConfig(min_box_width=20, min_box_height=20, max_occlusion=0.4, crops_per_track=3)
    picked = select_gt_boxes(frame, ids, xyxy, (640, 480), cfg)
    # id 1: frames 2..6 usable (frame 1 occluded) -> 3 evenly spread: frames 2, 4, 6
    # id 2: occluded; id 3: 40 x 40 free box -> kept
    assert frame[picked].tolist() == [2, 4, 6, 1] and ids[picked].tolist() == [1, 1, 1, 3]


def test_crops_are_cut_from_the_video_and_cached(tiny_root, tmp_path, monkeypatch):
    cfg = ReidCropConfig(min_box_width=16, min_box_height=16, crops_per_track=3, cache_dir=str(tmp_path / "cache"))
    assert [c[:2] for c in find_gt_cameras(tiny_root, "validation")] == [("S02", "c006"), ("S02", "c007")]
    crops = build_crop_set(tiny_root, "validation", cfg, 24, 24)
    # 2 cameras x 2 identities x 3 crops
    assert len(crops) == 12 and crops.images.shape == (12, 24, 24, 3)
    assert crops.num_identities == 2 and crops.num_cameras == 2 and len(np.unique(crops.tracks)) == 4
    # c006 vehicle 9: frame 4 is too small -> frames 2, 5, 6 remain -> picks 2, 5, 6
    sel = (crops.cams == "S02/c006") & (crops.ids == 9)
    assert crops.frames[sel].tolist() == [2, 5, 6]
    # every crop is the vehicle's colour (MJPG is lossy: within a few levels)
    for vid, bgr in COLOURS.items():
        mean = crops.images[crops.ids == vid].reshape(-1, 3).mean(0)
        np.testing.assert_allclose(mean, bgr, atol=12)
    # a second call reads the cache, not the video
    monkeypatch.setattr("mct.reid.dataset.read_frames", lambda *a, **k: pytest.fail("video read despite cache"))
    again = build_crop_set(tiny_root, "validation", cfg, 24, 24)
    np.testing.assert_array_equal(again.images, crops.images)
    np.testing.assert_array_equal(again.cams, crops.cams)


def test_missing_split_is_a_clear_error(tiny_root):
    with pytest.raises(FileNotFoundError, match="train: split folder not found"):
        find_gt_cameras(tiny_root, "train")
    with pytest.raises(FileNotFoundError, match="no camera with gt/gt.txt for scenarios"):
        find_gt_cameras(tiny_root, "validation", ("S05",))


def test_eval_reid_command(tiny_root, tmp_path, monkeypatch):
    from mct.cli import main

    monkeypatch.chdir(tmp_path)  # the crop cache goes to ./data/cache/reid
    torch.manual_seed(0)
    cfg = EmbedderConfig(arch="compact", weights="none", crop_height=24, crop_width=24, compact_widths=(4, 8, 8, 16))
    weights = save_checkpoint(tmp_path / "m.pt", build_model(cfg).eval(), cfg, fp16=True, with_classifier=False)
    out = tmp_path / "metrics.json"
    result = CliRunner().invoke(
        main, ["-q", "eval-reid", "--data", str(tiny_root), "--split", "validation", "--weights", str(weights), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "mAP" in result.output and "rank-1" in result.output
    metrics = json.loads(out.read_text())
    # default crops_per_track 8 keeps every usable box: c006 has 5 (id 7) + 4 (id 9, frame 4
    # too small), c007 6 + 6 -> 21 gallery crops; 4 tracks -> 4 queries
    assert metrics["num_valid_queries"] == 4 and metrics["num_gallery"] == 21
    # two vehicles of clearly different colours: even a random network ranks them apart
    assert metrics["rank1"] == 1.0
