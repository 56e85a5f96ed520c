"""The appearance embedder: boxes of frames -> L2-normalised re-ID features.

``Embedder(cfg).embed(frame_bgr, xyxy)`` crops every box at once (see
:mod:`mct.reid.crops`), runs the network in chunks of ``cfg.batch_size`` (there is no
maximum number of boxes) and returns ``(N, D) float32`` unit vectors. The device is
chosen automatically; on a GPU the network runs in half precision.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mct.reid.config import EmbedderConfig
from mct.reid.crops import crop_boxes, frame_to_tensor, normalize_bgr
from mct.reid.model import ReidNet, build_model, load_checkpoint

log = logging.getLogger(__name__)

__all__ = ["Embedder", "resolve_device", "load_reid_model"]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else as torch reads it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"reid.device: {name!r} is not a torch device ({exc})") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"reid.device: {name!r} requested but CUDA is not available on this machine")
    return device


def load_reid_model(cfg: EmbedderConfig) -> tuple[ReidNet, EmbedderConfig]:
    """The network named by ``cfg.weights`` (``imagenet``, ``none`` or a checkpoint path).

    Returns the model in eval mode on the CPU and the effective config (a checkpoint's
    architecture and crop size replace those of ``cfg``).
    """
    weights = cfg.weights.strip()
    if not weights:
        raise ValueError("reid.weights is empty: use 'imagenet', 'none' or a checkpoint path")
    if weights.lower() in ("imagenet", "none"):
        model = build_model(cfg)
        if weights.lower() == "none":
            log.warning("reid.weights=none: the re-ID network has random weights (tests only)")
        return model.eval(), cfg
    return load_checkpoint(weights, cfg)


class Embedder:
    """Boxes of BGR frames -> ``(N, D) float32`` L2-normalised appearance features."""

    def __init__(self, cfg: EmbedderConfig) -> None:
        model, self.cfg = load_reid_model(cfg)
        self.device = resolve_device(cfg.device)
        self.half = bool(cfg.fp16 and self.device.type == "cuda")
        model = model.to(self.device)
        self.model = model.half() if self.half else model
        self.model.eval()

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return int(self.model.dim)

    @property
    def crop_size(self) -> tuple[int, int]:
        """``(height, width)`` of the crops fed to the network, pixels."""
        return (self.cfg.crop_height, self.cfg.crop_width)

    # ------------------------------------------------------------------ public API
    def embed(self, frame_bgr: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        """Features of the boxes of one frame.

        Args:
            frame_bgr: ``(H, W, 3) uint8`` BGR image as cv2 gives it.
            xyxy: ``(N, 4)`` float, pixels of that frame (clipped to it).

        Returns:
            ``(N, D) float32``, each row of unit L2 norm; ``(0, D)`` for no boxes.
        """
        return self.embed_many([frame_bgr], [xyxy])[0]

    def embed_many(self, frames: Sequence[np.ndarray], xyxy_list: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`embed` of many frames, batching boxes across frames.

        Returns one ``(N_i, D) float32`` array per frame.
        """
        if len(frames) != len(xyxy_list):
            raise ValueError(f"embed_many: {len(frames)} frames but {len(xyxy_list)} box arrays")
        boxes = [self._check_boxes(b, i) for i, b in enumerate(xyxy_list)]
        counts = [len(b) for b in boxes]
        total = sum(counts)
        if total == 0:
            return [np.zeros((0, self.dim), np.float32) for _ in frames]
        feats = self._run(self._crop_chunks(frames, boxes), total)
        return list(np.split(feats, np.cumsum(counts)[:-1]))

    def embed_crops(self, crops_bgr: np.ndarray) -> np.ndarray:
        """Features of pre-cut crops ``(N, h, w, 3) uint8`` BGR (resized to the crop size).

        Returns ``(N, D) float32`` unit vectors. Used by the re-ID evaluation, whose crops
        are cut once by the same :func:`~mct.reid.crops.crop_boxes`.
        """
        crops_bgr = np.asarray(crops_bgr)
        if crops_bgr.ndim != 4 or crops_bgr.shape[3] != 3 or crops_bgr.dtype != np.uint8:
            raise ValueError(f"embed_crops: expected (N, h, w, 3) uint8 BGR crops, got {crops_bgr.shape} {crops_bgr.dtype}")
        n = len(crops_bgr)
        if n == 0:
            return np.zeros((0, self.dim), np.float32)

        def chunks() -> Iterator[torch.Tensor]:
            for start in range(0, n, self.cfg.batch_size):
                part = torch.from_numpy(crops_bgr[start : start + self.cfg.batch_size]).to(self.device)
                part = part.permute(0, 3, 1, 2).float()
                if tuple(part.shape[2:]) != self.crop_size:
                    part = F.interpolate(part, size=self.crop_size, mode="bilinear", align_corners=False, antialias=True)
                yield part

        return self._run(chunks(), n)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _check_boxes(xyxy: np.ndarray, index: int) -> np.ndarray:
        arr = np.asarray(xyxy, dtype=np.float32)
        if arr.size == 0:
            return np.zeros((0, 4), np.float32)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"xyxy[{index}]: expected shape (N, 4), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"xyxy[{index}]: boxes contain NaN or infinity")
        return arr

    def _crop_chunks(self, frames: Sequence[np.ndarray], boxes: list[np.ndarray]) -> Iterator[torch.Tensor]:
        """Crops ``(n, 3, h, w)`` BGR 0..255, at most ``batch_size`` boxes per piece."""
        h, w = self.crop_size
        step = self.cfg.batch_size
        for frame, xyxy in zip(frames, boxes):
            if len(xyxy) == 0:
                continue
            tensor = frame_to_tensor(frame, self.device)
            for start in range(0, len(xyxy), step):
                yield crop_boxes(tensor, xyxy[start : start + step], h, w)

    @torch.inference_mode()
    def _run(self, pieces: Iterator[torch.Tensor], total: int) -> np.ndarray:
        """Network over crop pieces, re-batched to ``batch_size``; -> ``(total, D)`` unit rows."""
        out = np.empty((total, self.dim), np.float32)
        done = 0
        pending: list[torch.Tensor] = []
        pending_n = 0
        step = self.cfg.batch_size

        def flush(batch: torch.Tensor) -> None:
            nonlocal done
            feats = self._forward(batch)
            out[done : done + len(feats)] = feats
            done += len(feats)

        for piece in pieces:
            pending.append(piece)
            pending_n += len(piece)
            while pending_n >= step:
                batch = torch.cat(pending)
                flush(batch[:step])
                rest = batch[step:]
                pending, pending_n = ([rest] if len(rest) else []), len(rest)
        if pending_n:
            flush(torch.cat(pending))
        if done != total:  # pragma: no cover - internal consistency
            raise RuntimeError(f"embedder produced {done} features for {total} boxes")
        return out

    def _forward(self, crops_bgr: torch.Tensor) -> np.ndarray:
        x = normalize_bgr(crops_bgr.float())
        if self.half:
            x = x.half()
        feats = self.model(x).float()
        if self.cfg.flip:
            feats = feats + self.model(x.flip(3)).float()
        return F.normalize(feats, dim=1).cpu().numpy()
