"""Re-ID crops from ground truth in the AI City layout, cut once and cached.

Every camera folder ``<root>/<split>/<scenario>/<camera>/`` with ``gt/gt.txt`` and
``vdo.avi`` contributes crops: ground-truth boxes that are big enough and not covered by
other boxes, ``crops_per_track`` of them per (identity, camera) track, evenly spread over
the track's frames. The crops are cut by :func:`mct.reid.crops.crop_boxes` (the function
the embedder uses at run time) at the model's crop size and stored as one ``.npz`` under
``crops.cache_dir``; the file name holds a hash of everything that decides its content,
so a changed setting or ground-truth file makes a new cache instead of reusing a stale one.

Identities are the gt ids (AI City ids are unique across the whole dataset; the same id
in two cameras is the same vehicle).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mct.data.mot import read_mot
from mct.data.video import read_frames
from mct.reid.config import ReidCropConfig
from mct.reid.crops import crop_boxes, frame_to_tensor

log = logging.getLogger(__name__)

__all__ = [
    "CropSet", "find_gt_cameras", "select_gt_boxes", "occlusion_fraction", "build_crop_set", "load_crop_set",
    "concat_crop_sets",
]

#: bump when the way crops are selected or cut changes (invalidates old caches).
_CACHE_VERSION = 1
#: frames decoded per read (bounds memory: 32 full-HD frames are ~200 MB).
_FRAMES_PER_READ = 32


@dataclass(frozen=True, eq=False)
class CropSet:
    """Crops of ground-truth boxes.

    Attributes:
        images: ``(N, H, W, 3) uint8`` BGR crops.
        ids: ``(N,) int64`` identity (gt id).
        cams: ``(N,)`` str, ``"<scenario>/<camera>"``.
        frames: ``(N,) int64`` 1-based frame of each crop.
        tracks: ``(N,) int64`` index of the (identity, camera) track a crop comes from.
    """

    images: np.ndarray
    ids: np.ndarray
    cams: np.ndarray
    frames: np.ndarray
    tracks: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4 or self.images.shape[3] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"CropSet.images: expected (N, H, W, 3) uint8, got {self.images.shape} {self.images.dtype}")
        for name in ("ids", "cams", "frames", "tracks"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"CropSet.{name}: expected {n} entries, got {len(getattr(self, name))}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_identities(self) -> int:
        return len(np.unique(self.ids))

    @property
    def num_cameras(self) -> int:
        return len(np.unique(self.cams))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, images=self.images, ids=self.ids, cams=self.cams.astype(str), frames=self.frames, tracks=self.tracks)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "CropSet":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["images"], z["ids"], z["cams"], z["frames"], z["tracks"])


def find_gt_cameras(root: str | Path, split: str, scenarios: Sequence[str] = ()) -> list[tuple[str, str, Path]]:
    """``(scenario, camera, camera folder)`` of every camera with ``gt/gt.txt`` in a split."""
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir}: split folder not found (expected the AI City layout <root>/{split}/S0x/c0xx)")
    out = []
    for gt in sorted(split_dir.glob("*/*/gt/gt.txt")):
        cam_dir = gt.parent.parent
        scenario = cam_dir.parent.name
        if scenarios and scenario not in scenarios:
            continue
        out.append((scenario, cam_dir.name, cam_dir))
    if not out:
        which = f" for scenarios {list(scenarios)}" if scenarios else ""
        raise FileNotFoundError(f"{split_dir}: no camera with gt/gt.txt{which}")
    return out


def occlusion_fraction(xyxy: np.ndarray) -> np.ndarray:
    """For boxes of one frame ``(N, 4)``: the fraction of each box covered by the others.

    Sum of pairwise intersections over the box area, capped at 1 (an upper bound of the
    covered fraction when covering boxes overlap each other). ``(N,) float64``.
    """
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    if len(xyxy) < 2:
        return np.zeros(len(xyxy))
    iw = np.clip(np.minimum(xyxy[:, None, 2], xyxy[None, :, 2]) - np.maximum(xyxy[:, None, 0], xyxy[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(xyxy[:, None, 3], xyxy[None, :, 3]) - np.maximum(xyxy[:, None, 1], xyxy[None, :, 1]), 0, None)
    inter = iw * ih
    np.fill_diagonal(inter, 0.0)
    area = np.maximum((xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1]), 1e-9)
    return np.minimum(inter.sum(axis=1) / area, 1.0)


def select_gt_boxes(
    frame: np.ndarray, ids: np.ndarray, xyxy: np.ndarray, frame_size: tuple[int, int], cfg: ReidCropConfig
) -> np.ndarray:
    """Row indices of one camera's gt boxes to crop.

    Args:
        frame, ids: ``(N,) int64`` 1-based frames and identities.
        xyxy: ``(N, 4) float32`` pixels.
        frame_size: ``(width, height)`` of the video, pixels.
        cfg: size / occlusion limits and ``crops_per_track``.

    Returns:
        ``(M,) int64`` indices sorted by (identity, frame): per identity, up to
        ``crops_per_track`` of its usable boxes, evenly spaced in time.
    """
    width, height = frame_size
    clipped = np.asarray(xyxy, np.float64).copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    ok = ((clipped[:, 2] - clipped[:, 0]) >= cfg.min_box_width) & ((clipped[:, 3] - clipped[:, 1]) >= cfg.min_box_height)
    occ = np.zeros(len(frame))
    order = np.argsort(frame, kind="stable")
    uniq, starts = np.unique(frame[order], return_index=True)
    for rows in np.split(order, starts[1:]):
        occ[rows] = occlusion_fraction(xyxy[rows])
    ok &= occ <= cfg.max_occlusion
    chosen = []
    for identity in np.unique(ids[ok]):
        rows = np.flatnonzero(ok & (ids == identity))
        rows = rows[np.argsort(frame[rows], kind="stable")]
        if len(rows) > cfg.crops_per_track:
            rows = rows[np.unique(np.round(np.linspace(0, len(rows) - 1, cfg.crops_per_track)).astype(int))]
        chosen.append(rows)
    return np.concatenate(chosen).astype(np.int64) if chosen else np.zeros(0, np.int64)


def _cache_key(root: Path, split: str, cameras: list[tuple[str, str, Path]], cfg: ReidCropConfig, size: tuple[int, int]) -> str:
    files = []
    for _, _, cam_dir in cameras:
        for f in (cam_dir / "gt" / "gt.txt", cam_dir / "vdo.avi"):
            st = f.stat() if f.exists() else None
            files.append([str(f.resolve()), st.st_size if st else -1, st.st_mtime_ns if st else -1])
    spec = {
        "version": _CACHE_VERSION,
        "root": str(root.resolve()),
        "split": split,
        "crops": cfg.model_dump(exclude={"cache_dir"}),
        "size": list(size),
        "files": files,
    }
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def build_crop_set(
    root: str | Path,
    split: str,
    cfg: ReidCropConfig,
    crop_height: int,
    crop_width: int,
    scenarios: Sequence[str] = (),
    use_cache: bool = True,
) -> CropSet:
    """Cut (or load from the cache) the crops of every gt camera of ``split``.

    Crops are ``(crop_height, crop_width)`` pixels. Raises ``FileNotFoundError`` when the
    split has no camera with ground truth, and the video reader's errors for a missing or
    broken ``vdo.avi``.
    """
    root = Path(root)
    cameras = find_gt_cameras(root, split, scenarios)
    key = _cache_key(root, split, cameras, cfg, (crop_height, crop_width))
    cache = Path(cfg.cache_dir) / f"{split}_{crop_height}x{crop_width}_{key}.npz"
    if use_cache and cache.is_file():
        log.info("re-ID crops of %s/%s from cache %s", root, split, cache)
        return CropSet.load(cache)
    images: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    cams: list[str] = []
    frames: list[np.ndarray] = []
    for scenario, camera, cam_dir in tqdm(cameras, desc=f"re-ID crops {split}", unit="camera"):
        gt_path = cam_dir / "gt" / "gt.txt"
        rows = read_mot(gt_path, "gt")
        rows = rows[rows.conf != 0]  # MOTChallenge flag 0 = ignored object
        if len(rows) == 0:
            log.warning("%s: no ground-truth boxes", gt_path)
            continue
        video = cam_dir / "vdo.avi"
        xyxy = rows.xyxy
        wanted = np.unique(rows.frame)
        # the frame size comes from the first decoded frame (headers can lie)
        first = read_frames(video, [int(wanted[0])])[int(wanted[0])]
        size = (first.shape[1], first.shape[0])
        pick = select_gt_boxes(rows.frame, rows.id, xyxy, size, cfg)
        if len(pick) == 0:
            log.warning("%s: no usable box (all too small or occluded)", gt_path)
            continue
        cam_crops = np.zeros((len(pick), crop_height, crop_width, 3), np.uint8)
        pick_frames = rows.frame[pick]
        todo = np.unique(pick_frames)
        for start in range(0, len(todo), _FRAMES_PER_READ):
            decoded = read_frames(video, todo[start : start + _FRAMES_PER_READ].tolist())
            for f, image in decoded.items():
                sel = np.flatnonzero(pick_frames == f)
                with torch.inference_mode():
                    crops = crop_boxes(frame_to_tensor(image), xyxy[pick[sel]], crop_height, crop_width)
                cam_crops[sel] = crops.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        images.append(cam_crops)
        ids.append(rows.id[pick])
        frames.append(pick_frames)
        cams.extend([f"{scenario}/{camera}"] * len(pick))
    if not images:
        raise ValueError(f"{root / split}: no usable ground-truth box in any camera (check crops.min_box_* and max_occlusion)")
    all_ids = np.concatenate(ids)
    cam_arr = np.asarray(cams)
    # a track = one (identity, camera) pair, numbered in order of appearance
    _, tracks = np.unique(np.char.add(np.char.add(cam_arr, "#"), all_ids.astype(str)), return_inverse=True)
    out = CropSet(np.concatenate(images), all_ids, cam_arr, np.concatenate(frames), tracks.astype(np.int64))
    if use_cache:
        out.save(cache)
        log.info("cached %d re-ID crops (%d identities, %d cameras) in %s", len(out), out.num_identities, out.num_cameras, cache)
    return out


def load_crop_set(path: str | Path) -> CropSet:
    """A :class:`CropSet` saved with :meth:`CropSet.save`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: crop set not found")
    return CropSet.load(path)


def concat_crop_sets(sets: Sequence[CropSet]) -> CropSet:
    """One :class:`CropSet` of several (e.g. one per scenario, cut in parallel); tracks are
    renumbered over the whole (an (identity, camera) pair in two sets is one track)."""
    if not sets:
        raise ValueError("concat_crop_sets: no crop set given")
    cams = np.concatenate([c.cams for c in sets])
    ids = np.concatenate([c.ids for c in sets])
    _, tracks = np.unique(np.char.add(np.char.add(cams.astype(str), "#"), ids.astype(str)), return_inverse=True)
    return CropSet(
        np.concatenate([c.images for c in sets]), ids, cams, np.concatenate([c.frames for c in sets]), tracks.astype(np.int64)
    )
