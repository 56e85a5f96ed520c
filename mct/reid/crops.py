"""Cutting boxes out of frames for the re-ID network, many boxes at once.

One ``torchvision.ops.roi_align`` call crops and resizes every box of a frame (bilinear,
with adaptive sampling so that large boxes are averaged, not aliased). The same function
cuts the training crops and the crops embedded at run time, so both see identical pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import roi_align

__all__ = ["IMAGENET_MEAN_RGB", "IMAGENET_STD_RGB", "frame_to_tensor", "clip_xyxy", "crop_boxes", "normalize_bgr"]

#: torchvision's ImageNet statistics (RGB, on [0, 1] pixel values).
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


def frame_to_tensor(frame_bgr: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(H, W, 3) uint8`` BGR -> ``(1, 3, H, W) float32`` BGR on ``device`` (values 0..255)."""
    frame_bgr = np.asarray(frame_bgr)
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
        raise ValueError(f"frame: expected a (H, W, 3) uint8 BGR image, got shape {frame_bgr.shape} dtype {frame_bgr.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(frame_bgr)).to(device)
    return t.permute(2, 0, 1).unsqueeze(0).float()


def clip_xyxy(xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip ``(N, 4)`` boxes to a ``width`` x ``height`` frame; every box keeps >= 1 pixel.

    A box entirely outside the frame becomes a 1-pixel box on the nearest border.
    """
    xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    out = np.empty_like(xyxy)
    out[:, 0] = np.clip(xyxy[:, 0], 0, width - 1)
    out[:, 1] = np.clip(xyxy[:, 1], 0, height - 1)
    out[:, 2] = np.clip(xyxy[:, 2], out[:, 0] + 1, width)
    out[:, 3] = np.clip(xyxy[:, 3], out[:, 1] + 1, height)
    return out


def crop_boxes(frame: torch.Tensor, xyxy: np.ndarray, height: int, width: int) -> torch.Tensor:
    """Crop and resize boxes of one frame.

    Args:
        frame: ``(1, 3, H, W)`` float tensor (from :func:`frame_to_tensor`).
        xyxy: ``(N, 4)`` pixels of that frame; clipped to it first.
        height, width: output crop size, pixels.

    Returns:
        ``(N, 3, height, width)`` float tensor, same device and channel order as ``frame``.
    """
    _, _, h, w = frame.shape
    boxes = clip_xyxy(xyxy, w, h)
    if len(boxes) == 0:
        return frame.new_zeros((0, 3, height, width))
    rois = torch.zeros((len(boxes), 5), dtype=frame.dtype, device=frame.device)
    rois[:, 1:] = torch.from_numpy(boxes).to(device=frame.device, dtype=frame.dtype)
    # aligned=True: pixel i covers [i, i+1), so a box [0, W] spans exactly the frame.
    # sampling_ratio=-1: ceil(box / output) samples per bin, i.e. averaging when shrinking.
    return roi_align(frame, rois, output_size=(height, width), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def normalize_bgr(crops: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` BGR 0..255 -> RGB, ImageNet-normalised, same dtype/device."""
    mean = torch.tensor(IMAGENET_MEAN_RGB, dtype=crops.dtype, device=crops.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD_RGB, dtype=crops.dtype, device=crops.device).view(1, 3, 1, 1) * 255.0
    return (crops.flip(1) - mean) / std
