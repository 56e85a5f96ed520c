"""The filters every detection source goes through: class, score, area, camera ROI."""

from __future__ import annotations

import numpy as np

from mct.detect.config import PROJECT_CLASSES, DetectorConfig
from mct.types import Camera, Detections

__all__ = ["class_ids_of", "keep_mask", "apply_filters", "in_roi"]


def class_ids_of(names: tuple[str, ...]) -> np.ndarray:
    """Project class ids of class names; an unknown name is an error naming it."""
    ids = []
    for name in names:
        if name not in PROJECT_CLASSES:
            raise ValueError(f"detector.classes: unknown class {name!r}; known: {', '.join(PROJECT_CLASSES)}")
        ids.append(PROJECT_CLASSES.index(name))
    return np.asarray(ids, np.int64)


def in_roi(xyxy: np.ndarray, roi_mask: np.ndarray | None, rule: str) -> np.ndarray:
    """``(N,) bool``: which boxes pass the ROI rule (see ``DetectorConfig.roi_rule``).

    Args:
        xyxy: ``(N, 4)`` boxes, pixels.
        roi_mask: ``(H, W) bool`` or ``None`` (everything passes).
        rule: ``bottom_centre``: the pixel under the middle of the bottom edge (clipped to
            the image) is in the ROI; ``all_corners``: every corner that lies inside the
            image is on a ROI pixel (pixel of a corner = floor of its coordinates, the
            right/bottom edge taken as the last pixel inside the box, as the AI City
            evaluation does); ``none``: all pass.
    """
    n = len(xyxy)
    if roi_mask is None or rule == "none" or n == 0:
        return np.ones(n, bool)
    h, w = roi_mask.shape
    if rule == "bottom_centre":
        x = np.clip(np.floor((xyxy[:, 0] + xyxy[:, 2]) / 2), 0, w - 1).astype(np.int64)
        y = np.clip(np.floor(xyxy[:, 3]) - 1, 0, h - 1).astype(np.int64)
        return roi_mask[y, x]
    if rule == "all_corners":
        ok = np.ones(n, bool)
        xs = (np.floor(xyxy[:, 0]), np.ceil(xyxy[:, 2]) - 1)
        ys = (np.floor(xyxy[:, 1]), np.ceil(xyxy[:, 3]) - 1)
        for x in xs:
            for y in ys:
                inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
                xi = np.clip(x, 0, w - 1).astype(np.int64)
                yi = np.clip(y, 0, h - 1).astype(np.int64)
                ok &= ~inside | roi_mask[yi, xi]
        return ok
    raise ValueError(f"detector.roi_rule: expected bottom_centre, all_corners or none, got {rule!r}")


def keep_mask(dets: Detections, cfg: DetectorConfig, camera: Camera | None) -> np.ndarray:
    """``(N,) bool``: the detections that pass class, score, area and ROI filters."""
    keep = np.isin(dets.class_ids, class_ids_of(cfg.classes))
    keep &= dets.scores >= cfg.min_score
    if cfg.min_area > 0:
        keep &= dets.areas >= cfg.min_area
    roi = None if camera is None else camera.roi_mask
    keep &= in_roi(dets.xyxy, roi, cfg.roi_rule)
    return keep


def apply_filters(dets: Detections, cfg: DetectorConfig, camera: Camera | None) -> Detections:
    """A new :class:`Detections` with the rows that pass :func:`keep_mask`."""
    keep = keep_mask(dets, cfg, camera)
    return dets if keep.all() else dets[keep]
