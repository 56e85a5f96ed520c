"""Per-camera (single-camera tracking) evaluation, MOTChallenge style.

Ground-truth rows whose 7th column is 0 (objects to ignore) are dropped first, as the
MOTChallenge devkit does; then the metrics of :mod:`mct.evaluate.metrics` (py-motmetrics
rules, IoU >= 0.5) and HOTA (:mod:`mct.evaluate.hota`, TrackEval's rules). Ids only need to be consistent within the camera here.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from mct.data.submission import SubmissionRows, duplicate_mask
from mct.evaluate.hota import hota
from mct.evaluate.metrics import MotMetrics, TrackBoxes, evaluate_boxes

__all__ = ["evaluate_mot", "evaluate_mot_files", "evaluate_submission_per_camera", "find_camera_gt_files"]

log = logging.getLogger(__name__)


def _as_boxes(rows: Any, drop_ignored: bool) -> TrackBoxes:
    if isinstance(rows, TrackBoxes):
        return rows
    boxes = TrackBoxes.from_rows(rows)
    flag = getattr(rows, "conf", None)
    if drop_ignored and flag is not None and len(boxes):
        keep = np.asarray(flag) != 0
        if not keep.all():
            log.debug("dropping %d ground-truth rows with column 7 = 0 (ignored objects)", int((~keep).sum()))
        boxes = boxes[keep]
    return boxes


def evaluate_mot(gt: Any, pred: Any, min_iou: float = 0.5, drop_ignored: bool = True) -> MotMetrics:
    """CLEAR-MOT, IDF1 and HOTA metrics of one camera.

    HOTA (with DetA, AssA, LocA) is TrackEval's (:mod:`mct.evaluate.hota`); it does not
    depend on ``min_iou`` (it averages over localisation thresholds 0.05 .. 0.95).

    Args:
        gt: ``MotRows`` (``frame``, ``id``, ``tlwh``, ``conf`` = column 7) or
            :class:`TrackBoxes`; rows with column 7 = 0 are dropped when ``drop_ignored``.
        pred: ``MotRows``, ``SubmissionRows`` of one camera, or :class:`TrackBoxes`.
        min_iou: IoU a match needs (0.5 in MOTChallenge).
    """
    gt_boxes, pred_boxes = _as_boxes(gt, drop_ignored), _as_boxes(pred, drop_ignored=False)
    metrics, _ = evaluate_boxes(gt_boxes, pred_boxes, min_iou=min_iou)
    h = hota(gt_boxes, pred_boxes)
    return dataclasses.replace(metrics, hota=h.hota, det_a=h.det_a, ass_a=h.ass_a, loc_a=h.loc_a)


def evaluate_mot_files(gt_path: str | Path, pred_path: str | Path, min_iou: float = 0.5) -> MotMetrics:
    """:func:`evaluate_mot` of a ``gt/gt.txt`` and a MOT-format tracker result file."""
    from mct.data.mot import read_mot

    return evaluate_mot(read_mot(gt_path, "gt"), read_mot(pred_path, "pred"), min_iou=min_iou)


def find_camera_gt_files(gt_dir: str | Path, cameras: Any) -> dict[int, Path]:
    """``{camera number: gt.txt}`` below ``gt_dir`` (``c006/gt/gt.txt`` at any depth).

    Two different files for one camera number (S03 and S05 share c010) are an error:
    pass the split or scenario folder instead.
    """
    root = Path(gt_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: per-camera ground-truth folder not found")
    wanted = {int(c) for c in cameras}
    found: dict[int, list[Path]] = {}
    for p in sorted(root.rglob("gt.txt")):
        cam_dir = p.parent.parent if p.parent.name == "gt" else p.parent
        name = cam_dir.name
        if len(name) > 1 and name[0] == "c" and name[1:].isdigit() and int(name[1:]) in wanted:
            found.setdefault(int(name[1:]), []).append(p)
    out: dict[int, Path] = {}
    for cam, paths in found.items():
        if len({p.read_bytes() for p in paths}) > 1:
            raise ValueError(
                f"{root}: {len(paths)} different gt.txt files for camera c{cam:03d} "
                f"({', '.join(map(str, paths))}); pass the split or scenario folder"
            )
        out[cam] = paths[0]
    return out


def evaluate_submission_per_camera(
    pred: SubmissionRows,
    gt_dir: str | Path,
    rois: dict[int, np.ndarray] | None = None,
    min_iou: float = 0.5,
) -> dict[int, MotMetrics]:
    """Single-camera evaluation of each camera of a submission against its ``gt/gt.txt``.

    The prediction of a camera is taken after the ROI filter (when ``rois`` is given) and
    with duplicate rows dropped (first kept), but *before* the single-camera-id rule of the
    MTMC protocol: that rule is about cross-camera identities. Cameras without a
    ``gt.txt`` are skipped with a warning.
    """
    from mct.data.mot import read_mot
    from mct.evaluate.mtmc import roi_outlier_mask

    cams = np.unique(pred.camera).tolist()
    files = find_camera_gt_files(gt_dir, cams)
    out: dict[int, MotMetrics] = {}
    for cam in cams:
        if cam not in files:
            log.warning("camera c%03d: no gt/gt.txt under %s; skipped in the per-camera evaluation", cam, gt_dir)
            continue
        rows = pred[pred.camera == cam]
        if rois is not None and cam in rois:
            rows = rows[~roi_outlier_mask(rows.tlwh, rois[cam])]
        rows = rows[~duplicate_mask(rows)]
        out[cam] = evaluate_mot(read_mot(files[cam], "gt"), rows, min_iou=min_iou)
    return out
