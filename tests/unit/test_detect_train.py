"""Detector training: samples from the AI City layout, targets, box AP, train + resume + CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from pycocotools import mask as mask_utils

from mct.cli import main
from mct.detect.config import DetectorConfig, DetectorTrainConfig
from mct.detect.train import Sample, _target, collect_samples, evaluate_box_ap, train_detector
from mct.types import Detections

W, H = 96, 64


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _camera(folder: Path, boxes: dict[int, list[tuple[int, int, int, int]]], frames: int, coco: bool) -> None:
    """Grey MJPG video with white rectangles (tlwh), gt.txt and optionally a COCO file."""
    (folder / "gt").mkdir(parents=True)
    writer = cv2.VideoWriter(str(folder / "vdo.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    gt, images, anns = [], [], []
    for f in range(1, frames + 1):
        img = np.full((H, W, 3), 90, np.uint8)
        images.append({"id": f, "frame_id": f, "width": W, "height": H})
        for k, (x, y, w, h) in enumerate(boxes.get(f, [])):
            img[y : y + h, x : x + w] = 230
            gt.append(f"{f},{k + 1},{x},{y},{w},{h},1,-1,-1,-1")
            m = np.zeros((H, W), np.uint8, order="F")
            m[y : y + h, x : x + w] = 1
            rle = mask_utils.encode(m)
            anns.append({"id": len(anns) + 1, "image_id": f, "category_id": 8 if w > 30 else 3, "bbox": [x, y, w, h],
                         "segmentation": {"size": [H, W], "counts": rle["counts"].decode()}, "area": w * h,
                         "iscrowd": 0, "visible_fraction": 1.0 if h > 6 else 0.1})
        writer.write(img)
    writer.release()
    (folder / "gt" / "gt.txt").write_text("\n".join(gt) + "\n")
    if coco:
        (folder / "segm").mkdir()
        (folder / "segm" / "coco_instances.json").write_text(json.dumps({"images": images, "annotations": anns}))


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "data"
    moving = {f: [(5 + 4 * f, 10, 20, 14), (60, 40, 34, 16)] for f in range(1, 7)}
    for split, scen in (("train", "S01"), ("validation", "S02")):
        for table, text in (("cam_timestamp", "c001 0\nc002 0\n"), ("cam_framenum", "c001 6\nc002 6\n")):
            (r / table).mkdir(parents=True, exist_ok=True)
            (r / table / f"{scen}.txt").write_text(text)
        _camera(r / split / scen / "c001", moving, 6, coco=True)  # boxes + masks
        _camera(r / split / scen / "c002", {f: [(30, 20, 16, 12)] for f in range(1, 7)}, 6, coco=False)  # boxes only
    return r


def test_samples_come_from_coco_files_or_gt(root):
    samples = collect_samples(root, "train", frame_stride=2)
    # c001: COCO file, frames 1, 3, 5; c002: gt.txt, frames 1, 3, 5
    assert [s.key for s in samples] == [("S01", "c001", f) for f in (1, 3, 5)] + [("S01", "c002", f) for f in (1, 3, 5)]
    coco, gt = samples[1], samples[4]
    np.testing.assert_allclose(coco.xyxy, [[17, 10, 37, 24], [60, 40, 94, 56]])
    assert coco.labels.tolist() == [3, 8] and coco.rles is not None and len(coco.rles) == 2
    assert gt.labels.tolist() == [3] and gt.rles is None
    image = coco.image()
    assert image.shape == (H, W, 3) and image[15, 25].mean() > 200 and image[2, 2].mean() < 120
    assert len(collect_samples(root, "train", frame_stride=1, max_frames=4)) == 4


def test_targets_follow_crops_and_flips(root):
    sample = collect_samples(root, "train", frame_stride=2)[1]  # frame 3 of c001
    target, has_masks = _target(sample, (H, W), False, torch.device("cpu"))
    assert has_masks and target["masks"].shape == (2, H, W) and int(target["masks"][0].sum()) == 20 * 14
    # crop rows 8..40, columns 10..58 (h 32, w 48), then flip: box 0 (17..37, 10..24)
    # becomes (7..27, 2..16) in the crop and (48-27 .. 48-7) after the flip; box 1 is
    # cut to nothing and left out
    target, _ = _target(sample, (H, W), True, torch.device("cpu"), crop=(8, 10, 32, 48))
    np.testing.assert_allclose(target["boxes"].numpy(), [[21, 2, 41, 16]])
    assert target["masks"].shape == (1, 32, 48) and bool(target["masks"][0, 5, 30]) and not bool(target["masks"][0, 5, 10])
    # a box cut by the crop: box 1 (60..94, 40..56) in a crop of rows 20..52, columns 70..110
    # keeps 24 x 12 px of its 34 x 16 (53 %): kept, clipped, under the default half rule
    target, _ = _target(sample, (H, W), False, torch.device("cpu"), crop=(20, 70, 32, 40))
    np.testing.assert_allclose(target["boxes"].numpy(), [[0, 20, 24, 32]])
    # rows 20..52, columns 0..70: box 1 keeps 10 x 12 px (22 %), box 0 (17..37, 10..24) keeps
    # 20 x 4 px (29 %). The half rule leaves both out; with min_kept_fraction 0 box 1 is kept
    # as its visible part, box 0 still not (4 px high, under min_cut_box_px)
    crop = (20, 0, 32, 70)
    assert len(_target(sample, (H, W), False, torch.device("cpu"), crop=crop)[0]["boxes"]) == 0
    kept, _ = _target(sample, (H, W), False, torch.device("cpu"), crop=crop, min_kept_fraction=0.0, min_cut_box_px=10)
    np.testing.assert_allclose(kept["boxes"].numpy(), [[60, 20, 70, 32]])
    assert kept["masks"].shape == (1, 32, 70) and kept["labels"].tolist() == [8]
    cut, _ = _target(sample, (H, W), False, torch.device("cpu"), crop=crop, min_kept_fraction=0.0, min_cut_box_px=11)
    assert len(cut["boxes"]) == 0  # 10 px wide: under 11
    # box-only samples get rectangle masks
    gt_sample = collect_samples(root, "train", frame_stride=2)[3]
    target, has_masks = _target(gt_sample, (H, W), False, torch.device("cpu"))
    assert not has_masks and int(target["masks"].sum()) == 16 * 12


class _FakeDetector:
    """Returns given boxes per frame, like MaskRCNNDetector.detect."""

    def __init__(self, boxes_by_frame):
        self.boxes_by_frame = boxes_by_frame
        self.cfg = DetectorConfig(batch_size=2)
        self.model = torch.nn.Identity()

    def detect(self, frame_numbers, frames):
        out = []
        for f in frame_numbers:
            xyxy = np.asarray(self.boxes_by_frame(f), np.float32).reshape(-1, 4)
            out.append(Detections(f, xyxy, np.linspace(0.9, 0.5, len(xyxy)).astype(np.float32)))
        return out


def test_box_ap_golden_cases():
    def sample(frame, boxes, vis):
        return Sample(("S02", "c001", frame), cv2.imencode(".jpg", np.zeros((H, W, 3), np.uint8))[1].tobytes(),
                      np.asarray(boxes, np.float32), np.full(len(boxes), 3), None, np.asarray(vis, np.float32))

    # frame 1: two vehicles; frame 2: one vehicle plus a barely visible one (ignored)
    samples = [sample(1, [[0, 0, 20, 20], [40, 40, 60, 60]], [1, 1]), sample(2, [[10, 10, 30, 30], [70, 5, 90, 30]], [1, 0.1])]
    cfg = DetectorTrainConfig()
    truth = {1: [[0, 0, 20, 20], [40, 40, 60, 60]], 2: [[10, 10, 30, 30], [70, 5, 90, 30]]}
    perfect = evaluate_box_ap(_FakeDetector(lambda f: truth[f]), samples, cfg)
    # the detection of the ignored box is neither a hit nor a false positive
    assert perfect["AP"] == pytest.approx(1.0) and perfect["gt_boxes"] == 3 and perfect["frames"] == 2
    assert perfect["precision@0.3"] == 1.0 and perfect["recall@0.3"] == 1.0
    # scores per frame are 0.9 then 0.5: at min_score 0.7 one box per frame is left -> 2 of 3 found
    assert perfect["precision@0.7"] == 1.0 and perfect["recall@0.7"] == pytest.approx(2 / 3)
    shifted = evaluate_box_ap(_FakeDetector(lambda f: [[b[0] + 15, b[1], b[2] + 15, b[3]] for b in truth[f]]), samples, cfg)
    assert shifted["AP50"] == 0.0 and shifted["precision@0.3"] == 0.0 and shifted["recall@0.3"] == 0.0
    # one of three found: recall 1/3 at precision 1 -> AP 101-point = 34/101
    one = evaluate_box_ap(_FakeDetector(lambda f: truth[1][:1] if f == 1 else []), samples, cfg)
    assert one["AP"] == pytest.approx(34 / 101, abs=1e-6)
    assert evaluate_box_ap(_FakeDetector(lambda f: []), samples, cfg)["AP"] == 0.0


@pytest.mark.slow
def test_train_resume_and_eval_cli(root, tmp_path):
    cfg_path = tmp_path / "train.yaml"
    out = tmp_path / "run"
    model = tmp_path / "model.pt"
    cfg_path.write_text(
        f"root: {root}\nmin_size: 64\nmax_size: 96\nframe_stride: 2\nval_frame_stride: 3\nbatch_size: 2\n"
        f"max_iters: 2\nwarmup_iters: 1\ncheckpoint_every: 1\ncrop_size: [48, 64]\nnum_threads: 1\n"
        f"out_dir: {out}\noutput: {model}\n"
    )
    runner = CliRunner()
    result = runner.invoke(main, ["-q", "train-detector", str(cfg_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "trained 2 steps" in result.output and "box AP on validation (4 frames" in result.output
    assert (out / "last.pt").is_file() and model.is_file()
    steps = [json.loads(line)["step"] for line in (out / "loss.jsonl").read_text().splitlines()]
    assert steps == [2]
    # resume: one more step, continuing at step 2
    result = runner.invoke(main, ["-q", "train-detector", str(cfg_path), "--set", "max_iters=3"], catch_exceptions=False)
    assert result.exit_code == 0 and "trained 3 steps" in result.output
    assert [json.loads(line)["step"] for line in (out / "loss.jsonl").read_text().splitlines()] == [2, 3]
    ckpt = torch.load(model, weights_only=True)
    assert ckpt["meta"]["step"] == 3 and "AP" in ckpt["meta"]["validation"]
    result = runner.invoke(main, ["-q", "train-detector", str(cfg_path), "--eval-only"], catch_exceptions=False)
    assert result.exit_code == 0 and "box AP on validation" in result.output and "precision / recall" in result.output
    result = runner.invoke(main, ["-q", "train-detector", str(cfg_path), "--set", "lr=-1"])
    assert result.exit_code == 2 and "lr" in result.output
