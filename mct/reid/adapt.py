"""``mct adapt``: fine-tune a re-ID model on a scenario's own video, without labels.

A first run of the pipeline (``mct run``) on the scenario leaves, per camera, tracklets
(boxes over frames) and a cross-camera association (global ids). Those give three kinds of
evidence that need no ground truth:

* **positives within a tracklet**: the crops of one tracklet are one vehicle;
* **negatives between concurrent tracklets**: two tracklets of one camera that share a
  frame are two vehicles (one camera cannot see one vehicle twice at once);
* **cross-camera positives** from confident associations: tracklets of different cameras
  that the first run gave one global id, and whose features are at least
  ``min_cross_camera_cosine`` alike, are one vehicle (a group holding two concurrent
  tracklets of one camera is not confident and is split again).

Pseudo-identities are the tracklets merged by those cross-camera positives. Training uses
a batch-hard triplet loss (Hermans et al., 2017) whose negatives are only the known ones:
a batch holds a seed pseudo-identity and others concurrent with it in some camera, K crops
each. Two tracklets of different cameras with different global ids are never used as a
negative pair (the first run may have missed that they are one vehicle). BatchNorm runs in
training mode on the scenario's crops, so its statistics move to the new look too.

Output folder (``out_dir``): ``last.pt`` (resumable state), ``loss_log.csv``,
``model.pt`` (the adapted model, fp16, a ``reid.weights`` file) and ``adapt.json``
(the mining counts, the config, the CPU and wall seconds). The input model is never
written. Then run the pipeline again with ``--set reid.weights=<out_dir>/model.pt``.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from mct.reid.config import ReidAdaptConfig, ReidTrainConfig
from mct.reid.crops import crop_boxes, frame_to_tensor
from mct.reid.model import ReidNet, load_checkpoint, save_checkpoint
from mct.reid.train import _device, augment

log = logging.getLogger(__name__)

__all__ = [
    "AdaptError", "TrackletRef", "MinedPairs", "mine_pairs", "masked_batch_hard_triplet_loss", "adapt_reid",
    "load_run_tracklets",
]


class AdaptError(ValueError):
    """The scenario cannot be adapted to (too few tracklets, a broken run folder)."""


@dataclass(frozen=True)
class TrackletRef:
    """What pair mining needs of one tracklet of the first run.

    Attributes:
        scenario, camera_id, track_id: the tracklet.
        first_frame, last_frame: 1-based frames of its first and last box (the camera's frames).
        global_id: its global id in the first run's association (-1: none).
        feature: ``(D,)`` float32 L2-normalised tracklet feature of the first run, or ``None``.
    """

    scenario: str
    camera_id: str
    track_id: int
    first_frame: int
    last_frame: int
    global_id: int = -1
    feature: np.ndarray | None = None


@dataclass(frozen=True)
class MinedPairs:
    """Pseudo-identities and known negatives over M tracklets (G pseudo-identities).

    Attributes:
        labels: ``(M,) int64`` pseudo-identity of each tracklet, 0..G-1.
        negatives: ``(G, G) bool``, True where two pseudo-identities hold two tracklets of
            one camera alive at the same time (two vehicles for certain).
        cross_camera_merges: global ids whose tracklets were merged across cameras.
    """

    labels: np.ndarray
    negatives: np.ndarray
    cross_camera_merges: tuple[int, ...]

    @property
    def num_identities(self) -> int:
        return int(self.negatives.shape[0])


def _concurrent(refs: Sequence[TrackletRef], min_overlap_frames: int) -> np.ndarray:
    """``(M, M) bool``: same scenario and camera, different tracklets, >= ``min_overlap_frames`` shared frames."""
    m = len(refs)
    out = np.zeros((m, m), bool)
    cams = np.array([f"{r.scenario}/{r.camera_id}" for r in refs])
    first = np.array([r.first_frame for r in refs])
    last = np.array([r.last_frame for r in refs])
    for cam in np.unique(cams):
        idx = np.flatnonzero(cams == cam)
        shared = np.minimum(last[idx, None], last[None, idx]) - np.maximum(first[idx, None], first[None, idx]) + 1
        block = shared >= min_overlap_frames
        np.fill_diagonal(block, False)
        out[np.ix_(idx, idx)] = block
    return out


def mine_pairs(
    refs: Sequence[TrackletRef],
    min_cross_camera_cosine: float = 0.5,
    min_overlap_frames: int = 1,
    use_cross_camera: bool = True,
) -> MinedPairs:
    """Pseudo-identities (tracklets merged by confident cross-camera associations) and the
    known negatives between them; see the module docstring for the rules."""
    m = len(refs)
    concurrent = _concurrent(refs, min_overlap_frames)
    parent = list(range(m))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    merges: list[int] = []
    if use_cross_camera:
        by_gid: dict[tuple[str, int], list[int]] = {}
        for i, r in enumerate(refs):
            if r.global_id >= 0:
                by_gid.setdefault((r.scenario, r.global_id), []).append(i)
        for (_, gid), members in sorted(by_gid.items()):
            links = []
            for a_pos, a in enumerate(members):
                for b in members[a_pos + 1 :]:
                    ra, rb = refs[a], refs[b]
                    if ra.camera_id == rb.camera_id or ra.feature is None or rb.feature is None:
                        continue
                    if float(np.dot(ra.feature, rb.feature)) >= min_cross_camera_cosine:
                        links.append((a, b))
            if not links:
                continue
            linked = sorted({i for pair in links for i in pair})
            # one camera cannot see a vehicle twice at once: such a group is not confident
            if concurrent[np.ix_(linked, linked)].any():
                continue
            for a, b in links:
                parent[find(a)] = find(b)
            merges.append(gid)
    roots = np.array([find(i) for i in range(m)], np.int64)
    _, labels = np.unique(roots, return_inverse=True)
    labels = labels.astype(np.int64)
    g = int(labels.max()) + 1 if m else 0
    negatives = np.zeros((g, g), bool)
    ii, jj = np.nonzero(concurrent)
    negatives[labels[ii], labels[jj]] = True
    np.fill_diagonal(negatives, False)
    return MinedPairs(labels, negatives, tuple(merges))


def masked_batch_hard_triplet_loss(
    features: torch.Tensor, labels: torch.Tensor, known_negative: torch.Tensor, margin: float
) -> torch.Tensor:
    """Batch-hard triplet loss whose negatives are only the known ones.

    ``features (B, D)``, ``labels (B,)`` pseudo-identity per crop, ``known_negative (B, B)
    bool`` (True: the two crops are two vehicles for certain). For each anchor: the farthest
    crop of its own pseudo-identity and the nearest known negative; anchors lacking either
    are left out. Returns a scalar (0 when no anchor qualifies).
    """
    dist = torch.cdist(features, features).clamp_min(1e-12)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask = same & ~eye
    neg_mask = known_negative & ~same
    valid = pos_mask.any(1) & neg_mask.any(1)
    if not valid.any():
        return features.sum() * 0.0
    hardest_pos = (dist * pos_mask).max(1).values
    hardest_neg = dist.masked_fill(~neg_mask, float("inf")).min(1).values
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


# ---------------------------------------------------------------------------- the run folder
def load_run_tracklets(run_dir: str | Path) -> tuple[dict[str, Any], list[Any], dict[tuple[str, str, int], int]]:
    """The first run's resolved config (dict), its tracklets (all cameras) and global ids."""
    from mct.track.tracklets import load_tracklets

    run = Path(run_dir)
    cfg_path = run / "config.yaml"
    if not cfg_path.is_file():
        raise AdaptError(f"run_dir: {run} has no config.yaml: not a finished `mct run` folder")
    config = yaml.safe_load(cfg_path.read_text())
    tracklets = []
    for path in sorted((run / "cameras").glob("*/tracklets.npz")):
        tracklets.extend(load_tracklets(path))
    gids: dict[tuple[str, str, int], int] = {}
    assignment = run / "association" / "assignment.csv"
    if assignment.is_file():
        with assignment.open() as fh:
            for row in csv.DictReader(fh):
                gids[(row["scenario"], row["camera_id"], int(row["track_id"]))] = int(row["global_id"])
    else:
        log.warning("%s: no association/assignment.csv; no cross-camera positives", run)
    return config, tracklets, gids


def _usable_boxes(t, min_box_px: int) -> np.ndarray:
    """Indices of the boxes of tracklet ``t`` that are detections (score > 0) at least ``min_box_px`` on each side."""
    wh = t.xyxy[:, 2:] - t.xyxy[:, :2]
    return np.flatnonzero((wh.min(axis=1) >= min_box_px) & (t.scores > 0))


def _cut_crops(tracklets: list, picks: list[np.ndarray], videos: dict[tuple[str, str], Path], size: tuple[int, int],
               progress: bool) -> list[np.ndarray]:
    """Crops ``(n_i, H, W, 3) uint8`` BGR of each tracklet's picked boxes, read camera by camera."""
    from mct.data.video import read_frames

    out: list[np.ndarray] = [np.zeros((len(p), size[0], size[1], 3), np.uint8) for p in picks]
    by_cam: dict[tuple[str, str], list[int]] = {}
    for i, t in enumerate(tracklets):
        by_cam.setdefault((t.scenario, t.camera_id), []).append(i)
    for cam, members in tqdm(sorted(by_cam.items()), desc="adapt crops", unit="camera", disable=not progress):
        # (frame, tracklet, slot) of every wanted box, cut frame by frame in one call each
        jobs: dict[int, list[tuple[int, int, int]]] = {}
        for i in members:
            for n, j in enumerate(picks[i]):
                jobs.setdefault(int(tracklets[i].frames[j]), []).append((i, n, int(j)))
        frames = read_frames(videos[cam], sorted(jobs))
        for f, boxes in jobs.items():
            xyxy = np.stack([tracklets[i].xyxy[j] for i, _, j in boxes]).astype(np.float64)
            with torch.inference_mode():
                crops = crop_boxes(frame_to_tensor(frames[f]), xyxy, *size)
            crops_u8 = crops.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            for (i, n, _), crop in zip(boxes, crops_u8):
                out[i][n] = crop
            del frames[f]  # keep memory to the frames not cut yet
    return out


# ---------------------------------------------------------------------------- adaptation
def adapt_reid(cfg: ReidAdaptConfig, progress: bool = True) -> dict[str, Any]:
    """Fine-tune the re-ID model on the first run's scenario (see the module docstring).

    Raises :class:`AdaptError` (before anything is written) when the run has fewer than
    ``min_tracklets`` usable tracklets or too few concurrent ones to give negatives.
    Returns a summary (also written to ``<out_dir>/adapt.json``).
    """
    from mct.data.aicity import load_dataset

    wall0, cpu0 = time.time(), time.process_time()
    torch.set_num_threads(cfg.num_threads)
    run_cfg, tracklets, gids = load_run_tracklets(cfg.run_dir)
    weights = cfg.weights or run_cfg.get("reid", {}).get("weights", "")
    if not weights:
        raise AdaptError(f"weights: not given and {cfg.run_dir}/config.yaml has no reid.weights")
    picks_all = [_usable_boxes(t, cfg.min_box_px) for t in tracklets]
    keep = [i for i, p in enumerate(picks_all) if len(p) >= cfg.min_tracklet_boxes]
    tracklets = [tracklets[i] for i in keep]
    picks = [picks_all[i][np.linspace(0, len(picks_all[i]) - 1, min(cfg.crops_per_tracklet, len(picks_all[i]))).round().astype(int)]
             for i in keep]
    refs = [
        TrackletRef(t.scenario, t.camera_id, int(t.track_id), int(t.frames[0]), int(t.frames[-1]),
                    gids.get((t.scenario, t.camera_id, int(t.track_id)), -1), t.feature)
        for t in tracklets
    ]
    mined = mine_pairs(refs, cfg.min_cross_camera_cosine, cfg.min_overlap_frames, cfg.use_cross_camera)
    with_negative = int(mined.negatives.any(axis=1).sum())
    counts = {
        "tracklets_in_run": len(picks_all), "tracklets_used": len(tracklets), "pseudo_identities": mined.num_identities,
        "with_concurrent_negative": with_negative, "cross_camera_merges": len(mined.cross_camera_merges),
    }
    log.info("adapt: %s", counts)
    if len(tracklets) < cfg.min_tracklets or with_negative < max(2, cfg.min_tracklets // 2):
        raise AdaptError(
            f"{cfg.run_dir}: {len(tracklets)} usable tracklets (>= {cfg.min_tracklet_boxes} boxes of >= {cfg.min_box_px} px), "
            f"{with_negative} pseudo-identities with a concurrent tracklet in their camera; adapt needs at least "
            f"{cfg.min_tracklets} and {max(2, cfg.min_tracklets // 2)}: too few to adapt to, the model {weights} is left as it is"
        )
    # the model: the checkpoint's architecture and crop size
    device = _device(cfg.device)
    model, model_cfg = load_checkpoint(weights)
    model = model.to(device).train()
    size = (model_cfg.crop_height, model_cfg.crop_width)
    ds_cfg = run_cfg.get("dataset", {})
    dataset = load_dataset(ds_cfg.get("root", ""), ds_cfg.get("split", ""), ds_cfg.get("scenarios") or ())
    videos = {(c.scenario, c.camera_id): Path(c.video_path) for c in dataset.cameras if c.video_path is not None}
    missing = sorted({(t.scenario, t.camera_id) for t in tracklets} - set(videos))
    if missing:
        raise AdaptError(f"{cfg.run_dir}: no video for cameras {missing} under {ds_cfg.get('root')}/{ds_cfg.get('split')}")
    crops = _cut_crops(tracklets, picks, videos, size, progress)
    images = np.concatenate(crops)
    crop_label = np.concatenate([np.full(len(c), mined.labels[i], np.int64) for i, c in enumerate(crops)])
    by_label = {g: np.flatnonzero(crop_label == g) for g in range(mined.num_identities)}
    aug_cfg = ReidTrainConfig(
        flip_prob=cfg.flip_prob, pad_pixels=cfg.pad_pixels, erasing_prob=cfg.erasing_prob,
        colour_jitter=cfg.colour_jitter, blur_prob=cfg.blur_prob,
    )
    negatives_t = torch.from_numpy(mined.negatives)
    amp = cfg.amp and device.type == "cuda"
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.pt"
    step = 0
    fingerprint = {"weights": str(weights), "run_dir": str(cfg.run_dir), "counts": counts}
    if cfg.resume and last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=False)
        if state.get("fingerprint") != fingerprint:
            raise AdaptError(f"{last}: made from another run or model; remove it or set resume: false")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        generator.set_state(state["generator"])
        step = int(state["step"])
        log.info("adapt: resumed %s at step %d", last, step)
    seeds = np.flatnonzero(mined.negatives.any(axis=1))
    log_path = out / "loss_log.csv"
    new_log = not log_path.is_file() or step == 0
    with log_path.open("w" if new_log else "a", newline="") as fh:
        writer = csv.writer(fh)
        if new_log:
            writer.writerow(["step", "loss", "active_anchors"])
        bar = tqdm(total=cfg.steps, initial=step, desc="adapt", unit="step", disable=not progress)
        while step < cfg.steps:
            groups = _batch_groups(rng, seeds, mined.negatives, cfg.num_identities)
            index = np.concatenate([rng.choice(by_label[g], cfg.num_instances, replace=len(by_label[g]) < cfg.num_instances) for g in groups])
            labels = torch.from_numpy(crop_label[index])
            x = augment(torch.from_numpy(images[index]), aug_cfg, generator).to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                pooled, _ = model(x)
            known = negatives_t[labels[:, None], labels[None, :]].to(device)
            loss = masked_batch_hard_triplet_loss(pooled.float(), labels.to(device), known, cfg.triplet_margin)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if step % 10 == 0 or step == cfg.steps:
                writer.writerow([step, f"{loss.item():.5f}", len(groups)])
                fh.flush()
            if step % cfg.checkpoint_every_steps == 0 or step == cfg.steps:
                tmp = last.with_name("last.pt.tmp")
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng.bit_generator.state,
                            "generator": generator.get_state(), "step": step, "fingerprint": fingerprint}, tmp)
                tmp.replace(last)
        bar.close()
    model_path = save_checkpoint(
        out / "model.pt", model, model_cfg, fp16=True, with_classifier=False,
        extra={"adapted": {"from": str(weights), "run_dir": str(cfg.run_dir), "steps": step, **counts}},
    )
    summary = {
        "model": str(model_path), "from": str(weights), "steps": step, **counts,
        "crops": int(len(images)), "wall_s": round(time.time() - wall0, 1), "cpu_s_this_process": round(time.process_time() - cpu0, 1),
        "device": str(device), "config": cfg.model_dump(mode="json"),
    }
    (out / "adapt.json").write_text(json.dumps(summary, indent=1))
    return summary


def _batch_groups(rng: np.random.Generator, seeds: np.ndarray, negatives: np.ndarray, p: int) -> np.ndarray:
    """Up to ``p`` pseudo-identities: a random seed and others known to differ from it (or
    from one already taken), so every anchor has a known negative in the batch."""
    seed = int(rng.choice(seeds))
    chosen = [seed]
    frontier = list(rng.permutation(np.flatnonzero(negatives[seed])))
    while frontier and len(chosen) < p:
        g = int(frontier.pop())
        if g in chosen:
            continue
        chosen.append(g)
        more = [int(h) for h in rng.permutation(np.flatnonzero(negatives[g])) if int(h) not in chosen]
        frontier = more + frontier
    return np.asarray(chosen, np.int64)
