"""The GPU code paths, checked where a CPU can catch their bugs: half precision (the
embedder runs its network in fp16 on CUDA), device selection errors, Soft-NMS outputs on
the input's device, and Ray's GPU requests (fake GPUs on a local Ray instance).

What needs a real GPU is measured by ``benchmarks/bench_gpu.py`` (results in
``benchmarks/results/gpu.json``)."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch

from mct.detect.soft_nms import soft_nms
from mct.reid.config import EmbedderConfig
from mct.reid.embedder import resolve_device
from mct.reid.model import GeM, build_model


# ---------------------------------------------------------------------------- fp16 re-ID
def test_gem_pooling_in_half_precision_does_not_overflow():
    # a layer-4 activation of 50 is ordinary for a trained network; 50**3 = 125,000 is
    # above the largest fp16 (65,504), so pooling in fp16 returned inf features
    gem = GeM(p=3.0).half()
    x = torch.full((2, 4, 3, 3), 50.0, dtype=torch.float16)
    x[1] = 2.0  # a second crop of small activations: mean of x**3 then cube root -> 2
    pooled = gem(x)
    assert pooled.dtype == torch.float16
    assert torch.isfinite(pooled).all()
    assert pooled[0].float().tolist() == pytest.approx([50.0] * 4, rel=1e-3)
    assert pooled[1].float().tolist() == pytest.approx([2.0] * 4, rel=1e-3)


def test_gem_pooling_in_half_agrees_with_float32():
    torch.manual_seed(0)
    x = torch.rand(3, 8, 5, 5) * 60  # activations up to 60: fp16 cubes would overflow
    ref = GeM(p=3.0)(x)
    half = GeM(p=3.0).half()(x.half()).float()
    assert torch.allclose(half, ref, rtol=2e-3)


def test_half_network_with_gem_gives_finite_unit_features():
    # the embedder's fp16 path (model.half(), half inputs) with GeM pooling, on the CPU
    torch.manual_seed(0)
    cfg = EmbedderConfig(arch="compact", weights="none", crop_height=32, crop_width=32, pooling="gem")
    model = build_model(cfg).eval()
    x = torch.randn(4, 3, 32, 32) * 30  # large inputs: large activations before pooling
    with torch.inference_mode():
        ref = torch.nn.functional.normalize(model(x).float(), dim=1)
        feats = torch.nn.functional.normalize(model.half()(x.half()).float(), dim=1)
    assert torch.isfinite(feats).all()
    assert (feats * ref).sum(1).min() > 0.99


# ---------------------------------------------------------------------------- devices
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_names_the_key():
    from mct.detect.maskrcnn import _device

    with pytest.raises(ValueError, match="detector.device"):
        _device("cuda")
    with pytest.raises(ValueError, match="reid.device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu" and _device("auto").type == "cpu"


def test_soft_nms_keeps_the_dtype_and_device_of_its_input():
    # frame 0: two cars' boxes overlap (IoU 0.81) and a third stands apart; half-precision
    # scores (as autocast gives) come back in half precision, on the input's device
    xyxy = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60]], dtype=torch.float16)
    scores = torch.tensor([0.9, 0.8, 0.7], dtype=torch.float16)
    keep, kept = soft_nms(xyxy, scores, method="hard", iou_threshold=0.5)
    assert keep.tolist() == [0, 2] and keep.dtype == torch.int64
    assert kept.dtype == torch.float16 and kept.device == scores.device
    keep32, _ = soft_nms(xyxy.float(), scores.float(), method="gaussian")
    keep16, kept16 = soft_nms(xyxy, scores, method="gaussian")
    assert keep16.tolist() == keep32.tolist() and kept16.dtype == torch.float16


def test_detector_boxes_under_autocast_are_decoded_in_float32():
    # the detector runs its RoI heads under autocast on CUDA (fp16). Here: CPU autocast in
    # bfloat16 (spacing 2-4 px at 300-600 px). The box regression comes out of the head in
    # low precision, but the boxes must be decoded in float32: every box of the autocast
    # pass lies within half a pixel of a box of the float32 pass (the heads see the same
    # features and proposals; only the head's arithmetic differs)
    from mct.detect.config import DetectorConfig
    from mct.detect.maskrcnn import MaskRCNNDetector

    torch.manual_seed(0)
    det = MaskRCNNDetector(DetectorConfig(source="maskrcnn", model="small", weights="none", device="cpu",
                                          min_score=0.05))
    with torch.no_grad():  # every proposal is a car (label 3): random weights score no class
        cls = det.model.roi_heads.box_predictor.cls_score
        cls.weight[:3] = 0.0
        cls.weight[4:] = 0.0
        cls.bias.zero_()
        cls.bias[3] = 4.0
    frame = torch.from_numpy(np.random.default_rng(0).random((3, 360, 640), dtype=np.float32))
    model = det.model
    with torch.inference_mode():
        batch, _ = model.transform([frame])
        features = model.backbone(batch.tensors)
        proposals, _ = model.rpn(batch, features)
        ref = det._roi_heads(features, proposals, batch.image_sizes)[0]["boxes"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            amp = det._roi_heads(features, proposals, batch.image_sizes)[0]["boxes"]
    assert amp.dtype == torch.float32 and len(ref) >= 10 and len(amp) >= 10
    assert float(ref.max()) > 300  # coordinates where bfloat16 rounds to 2-4 px
    nearest = (amp[:, None, :] - ref[None, :, :]).abs().amax(2).amin(1)
    assert float(nearest.max()) < 0.5


# ---------------------------------------------------------------------------- Ray GPUs
@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    from tests.e2e.fakes import make_layout

    return make_layout(tmp_path_factory.mktemp("gpu_fake_data"), cameras=("c001", "c002", "c003"), num_frames=8)


@pytest.mark.ray
@pytest.mark.slow
def test_ray_gpu_request_that_no_gpu_can_meet_fails_at_once(layout, tmp_path):
    # Ray keeps a task that asks for more GPUs than the cluster has waiting for ever: the
    # run must stop at once with the key and the value instead
    pytest.importorskip("ray")
    from mct.run.pipeline import run_pipeline
    from tests.e2e.fakes import FakeStages, fake_config

    cfg = fake_config(layout, "run.executor=ray", "run.ray.num_gpus_per_camera=1")
    with pytest.raises(ValueError, match=r"run\.ray\.num_gpus_per_camera: 1 GPUs per camera job, but the Ray cluster has 0"):
        run_pipeline(cfg, tmp_path / "run", stages=FakeStages(), progress=False)


@pytest.mark.ray
@pytest.mark.slow
def test_ray_shares_one_gpu_between_camera_jobs(layout, tmp_path):
    # a local Ray instance that declares one (fake) GPU; each camera job asks for half of
    # it, so two run at a time and the third waits: all three finish with the outputs of
    # the run without GPU requests
    ray = pytest.importorskip("ray")
    from mct.run.pipeline import run_pipeline
    from tests.e2e.fakes import FakeStages, fake_config

    paths = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))  # workers import the fakes
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": paths, "RAY_AUTH_MODE": "disabled"}})
    try:
        s = run_pipeline(fake_config(layout, "run.executor=ray", "run.ray.num_gpus_per_camera=0.5"), tmp_path / "gpu",
                         stages=FakeStages(), progress=False)
    finally:
        ray.shutdown()
    assert s.ok, [c.error for c in s.cameras]
    assert [c.status for c in s.cameras] == ["ok"] * 3
    rows = (tmp_path / "gpu" / "submission.txt").read_text().splitlines()
    assert len(rows) == 2 * 3 * 8  # 2 fake cars x 3 cameras x 8 frames
    summary = json.loads((tmp_path / "gpu" / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["frames"] == 3 * 8
