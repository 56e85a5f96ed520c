"""Mask R-CNN detector: Soft-NMS inside the RoI heads, weights, outputs, filters."""

from __future__ import annotations

import math
import urllib.error

import numpy as np
import pytest
import torch

from mct.detect import DETECTORS
from mct.detect.config import DetectorConfig, SoftNMSConfig
from mct.detect.maskrcnn import (
    MaskRCNNDetector,
    SoftNMSRoIHeads,
    build_model,
    coco_weights_file,
    read_checkpoint,
    save_checkpoint,
    use_soft_nms,
)
from mct.types import Camera, Detections


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(before)


def _heads(method: str, score_thresh: float):
    model = build_model("small", 9)
    use_soft_nms(model, SoftNMSConfig(method=method, iou_threshold=0.3, sigma=0.5))
    model.roi_heads.score_thresh = score_thresh
    return model.roi_heads


def _postprocess(heads, probs_class3):
    """Two proposals of IoU 1520/1680 whose class-3 (car) probabilities are given."""
    proposals = [torch.tensor([[10.0, 10, 50, 50], [12, 10, 52, 50]])]
    probs = torch.full((2, 9), 1e-9)
    probs[:, 3] = torch.tensor(probs_class3)
    probs[:, 0] = 1 - probs[:, 3]
    logits = probs.log()
    regression = torch.zeros(2, 9 * 4)  # decode to the proposals themselves
    return heads.postprocess_detections(logits, regression, proposals, [(100, 100)])


def test_soft_nms_replaces_hard_nms_and_the_score_cut_applies_after_it():
    iou = 1520 / 1680
    boxes, scores, labels = _postprocess(_heads("gaussian", 0.05), [0.9, 0.8])
    # frame: the car's two boxes overlap heavily; the second is decayed, not removed
    assert labels[0].tolist() == [3, 3]
    np.testing.assert_allclose(scores[0].tolist(), [0.9, 0.8 * math.exp(-(iou**2) / 0.5)], rtol=1e-5)
    # the model's own score threshold (0.2) applies to the decayed score: the box goes
    _, scores, _ = _postprocess(_heads("gaussian", 0.2), [0.9, 0.8])
    np.testing.assert_allclose(scores[0].tolist(), [0.9], rtol=1e-5)
    # hard NMS removes it outright; linear decays it by 1 - IoU
    _, scores, _ = _postprocess(_heads("hard", 0.05), [0.9, 0.8])
    np.testing.assert_allclose(scores[0].tolist(), [0.9], rtol=1e-5)
    _, scores, _ = _postprocess(_heads("linear", 0.05), [0.9, 0.8])
    np.testing.assert_allclose(scores[0].tolist(), [0.9, 0.8 * (1 - iou)], rtol=1e-4)


def test_class_agnostic_soft_nms_decays_across_classes():
    # one proposal scored 0.6 car (class 3) and 0.35 truck (class 8): two identical boxes
    def run(method: str, agnostic: bool):
        model = build_model("small", 9)
        use_soft_nms(model, SoftNMSConfig(method=method, class_agnostic=agnostic))
        model.roi_heads.score_thresh = 0.01  # below the decayed truck score, 0.047
        probs = torch.full((1, 9), 1e-9)
        probs[0, 3], probs[0, 8] = 0.6, 0.35
        probs[0, 0] = 1 - probs[0, 1:].sum()
        out = model.roi_heads.postprocess_detections(
            probs.log(), torch.zeros(1, 9 * 4), [torch.tensor([[10.0, 10, 50, 50]])], [(100, 100)]
        )
        return out[1][0].tolist(), out[2][0].tolist()

    # per class (torchvision's rule): both boxes survive untouched -> two tracks for one car
    scores, labels = run("gaussian", False)
    assert labels == [3, 8] and scores == pytest.approx([0.6, 0.35], rel=1e-5)
    # across classes: the truck box is the car box (IoU 1), decayed by exp(-1 / 0.5)
    scores, labels = run("gaussian", True)
    assert labels == [3, 8] and scores == pytest.approx([0.6, 0.35 * math.exp(-2.0)], rel=1e-5)
    # hard NMS across classes removes it
    scores, labels = run("hard", True)
    assert labels == [3] and scores == pytest.approx([0.6], rel=1e-5)


def test_top_k_cut_applies_after_soft_nms():
    heads = _heads("gaussian", 0.05)
    heads.detections_per_img = 1
    _, scores, _ = _postprocess(heads, [0.8, 0.9])
    # the higher-scoring second proposal is selected first and is the only one kept
    np.testing.assert_allclose(scores[0].tolist(), [0.9], rtol=1e-5)


def _cfg(**kw) -> DetectorConfig:
    base = dict(source="maskrcnn", weights="none", model="small", min_score=0.0, model_score_thresh=0.0, batch_size=2)
    base.update(kw)
    return DetectorConfig(**base)


def test_random_weights_detector_runs_on_tiny_frames():
    det = DETECTORS["maskrcnn"](_cfg(), Camera("S01", "c001"))
    assert det.needs_frames and isinstance(det.model.roi_heads, SoftNMSRoIHeads)
    frames = [np.random.default_rng(k).integers(0, 255, (48, 64, 3), dtype=np.uint8) for k in range(3)]
    out = det.detect([5, 6, 7], frames)
    assert [d.frame for d in out] == [5, 6, 7]
    for d in out:
        assert isinstance(d, Detections)
        assert d.masks is not None and d.masks.shape == (len(d), 28, 28)
        assert set(d.class_ids.tolist()) <= {1, 2, 3, 4}
        assert np.all(d.xyxy[:, [0, 2]] >= 0) and np.all(d.xyxy[:, [0, 2]] <= 64)
        assert np.all(np.diff(d.scores) <= 0)  # selection order
    assert det.detect([], []) == []


def test_full_frame_masks_and_no_masks():
    frames = [np.full((40, 56, 3), 120, np.uint8)]
    full = MaskRCNNDetector(_cfg(masks="full"), None).detect([1], frames)[0]
    assert full.masks is not None and full.masks.shape == (len(full), 40, 56)
    none = MaskRCNNDetector(_cfg(masks="none"), None).detect([1], frames)[0]
    assert none.masks is None


def test_filters_apply_to_model_output():
    frames = [np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)]
    everything = MaskRCNNDetector(_cfg(), None).detect([1], frames)[0]
    assert len(everything) > 0
    torch.manual_seed(0)
    strict = MaskRCNNDetector(_cfg(min_score=1.0), None).detect([1], frames)[0]
    assert len(strict) == 0
    # an ROI covering nothing drops every box (bottom-centre rule)
    cam = Camera("S01", "c001", frame_size=(64, 48), roi_mask=np.zeros((48, 64), bool))
    torch.manual_seed(0)
    assert len(MaskRCNNDetector(_cfg(), cam).detect([1], frames)[0]) == 0


def test_missing_coco_weights_name_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    expected = tmp_path / "checkpoints" / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    assert coco_weights_file("resnet50_fpn") == expected
    with pytest.raises(FileNotFoundError) as err:
        MaskRCNNDetector(DetectorConfig(source="maskrcnn", model="resnet50_fpn", weights="coco", allow_download=False), None)
    msg = str(err.value)
    assert "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth" in msg and str(tmp_path / "checkpoints") in msg
    assert "downloads are disabled" in msg

    def offline(url, dst, progress=True):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(FileNotFoundError, match=r"the download failed \(no network\)"):
        MaskRCNNDetector(DetectorConfig(source="maskrcnn", model="resnet50_fpn_v2", weights="coco"), None)
    with pytest.raises(ValueError, match="no COCO weights for model 'small'"):
        MaskRCNNDetector(DetectorConfig(source="maskrcnn", model="small", weights="coco"), None)


def test_missing_or_bad_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        MaskRCNNDetector(_cfg(weights=str(tmp_path / "nope.pt")), None)
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt: cannot load this checkpoint"):
        MaskRCNNDetector(_cfg(weights=str(bad)), None)


def test_checkpoint_round_trip_is_fp16_and_reproduces_outputs(tmp_path):
    frames = [np.random.default_rng(2).integers(0, 255, (48, 64, 3), dtype=np.uint8)]
    det = MaskRCNNDetector(_cfg(), None)
    path = save_checkpoint(tmp_path / "m.pt", det.model, "small", 9, 360, 640, {"note": "test"})
    ckpt = read_checkpoint(path)
    assert ckpt["model"] == "small" and ckpt["meta"] == {"note": "test"}
    assert all(v.dtype != torch.float32 for v in ckpt["state_dict"].values())
    # the model file of the weights alone; fp16 storage changes scores only slightly
    det.model.half().float()  # the same rounding as the stored weights
    expected = det.detect([1], frames)[0]
    again = MaskRCNNDetector(_cfg(weights=str(path)), None).detect([1], frames)[0]
    assert len(again) == len(expected)
    np.testing.assert_allclose(again.scores, expected.scores, rtol=1e-4, atol=1e-5)
