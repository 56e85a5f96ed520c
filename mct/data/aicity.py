"""The AI City (CityFlowV2) folder layout: cameras, timing, ROI, calibration, gt and det files.

Reads real CityFlowV2 and the synthetic world (``mct synth``) alike::

    ROOT/
      cam_timestamp/S0x.txt     "c006 0", "c007 0.061"   start offset of each camera, seconds  (required)
      cam_framenum/S0x.txt      "c006 2110"              frame count of each camera           (optional)
      eval/ground_truth_<split>.txt                      evaluation ground truth              (optional)
      <split>/S0x/c0xx/
        vdo.avi                 the video          (optional unless require_video)
        roi.jpg                 ROI mask           (optional: None = whole frame)
        calibration.txt         homography, ...    (optional)
        gt/gt.txt               MOT gt             (optional: absent on the test split)
        det/det_<name>.txt      MOT detections     (optional)
        mtsc/mtsc_<name>.txt    MOT tracking results provided with CityFlowV2 (optional)

Rules (see ``docs/data.md``):

* fps: from the video header when ``vdo.avi`` exists and its header has a positive fps;
  otherwise ``DatasetConfig.default_fps_by_camera`` (c015 -> 8) or ``default_fps`` (10).
  :attr:`Dataset.fps_sources` says which, per camera.
* num_frames: ``cam_framenum`` when it lists the camera, else the video header, else None.
* frame_size: the video header, else the ROI image size, else None.
* ROI: ``roi.jpg`` read as grey; inside where the value is ``>= min_roi_value`` (128).
* A missing required part raises :class:`FileNotFoundError` naming the path; a malformed
  line raises :class:`AICityFormatError` naming file and line. Missing optional parts are
  logged at debug level.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from mct.data.calibration import Calibration, read_calibration
from mct.data.config import DatasetConfig
from mct.data.mot import MotRows, read_mot
from mct.data.video import video_info
from mct.types import Camera, camera_number

__all__ = [
    "AICityFormatError",
    "Dataset",
    "FPS_FROM_VIDEO",
    "FPS_FROM_DEFAULT",
    "dataset_from_config",
    "load_dataset",
    "read_camera_table",
    "read_roi",
]

log = logging.getLogger(__name__)

_SCENARIO_RE = re.compile(r"^S\d+$")
_CAMERA_RE = re.compile(r"^c\d+$")

FPS_FROM_VIDEO = "video header"
FPS_FROM_DEFAULT = "default"

_DEFAULTS = DatasetConfig()


class AICityFormatError(ValueError):
    """A file of the AI City layout is malformed; the message names the file and line."""


# ---------------------------------------------------------------------------- small files
def read_camera_table(path: str | Path, kind: str = "float") -> dict[str, float]:
    """Read a ``cam_timestamp`` / ``cam_framenum`` file: ``camera value`` per line.

    ``kind="float"`` (seconds) or ``"int"`` (frame counts, must be integral and >= 0).
    Blank lines are allowed. Raises :class:`FileNotFoundError` or :class:`AICityFormatError`
    (``"{path}:{line}: ..."``) for a line that is not ``c<digits> <number>`` or a camera
    listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    out: dict[str, float] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        parts = raw.replace(",", " ").split()
        if not parts:
            continue
        if len(parts) != 2:
            raise AICityFormatError(f"{path}:{lineno}: expected 'camera value' (2 columns), got {len(parts)}: {raw.strip()!r}")
        cam, text = parts
        if not _CAMERA_RE.match(cam):
            raise AICityFormatError(f"{path}:{lineno}: expected a camera id like 'c001', got {cam!r}")
        try:
            value = float(text)
        except ValueError:
            raise AICityFormatError(f"{path}:{lineno}: {cam}: expected a number, got {text!r}") from None
        if not np.isfinite(value):
            raise AICityFormatError(f"{path}:{lineno}: {cam}: expected a finite number, got {text!r}")
        if kind == "int" and (value != round(value) or value < 0):
            raise AICityFormatError(f"{path}:{lineno}: {cam}: expected a frame count (integer >= 0), got {text!r}")
        if cam in out:
            raise AICityFormatError(f"{path}:{lineno}: camera {cam} listed twice")
        out[cam] = value
    return out


def read_roi(path: str | Path, min_value: int = _DEFAULTS.min_roi_value) -> np.ndarray:
    """``(H, W) bool`` ROI mask from ``roi.jpg``: True where the grey value is ``>= min_value``.

    Raises :class:`FileNotFoundError` when missing and :class:`AICityFormatError` when cv2
    cannot decode it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ROI image not found")
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise AICityFormatError(f"{path}: cannot be read as an image")
    return grey >= min_value


# ---------------------------------------------------------------------------- dataset
@dataclass(frozen=True, eq=False)
class Dataset:
    """The cameras of one split of an AI City layout folder.

    Attributes:
        root: the layout folder.
        split: ``"train"``, ``"validation"``, ``"test"`` (any folder name).
        cameras: sorted by ``(scenario, camera_id)``.
        calibrations: ``(scenario, camera_id) -> Calibration`` for cameras with calibration.txt.
        fps_sources: ``(scenario, camera_id) -> "video header" | "default"``.
        ground_truth_file: override of the evaluation ground truth path (``None``: the
            standard ``eval/ground_truth_<split>.txt``).
    """

    root: Path
    split: str
    cameras: list[Camera]
    calibrations: dict[tuple[str, str], Calibration] = field(default_factory=dict)
    fps_sources: dict[tuple[str, str], str] = field(default_factory=dict)
    ground_truth_file: Path | None = None

    def __len__(self) -> int:
        return len(self.cameras)

    @property
    def scenarios(self) -> list[str]:
        """The scenario names that have cameras, sorted."""
        return sorted({c.scenario for c in self.cameras})

    def camera(self, scenario: str, camera_id: str) -> Camera:
        """The camera ``(scenario, camera_id)``; ``KeyError`` naming what exists if absent."""
        for cam in self.cameras:
            if cam.scenario == scenario and cam.camera_id == camera_id:
                return cam
        have = ", ".join(f"{c.scenario}/{c.camera_id}" for c in self.cameras) or "none"
        raise KeyError(f"{self.root}/{self.split}: no camera {scenario}/{camera_id} (have: {have})")

    def camera_dir(self, camera: Camera | tuple[str, str]) -> Path:
        scenario, camera_id = camera.key if isinstance(camera, Camera) else camera
        return self.root / self.split / scenario / camera_id

    def calibration(self, camera: Camera | tuple[str, str]) -> Calibration | None:
        key = camera.key if isinstance(camera, Camera) else tuple(camera)
        return self.calibrations.get(key)  # type: ignore[arg-type]

    def gt_path(self, camera: Camera | tuple[str, str], required: bool = False) -> Path | None:
        """``.../gt/gt.txt`` of a camera; ``None`` when absent (or an error if ``required``)."""
        path = self.camera_dir(camera) / "gt" / "gt.txt"
        if path.is_file():
            return path
        if required:
            raise FileNotFoundError(f"{path}: ground truth not found")
        log.debug("%s: no ground truth", path)
        return None

    def _names(self, camera: Camera | tuple[str, str], folder: str) -> list[str]:
        prefix = f"{folder}_"
        where = self.camera_dir(camera) / folder
        if not where.is_dir():
            return []
        return sorted(p.name[len(prefix) : -4] for p in where.glob(f"{prefix}*.txt") if p.is_file())

    def _named_path(self, camera: Camera | tuple[str, str], folder: str, name: str, what: str) -> Path:
        prefix = f"{folder}_"
        stem = name[:-4] if name.endswith(".txt") else name
        stem = stem if stem.startswith(prefix) else f"{prefix}{stem}"
        path = self.camera_dir(camera) / folder / f"{stem}.txt"
        if not path.is_file():
            have = ", ".join(self._names(camera, folder)) or "none"
            raise FileNotFoundError(f"{path}: {what} file not found (available: {have})")
        return path

    def det_names(self, camera: Camera | tuple[str, str]) -> list[str]:
        """Names of the detection files of a camera: ``det/det_mask_rcnn.txt`` -> ``"mask_rcnn"``."""
        return self._names(camera, "det")

    def det_path(self, camera: Camera | tuple[str, str], name: str) -> Path:
        """``det/det_<name>.txt`` (``name`` may be ``"mask_rcnn"``, ``"det_mask_rcnn"`` or the
        file name). A missing file is a :class:`FileNotFoundError` listing what exists."""
        return self._named_path(camera, "det", name, "detection")

    def mtsc_names(self, camera: Camera | tuple[str, str]) -> list[str]:
        """Names of the provided single-camera tracking results: ``mtsc/mtsc_tc_mask_rcnn.txt`` -> ``"tc_mask_rcnn"``."""
        return self._names(camera, "mtsc")

    def mtsc_path(self, camera: Camera | tuple[str, str], name: str) -> Path:
        """``mtsc/mtsc_<name>.txt`` (a MOT ``pred`` file); missing -> :class:`FileNotFoundError` listing what exists."""
        return self._named_path(camera, "mtsc", name, "single-camera tracking")

    def read_gt(self, camera: Camera | tuple[str, str]) -> MotRows | None:
        """The camera's ``gt/gt.txt`` rows, or ``None`` when it has no ground truth."""
        path = self.gt_path(camera)
        return None if path is None else read_mot(path, "gt")

    def read_det(self, camera: Camera | tuple[str, str], name: str) -> MotRows:
        """The rows of ``det/det_<name>.txt`` (see :meth:`det_path`)."""
        return read_mot(self.det_path(camera, name), "det")

    def ground_truth_path(self, split: str | None = None) -> Path | None:
        """The evaluation ground truth (``eval/ground_truth_<split>.txt``, or the configured
        override for this dataset's split); ``None`` when the file does not exist."""
        split = self.split if split is None else split
        if self.ground_truth_file is not None and split == self.split:
            path = self.ground_truth_file
        else:
            path = self.root / "eval" / f"ground_truth_{split}.txt"
        if path.is_file():
            return path
        log.debug("%s: no evaluation ground truth", path)
        return None


def _dirs(folder: Path, pattern: re.Pattern[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and pattern.match(p.name))


def _select(available: list[str], wanted: Iterable[str], what: str, where: Path) -> list[str]:
    wanted = list(wanted)
    if not wanted:
        return available
    missing = [w for w in wanted if w not in available]
    if missing:
        raise FileNotFoundError(
            f"{where}: {what} {', '.join(missing)} not found (available: {', '.join(available) or 'none'})"
        )
    return [a for a in available if a in set(wanted)]


def load_dataset(
    root: str | Path,
    split: str,
    scenarios: Iterable[str] = (),
    cameras: Iterable[str] = (),
    *,
    default_fps: float = _DEFAULTS.default_fps,
    default_fps_by_camera: dict[str, float] | None = None,
    min_roi_value: int = _DEFAULTS.min_roi_value,
    require_video: bool = False,
    ground_truth: str | Path | None = None,
) -> Dataset:
    """Read the cameras of ``root/split``.

    Args:
        root: the AI City layout folder.
        split: the split folder name (``"train"``, ``"validation"``, ``"test"``).
        scenarios: scenario names (``"S02"``) to keep; empty = all in the split.
        cameras: camera ids to keep, ``"c006"`` (in any selected scenario) or
            ``"S02/c006"``; empty = all. A requested camera that matches nothing is an error.
        default_fps, default_fps_by_camera: fps when the video cannot tell (see module doc);
            ``None`` = ``{"c015": 8.0}``.
        min_roi_value: ROI threshold on the grey roi.jpg (0-255).
        require_video: a camera without ``vdo.avi`` is an error.
        ground_truth: evaluation ground truth path, relative to ``root`` (or absolute);
            ``None`` = ``eval/ground_truth_<split>.txt``.

    Raises:
        FileNotFoundError: root, split folder, a requested scenario/camera, a
            ``cam_timestamp`` file or line, or (``require_video``) a video is missing.
        AICityFormatError, MotFormatError, CalibrationError, VideoError: malformed files.
    """
    root = Path(root)
    # a single name is a common slip for a one-element tuple: accept it
    scenarios = (scenarios,) if isinstance(scenarios, str) else tuple(scenarios)
    cameras = (cameras,) if isinstance(cameras, str) else tuple(cameras)
    by_camera = dict(_DEFAULTS.default_fps_by_camera if default_fps_by_camera is None else default_fps_by_camera)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    split_dir = root / split
    if not split_dir.is_dir():
        have = ", ".join(p.name for p in sorted(root.iterdir()) if p.is_dir()) or "none"
        raise FileNotFoundError(f"{split_dir}: split folder not found (folders in {root}: {have})")
    available = _dirs(split_dir, _SCENARIO_RE)
    if not available:
        raise FileNotFoundError(f"{split_dir}: no scenario folders (S01, S02, ...)")
    selected = _select(available, scenarios, "scenario", split_dir)

    camera_filter = list(cameras)
    for item in camera_filter:
        cam_id = item.split("/")[-1]
        camera_number(cam_id)  # validates the form, raises naming the id
    matched: set[str] = set()
    out: list[Camera] = []
    calibrations: dict[tuple[str, str], Calibration] = {}
    fps_sources: dict[tuple[str, str], str] = {}
    for scenario in selected:
        scenario_dir = split_dir / scenario
        cam_ids = _dirs(scenario_dir, _CAMERA_RE)
        if camera_filter:
            keep = []
            for cam_id in cam_ids:
                hits = {item for item in camera_filter if item in (cam_id, f"{scenario}/{cam_id}")}
                if hits:
                    keep.append(cam_id)
                    matched |= hits
            cam_ids = keep
        if not cam_ids:
            log.debug("%s: no camera folders selected", scenario_dir)
            continue
        timestamp_path = root / "cam_timestamp" / f"{scenario}.txt"
        offsets = read_camera_table(timestamp_path, "float")
        framenum_path = root / "cam_framenum" / f"{scenario}.txt"
        frame_counts: dict[str, float] = {}
        if framenum_path.is_file():
            frame_counts = read_camera_table(framenum_path, "int")
        else:
            log.debug("%s: not found; frame counts come from the video headers", framenum_path)
        for cam_id in cam_ids:
            if cam_id not in offsets:
                raise FileNotFoundError(f"{timestamp_path}: no line for camera {cam_id} (folder {scenario_dir / cam_id})")
            camera, calibration, fps_source = _load_camera(
                scenario_dir / cam_id, scenario, cam_id, offsets[cam_id], frame_counts.get(cam_id),
                default_fps=by_camera.get(cam_id, default_fps), min_roi_value=min_roi_value,
                require_video=require_video,
            )
            out.append(camera)
            fps_sources[camera.key] = fps_source
            if calibration is not None:
                calibrations[camera.key] = calibration
    unmatched = [item for item in camera_filter if item not in matched]
    if unmatched:
        raise FileNotFoundError(f"{split_dir}: camera {', '.join(unmatched)} not found in scenarios {', '.join(selected) or 'none'}")
    if not out:
        raise FileNotFoundError(f"{split_dir}: no camera folders (c001, c002, ...) in {', '.join(selected)}")
    gt_file = None
    if ground_truth:
        gt_file = Path(ground_truth) if Path(ground_truth).is_absolute() else root / ground_truth
    by_source = {src: sum(1 for v in fps_sources.values() if v == src) for src in set(fps_sources.values())}
    log.info(
        "%s: %d cameras in %d scenarios (fps: %s)", split_dir, len(out), len({c.scenario for c in out}),
        ", ".join(f"{src} for {n} camera{'s' if n != 1 else ''}" for src, n in sorted(by_source.items())),
    )
    return Dataset(root, split, out, calibrations, fps_sources, gt_file)


def _load_camera(
    cam_dir: Path,
    scenario: str,
    cam_id: str,
    time_offset_s: float,
    frame_count: float | None,
    *,
    default_fps: float,
    min_roi_value: int,
    require_video: bool,
) -> tuple[Camera, Calibration | None, str]:
    video = cam_dir / "vdo.avi"
    fps, fps_source = default_fps, FPS_FROM_DEFAULT
    frame_size: tuple[int, int] | None = None
    header_frames: int | None = None
    video_path: Path | None = None
    if video.is_file():
        info = video_info(video)
        video_path = video
        frame_size = (info.width, info.height)
        header_frames = info.num_frames or None
        if info.fps > 0:
            fps, fps_source = info.fps, FPS_FROM_VIDEO
        else:
            log.warning("%s: the header has no fps; using the default %g", video, default_fps)
    elif require_video:
        raise FileNotFoundError(f"{video}: video not found")
    else:
        log.debug("%s: not found; fps %g by default", video, default_fps)

    num_frames: int | None = None
    if frame_count is not None:
        num_frames = int(frame_count)
        if header_frames is not None and header_frames != num_frames:
            log.warning("%s: cam_framenum says %d frames, the video header %d; using %d",
                        cam_dir, num_frames, header_frames, num_frames)
    else:
        num_frames = header_frames

    roi_mask = None
    roi_path = cam_dir / "roi.jpg"
    if roi_path.is_file():
        roi_mask = read_roi(roi_path, min_roi_value)
        if frame_size is None:
            frame_size = (roi_mask.shape[1], roi_mask.shape[0])
        elif roi_mask.shape != (frame_size[1], frame_size[0]):
            raise AICityFormatError(
                f"{roi_path}: ROI is {roi_mask.shape[1]}x{roi_mask.shape[0]} but the video is "
                f"{frame_size[0]}x{frame_size[1]} (width x height)"
            )
    else:
        log.debug("%s: not found; the ROI is the whole frame", roi_path)

    calibration = None
    calibration_path = cam_dir / "calibration.txt"
    if calibration_path.is_file():
        calibration = read_calibration(calibration_path)
    else:
        log.debug("%s: not found; no homography", calibration_path)

    camera = Camera(
        scenario=scenario,
        camera_id=cam_id,
        video_path=video_path,
        fps=float(fps),
        time_offset_s=float(time_offset_s),
        frame_size=frame_size,
        num_frames=num_frames,
        roi_mask=roi_mask,
        homography=None if calibration is None else calibration.homography,
        root=cam_dir,
    )
    return camera, calibration, fps_source


def dataset_from_config(cfg: DatasetConfig) -> Dataset:
    """:func:`load_dataset` with every option from ``cfg`` (``max_frames`` is not applied here)."""
    return load_dataset(
        cfg.root,
        cfg.split,
        cfg.scenarios,
        cfg.cameras,
        default_fps=cfg.default_fps,
        default_fps_by_camera=dict(cfg.default_fps_by_camera),
        min_roi_value=cfg.min_roi_value,
        require_video=cfg.require_video,
        ground_truth=cfg.ground_truth or None,
    )
