"""The CUDA paths on a GPU: Soft-NMS, the detector and the embedder in fp32 and fp16, a
short ``mct run`` on the GPU against the same run on the CPU, and training steps on CUDA.

    python benchmarks/bench_gpu.py --out /tmp/gpu                      # on a GPU machine
    python benchmarks/bench_gpu.py --out /tmp/gpu --quick --device cpu  # dry run, tiny sizes
    python benchmarks/bench_gpu.py                  # make bench: benchmarks/results/gpu.json, or
                                                    # skipped (exit 0) where there is no GPU

Sections (each in its own ``try``: a failure is recorded with its traceback and the next
section runs; ``results.json`` is rewritten after every section, so a run cut short still
leaves what it measured):

1. ``soft_nms``: :func:`mct.detect.soft_nms.soft_nms` on device tensors against the same
   call on CPU tensors (linear, gaussian, hard; 20 box sets, N = 10 to 5,000, clustered and
   uniform, half of them with class labels): same kept indices in the same order, scores
   within 1e-6 relative, outputs on the input's device. Timed (median, synchronised)
   against ``torchvision.ops.nms`` on the device at N = 1,000 and 5,000 (target <= 3x).
   A matrix-form Soft-NMS written in torch (IoU matrix on the device, one selection per
   step) is timed once at N = 1,000 for comparison.
2. ``detector``: :class:`mct.detect.maskrcnn.MaskRCNNDetector` with ``resnet50_fpn_v2``
   (random weights, ``weights: none``) on 1920 x 1080 frames, batch 1 / 4 / 8, fp32 and
   ``amp`` (fp16 autocast), Soft-NMS gaussian and hard NMS: frames/s of ``detect`` (host
   frames in, ``Detections`` out) and peak device memory. Random weights spread the class
   scores so that the top 100 boxes are rarely vehicles (no detections at all); the class
   layer is set so that every proposal is a car (logit 4 plus the random car row, others
   0), one candidate box per proposal as on a busy frame (the count per frame is
   recorded). ``--quick`` uses the small demo architecture on 640 x 360 frames.
3. ``embedder``: :class:`mct.reid.embedder.Embedder` (ResNet-50, 256 x 256 crops, random
   weights), batch 64 / 128 / 256 / 512, fp32 and fp16: embeddings/s of ``embed_crops``
   (host uint8 crops in, features out) and of the network alone on device crops; cosine of
   the fp16 features to the fp32 ones (target >= 0.999).
4. ``demo_run``: ``mct synth`` of the demo world's validation split (``--demo-seconds``
   long, on the machine itself), then ``mct run configs/demo.yaml`` with the shipped models
   on the GPU (``detector.device``/``reid.device`` cuda; with ``amp``/``fp16`` as
   configured, and again in fp32) and on the CPU: IDF1 of each, and how many submission
   rows differ from the CPU run's.
5. ``training``: ``mct train-detector`` for a few steps on the device (train split of the
   same world, a few seconds long); ``mct train-reid`` for one short epoch on the device
   with autocast (where the tree's ``ReidTrainConfig`` has ``amp``); then re-ID training
   steps written here (the project's network and losses, autocast, optimiser) on the device.

On a lent GPU machine of this workplace (Python 3.12 with its own torch, no registry), the
project's other dependencies travel as wheels in ``.whl`` (ignored by git; fetched with
``pip download --no-deps --only-binary=:all: --python-version 3.12 ...`` for pydantic,
pydantic-core, annotated-types, typing-inspection, typing_extensions, packaging, filterpy,
faiss-cpu and pycocotools at the versions pyproject.toml pins), and the command is::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 \
        && timeout 380 python3 benchmarks/bench_gpu.py --out "$OUT" --device cuda \
        --budget-s 320 --demo-seconds 15 --train-seconds 8

``--budget-s`` (default 400) bounds the whole script: a part that would start after the
budget is skipped and recorded as such. Writes ``<out>/results.json`` and ``<out>/bench_gpu.log``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torchvision

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_soft_nms import boxes_clustered, boxes_uniform  # noqa: E402

log = logging.getLogger("bench_gpu")

#: targets of issue 24
SOFT_NMS_X_NMS = 3.0
SOFT_NMS_DETECTOR_OVERHEAD = 0.05
MIN_COSINE = 0.999


class Budget:
    """Seconds left of the script's time budget."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def allows(self, seconds: float, what: str, skipped: list[str]) -> bool:
        """Whether ``seconds`` more fit; if not, ``what`` is logged and listed as skipped."""
        if self.left() >= seconds:
            return True
        log.warning("skipped (budget): %s (needs ~%.0f s, %.0f s left)", what, seconds, self.left())
        skipped.append(what)
        return False


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Median seconds of ``repeats`` synchronised calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    tmp.replace(path)


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu_count": os.cpu_count(),
        "device": str(device),
    }
    try:
        import numba

        info["numba"] = numba.__version__
    except ImportError:
        info["numba"] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["capability"] = f"{props.major}.{props.minor}"
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20,
            )
            info["nvidia_smi"] = out.stdout.strip()
            info["driver"] = out.stdout.strip().split(",")[-1].strip() if out.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired) as exc:
            info["driver"] = f"nvidia-smi failed: {exc}"
    else:
        info["gpu"] = None
    return info


# ---------------------------------------------------------------------------- 1. Soft-NMS
def soft_nms_matrix(xyxy: torch.Tensor, scores: torch.Tensor, sigma: float = 0.5, min_score: float = 0.001) -> torch.Tensor:
    """Gaussian Soft-NMS in matrix form, for timing only: the IoU matrix once on the device,
    then one selection per step (argmax, decay of the row) until no box is left."""
    iou = torchvision.ops.box_iou(xyxy, xyxy)
    decay_all = torch.exp(-(iou * iou) / sigma)
    s = scores.clone().double()
    alive = torch.ones_like(s, dtype=torch.bool)
    keep = []
    neg_inf = torch.tensor(-math.inf, dtype=s.dtype, device=s.device)
    for _ in range(len(s)):
        masked = torch.where(alive, s, neg_inf)
        best = int(torch.argmax(masked))  # one device -> host sync per step, as the loop needs
        if not bool(alive[best]):
            break
        keep.append(best)
        alive[best] = False
        hit = alive & (iou[best] > 0)
        s = torch.where(hit, s * decay_all[best], s)
        alive &= ~(hit & (s < min_score))
    return torch.tensor(keep, dtype=torch.int64)


def section_soft_nms(device: torch.device, quick: bool, budget: Budget, skipped: list[str]) -> dict[str, Any]:
    from mct.detect.soft_nms import soft_nms

    out: dict[str, Any] = {}
    sizes = np.unique(np.geomspace(10, 500 if quick else 5000, 6 if quick else 20).round().astype(int))
    rows, mismatches = [], 0
    for k, n in enumerate(sizes):
        g = torch.Generator().manual_seed(1000 + k)
        boxes, scores = (boxes_clustered if k % 2 == 0 else boxes_uniform)(int(n), g)
        labels = torch.randint(0, 3, (int(n),), generator=g) if k % 4 >= 2 else None
        for method in ("linear", "gaussian", "hard"):
            keep_c, kept_c = soft_nms(boxes, scores, labels, method=method)
            keep_d, kept_d = soft_nms(boxes.to(device), scores.to(device),
                                      None if labels is None else labels.to(device), method=method)
            same = keep_d.device.type == device.type and kept_d.device.type == device.type
            same = same and torch.equal(keep_c, keep_d.cpu())
            same = same and bool(torch.allclose(kept_c, kept_d.cpu(), rtol=1e-6, atol=0.0))
            row = {"n": int(n), "layout": "clustered" if k % 2 == 0 else "uniform", "labels": labels is not None,
                   "method": method, "kept": int(len(keep_c)), "same": bool(same)}
            if method == "hard" and labels is None:  # hard = torchvision NMS on the device
                ref = torchvision.ops.nms(boxes.to(device), scores.to(device), 0.3).cpu()
                row["hard_equals_torchvision_nms"] = bool(torch.equal(ref, keep_c))
            mismatches += not same
            rows.append(row)
    out["agreement"] = {"sets": len(sizes), "calls": len(rows), "mismatches": mismatches, "rows": rows}
    log.info("soft_nms: %d calls on %s, %d differ from the CPU kernel", len(rows), device, mismatches)
    timings = []
    for n in ((200, 1000) if quick else (1000, 5000)):
        if not budget.allows(20, f"soft_nms timing N={n}", skipped):
            break
        for layout, make in (("clustered", boxes_clustered), ("uniform", boxes_uniform)):
            boxes, scores = make(n, torch.Generator().manual_seed(n))
            boxes, scores = boxes.to(device), scores.to(device)
            reps = 5 if quick else 30
            t_nms = timed(lambda: torchvision.ops.nms(boxes, scores, 0.3), device, reps)
            row = {"n": n, "layout": layout, "nms_ms": 1e3 * t_nms}
            for method in ("gaussian", "linear", "hard"):
                t = timed(lambda method=method: soft_nms(boxes, scores, method=method), device, reps)
                row[f"{method}_ms"] = 1e3 * t
                row[f"{method}_x_nms"] = t / t_nms
            row["worst_soft_x_nms"] = max(row["gaussian_x_nms"], row["linear_x_nms"])
            row["ok"] = row["worst_soft_x_nms"] <= SOFT_NMS_X_NMS
            timings.append(row)
            log.info("soft_nms %s N=%d %s: nms %.3f ms, gaussian %.3f ms (%.2fx), linear %.3f ms (%.2fx), hard %.3f ms",
                     device, n, layout, row["nms_ms"], row["gaussian_ms"], row["gaussian_x_nms"], row["linear_ms"],
                     row["linear_x_nms"], row["hard_ms"])
    out["timing"] = timings
    out["target"] = f"soft (gaussian, linear) <= {SOFT_NMS_X_NMS}x torchvision.ops.nms on {device.type}"
    n = 300 if quick else 1000
    if budget.allows(30, "soft_nms matrix form", skipped):
        boxes, scores = boxes_clustered(n, torch.Generator().manual_seed(n))
        boxes, scores = boxes.to(device), scores.to(device)
        t_matrix = timed(lambda: soft_nms_matrix(boxes, scores), device, 1 if not quick else 1)
        t_kernel = timed(lambda: soft_nms(boxes, scores, method="gaussian"), device, 5)
        same = torch.equal(soft_nms_matrix(boxes, scores), soft_nms(boxes.cpu(), scores.cpu(), method="gaussian", exact=True)[0])
        out["matrix_form"] = {"n": n, "layout": "clustered", "matrix_ms": 1e3 * t_matrix, "kernel_ms": 1e3 * t_kernel,
                              "same_selection": bool(same)}
        log.info("soft_nms matrix form N=%d: %.1f ms vs kernel %.2f ms (same selection: %s)", n, 1e3 * t_matrix,
                 1e3 * t_kernel, same)
    return out


# ---------------------------------------------------------------------------- 2. detector
def section_detector(device: torch.device, quick: bool, budget: Budget, skipped: list[str]) -> dict[str, Any]:
    import mct.detect.maskrcnn as maskrcnn
    from mct.detect.config import DetectorConfig, SoftNMSConfig

    h, w = (360, 640) if quick else (1080, 1920)
    batches = (1, 2) if quick else (1, 4, 8)
    repeats = 2 if quick else 4
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(max(batches))]
    arch = "small" if quick else "resnet50_fpn_v2"  # --quick: the CPU demo architecture
    base = DetectorConfig(source="maskrcnn", model=arch, weights="none", device=device.type, min_score=0.05)
    torch.manual_seed(0)
    det = maskrcnn.MaskRCNNDetector(base)
    with torch.no_grad():  # every proposal is a car (label 3) of score about 0.4 (random spread)
        cls = det.model.roi_heads.box_predictor.cls_score
        cls.weight[:3] = 0.0
        cls.weight[4:] = 0.0
        cls.bias.zero_()
        cls.bias[3] = 4.0
    counts: list[int] = []
    real = maskrcnn.soft_nms_from_config

    def counting(xyxy, scores, class_ids, cfg):  # type: ignore[no-untyped-def]
        counts.append(int(len(scores)))
        return real(xyxy, scores, class_ids, cfg)

    maskrcnn.soft_nms_from_config = counting
    try:
        det.detect(list(range(len(frames))), frames)
    finally:
        maskrcnn.soft_nms_from_config = real
    out: dict[str, Any] = {"frame": [w, h], "model": f"{arch} (random weights)",
                           "boxes_into_nms_per_frame": counts, "rows": []}
    log.info("detector: %s boxes into Soft-NMS per frame", counts)
    for amp in (False, True):
        for bs in batches:
            row: dict[str, Any] = {"batch": bs, "precision": "fp16 autocast" if amp else "fp32"}
            for method in ("gaussian", "hard"):
                if not budget.allows(25, f"detector batch {bs} amp={amp} {method}", skipped):
                    break
                cfg = base.model_copy(update={"batch_size": bs, "amp": amp,
                                              "soft_nms": SoftNMSConfig(method=method)})
                d = maskrcnn.MaskRCNNDetector.from_model(det.model, 9 if quick else 91, cfg)
                d.cfg = cfg
                d.model.eval()
                chunk = frames[:bs]
                if device.type == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats(device)
                t = timed(lambda: d.detect(list(range(bs)), chunk), device, repeats)
                row[f"{method}_frames_per_s"] = bs / t
                row[f"{method}_ms_per_batch"] = 1e3 * t
                if device.type == "cuda":
                    row[f"{method}_peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                row[f"{method}_detections_per_frame"] = len(d.detect([0], chunk[:1])[0].xyxy)
            if "gaussian_ms_per_batch" in row and "hard_ms_per_batch" in row:
                row["soft_nms_overhead"] = row["gaussian_ms_per_batch"] / row["hard_ms_per_batch"] - 1.0
                row["ok"] = row["soft_nms_overhead"] <= SOFT_NMS_DETECTOR_OVERHEAD
            out["rows"].append(row)
            log.info("detector %s", json.dumps(row))
    out["target"] = f"Soft-NMS (gaussian) detector time within {SOFT_NMS_DETECTOR_OVERHEAD:.0%} of hard NMS"
    return out


# ---------------------------------------------------------------------------- 3. embedder
def section_embedder(device: torch.device, quick: bool, budget: Budget, skipped: list[str]) -> dict[str, Any]:
    from mct.reid.config import EmbedderConfig
    from mct.reid.embedder import Embedder

    size = 64 if quick else 256
    batches = (8, 16) if quick else (64, 128, 256, 512)
    base = EmbedderConfig(arch="resnet50", weights="none", crop_height=size, crop_width=size, device=device.type)
    torch.manual_seed(0)
    e32 = Embedder(base.model_copy(update={"fp16": False}))
    e16 = Embedder(base.model_copy(update={"fp16": True}))
    e16.model.load_state_dict(e32.model.state_dict())  # the same weights, cast to fp16
    out: dict[str, Any] = {"arch": "resnet50 (random weights)", "crop": [size, size], "fp16_active": e16.half,
                           "rows": []}
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2 * max(batches), size, size, 3), dtype=np.uint8)
    f32 = e32.embed_crops(crops[: max(batches)])
    f16 = e16.embed_crops(crops[: max(batches)])
    cos = (f32 * f16).sum(1)
    out["cosine_fp16_vs_fp32"] = {"min": float(cos.min()), "mean": float(cos.mean()), "target": f">= {MIN_COSINE}",
                                  "ok": bool(cos.min() >= MIN_COSINE)}
    log.info("embedder cosine fp16 vs fp32: min %.6f mean %.6f", cos.min(), cos.mean())
    for name, emb in (("fp32", e32), ("fp16", e16)):
        for bs in batches:
            if not budget.allows(15, f"embedder {name} batch {bs}", skipped):
                break
            emb.cfg = emb.cfg.model_copy(update={"batch_size": bs})
            part = crops[: 2 * bs]
            t = timed(lambda: emb.embed_crops(part), device, 2 if quick else 3)
            x = torch.from_numpy(part[:bs]).to(device).permute(0, 3, 1, 2).float()
            with torch.inference_mode():
                t_net = timed(lambda: emb._forward(x), device, 2 if quick else 5)
            row = {"precision": name, "batch": bs, "embeddings_per_s": 2 * bs / t, "network_only_per_s": bs / t_net}
            out["rows"].append(row)
            log.info("embedder %s", json.dumps(row))
    return out


# ---------------------------------------------------------------------------- 4. demo run
def mct_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mct.cli", *args]


def run_logged(cmd: list[str], log_path: Path, timeout: float) -> dict[str, Any]:
    """Run ``cmd`` in the repository, output to ``log_path``; returns rc, seconds, command."""
    t0 = time.perf_counter()
    log.info("$ %s", shlex.join(cmd))
    with log_path.open("w") as fh:
        try:
            rc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, timeout=max(timeout, 1)).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    seconds = time.perf_counter() - t0
    log.info("  -> rc %s in %.1f s (log %s)", rc, seconds, log_path)
    if rc != 0:
        log.warning("  last lines: %s", "".join(log_path.read_text().splitlines(True)[-15:]))
    return {"command": shlex.join(cmd), "rc": rc, "seconds": round(seconds, 1), "log": log_path.name}


def make_world(work: Path, out: Path, seconds: float, splits: str, workers: int, timeout: float) -> dict[str, Any]:
    data = work / "data"
    sets = []
    for split in splits.split(","):
        sets += ["--set", f"splits.{split}.duration_s={seconds:g}"]
    return run_logged(mct_cmd("-q", "synth", "configs/synth/demo.yaml", "--out", str(data), "--splits", splits,
                              "--workers", str(workers), *sets), out / f"synth_{splits.replace(',', '_')}.log", timeout)


def read_submission(run: Path) -> list[str]:
    path = run / "association" / "submission.txt"
    return sorted(path.read_text().split("\n")) if path.is_file() else []


def section_demo_run(device: torch.device, quick: bool, budget: Budget, skipped: list[str], work: Path,
                     out_dir: Path, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"demo_seconds": seconds}
    cores = os.cpu_count() or 2
    out["synth"] = make_world(work, out_dir, seconds, "validation", min(5, cores), budget.left())
    if out["synth"]["rc"] != 0:
        return out
    data = work / "data"
    variants = [("cpu", ["detector.device=cpu", "reid.device=cpu"])]
    if device.type == "cuda":
        variants = [("cuda_amp", ["detector.device=cuda", "reid.device=cuda"]),
                    ("cuda_fp32", ["detector.device=cuda", "reid.device=cuda", "detector.amp=false", "reid.fp16=false"]),
                    *variants]
    threads = max(1, cores // 5)
    runs: dict[str, Any] = {}
    for name, sets in variants:
        if not budget.allows(30, f"demo run {name}", skipped):
            continue
        folder = work / f"run_{name}"
        args = ["run", "configs/demo.yaml", "--out", str(folder), "--force", "--set", f"dataset.root={data}",
                "--set", "run.workers=5", "--set", f"run.threads_per_job={threads}"]
        for s in sets:
            args += ["--set", s]
        r = run_logged(mct_cmd("-q", *args), out_dir / f"run_{name}.log", budget.left())
        metrics = folder / "eval" / "metrics.json"
        if metrics.is_file():
            m = json.loads(metrics.read_text()).get("metrics", {})
            r["idf1"] = m.get("idf1")
            r["metrics"] = {k: v for k, v in m.items() if isinstance(v, (int, float))}
        summary = folder / "summary.json"
        if summary.is_file():
            shutil.copy(summary, out_dir / f"summary_{name}.json")
        r["rows"] = len([x for x in read_submission(folder) if x])
        runs[name] = r
    out["runs"] = runs
    cpu_rows = read_submission(work / "run_cpu")
    for name in runs:
        if name != "cpu" and "cpu" in runs:
            rows = read_submission(work / f"run_{name}")
            a, b = set(cpu_rows) - {""}, set(rows) - {""}
            runs[name]["rows_differing_from_cpu"] = len(a ^ b)
            runs[name]["same_submission_as_cpu"] = a == b
    return out


# ---------------------------------------------------------------------------- 5. training
def section_training(device: torch.device, quick: bool, budget: Budget, skipped: list[str], work: Path,
                     out_dir: Path, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    data = work / "data"
    if not (data / "train").is_dir():
        out["synth"] = make_world(work, out_dir, seconds, "train", min(5, os.cpu_count() or 2), budget.left())
    steps = 3 if quick else 20
    if (data / "train").is_dir() and budget.allows(40, "train-detector", skipped):
        folder = work / "train_detector"
        r = run_logged(mct_cmd("-q", "train-detector", "configs/detector/demo.yaml",
                               "--set", f"root={data}", "--set", f"out_dir={folder}", "--set", f"output={folder}/model.pt",
                               "--set", f"max_iters={steps}", "--set", f"device={device.type}",
                               "--set", "max_val_frames=8", "--set", "resume=false"),
                       out_dir / "train_detector.log", budget.left())
        metrics = folder / "metrics.json"
        if metrics.is_file():
            r["metrics"] = json.loads(metrics.read_text())
        out["train_detector"] = r
    from mct.reid.config import ReidTrainConfig

    if "amp" not in ReidTrainConfig.model_fields:
        out["train_reid"] = {"skipped": "mct train-reid has no device/amp option in this tree"}
    elif (data / "train").is_dir() and budget.allows(40, "train-reid", skipped):
        folder = work / "train_reid"
        r = run_logged(mct_cmd("-q", "train-reid", "configs/reid/demo.yaml", "--out", str(folder), "--no-resume",
                               "--set", f"data_root={data}", "--set", f"crops.cache_dir={work}/reid_cache",
                               "--set", "epochs=1", "--set", f"batches_per_epoch={2 if quick else 10}",
                               "--set", "num_identities=4",  # a short train split holds few vehicles
                               "--set", f"model.device={device.type}", "--set", "amp=true"),
                       out_dir / "train_reid.log", budget.left())
        metrics = folder / "metrics.json"
        if metrics.is_file():
            m = json.loads(metrics.read_text())
            r["metrics"] = {k: m.get(k) for k in ("epochs", "steps", "seconds_this_run", "val")}
        out["train_reid"] = r
    if budget.allows(20, "re-ID training steps", skipped):
        out["reid_steps"] = reid_training_steps(device, quick)
    return out


def reid_training_steps(device: torch.device, quick: bool) -> dict[str, Any]:
    """A few optimiser steps of the re-ID network (the project's model and losses) on
    ``device`` under autocast (bf16 where supported, else fp16 with a gradient scaler)."""
    from mct.reid.config import EmbedderConfig
    from mct.reid.model import build_model
    from mct.reid.train import batch_hard_triplet_loss

    torch.manual_seed(0)
    size = 64 if quick else 256
    model = build_model(EmbedderConfig(arch="resnet50", weights="none", crop_height=size, crop_width=size),
                        num_classes=16).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    bf16 = device.type == "cpu" or torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if bf16 else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=not bf16)
    x = torch.randn(64 if not quick else 8, 3, size, size, device=device)
    y = torch.arange(len(x), device=device) % min(16, len(x) // 2)  # >= 2 crops per identity
    losses, t0 = [], time.perf_counter()
    for _ in range(5 if not quick else 2):
        with torch.autocast(device.type, dtype=dtype):
            pooled, logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits.float(), y) + batch_hard_triplet_loss(pooled.float(), y, 0.3)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(float(loss.detach()))
    sync(device)
    return {"autocast": str(dtype), "steps": len(losses), "losses": losses, "seconds": time.perf_counter() - t0,
            "finite": all(math.isfinite(v) for v in losses),
            "note": "the bench's own loop over the project's network and losses: mct train-reid has no device option"}


# ---------------------------------------------------------------------------- main
SECTIONS = ("soft_nms", "detector", "embedder", "demo_run", "training")
RESULTS = ROOT / "benchmarks" / "results" / "gpu.json"


def summarise(result: dict[str, Any]) -> None:
    """Flat ``results`` rows and ``targets`` (the layout ``scripts/bench.py`` tabulates)."""
    sec = result["sections"]
    rows: list[dict[str, Any]] = []
    targets: dict[str, dict[str, Any]] = {}
    nms = sec.get("soft_nms", {})
    if "agreement" in nms:
        a = nms["agreement"]
        targets["soft_nms_device_equals_cpu_kernel"] = {"value": f"{a['calls'] - a['mismatches']}/{a['calls']}",
                                                        "target": "all", "ok": a["mismatches"] == 0}
    for r in nms.get("timing", []):
        rows.append({"what": f"soft_nms N={r['n']} {r['layout']}", "nms_ms": r["nms_ms"], "gaussian_ms": r["gaussian_ms"],
                     "linear_ms": r["linear_ms"], "hard_ms": r["hard_ms"], "worst_soft_x_nms": r["worst_soft_x_nms"]})
        targets[f"soft_nms_x_nms_{r['layout']}_n{r['n']}"] = {"value": r["worst_soft_x_nms"],
                                                               "target": f"<= {SOFT_NMS_X_NMS}", "ok": r["ok"]}
    for r in sec.get("detector", {}).get("rows", []):
        rows.append({"what": f"detector batch {r['batch']} {r['precision']}", **{k: v for k, v in r.items()
                                                                               if k not in ("batch", "precision", "ok")}})
        if "soft_nms_overhead" in r:
            targets[f"detector_soft_nms_overhead_b{r['batch']}_{r['precision'].split()[0]}"] = {
                "value": r["soft_nms_overhead"], "target": f"<= {SOFT_NMS_DETECTOR_OVERHEAD}", "ok": r["ok"]}
    emb = sec.get("embedder", {})
    for r in emb.get("rows", []):
        rows.append({"what": f"embedder batch {r['batch']} {r['precision']}", "embeddings_per_s": r["embeddings_per_s"],
                     "network_only_per_s": r["network_only_per_s"]})
    if "cosine_fp16_vs_fp32" in emb:
        c = emb["cosine_fp16_vs_fp32"]
        targets["embedder_fp16_min_cosine"] = {"value": c["min"], "target": f">= {MIN_COSINE}", "ok": c["ok"]}
    for name, r in sec.get("demo_run", {}).get("runs", {}).items():
        rows.append({"what": f"demo run {name}", "idf1": r.get("idf1"), "seconds": r.get("seconds"), "rc": r.get("rc"),
                     "rows": r.get("rows"), "rows_differing_from_cpu": r.get("rows_differing_from_cpu")})
    result["results"] = rows
    result["targets"] = targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for results.json and the logs (default: a scratch folder, the JSON to {RESULTS})")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a CPU dry run)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"),
                        help="auto: cuda; without a GPU the benchmark is skipped (exit 0) unless --out is given")
    parser.add_argument("--budget-s", type=float, default=400.0, help="time budget of the whole script, seconds")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--demo-seconds", type=float, default=15.0, help="length of the generated demo split, seconds")
    parser.add_argument("--train-seconds", type=float, default=8.0, help="length of the generated train split, seconds")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (data, runs); default /tmp/bench_gpu_work")
    args = parser.parse_args()
    if args.device == "auto":
        if not torch.cuda.is_available() and args.out is None:  # `make bench` on a machine without a GPU
            print(f"bench_gpu: no CUDA device; skipped ({RESULTS} keeps the last GPU measurement)")
            return 0
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    default_out = args.out is None
    if default_out:
        args.out = Path("/tmp") / "bench_gpu_out"
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path("/tmp") / "bench_gpu_work"
    work.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=[logging.StreamHandler(sys.stdout), logging.FileHandler(args.out / "bench_gpu.log")])
    budget = Budget(args.budget_s)
    if args.device == "cuda" and not torch.cuda.is_available():
        log.error("--device cuda but torch sees no CUDA device")
        return 2
    device = torch.device(args.device)
    result: dict[str, Any] = {
        "benchmark": "gpu",
        "command": shlex.join([sys.executable, *sys.argv]),
        "quick": args.quick,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "budget_s": args.budget_s,
        "machine": machine_info(device),
        "sections": {},
        "skipped": [],
    }
    path = args.out / "results.json"
    write_json(path, result)
    log.info("machine: %s", json.dumps(result["machine"]))
    wanted = [s for s in args.sections.split(",") if s]
    for name in wanted:
        if name not in SECTIONS:
            log.error("unknown section %r (expected %s)", name, ", ".join(SECTIONS))
            return 2
    for name in wanted:
        if budget.left() < 10:
            result["skipped"].append(f"section {name}")
            continue
        t0 = time.perf_counter()
        log.info("=== %s (%.0f s left)", name, budget.left())
        try:
            if name == "soft_nms":
                data = section_soft_nms(device, args.quick, budget, result["skipped"])
            elif name == "detector":
                data = section_detector(device, args.quick, budget, result["skipped"])
            elif name == "embedder":
                data = section_embedder(device, args.quick, budget, result["skipped"])
            elif name == "demo_run":
                data = section_demo_run(device, args.quick, budget, result["skipped"], work, args.out, args.demo_seconds)
            else:
                data = section_training(device, args.quick, budget, result["skipped"], work, args.out, args.train_seconds)
        except Exception as exc:  # noqa: BLE001 - one section's failure must not stop the others
            log.error("section %s failed: %s", name, exc)
            data = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        data["seconds"] = round(time.perf_counter() - t0, 1)
        result["sections"][name] = data
        if device.type == "cuda":
            torch.cuda.empty_cache()
        summarise(result)
        write_json(path, result)
    result["seconds"] = round(args.budget_s - budget.left(), 1)
    summarise(result)
    write_json(path, result)
    if default_out and not args.quick:
        write_json(RESULTS, result)
    log.info("wrote %s (%.0f s)", RESULTS if default_out and not args.quick else path, result["seconds"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
