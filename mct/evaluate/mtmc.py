"""Multi-camera (MTMC) evaluation, step by step as the AI City Challenge evaluation does it.

1. Read ground truth and prediction (:mod:`mct.data.submission`: ``.txt`` or an archive
   with one file; whitespace, tab or comma separated).
2. Filter the prediction only:
   a. ROI: a box is dropped when any of its corners ``(x, y)``, ``(x, y + h)``,
      ``(x + w, y)``, ``(x + w, y + h)`` that lies inside the image falls on a ROI pixel
      below 255 (``roi.jpg`` read as 8-bit grey, no threshold of our own);
   b. every predicted id seen in only one camera (counting all predicted cameras, also those
      absent from the ground truth) is dropped;
   c. duplicate ``(camera, frame, id)`` rows: the first one is kept.
3. Concatenate cameras into one sequence: ground-truth cameras in sorted order; a camera's
   frames are shifted by the running sum of ``max(max GT frame, max predicted frame)`` of the
   cameras before it. Predicted cameras absent from the ground truth are ignored.
4. Match with the py-motmetrics rules (:mod:`mct.evaluate.metrics`) at IoU >= 0.5, one global
   identity assignment over all cameras: IDF1, IDP, IDR and the CLEAR-MOT metrics.

Where the official tool would crash or silently do something odd, we say so in a warning
(``MtmcResult.warnings``, also logged): cameras missing from the prediction, predicted
cameras unknown to the ground truth, duplicates, an empty prediction.

The per-camera breakdown splits the one global evaluation by camera: IDTP / IDFP / IDFN
per camera under the global identity assignment (they add up to the totals), CLEAR-MOT
counts per camera from the same matching. It is not an independent per-camera evaluation
(that is :mod:`mct.evaluate.mot`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mct.data.submission import SubmissionRows, duplicate_mask, read_submission
from mct.evaluate.metrics import MotMetrics, TrackBoxes, evaluate_boxes, metrics_from_details

__all__ = [
    "CameraResult",
    "MtmcResult",
    "evaluate_mtmc",
    "evaluate_mtmc_rows",
    "find_roi_images",
    "load_rois",
    "roi_outlier_mask",
    "single_camera_id_mask",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class CameraResult:
    """One ground-truth camera's share of the global evaluation.

    Attributes:
        camera: camera number (``c006`` -> 6).
        frame_offset: frames added to this camera's frame ids in the concatenated sequence.
        frame_span: ``max(max GT frame, max predicted frame)`` (the next camera's offset step).
        num_pred_read: predicted rows of this camera in the file.
        dropped_roi: rows dropped by the ROI filter.
        dropped_single_camera: rows dropped because their id is seen in one camera only.
        dropped_duplicates: duplicate rows dropped (first kept).
        metrics: this camera's boxes under the global matching and identity assignment.
    """

    camera: int
    frame_offset: int
    frame_span: int
    num_pred_read: int
    dropped_roi: int
    dropped_single_camera: int
    dropped_duplicates: int
    metrics: MotMetrics

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "metrics"}
        out["camera_id"] = f"c{self.camera:03d}"
        out.update(self.metrics.as_dict())
        return out


@dataclass(frozen=True, eq=False)
class IdentityTimeline:
    """Per ground-truth box outcome, for the per-identity figure.

    ``camera``, ``frame`` (the camera's own frame), ``gt_id``: ``(N,) int64``; ``idtp``:
    ``(N,) bool`` the box counts as an identity true positive; ``matched``: ``(N,) bool``
    CLEAR-MOT matched it (any predicted id); ``frame_offsets``: camera -> offset.
    """

    camera: np.ndarray
    frame: np.ndarray
    gt_id: np.ndarray
    idtp: np.ndarray
    matched: np.ndarray
    frame_offsets: dict[int, int]


@dataclass(frozen=True, eq=False)
class MtmcResult:
    """The outcome of :func:`evaluate_mtmc` (ratios in [0, 1])."""

    metrics: MotMetrics
    cameras: tuple[CameraResult, ...]
    num_pred_read: int
    dropped_roi: int
    dropped_single_camera_rows: int
    dropped_single_camera_ids: int
    dropped_duplicates: int
    ignored_cameras: tuple[int, ...]
    missing_cameras: tuple[int, ...]
    roi_applied: bool
    min_iou: float
    warnings: tuple[str, ...] = ()
    gt_path: str = ""
    pred_path: str = ""
    timeline: IdentityTimeline | None = field(default=None, repr=False)

    @property
    def idf1(self) -> float:
        return self.metrics.idf1

    @property
    def idp(self) -> float:
        return self.metrics.idp

    @property
    def idr(self) -> float:
        return self.metrics.idr

    @property
    def mota(self) -> float:
        return self.metrics.mota

    def camera(self, number: int) -> CameraResult:
        for cam in self.cameras:
            if cam.camera == number:
                return cam
        raise KeyError(f"camera {number} is not in the ground truth")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``nan`` -> ``None``)."""
        return {
            "ground_truth": self.gt_path,
            "prediction": self.pred_path,
            "protocol": {
                "min_iou": self.min_iou,
                "roi_filter": self.roi_applied,
                "single_camera_ids_dropped": True,
                "frame_concatenation": "sorted GT cameras, offset = running sum of max(max GT frame, max pred frame)",
            },
            "metrics": self.metrics.as_dict(),
            "filtering": {
                "num_pred_read": self.num_pred_read,
                "dropped_roi": self.dropped_roi,
                "dropped_single_camera_rows": self.dropped_single_camera_rows,
                "dropped_single_camera_ids": self.dropped_single_camera_ids,
                "dropped_duplicates": self.dropped_duplicates,
                "ignored_cameras": [f"c{c:03d}" for c in self.ignored_cameras],
                "missing_cameras": [f"c{c:03d}" for c in self.missing_cameras],
            },
            "cameras": [c.as_dict() for c in self.cameras],
            "warnings": list(self.warnings),
        }

    def to_dict(self) -> dict[str, Any]:
        """Alias of :meth:`as_dict` (what the run folder stores)."""
        return self.as_dict()


# ---------------------------------------------------------------------------- ROI
def find_roi_images(roi_dir: str | Path, cameras: Any) -> dict[int, Path]:
    """``{camera number: roi.jpg path}`` for the cameras found under ``roi_dir``.

    Looks for ``<roi_dir>/c006/roi.jpg`` first, then anywhere below (a dataset root such as
    ``data/demo`` with ``validation/S02/c006/roi.jpg``, or the official ``ROIs/<split>/c006``).
    Two different files for one camera (c010 is in S03 and S05) are an error: pass the split
    or scenario folder instead. Cameras with no ``roi.jpg`` are absent from the result.
    """
    root = Path(roi_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: ROI folder not found")
    wanted = {int(c) for c in cameras}
    found: dict[int, Path] = {}
    deep: dict[int, list[Path]] | None = None
    for cam in sorted(wanted):
        direct = root / f"c{cam:03d}" / "roi.jpg"
        if direct.is_file():
            found[cam] = direct
            continue
        if deep is None:
            deep = {}
            for p in sorted(root.rglob("roi.jpg")):
                name = p.parent.name
                if len(name) > 1 and name[0] == "c" and name[1:].isdigit():
                    deep.setdefault(int(name[1:]), []).append(p)
        paths = deep.get(cam, [])
        if not paths:
            continue
        distinct = {p.read_bytes() for p in paths}
        if len(distinct) > 1:
            raise ValueError(
                f"{root}: {len(paths)} different roi.jpg files for camera c{cam:03d} "
                f"({', '.join(str(p) for p in paths)}); pass the split or scenario folder as the ROI folder"
            )
        found[cam] = paths[0]
    return found


def load_rois(roi_dir: str | Path, cameras: Any) -> dict[int, np.ndarray]:
    """``{camera number: (H, W) uint8}`` grey ROI images for ``cameras`` found under ``roi_dir``.

    Read as 8-bit grey (like the official tool, which reads the grey JPEG with PIL). The
    official loader transposes a portrait image; so do we (with a warning).
    """
    import cv2  # one place: reading images

    out: dict[int, np.ndarray] = {}
    for cam, path in find_roi_images(roi_dir, cameras).items():
        roi = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if roi is None:
            raise ValueError(f"{path}: cannot read the ROI image")
        if roi.shape[0] > roi.shape[1]:
            log.warning("%s: portrait ROI image %s is transposed, as the official evaluation does", path, roi.shape)
            roi = np.ascontiguousarray(roi.T)
        out[cam] = roi
    return out


def roi_outlier_mask(tlwh: np.ndarray, roi: np.ndarray) -> np.ndarray:
    """``(N,) bool``: True where a box has an in-image corner on a ROI pixel below 255.

    Args:
        tlwh: ``(N, 4) int64`` boxes, pixels; corners are ``x``, ``x + w`` and ``y``, ``y + h``
            (the official tool's choice: no ``- 1``).
        roi: ``(H, W) uint8`` grey ROI image (255 = annotated area).
    """
    tlwh = np.asarray(tlwh, dtype=np.int64)
    h, w = roi.shape[:2]
    xs = (tlwh[:, 0], tlwh[:, 0] + tlwh[:, 2])
    ys = (tlwh[:, 1], tlwh[:, 1] + tlwh[:, 3])
    out = np.zeros(len(tlwh), bool)
    for x in xs:
        for y in ys:
            inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            value = roi[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)]
            out |= inside & (value < 255)
    return out


def single_camera_id_mask(camera: np.ndarray, obj_id: np.ndarray) -> np.ndarray:
    """``(N,) bool``: True for rows whose id appears in exactly one camera."""
    if len(camera) == 0:
        return np.zeros(0, bool)
    pairs = np.unique(np.column_stack([obj_id, camera]), axis=0)
    ids, n_cams = np.unique(pairs[:, 0], return_counts=True)
    single = ids[n_cams == 1]
    return np.isin(obj_id, single)


# ---------------------------------------------------------------------------- evaluation
def _per_camera_counts(camera: np.ndarray, mask: np.ndarray) -> dict[int, int]:
    cams, counts = np.unique(camera[mask], return_counts=True)
    return dict(zip(cams.tolist(), counts.tolist()))


def evaluate_mtmc_rows(
    gt: SubmissionRows,
    pred: SubmissionRows,
    rois: Mapping[int, np.ndarray] | None = None,
    min_iou: float = 0.5,
    gt_path: str = "",
    pred_path: str = "",
) -> MtmcResult:
    """The AI City MTMC evaluation of already-read rows (see the module docstring).

    Args:
        gt: evaluation ground truth (no duplicates: :func:`read_submission` checks).
        pred: the prediction as read (duplicates allowed; the first of each is kept after
            the filters, as the official tool does).
        rois: camera number -> ``(H, W) uint8`` grey ROI; ``None`` = no ROI filter (the
            official tool always filters: a warning says so). A predicted camera of the
            ground truth without a ROI is an error, as in the official tool.
        min_iou: IoU a match needs (0.5 in the official evaluation).
    """
    warnings: list[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        log.warning("%s", msg)

    if len(gt) == 0:
        raise ValueError(f"{gt.source}: the ground truth has no rows")
    if duplicate_mask(gt).any():
        i = int(np.flatnonzero(duplicate_mask(gt))[0])
        raise ValueError(f"{gt.where(i)}: duplicate (camera, frame, id) row in the ground truth")
    gt_cams = np.unique(gt.camera)
    pred_read_per_cam = _per_camera_counts(pred.camera, np.ones(len(pred), bool))

    # --- 2a. ROI filter (prediction only)
    roi_out = np.zeros(len(pred), bool)
    if rois is None:
        warn("no ROI given: the prediction is not ROI-filtered; the official evaluation drops boxes "
             "touching the ROI's black area, so its IDF1 can differ (pass --roi-dir)")
    else:
        for cam in np.unique(pred.camera).tolist():
            rows = pred.camera == cam
            roi = rois.get(cam)
            if roi is None:
                if cam in gt_cams:
                    raise ValueError(
                        f"no ROI image for camera c{cam:03d} (predicted and in the ground truth); the official "
                        "evaluation stops with 'Missing ROI image' too"
                    )
                warn(f"no ROI image for camera c{cam:03d} (not in the ground truth): its boxes are not ROI-filtered; "
                     "the official evaluation would stop with 'Missing ROI image'")
                continue
            roi_out[rows] = roi_outlier_mask(pred.tlwh[rows], roi)
    kept = pred[~roi_out]

    # --- 2b. ids seen in only one camera
    single = single_camera_id_mask(kept.camera, kept.obj_id)
    n_single_ids = len(np.unique(kept.obj_id[single]))
    single_per_cam = _per_camera_counts(kept.camera, single)
    kept = kept[~single]

    # --- 2c. duplicates: keep the first (file order), as the official tool
    dup = duplicate_mask(kept)
    dup_per_cam = _per_camera_counts(kept.camera, dup)
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        warn(f"{int(dup.sum())} duplicate (camera, frame, id) rows in the prediction (first at {kept.where(i)}); "
             "the first of each is kept, as the official evaluation does")
    kept = kept[~dup]

    # --- 3. concatenate cameras
    pred_cams = set(np.unique(pred.camera).tolist())
    ignored = sorted(pred_cams - set(gt_cams.tolist()))
    if ignored:
        n = int(np.isin(pred.camera, ignored).sum())
        warn(f"predicted cameras not in the ground truth are ignored, as the official evaluation does: "
             f"{', '.join(f'c{c:03d}' for c in ignored)} ({n} rows; they still count for the single-camera rule)")
    missing = [c for c in gt_cams.tolist() if c not in pred_cams]
    if missing:
        warn(f"cameras with ground truth but no prediction: {', '.join(f'c{c:03d}' for c in missing)}; all their "
             "ground-truth boxes count as misses, as in the official evaluation")
    kept_cams = set(np.unique(kept.camera).tolist())
    emptied = [c for c in gt_cams.tolist() if c in pred_cams and c not in kept_cams]
    if emptied:
        warn(f"every predicted box of {', '.join(f'c{c:03d}' for c in emptied)} was removed by the filters "
             "(ROI, single-camera ids)")
    in_gt = np.isin(kept.camera, gt_cams)
    kept = kept[in_gt]
    if len(kept) == 0:
        warn("the prediction is empty after filtering: IDF1 = 0 (the official evaluation would fail with "
             "'No objects to concatenate')")

    offsets: dict[int, int] = {}
    spans: dict[int, int] = {}
    running = 0
    gt_frame_max = {int(c): int(m) for c, m in _group_max(gt.camera, gt.frame).items()}
    pred_frame_max = {int(c): int(m) for c, m in _group_max(kept.camera, kept.frame).items()}
    for cam in gt_cams.tolist():
        span = max(gt_frame_max[cam], pred_frame_max.get(cam, 0))
        offsets[cam], spans[cam] = running, span
        running += span
    gt_off = np.array([offsets[c] for c in gt.camera.tolist()], np.int64) if len(gt) else np.zeros(0, np.int64)
    pred_off = _lookup(offsets, kept.camera)
    gt_boxes = TrackBoxes(gt.frame + gt_off, gt.obj_id, gt.tlwh)
    pred_boxes = TrackBoxes(kept.frame + pred_off, kept.obj_id, kept.tlwh)

    # --- 4. one global evaluation
    metrics, details = evaluate_boxes(gt_boxes, pred_boxes, min_iou=min_iou)
    cameras = []
    for cam in gt_cams.tolist():
        cam_metrics = metrics_from_details(gt_boxes, pred_boxes, details, gt.camera == cam, kept.camera == cam)
        cameras.append(
            CameraResult(
                camera=cam,
                frame_offset=offsets[cam],
                frame_span=spans[cam],
                num_pred_read=pred_read_per_cam.get(cam, 0),
                dropped_roi=int((roi_out & (pred.camera == cam)).sum()),
                dropped_single_camera=single_per_cam.get(cam, 0),
                dropped_duplicates=dup_per_cam.get(cam, 0),
                metrics=cam_metrics,
            )
        )
    timeline = IdentityTimeline(gt.camera, gt.frame, gt.obj_id, details.gt_idtp, details.gt_match >= 0, offsets)
    result = MtmcResult(
        metrics=metrics,
        cameras=tuple(cameras),
        num_pred_read=len(pred),
        dropped_roi=int(roi_out.sum()),
        dropped_single_camera_rows=int(single.sum()),
        dropped_single_camera_ids=n_single_ids,
        dropped_duplicates=int(dup.sum()),
        ignored_cameras=tuple(ignored),
        missing_cameras=tuple(missing),
        roi_applied=rois is not None,
        min_iou=min_iou,
        warnings=tuple(warnings),
        gt_path=gt_path or gt.source,
        pred_path=pred_path or pred.source,
        timeline=timeline,
    )
    log.info("MTMC: IDF1 %.4f IDP %.4f IDR %.4f over %d cameras", metrics.idf1, metrics.idp, metrics.idr, len(cameras))
    return result


def _group_max(keys: np.ndarray, values: np.ndarray) -> dict[int, int]:
    if len(keys) == 0:
        return {}
    order = np.lexsort((values, keys))
    k, v = keys[order], values[order]
    last = np.append(k[1:] != k[:-1], True)
    return dict(zip(k[last].tolist(), v[last].tolist()))


def _lookup(table: Mapping[int, int], keys: np.ndarray) -> np.ndarray:
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    uniq, inv = np.unique(keys, return_inverse=True)
    return np.array([table[int(u)] for u in uniq], np.int64)[inv]


def evaluate_mtmc(
    gt_path: str | Path,
    pred_path: str | Path,
    roi_dir: str | Path | None = None,
    min_iou: float = 0.5,
) -> MtmcResult:
    """Score a submission file against an AI City evaluation ground truth file.

    Args:
        gt_path: ``ground_truth_<split>.txt`` (or an archive with it).
        pred_path: the submission (``.txt``, ``.zip``, ``.tar.gz``).
        roi_dir: folder with ``c0xx/roi.jpg`` (or a dataset root / split folder holding
            them deeper); ``None`` = no ROI filter (with a warning).
        min_iou: 0.5 in the official evaluation.
    Raises:
        ValueError (naming file and line) on malformed input; FileNotFoundError.
    """
    gt = read_submission(gt_path, duplicates="error")
    pred = read_submission(pred_path, duplicates="keep")
    rois = None
    if roi_dir is not None:
        rois = load_rois(roi_dir, np.unique(pred.camera).tolist())
    return evaluate_mtmc_rows(gt, pred, rois, min_iou=min_iou, gt_path=str(gt_path), pred_path=str(pred_path))
