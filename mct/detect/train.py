"""``mct train-detector``: train or fine-tune Mask R-CNN on scenes in the AI City layout.

Data: for each camera of the chosen split(s), every ``frame_stride``-th annotated frame,
decoded from ``vdo.avi`` (kept JPEG-encoded in memory, quality 95). Annotations come from
``segm/coco_instances.json`` when the camera has one (boxes, COCO category ids and RLE
masks of every visible vehicle), else from ``gt/gt.txt`` (boxes only, label car = 3; the
mask targets are the box rectangles and the mask loss of such a batch is not used).

Checkpoints: ``<out_dir>/last.pt`` every ``checkpoint_every`` steps (model, optimiser,
step; resumable: the batch order and flips are a function of seed and step), plus the fp16
model file ``output`` at every checkpoint, so a run cut short still leaves a usable model.
At the end: box AP on the validation split with pycocotools, stored in the model file's
``meta`` and in ``<out_dir>/metrics.json``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from mct.data.aicity import load_dataset
from mct.data.mot import read_mot
from mct.data.video import read_frames
from mct.detect.config import DetectorConfig, DetectorTrainConfig
from mct.types import Detections
from mct.detect.maskrcnn import (
    MaskRCNNDetector,
    _load_coco,
    build_model,
    load_weights,
    read_checkpoint,
    resolve_weights_path,
    save_checkpoint,
)

log = logging.getLogger(__name__)

__all__ = ["Sample", "collect_samples", "train_detector", "evaluate_box_ap", "evaluate_checkpoint"]

#: the label given to gt.txt boxes (they carry no class): COCO "car".
_GT_LABEL = 3
_JPEG_QUALITY = 95


@dataclass(frozen=True)
class Sample:
    """One annotated frame.

    Attributes:
        key: ``(scenario, camera_id, frame)``.
        jpeg: the frame, JPEG-encoded BGR.
        xyxy: ``(N, 4) float32`` boxes, pixels.
        labels: ``(N,) int64`` COCO category ids.
        rles: COCO RLE dicts (one per box), or ``None`` for box-only annotations.
        visible: ``(N,) float32`` visible fraction (1 when unknown).
    """

    key: tuple[str, str, int]
    jpeg: bytes
    xyxy: np.ndarray
    labels: np.ndarray
    rles: tuple[dict[str, Any], ...] | None
    visible: np.ndarray

    def image(self) -> np.ndarray:
        """``(H, W, 3) uint8`` BGR."""
        return cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)


def _coco_annotations(path: Path) -> dict[int, list[dict[str, Any]]]:
    """frame number -> annotations, for every image of a COCO instances file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable COCO JSON file: {exc}") from exc
    for key in ("images", "annotations"):
        if key not in data:
            raise ValueError(f"{path}: COCO file lacks {key!r}")
    frame_of = {}
    for img in data["images"]:
        frame = img.get("frame_id", img["id"])
        frame_of[img["id"]] = int(frame)
    out: dict[int, list[dict[str, Any]]] = {f: [] for f in frame_of.values()}
    for ann in data["annotations"]:
        if ann["image_id"] not in frame_of:
            raise ValueError(f"{path}: annotation {ann.get('id')} refers to unknown image {ann['image_id']}")
        out[frame_of[ann["image_id"]]].append(ann)
    return out


def collect_samples(
    root: str | Path,
    split: str,
    scenarios: Sequence[str] = (),
    frame_stride: int = 1,
    max_frames: int = 0,
) -> list[Sample]:
    """Annotated frames of a split (see the module docstring), in camera then frame order."""
    ds = load_dataset(root, split, scenarios)
    samples: list[Sample] = []
    for cam in tqdm(ds.cameras, desc=f"reading {split}", unit="camera", leave=False):
        if cam.root is None or cam.video_path is None:
            raise ValueError(f"{cam.key}: camera folder or video missing")
        coco_path = Path(cam.root) / "segm" / "coco_instances.json"
        per_frame: dict[int, tuple[np.ndarray, np.ndarray, tuple | None, np.ndarray]] = {}
        if coco_path.is_file():
            for frame, anns in _coco_annotations(coco_path).items():
                tlwh = np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
                xyxy = np.concatenate([tlwh[:, :2], tlwh[:, :2] + tlwh[:, 2:]], axis=1)
                labels = np.array([a["category_id"] for a in anns], np.int64)
                rles = tuple(a["segmentation"] for a in anns)
                vis = np.array([a.get("visible_fraction", 1.0) for a in anns], np.float32)
                per_frame[frame] = (xyxy, labels, rles, vis)
            source = coco_path
        else:
            gt_path = Path(cam.root) / "gt" / "gt.txt"
            if not gt_path.is_file():
                raise FileNotFoundError(f"{cam.key}: neither {coco_path} nor {gt_path} exists: no annotations to train on")
            rows = read_mot(gt_path, "gt")
            for frame, part in rows.iter_frames():
                n = len(part)
                per_frame[frame] = (part.xyxy, np.full(n, _GT_LABEL, np.int64), None, np.ones(n, np.float32))
            source = gt_path
        frames = sorted(per_frame)[::frame_stride]
        images = read_frames(cam.video_path, frames)
        for frame in frames:
            ok, buf = cv2.imencode(".jpg", images[frame], [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
            if not ok:  # pragma: no cover - cv2 encodes any uint8 image
                raise ValueError(f"{cam.video_path}: frame {frame} could not be JPEG-encoded")
            xyxy, labels, rles, vis = per_frame[frame]
            samples.append(Sample((cam.scenario, cam.camera_id, frame), buf.tobytes(), xyxy, labels, rles, vis))
        log.info("%s/%s: %d frames from %s", cam.scenario, cam.camera_id, len(frames), source.name)
    if max_frames and len(samples) > max_frames:
        pick = np.linspace(0, len(samples) - 1, max_frames).round().astype(int)
        samples = [samples[i] for i in pick]
    return samples


# ---------------------------------------------------------------------------- batches
def _target(
    sample: Sample,
    image_hw: tuple[int, int],
    flip: bool,
    device: torch.device,
    crop: tuple[int, int, int, int] | None = None,
    min_kept_fraction: float = 0.5,
    min_cut_box_px: int = 1,
) -> tuple[dict[str, torch.Tensor], bool]:
    """Targets of one image; ``crop`` = ``(top, left, height, width)`` already applied to the image.

    A box cut by the crop is kept, clipped to the crop, when at least ``min_kept_fraction``
    of its area and at least ``min_cut_box_px`` of its width and height stay inside.
    """
    from pycocotools import mask as mask_utils

    h, w = image_hw
    xyxy = sample.xyxy.copy()
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    if crop is not None:
        top, left, ch, cw = crop
        xyxy = xyxy - np.array([left, top, left, top], np.float32)
        xyxy = np.clip(xyxy, 0, np.array([cw, ch, cw, ch], np.float32))
    # keep boxes at least 1 px wide and high (degenerate ones break the box coder) and,
    # after a crop, the cut ones that keep enough of themselves inside
    kept_w, kept_h = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
    kept_area = kept_w * kept_h
    good = (kept_w >= 1) & (kept_h >= 1)
    good &= (kept_area >= area) | ((kept_area >= min_kept_fraction * area) & (kept_w >= min_cut_box_px) & (kept_h >= min_cut_box_px))
    idx = np.flatnonzero(good)
    xyxy = xyxy[idx]
    has_masks = sample.rles is not None
    if has_masks:
        rles = [sample.rles[i] for i in idx]  # type: ignore[index]
        masks = mask_utils.decode(rles).transpose(2, 0, 1) if rles else np.zeros((0, h, w), np.uint8)
        if crop is not None:
            masks = masks[:, top : top + ch, left : left + cw]
    else:
        hh, ww = (ch, cw) if crop is not None else (h, w)
        masks = np.zeros((len(idx), hh, ww), np.uint8)
        for k, (x1, y1, x2, y2) in enumerate(np.round(xyxy).astype(int)):
            masks[k, max(y1, 0) : y2, max(x1, 0) : x2] = 1
    if crop is not None:
        w = crop[3]
    if flip:
        xyxy = np.stack([w - xyxy[:, 2], xyxy[:, 1], w - xyxy[:, 0], xyxy[:, 3]], axis=1)
        masks = masks[:, :, ::-1]
    target = {
        "boxes": torch.from_numpy(np.ascontiguousarray(xyxy, np.float32)).reshape(-1, 4).to(device),
        "labels": torch.from_numpy(sample.labels[idx]).to(device),
        "masks": torch.from_numpy(np.ascontiguousarray(masks)).to(device),
    }
    return target, has_masks


def _batch(
    samples: Sequence[Sample],
    flips: Sequence[bool],
    device: torch.device,
    crop_size: tuple[int, ...],
    crop_at: Sequence[tuple[float, float]],
    min_kept_fraction: float,
    min_cut_box_px: int,
) -> tuple[list[torch.Tensor], list[dict], bool]:
    """Images and targets; ``crop_at`` gives each crop's position as fractions of the slack;
    boxes cut by a crop follow ``min_kept_fraction`` and ``min_cut_box_px`` (:func:`_target`)."""
    images, targets, all_masks = [], [], True
    for k, (sample, flip) in enumerate(zip(samples, flips)):
        bgr = sample.image()
        h, w = bgr.shape[:2]
        crop = None
        if crop_size:
            ch, cw = min(crop_size[0], h), min(crop_size[1], w)
            fy, fx = crop_at[k]
            top, left = int(fy * (h - ch)), int(fx * (w - cw))
            crop = (top, left, ch, cw)
            bgr = bgr[top : top + ch, left : left + cw]
        rgb = bgr[:, :, ::-1]
        if flip:
            rgb = rgb[:, ::-1]
        images.append(torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1).float().div_(255.0))
        target, has_masks = _target(sample, (h, w), flip, device, crop, min_kept_fraction, min_cut_box_px)
        targets.append(target)
        all_masks &= has_masks
    return images, targets, all_masks


def _lr_factor(step: int, cfg: DetectorTrainConfig, elapsed_s: float = 0.0) -> float:
    """Linear warm-up from 0.1, then cosine to 0.05 over the steps (or the time budget)."""
    if step < cfg.warmup_iters:
        return 0.1 + 0.9 * step / max(cfg.warmup_iters, 1)
    progress = (step - cfg.warmup_iters) / max(cfg.max_iters - cfg.warmup_iters, 1)
    if cfg.max_minutes:
        progress = max(progress, elapsed_s / (60.0 * cfg.max_minutes))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _batch_plan(step: int, n: int, cfg: DetectorTrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample indices, flips and crop positions of ``step``: a function of (seed, step), for resuming."""
    epoch, offset = divmod(step * cfg.batch_size, n)
    order = np.random.default_rng((cfg.seed, epoch)).permutation(n)
    idx = np.concatenate([order, np.random.default_rng((cfg.seed, epoch + 1)).permutation(n)])[offset : offset + cfg.batch_size]
    rng = np.random.default_rng((cfg.seed, 10_000_000 + step))
    flips = rng.random(cfg.batch_size) < 0.5
    crop_at = rng.random((cfg.batch_size, 2))
    return idx, flips & cfg.hflip, crop_at


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _initial_model(cfg: DetectorTrainConfig) -> torch.nn.Module:
    model = build_model(cfg.model, cfg.num_classes, min_size=cfg.min_size, max_size=cfg.max_size)
    model.roi_heads.fg_bg_sampler.batch_size_per_image = cfg.box_batch_size_per_image
    if cfg.init_weights == "none":
        return model
    if cfg.init_weights == "coco":
        state, source = _load_coco(cfg.model, True), f"COCO weights of {cfg.model}"
    else:
        path = resolve_weights_path(cfg.init_weights, "init_weights")
        state, source = read_checkpoint(path, "init_weights")["state_dict"], str(path)
    own = model.state_dict()
    # a head of another class count is re-initialised (fine-tuning COCO -> fewer classes)
    skipped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    state = {k: v for k, v in state.items() if k not in skipped}
    if skipped:
        log.info("%s: not loading %d tensors of another shape (%s, ...)", source, len(skipped), skipped[0])
        own.update({k: v.to(own[k].dtype) for k, v in state.items()})
        state = own
    load_weights(model, state, source)
    return model


# ---------------------------------------------------------------------------- evaluation
def evaluate_box_ap(
    detector: MaskRCNNDetector,
    samples: Sequence[Sample],
    cfg: DetectorTrainConfig,
) -> dict[str, float]:
    """Box AP (pycocotools) of ``detector`` on ``samples``.

    Annotations with a visible fraction below ``cfg.eval_min_visible_fraction`` or a side
    below ``cfg.eval_min_box_px`` are "iscrowd" (ignored: detecting them is neither a hit
    nor a false positive). Class-agnostic: every vehicle is one class, as tracking uses
    the boxes whatever their class.

    Returns:
        ``{"AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10",
        "AR100", "frames", "gt_boxes", "seconds_per_frame"}`` plus ``precision@s`` and
        ``recall@s`` (IoU >= 0.5) for each ``s`` in :data:`OPERATING_SCORES`.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dts = [], [], []
    per_frame: list[tuple[Sample, Detections]] = []
    seconds = 0.0
    detector.model.eval()
    bs = detector.cfg.batch_size
    for start in tqdm(range(0, len(samples), bs), desc="validation", unit="batch", leave=False):
        chunk = samples[start : start + bs]
        frames = [s.image() for s in chunk]
        t0 = time.perf_counter()
        outputs = detector.detect([s.key[2] for s in chunk], frames)
        seconds += time.perf_counter() - t0
        for k, (sample, frame, dets) in enumerate(zip(chunk, frames, outputs)):
            per_frame.append((sample, dets))
            image_id = start + k + 1
            h, w = frame.shape[:2]
            images.append({"id": image_id, "width": w, "height": h})
            for box, ignore in zip(sample.xyxy, _ignored_gt(sample, cfg)):
                bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
                anns.append({
                    "id": len(anns) + 1, "image_id": image_id, "category_id": 1,
                    "bbox": [float(box[0]), float(box[1]), bw, bh], "area": bw * bh, "iscrowd": int(ignore),
                })
            for box, score in zip(dets.xyxy, dets.scores):
                dts.append({
                    "image_id": image_id, "category_id": 1, "score": float(score),
                    "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                })
    result = {"frames": float(len(samples)), "gt_boxes": float(sum(1 for a in anns if not a["iscrowd"])),
              "seconds_per_frame": seconds / max(len(samples), 1)}
    for min_score in OPERATING_SCORES:
        p, r = _precision_recall(per_frame, cfg, min_score)
        result[f"precision@{min_score}"], result[f"recall@{min_score}"] = p, r
    names = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100"]
    if not dts or not any(not a["iscrowd"] for a in anns):
        result.update({n: 0.0 for n in names})
        return result
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "vehicle"}]}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        gt.createIndex()
        dt = gt.loadRes(dts)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    log.debug("pycocotools:\n%s", out.getvalue())
    result.update({n: float(v) for n, v in zip(names, ev.stats[:9])})
    return result


#: score thresholds at which precision and recall (IoU >= 0.5) are reported: the
#: operating points a tracker would use as ``detector.min_score``.
OPERATING_SCORES = (0.3, 0.5, 0.7)


def _ignored_gt(sample: Sample, cfg: DetectorTrainConfig) -> np.ndarray:
    """``(N,) bool``: the gt boxes of ``sample`` that the evaluation ignores ("iscrowd"):
    visible fraction below ``cfg.eval_min_visible_fraction`` or a side below ``cfg.eval_min_box_px``."""
    bw = sample.xyxy[:, 2] - sample.xyxy[:, 0]
    bh = sample.xyxy[:, 3] - sample.xyxy[:, 1]
    return (sample.visible < cfg.eval_min_visible_fraction) | (np.minimum(bw, bh) < cfg.eval_min_box_px)


def _precision_recall(
    per_frame: Sequence[tuple[Sample, Detections]], cfg: DetectorTrainConfig, min_score: float
) -> tuple[float, float]:
    """Precision and recall of the detections scoring >= ``min_score``, matched greedily in
    score order to gt at IoU >= 0.5; a detection matching an ignored gt box counts for nothing."""
    from torchvision.ops import box_iou

    tp = fp = n_gt = 0
    for sample, dets in per_frame:
        keep = dets.scores >= min_score
        boxes = dets.xyxy[keep][np.argsort(-dets.scores[keep], kind="stable")]
        ignored = _ignored_gt(sample, cfg)
        n_gt += int((~ignored).sum())
        if not len(boxes):
            continue
        if not len(sample.xyxy):
            fp += len(boxes)
            continue
        iou = box_iou(torch.from_numpy(boxes), torch.from_numpy(sample.xyxy)).numpy()
        taken = np.zeros(len(sample.xyxy), bool)
        for row in iou:
            # prefer a free evaluated gt box, then an ignored one (COCO's order)
            free = np.where(~taken & ~ignored & (row >= 0.5), row, -1.0)
            j = int(np.argmax(free))
            if free[j] >= 0.5:
                taken[j] = True
                tp += 1
                continue
            crowd = np.where(ignored & (row >= 0.5), row, -1.0)
            if crowd.max(initial=-1.0) < 0.5:
                fp += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / n_gt if n_gt else 0.0
    return precision, recall


def _eval_detector_cfg(cfg: DetectorTrainConfig) -> DetectorConfig:
    """``cfg.eval_detector`` with what AP needs forced: every box the model outputs (no
    ``min_score`` or ROI filter: AP ranks them all), every label, no masks."""
    return cfg.eval_detector.model_copy(update={
        "label_map": {i: 1 for i in range(1, cfg.num_classes)}, "classes": ("car",), "masks": "none",
        "min_score": 0.0, "roi_rule": "none",
    })


def evaluate_checkpoint(cfg: DetectorTrainConfig, weights: str | None = None) -> dict[str, float]:
    """Box AP of a trained checkpoint (default: ``cfg.output``) on the validation split."""
    path = resolve_weights_path(weights or cfg.output)
    dcfg = _eval_detector_cfg(cfg).model_copy(update={"weights": str(path), "source": "maskrcnn"})
    detector = MaskRCNNDetector(dcfg, None)
    samples = collect_samples(cfg.root, cfg.val_split, cfg.val_scenarios, cfg.val_frame_stride, cfg.max_val_frames)
    return evaluate_box_ap(detector, samples, cfg)


# ---------------------------------------------------------------------------- training
def _save_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, elapsed_s: float) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "elapsed_s": elapsed_s}, tmp)
    tmp.replace(path)


def train_detector(cfg: DetectorTrainConfig) -> dict[str, Any]:
    """Train per ``cfg`` (resuming from ``<out_dir>/last.pt`` when present); returns the metrics."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
        cv2.setNumThreads(1)
    torch.manual_seed(cfg.seed)
    device = _device(cfg.device)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=1))
    train = collect_samples(cfg.root, cfg.train_split, cfg.train_scenarios, cfg.frame_stride)
    if not train:
        raise ValueError(f"{cfg.root}/{cfg.train_split}: no annotated frames to train on")
    log.info("training on %d frames (%d boxes)", len(train), sum(len(s.xyxy) for s in train))
    model = _initial_model(cfg).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    last = out_dir / "last.pt"
    step, elapsed0 = 0, 0.0
    if cfg.resume and last.is_file():
        state = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed0 = int(state["step"]), float(state.get("elapsed_s", 0.0))
        log.info("resuming from %s at step %d", last, step)
    meta_base = {"config": cfg.model_dump(mode="json")}
    model.train()
    history = out_dir / "loss.jsonl"
    bar = tqdm(total=cfg.max_iters, initial=step, desc="train-detector", unit="step")
    smooth: float | None = None
    t_start = time.perf_counter()
    budget_s = 60.0 * cfg.max_minutes if cfg.max_minutes else math.inf
    elapsed = elapsed0
    while step < cfg.max_iters and elapsed < budget_s:
        elapsed = elapsed0 + time.perf_counter() - t_start
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * _lr_factor(step, cfg, elapsed)
        idx, flips, crop_at = _batch_plan(step, len(train), cfg)
        images, targets, with_masks = _batch(
            [train[i] for i in idx], flips, device, cfg.crop_size, crop_at, cfg.crop_min_kept_fraction, cfg.crop_min_box_px
        )
        losses = model(images, targets)
        if not with_masks:
            losses["loss_mask"] = losses["loss_mask"] * 0.0
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {step}: loss is {float(loss)} ({ {k: float(v) for k, v in losses.items()} })")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optimizer.step()
        step += 1
        elapsed = elapsed0 + time.perf_counter() - t_start
        done = step == cfg.max_iters or elapsed >= budget_s
        value = float(loss.detach())
        smooth = value if smooth is None else 0.95 * smooth + 0.05 * value
        bar.update(1)
        bar.set_postfix(loss=f"{smooth:.3f}")
        if step % 10 == 0 or done:
            with history.open("a") as fh:
                fh.write(json.dumps({"step": step, "loss": value, **{k: float(v.detach()) for k, v in losses.items()},
                                     "lr": optimizer.param_groups[0]["lr"], "seconds": elapsed}) + "\n")
        if step % cfg.checkpoint_every == 0 or done:
            _save_state(last, model, optimizer, step, elapsed)
            save_checkpoint(cfg.output, model, cfg.model, cfg.num_classes, cfg.min_size, cfg.max_size,
                            {**meta_base, "step": step, "final": done})
            log.info("step %d: loss %.3f; checkpoint %s, model %s", step, smooth, last, cfg.output)
    bar.close()
    metrics: dict[str, Any] = {"steps": step, "train_frames": len(train), "train_minutes": elapsed / 60.0}
    log.info("validation AP on %s", cfg.val_split)
    model.eval()
    detector = MaskRCNNDetector.from_model(model, cfg.num_classes, _eval_detector_cfg(cfg))
    val = collect_samples(cfg.root, cfg.val_split, cfg.val_scenarios, cfg.val_frame_stride, cfg.max_val_frames)
    metrics["validation"] = evaluate_box_ap(detector, val, cfg)
    save_checkpoint(cfg.output, model, cfg.model, cfg.num_classes, cfg.min_size, cfg.max_size,
                    {**meta_base, "step": step, "final": True, "validation": metrics["validation"]})
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics
