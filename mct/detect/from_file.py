"""Precomputed detections: AI City ``det/det_*.txt`` / MOT det files, and gt boxes.

Both go through the same filters as the Mask R-CNN output (``mct.detect.filters``), so the
pipeline runs without any detector. Boxes carry project class 0 ("vehicle"): the files
have no class.

* ``FileDetector`` reads ``<camera folder>/det/<det_file>`` (``det_file`` may also be a
  path: absolute, or relative to the camera folder when it contains a ``/``). Scores are
  column 7 (the confidence).
* ``GtDetector`` feeds ``<camera folder>/<gt_file>`` as detections with score 1 (the
  tracking ceiling); rows whose column 7 is 0 (MOTChallenge "ignore") are left out.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from mct.data.mot import MotRows, read_mot
from mct.detect.config import DetectorConfig
from mct.detect.filters import apply_filters
from mct.types import Camera, Detections

log = logging.getLogger(__name__)

__all__ = ["FileDetector", "GtDetector", "det_file_path"]


def _camera_dir(camera: Camera, what: str) -> Path:
    if camera.root is None:
        raise ValueError(f"{camera.key}: the camera has no folder (Camera.root), so its {what} cannot be found")
    return Path(camera.root)


def det_file_path(cfg: DetectorConfig, camera: Camera) -> Path:
    """The detection file of ``camera`` named by ``cfg.det_file``."""
    name = Path(cfg.det_file)
    if name.is_absolute():
        return name
    folder = _camera_dir(camera, "detection file")
    return folder / name if "/" in cfg.det_file else folder / "det" / name


class _RowsDetector:
    """Detections looked up by frame in rows read once from a MOT-style file."""

    needs_frames = False

    def __init__(self, cfg: DetectorConfig, camera: Camera, rows: MotRows, scores: np.ndarray) -> None:
        self.cfg = cfg
        self.camera = camera
        self._xyxy = rows.xyxy
        self._scores = scores.astype(np.float32)
        order = np.argsort(rows.frame, kind="stable")
        self._sorted_frames = rows.frame[order]
        self._order = order

    def _rows(self, frame: int) -> np.ndarray:
        lo = np.searchsorted(self._sorted_frames, frame, side="left")
        hi = np.searchsorted(self._sorted_frames, frame, side="right")
        return self._order[lo:hi]

    def detect(self, frame_numbers: Sequence[int], frames: Sequence[np.ndarray] | None = None) -> list[Detections]:
        """One filtered :class:`Detections` per frame number (``frames`` is not used)."""
        out = []
        for number in frame_numbers:
            idx = self._rows(int(number))
            dets = Detections(int(number), self._xyxy[idx], self._scores[idx])
            out.append(apply_filters(dets, self.cfg, self.camera))
        return out


class FileDetector(_RowsDetector):
    """Reads ``det/<det_file>`` (AI City ``det_*.txt`` or a MOT det file) once."""

    def __init__(self, cfg: DetectorConfig, camera: Camera) -> None:
        path = det_file_path(cfg, camera)
        rows = read_mot(path, "det")
        log.info("%s: %d detections from %s", camera.key, len(rows), path)
        super().__init__(cfg, camera, rows, rows.conf)
        self.path = path


class GtDetector(_RowsDetector):
    """Feeds the gt boxes of ``cfg.gt_file`` as detections with score 1."""

    def __init__(self, cfg: DetectorConfig, camera: Camera) -> None:
        path = _camera_dir(camera, "gt file") / cfg.gt_file
        rows = read_mot(path, "gt")
        rows = rows[rows.conf != 0]
        log.info("%s: %d gt boxes from %s used as detections", camera.key, len(rows), path)
        super().__init__(cfg, camera, rows, np.ones(len(rows), np.float32))
        self.path = path
