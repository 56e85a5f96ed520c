"""Re-ID training: P x K batches, cross-entropy with label smoothing + batch-hard triplet.

The vehicle re-ID "strong baseline" (see docs/reid.md): each batch holds P distinct
identities with K crops each; the classifier on the BatchNorm neck is trained with
label-smoothed cross-entropy, the pooled feature with a batch-hard triplet loss (for each
anchor, its farthest positive and nearest negative in the batch). Crops are augmented
with a random horizontal flip, a pad-and-random-crop, and random erasing.

Output folder (``cfg.out_dir``):

* ``last.pt`` — full training state (model, optimiser, epoch, RNG), for ``resume``;
* ``model.pt`` — the final model alone (fp16, no classifier): a ``reid.weights`` file;
* ``loss_log.csv`` — one row per logged step: epoch, step, lr, loss, ce, triplet, acc;
* ``metrics.json`` — validation mAP / CMC per evaluation, and the resolved config.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from mct.reid.config import EmbedderConfig, ReidCropConfig, ReidTrainConfig
from mct.reid.crops import normalize_bgr
from mct.reid.dataset import CropSet, build_crop_set
from mct.reid.embedder import Embedder
from mct.reid.metrics import ReidMetrics, cosine_distance, reid_metrics, split_query_gallery
from mct.reid.model import ReidNet, build_model, load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

__all__ = [
    "PKSampler",
    "batch_hard_triplet_loss",
    "augment",
    "ReidTrainer",
    "train_reid",
    "evaluate_crop_set",
    "evaluate_reid",
]

LOG_COLUMNS = ("epoch", "step", "lr", "loss", "ce", "triplet", "acc")
#: write a loss-log row every this many steps (and at the end of each epoch).
_LOG_EVERY_STEPS = 10


class PKSampler:
    """Batches of P distinct identities x K crops each, as index arrays.

    Identities with fewer than K crops are sampled with replacement. Each epoch visits
    the identities in a fresh random order (so every identity appears about equally).

    Args:
        labels: ``(N,)`` integer identity of each crop.
        num_identities: P.
        num_instances: K.
        seed: RNG seed (the sampler's own generator).
    """

    def __init__(self, labels: np.ndarray, num_identities: int, num_instances: int, seed: int = 0) -> None:
        labels = np.asarray(labels)
        self.by_label = {int(k): np.flatnonzero(labels == k) for k in np.unique(labels)}
        if len(self.by_label) < num_identities:
            raise ValueError(
                f"num_identities (P) = {num_identities} but the training crops hold only "
                f"{len(self.by_label)} identities"
            )
        self.p = num_identities
        self.k = num_instances
        self.rng = np.random.default_rng(seed)

    @property
    def batch_size(self) -> int:
        return self.p * self.k

    def batch(self, identities: np.ndarray) -> np.ndarray:
        """``(P * K,) int64`` crop indices for the given P identities (K consecutive each)."""
        out = []
        for label in identities:
            pool = self.by_label[int(label)]
            out.append(self.rng.choice(pool, size=self.k, replace=len(pool) < self.k))
        return np.concatenate(out).astype(np.int64)

    def epoch(self, num_batches: int) -> Iterator[np.ndarray]:
        """``num_batches`` batches; identities cycle through a shuffled order."""
        labels = np.fromiter(self.by_label.keys(), np.int64)
        order = self.rng.permutation(labels)
        pos = 0
        for _ in range(num_batches):
            if pos + self.p > len(order):
                rest = order[pos:]
                fresh = self.rng.permutation(np.setdiff1d(labels, rest))
                order = np.concatenate([rest, fresh])
                pos = 0
            yield self.batch(order[pos : pos + self.p])
            pos += self.p

    def state(self) -> dict[str, Any]:
        return self.rng.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state


def batch_hard_triplet_loss(features: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al., 2017) on Euclidean distances.

    For each anchor: ``max(0, d(hardest positive) - d(hardest negative) + margin)``,
    averaged over anchors that have both a positive and a negative in the batch.
    ``features (B, D)``, ``labels (B,)``; returns a scalar.
    """
    dist = torch.cdist(features, features).clamp_min(1e-12)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask = same & ~eye
    neg_mask = ~same
    valid = pos_mask.any(1) & neg_mask.any(1)
    if not valid.any():
        return features.sum() * 0.0
    hardest_pos = (dist * pos_mask).max(1).values
    hardest_neg = dist.masked_fill(~neg_mask, float("inf")).min(1).values
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


def augment(crops_bgr: torch.Tensor, cfg: ReidTrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Training augmentation of a batch ``(B, H, W, 3) uint8`` BGR -> ``(B, 3, H, W)`` float, normalised.

    First the photometric steps, each off at its default (:func:`photometric`: JPEG round
    trip, colour jitter, blur, grey). Then per crop: horizontal flip (``flip_prob``), edge truncation (``truncate_prob``: keep a
    band of ``truncate_min_keep``..1 of the crop along a random side and stretch it back to
    the crop size, as a vehicle cut by the frame edge is cropped at run time), reflect-pad
    by ``pad_pixels`` and crop back at a random offset, then random erasing
    (``erasing_prob``) of a rectangle covering 2-40% of the area with aspect 0.3-3.3 (the
    random-erasing paper's ranges), filled with 0 (the mean colour after normalisation).
    """
    x = normalize_bgr(photometric(crops_bgr, cfg, generator))
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=generator) < cfg.flip_prob
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if cfg.truncate_prob > 0:
        x = _truncate(x, cfg.truncate_prob, cfg.truncate_min_keep, generator)
    pad = cfg.pad_pixels
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect") if pad < min(h, w) else F.pad(x, (pad,) * 4)
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
        x = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])
    erase = torch.rand(b, generator=generator) < cfg.erasing_prob
    for i in torch.nonzero(erase).flatten().tolist():
        for _ in range(10):  # rejection sampling, as in the paper
            area = h * w * (0.02 + 0.38 * torch.rand(1, generator=generator).item())
            aspect = math.exp(math.log(0.3) + (math.log(1 / 0.3) - math.log(0.3)) * torch.rand(1, generator=generator).item())
            eh, ew = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if 0 < eh < h and 0 < ew < w:
                y0 = int(torch.randint(0, h - eh + 1, (1,), generator=generator))
                x0 = int(torch.randint(0, w - ew + 1, (1,), generator=generator))
                x[i, :, y0 : y0 + eh, x0 : x0 + ew] = 0.0
                break
    return x


def photometric(crops_bgr: torch.Tensor, cfg: ReidTrainConfig, generator: torch.Generator) -> torch.Tensor:
    """``(B, H, W, 3) uint8`` BGR -> ``(B, 3, H, W)`` float32 in 0..255, with the photometric
    augmentations of ``cfg``: a JPEG round trip (``jpeg_prob``, quality in ``jpeg_quality``),
    colour jitter (``colour_jitter``), Gaussian blur (``blur_prob``), grey (``grayscale_prob``).
    A step whose probability or strength is 0 draws no random number."""
    b = crops_bgr.shape[0]
    if cfg.jpeg_prob > 0:
        chosen = torch.nonzero(torch.rand(b, generator=generator) < cfg.jpeg_prob).flatten().tolist()
        if chosen:
            import cv2

            lo, hi = cfg.jpeg_quality
            quality = torch.randint(lo, hi + 1, (len(chosen),), generator=generator).tolist()
            arr = crops_bgr.numpy().copy()
            for i, q in zip(chosen, quality):
                ok, buf = cv2.imencode(".jpg", arr[i], [cv2.IMWRITE_JPEG_QUALITY, int(q)])
                if ok:
                    arr[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            crops_bgr = torch.from_numpy(arr)
    x = crops_bgr.permute(0, 3, 1, 2).float()
    j = cfg.colour_jitter
    if j > 0:
        u = torch.rand(b, 6, generator=generator) * 2 - 1  # in [-1, 1]
        grey = x.mean(1, keepdim=True)
        # saturation: towards or away from the crop's own grey
        x = grey + (x - grey) * (1 + j * u[:, 0, None, None, None])
        # contrast about the crop's mean, then brightness, then a per-channel cast
        mean = x.mean((1, 2, 3), keepdim=True)
        x = mean + (x - mean) * (1 + j * u[:, 1, None, None, None])
        x = x * (1 + j * u[:, 2, None, None, None])
        x = x * (1 + 0.5 * j * u[:, 3:6, None, None])
    if cfg.blur_prob > 0:
        chosen = torch.nonzero(torch.rand(b, generator=generator) < cfg.blur_prob).flatten()
        if len(chosen):
            sigma = 0.5 + torch.rand(len(chosen), generator=generator)
            x = x.clone()
            for i, s in zip(chosen.tolist(), sigma.tolist()):
                x[i] = _gaussian_blur(x[i], s)
    if cfg.grayscale_prob > 0:
        grey_mask = torch.rand(b, generator=generator) < cfg.grayscale_prob
        x = torch.where(grey_mask[:, None, None, None], x.mean(1, keepdim=True).expand_as(x), x)
    return x.clamp(0.0, 255.0)


def _gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(3, H, W)`` float image blurred by a separable Gaussian of ``sigma`` pixels (radius 2 sigma)."""
    r = max(1, int(math.ceil(2 * sigma)))
    t = torch.arange(-r, r + 1, dtype=img.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = F.pad(img[None], (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return x[0]


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _truncate(x: torch.Tensor, prob: float, min_keep: float, generator: torch.Generator) -> torch.Tensor:
    """Each crop of ``(B, C, H, W)`` with probability ``prob``: keep the band of a random
    fraction in ``[min_keep, 1]`` of its width (side 0: left part, 1: right part) or height
    (2: top part, 3: bottom part), resized back to ``(H, W)`` bilinearly."""
    b, _, h, w = x.shape
    chosen = torch.nonzero(torch.rand(b, generator=generator) < prob).flatten().tolist()
    if not chosen:
        return x
    x = x.clone()
    for i in chosen:
        keep = min_keep + (1.0 - min_keep) * torch.rand(1, generator=generator).item()
        side = int(torch.randint(0, 4, (1,), generator=generator))
        if side < 2:
            kw = max(1, int(round(w * keep)))
            part = x[i : i + 1, :, :, :kw] if side == 0 else x[i : i + 1, :, :, w - kw :]
        else:
            kh = max(1, int(round(h * keep)))
            part = x[i : i + 1, :, :kh, :] if side == 2 else x[i : i + 1, :, h - kh :, :]
        x[i] = F.interpolate(part, size=(h, w), mode="bilinear", align_corners=False)[0]
    return x


def _lr_at(cfg: ReidTrainConfig, progress: float) -> float:
    """Learning rate at ``progress`` epochs (fractional): linear warm-up, then cosine."""
    if cfg.warmup_epochs > 0 and progress < cfg.warmup_epochs:
        return cfg.lr * (0.1 + 0.9 * progress / cfg.warmup_epochs)
    span = max(cfg.epochs - cfg.warmup_epochs, 1e-9)
    t = min(max((progress - cfg.warmup_epochs) / span, 0.0), 1.0)
    low = cfg.lr / 100
    return low + (cfg.lr - low) * 0.5 * (1 + math.cos(math.pi * t))


@torch.inference_mode()
def _embed_crop_set(model: ReidNet, crops: CropSet, batch_size: int = 128) -> np.ndarray:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(crops), batch_size):
        x = normalize_bgr(torch.from_numpy(crops.images[start : start + batch_size]).permute(0, 3, 1, 2).float())
        out.append(F.normalize(model(x.to(device)).float(), dim=1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, model.dim), np.float32)


def evaluate_crop_set(features: np.ndarray, crops: CropSet) -> ReidMetrics:
    """mAP / CMC of ``(N, D)`` unit features of a crop set (query = middle crop of each track)."""
    q, g = split_query_gallery(crops.ids, crops.cams, crops.tracks)
    dist = cosine_distance(features[q], features[g])
    return reid_metrics(dist, crops.ids[q], crops.ids[g], crops.cams[q], crops.cams[g], max_rank=10)


class ReidTrainer:
    """One training run: data, model, optimiser, checkpoints. Use :meth:`run`."""

    def __init__(self, cfg: ReidTrainConfig, train_crops: CropSet | None = None, val_crops: CropSet | None = None) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        torch.manual_seed(cfg.seed)
        mcfg = cfg.model
        if train_crops is None:
            train_crops = build_crop_set(cfg.data_root, cfg.train_split, cfg.crops, mcfg.crop_height, mcfg.crop_width, cfg.train_scenarios)
        if tuple(train_crops.images.shape[1:3]) != (mcfg.crop_height, mcfg.crop_width):
            raise ValueError(
                f"training crops are {train_crops.images.shape[1:3]} but model.crop_height/width are "
                f"{(mcfg.crop_height, mcfg.crop_width)}"
            )
        self.train_crops = train_crops
        self.val_crops = val_crops
        self.label_values, self.labels = np.unique(train_crops.ids, return_inverse=True)
        num_classes = len(self.label_values)
        log.info(
            "re-ID training: %d crops, %d identities, %d cameras; P=%d K=%d",
            len(train_crops), num_classes, train_crops.num_cameras, cfg.num_identities, cfg.num_instances,
        )
        self.sampler = PKSampler(self.labels, cfg.num_identities, cfg.num_instances, cfg.seed)
        self.device = _device(mcfg.device)
        self.model, self.model_cfg = self._init_model(num_classes)
        self.model.to(self.device)
        #: autocast in bfloat16 on CUDA (no loss scaling needed); full precision on the CPU
        self.amp = cfg.amp and self.device.type == "cuda"
        log.info("re-ID training on %s%s", self.device, " with bfloat16 autocast" if self.amp else "")
        self.optimizer = torch.optim.Adam(
            [p for p in self.model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.ce = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.batches_per_epoch = cfg.batches_per_epoch or max(1, len(train_crops) // self.sampler.batch_size)
        self.epoch = 0  # epochs completed
        self.step = 0
        self.elapsed_s = 0.0  # training seconds over all runs (for max_minutes)
        self.history: list[dict[str, Any]] = []

    def _init_model(self, num_classes: int) -> tuple[ReidNet, EmbedderConfig]:
        mcfg = self.cfg.model
        if mcfg.weights.strip().lower() in ("imagenet", "none"):
            return build_model(mcfg, num_classes=num_classes).train(), mcfg
        # fine-tune a project checkpoint: its backbone and neck, a fresh classifier. The
        # crop size is the training config's (convolutions and pooling work at any size),
        # so a model can be fine-tuned at a larger crop than it was trained at.
        model, merged = load_checkpoint(mcfg.weights, mcfg, key="model.weights")
        size = {"crop_height": mcfg.crop_height, "crop_width": mcfg.crop_width}
        if (merged.crop_height, merged.crop_width) != (mcfg.crop_height, mcfg.crop_width):
            log.info(
                "fine-tuning %s at %dx%d crops (trained at %dx%d)",
                mcfg.weights, mcfg.crop_width, mcfg.crop_height, merged.crop_width, merged.crop_height,
            )
        merged = merged.model_copy(update=size)
        model.classifier = nn.Linear(model.dim, num_classes, bias=False)
        nn.init.normal_(model.classifier.weight, std=0.001)
        return model.train(), merged

    # ------------------------------------------------------------------ checkpoints
    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"

    def save(self) -> None:
        extra = {
            "train_state": {
                "epoch": self.epoch,
                "step": self.step,
                "optimizer": self.optimizer.state_dict(),
                "sampler": self.sampler.state(),
                "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "history": self.history,
                "elapsed_s": self.elapsed_s,
            },
            "label_values": self.label_values.tolist(),
            "train_config": self.cfg.model_dump(mode="json"),
        }
        save_checkpoint(self.last_path, self.model, self.model_cfg, extra=extra)

    def try_resume(self) -> bool:
        if not (self.cfg.resume and self.last_path.is_file()):
            return False
        payload = torch.load(self.last_path, map_location="cpu", weights_only=False)
        if payload.get("label_values") != self.label_values.tolist():
            raise ValueError(f"{self.last_path}: trained on other identities than the current data; remove it or set resume: false")
        self.model.load_state_dict(payload["state_dict"])
        st = payload["train_state"]
        self.optimizer.load_state_dict(st["optimizer"])
        self.sampler.set_state(st["sampler"])
        self.generator.set_state(st["generator"])
        torch.set_rng_state(st["torch_rng"])
        self.epoch, self.step, self.history = st["epoch"], st["step"], list(st["history"])
        self.elapsed_s = float(st.get("elapsed_s", 0.0))
        self._truncate_log()
        log.info("resumed %s at epoch %d (step %d)", self.last_path, self.epoch, self.step)
        return True

    def _truncate_log(self) -> None:
        """Drop loss-log rows written after the checkpoint we resume from."""
        path = self.out / "loss_log.csv"
        if not path.is_file():
            return
        with path.open() as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    # ------------------------------------------------------------------ training
    def train_step(self, index: np.ndarray, lr: float) -> dict[str, float]:
        """One optimiser step on the crops ``index``; returns the losses and accuracy."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x = augment(torch.from_numpy(self.train_crops.images[index]), self.cfg, self.generator).to(self.device, non_blocking=True)
        y = torch.from_numpy(self.labels[index]).long().to(self.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            pooled, logits = self.model(x)
        # the losses in float32: the triplet's distances are differences of near numbers
        pooled, logits = pooled.float(), logits.float()
        ce = self.ce(logits, y) if self.cfg.ce_weight > 0 else pooled.sum() * 0.0
        tri = batch_hard_triplet_loss(pooled, y, self.cfg.triplet_margin) if self.cfg.triplet_weight > 0 else pooled.sum() * 0.0
        loss = self.cfg.ce_weight * ce + self.cfg.triplet_weight * tri
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        acc = float((logits.argmax(1) == y).float().mean()) if logits is not None else float("nan")
        return {"loss": loss.item(), "ce": ce.item(), "triplet": tri.item(), "acc": acc}

    def run(self, progress: bool = True) -> dict[str, Any]:
        """Train to ``cfg.epochs`` (resuming when possible); returns a summary dict."""
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(cfg.num_threads)
        self.try_resume()
        log_path = self.out / "loss_log.csv"
        new_log = not log_path.is_file()
        started = time.time()
        elapsed_before = self.elapsed_s
        budget_s = 60.0 * cfg.max_minutes if cfg.max_minutes else math.inf
        out_of_time = False
        with log_path.open("a", newline="") as log_file:
            writer = csv.DictWriter(log_file, fieldnames=LOG_COLUMNS)
            if new_log:
                writer.writeheader()
            self.model.train()
            while self.epoch < cfg.epochs and not out_of_time:
                sums = {"loss": 0.0, "ce": 0.0, "triplet": 0.0, "acc": 0.0}
                bar = tqdm(
                    enumerate(self.sampler.epoch(self.batches_per_epoch)),
                    total=self.batches_per_epoch,
                    desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                    disable=not progress or None,
                    leave=False,
                )
                for i, index in bar:
                    self.elapsed_s = elapsed_before + time.time() - started
                    # with a time budget the schedule follows whichever is further along
                    progress = max(self.epoch + i / self.batches_per_epoch, cfg.epochs * self.elapsed_s / budget_s)
                    lr = _lr_at(cfg, progress)
                    stats = self.train_step(index, lr)
                    self.step += 1
                    if self.elapsed_s >= budget_s:
                        out_of_time = True
                        log.info("max_minutes %.1f reached at epoch %d step %d", cfg.max_minutes, self.epoch + 1, self.step)
                        break
                    for k in sums:
                        sums[k] += stats[k]
                    bar.set_postfix(loss=f"{stats['loss']:.3f}", acc=f"{stats['acc']:.2f}")
                    if self.step % _LOG_EVERY_STEPS == 0 or i == self.batches_per_epoch - 1:
                        writer.writerow({"epoch": self.epoch + 1, "step": self.step, "lr": f"{lr:.3g}", **{k: f"{v:.5f}" for k, v in stats.items()}})
                        log_file.flush()
                self.epoch += 1
                self.elapsed_s = elapsed_before + time.time() - started
                record: dict[str, Any] = {"epoch": self.epoch, **{k: v / self.batches_per_epoch for k, v in sums.items()}}
                if self.val_crops is not None and cfg.eval_every_epochs and self.epoch % cfg.eval_every_epochs == 0:
                    record["val"] = evaluate_crop_set(_embed_crop_set(self.model, self.val_crops), self.val_crops).as_dict()
                self.history.append(record)
                log.info("epoch %d: %s", self.epoch, json.dumps(record))
                if self.epoch % cfg.checkpoint_every_epochs == 0 or self.epoch == cfg.epochs or out_of_time:
                    self.save()
        final = save_checkpoint(
            self.out / "model.pt", self.model, self.model_cfg, fp16=True, with_classifier=False,
            extra={"trained": {"epochs": self.epoch, "identities": len(self.label_values), "config": cfg.name}},
        )
        summary: dict[str, Any] = {"model": str(final), "epochs": self.epoch, "steps": self.step, "seconds_this_run": time.time() - started}
        if self.val_crops is not None:
            metrics = evaluate_crop_set(_embed_crop_set(self.model, self.val_crops), self.val_crops)
            summary["val"] = metrics.as_dict()
        summary["history"] = self.history
        summary["config"] = cfg.model_dump(mode="json")
        (self.out / "metrics.json").write_text(json.dumps(summary, indent=2))
        return summary


def train_reid(cfg: ReidTrainConfig, progress: bool = True) -> dict[str, Any]:
    """``mct train-reid``: build the crops, train, write the outputs; returns the summary."""
    mcfg = cfg.model
    val = None
    if cfg.val_split:
        val = build_crop_set(cfg.data_root, cfg.val_split, cfg.crops, mcfg.crop_height, mcfg.crop_width, cfg.val_scenarios)
    trainer = ReidTrainer(cfg, val_crops=val)
    return trainer.run(progress=progress)


def evaluate_reid(
    root: str | Path,
    split: str,
    weights: str,
    crops: ReidCropConfig | None = None,
    scenarios: tuple[str, ...] = (),
    batch_size: int = 64,
    device: str = "auto",
    flip: bool = False,
) -> tuple[ReidMetrics, CropSet]:
    """``mct eval-reid``: mAP / CMC of a model on the gt identities of ``split``.

    The crops are cut at the model's crop size (cached); query = the middle crop of each
    (identity, camera) track, gallery = all crops, cross-camera protocol.
    """
    embedder = Embedder(EmbedderConfig(weights=weights, batch_size=batch_size, device=device, flip=flip))
    h, w = embedder.crop_size
    crop_set = build_crop_set(root, split, crops or ReidCropConfig(), h, w, scenarios)
    feats = embedder.embed_crops(crop_set.images)
    return evaluate_crop_set(feats, crop_set), crop_set
