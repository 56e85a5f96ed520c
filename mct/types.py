"""Core data types shared by every stage.

Numpy only: no torch, faiss or ray may be imported here, so that every module can use
these types and still import fast. All types are frozen dataclasses holding one array
per field; shapes and dtypes are checked in ``__post_init__``. A stage takes these and
returns new ones; it never changes its input.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Camera",
    "Detections",
    "Tracklet",
    "GlobalAssignment",
    "camera_number",
    "xyxy_to_tlwh",
    "tlwh_to_xyxy",
    "xyxy_to_xyah",
    "xyah_to_xyxy",
]

_CAMERA_RE = re.compile(r"^c(\d+)$")


def camera_number(camera_id: str) -> int:
    """The integer the AI City submission uses for a camera: ``"c001"`` -> 1."""
    match = _CAMERA_RE.match(camera_id)
    if match is None:
        raise ValueError(f"camera id {camera_id!r}: expected 'c' followed by digits, e.g. 'c001'")
    return int(match.group(1))


# ---------------------------------------------------------------------------- box formats
def xyxy_to_tlwh(xyxy: np.ndarray) -> np.ndarray:
    """(N, 4) ``x1, y1, x2, y2`` -> (N, 4) ``left, top, width, height``; same dtype."""
    xyxy = np.asarray(xyxy)
    out = xyxy.copy()
    out[..., 2:] = xyxy[..., 2:] - xyxy[..., :2]
    return out


def tlwh_to_xyxy(tlwh: np.ndarray) -> np.ndarray:
    """(N, 4) ``left, top, width, height`` -> (N, 4) ``x1, y1, x2, y2``; same dtype."""
    tlwh = np.asarray(tlwh)
    out = tlwh.copy()
    out[..., 2:] = tlwh[..., :2] + tlwh[..., 2:]
    return out


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """(N, 4) ``x1, y1, x2, y2`` -> (N, 4) centre x, centre y, aspect ``w / h``, height."""
    xyxy = np.asarray(xyxy, dtype=np.float64)
    w = xyxy[..., 2] - xyxy[..., 0]
    h = xyxy[..., 3] - xyxy[..., 1]
    out = np.empty(xyxy.shape, dtype=np.float64)
    out[..., 0] = xyxy[..., 0] + w / 2
    out[..., 1] = xyxy[..., 1] + h / 2
    out[..., 2] = w / np.where(h == 0, np.nan, h)
    out[..., 3] = h
    return out


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """(N, 4) centre x, centre y, aspect ``w / h``, height -> (N, 4) ``x1, y1, x2, y2``."""
    xyah = np.asarray(xyah, dtype=np.float64)
    h = xyah[..., 3]
    w = xyah[..., 2] * h
    out = np.empty(xyah.shape, dtype=np.float64)
    out[..., 0] = xyah[..., 0] - w / 2
    out[..., 1] = xyah[..., 1] - h / 2
    out[..., 2] = xyah[..., 0] + w / 2
    out[..., 3] = xyah[..., 1] + h / 2
    return out


# ---------------------------------------------------------------------------- helpers
def _check(name: str, array: Any, dtype: Any, shape: tuple[int | None, ...]) -> np.ndarray:
    """Cast ``array`` to ``dtype`` and check its shape; ``None`` in ``shape`` is any size."""
    out = np.asarray(array, dtype=dtype)
    if out.ndim != len(shape) or any(s is not None and s != o for s, o in zip(shape, out.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {out.shape}")
    return out


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _index(n: int, index: Any) -> np.ndarray:
    """Normalise a boolean mask, an integer array, an int or a slice to integer indices."""
    if isinstance(index, slice):
        return np.arange(n)[index]
    idx = np.asarray(index)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise IndexError(f"boolean index of shape {idx.shape} for {n} items")
        return np.flatnonzero(idx)
    if idx.ndim == 0:
        idx = idx.reshape(1)
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise IndexError(f"index must be boolean or integer, got dtype {idx.dtype}")
    return idx.astype(np.int64)


# ---------------------------------------------------------------------------- Camera
@dataclass(frozen=True, eq=False)
class Camera:
    """One camera of one scenario.

    Attributes:
        scenario: scenario name, e.g. ``"S02"``. Camera ids repeat across scenarios
            (S05 reuses S03/S04 ids), so everything is keyed by ``(scenario, camera_id)``.
        camera_id: e.g. ``"c006"``.
        video_path: the ``vdo.avi`` (may not exist when only detections are used).
        fps: frames per second of the video.
        time_offset_s: start of the video on the scenario clock, seconds (cam_timestamp).
        frame_size: ``(width, height)`` pixels, or ``None`` when unknown.
        num_frames: frame count (cam_framenum), or ``None`` when unknown.
        roi_mask: ``(H, W) bool``, True where annotated vehicles can be; ``None`` = whole frame.
        homography: ``(3, 3) float64`` mapping ground-plane coordinates to image pixels as
            stored in calibration.txt, or ``None``.
        root: the camera folder (``.../S02/c006``), or ``None``.
    """

    scenario: str
    camera_id: str
    video_path: Path | None = None
    fps: float = 10.0
    time_offset_s: float = 0.0
    frame_size: tuple[int, int] | None = None
    num_frames: int | None = None
    roi_mask: np.ndarray | None = None
    homography: np.ndarray | None = None
    root: Path | None = None

    def __post_init__(self) -> None:
        camera_number(self.camera_id)  # validates the id
        if not (self.fps > 0):
            raise ValueError(f"{self.key}: fps must be > 0, got {self.fps}")
        if self.roi_mask is not None:
            roi = _check(f"{self.key}: roi_mask", self.roi_mask, bool, (None, None))
            if self.frame_size is not None and roi.shape != (self.frame_size[1], self.frame_size[0]):
                raise ValueError(
                    f"{self.key}: roi_mask shape {roi.shape} does not match frame size "
                    f"{self.frame_size} (width, height)"
                )
            _set(self, "roi_mask", roi)
        if self.homography is not None:
            _set(self, "homography", _check(f"{self.key}: homography", self.homography, np.float64, (3, 3)))

    @property
    def key(self) -> tuple[str, str]:
        """``(scenario, camera_id)``."""
        return (self.scenario, self.camera_id)

    @property
    def number(self) -> int:
        """The integer camera id of the submission format (``c006`` -> 6)."""
        return camera_number(self.camera_id)

    def frame_time(self, frame: np.ndarray | int) -> np.ndarray:
        """Scenario-clock time in seconds of 1-based frame numbers."""
        return self.time_offset_s + (np.asarray(frame, dtype=np.float64) - 1.0) / self.fps


# ---------------------------------------------------------------------------- Detections
@dataclass(frozen=True, eq=False)
class Detections:
    """The detections of one frame of one camera.

    Attributes:
        frame: 1-based frame number (the AI City convention).
        xyxy: ``(N, 4) float32``, pixels of the original frame.
        scores: ``(N,) float32`` confidence in [0, 1].
        class_ids: ``(N,) int64``, project class ids (see ``mct.detect``).
        masks: optional ``(N, M, M) float32`` RoI-resolution masks in [0, 1] relative to
            each box, or ``(N, H, W)`` full-frame masks.
        embeddings: optional ``(N, D) float32`` appearance features (L2-normalised).
    """

    frame: int
    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray | None = None
    masks: np.ndarray | None = None
    embeddings: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = _check("xyxy", self.xyxy, np.float32, (None, 4)) if np.size(self.xyxy) else np.zeros((0, 4), np.float32)
        n = len(xyxy)
        _set(self, "xyxy", xyxy)
        _set(self, "scores", _check("scores", self.scores, np.float32, (n,)))
        class_ids = np.zeros(n, np.int64) if self.class_ids is None else self.class_ids
        _set(self, "class_ids", _check("class_ids", class_ids, np.int64, (n,)))
        if self.masks is not None:
            _set(self, "masks", _check("masks", self.masks, np.float32, (n, None, None)))
        if self.embeddings is not None:
            _set(self, "embeddings", _check("embeddings", self.embeddings, np.float32, (n, None)))

    @classmethod
    def empty(cls, frame: int, embedding_dim: int | None = None) -> "Detections":
        """No detections in ``frame``; with ``(0, D)`` embeddings when ``embedding_dim`` is given."""
        emb = None if embedding_dim is None else np.zeros((0, embedding_dim), np.float32)
        return cls(frame, np.zeros((0, 4), np.float32), np.zeros(0, np.float32), embeddings=emb)

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> "Detections":
        """A new ``Detections`` holding the rows selected by a boolean mask or integer array."""
        idx = _index(len(self), index)
        return Detections(
            self.frame,
            self.xyxy[idx],
            self.scores[idx],
            self.class_ids[idx],
            None if self.masks is None else self.masks[idx],
            None if self.embeddings is None else self.embeddings[idx],
        )

    @property
    def tlwh(self) -> np.ndarray:
        """``(N, 4) float32`` left, top, width, height."""
        return xyxy_to_tlwh(self.xyxy)

    @property
    def areas(self) -> np.ndarray:
        """``(N,) float32`` box areas in square pixels."""
        return (self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])

    def with_embeddings(self, embeddings: np.ndarray) -> "Detections":
        """A copy carrying ``embeddings`` ``(N, D)``."""
        return dataclasses.replace(self, embeddings=embeddings)


# ---------------------------------------------------------------------------- Tracklet
@dataclass(frozen=True, eq=False)
class Tracklet:
    """One local identity of one camera over frames (the tracker's output).

    Attributes:
        scenario, camera_id: the camera.
        track_id: local id, unique within the camera.
        frames: ``(T,) int64`` 1-based frame numbers, strictly increasing.
        xyxy: ``(T, 4) float32`` boxes, pixels.
        scores: ``(T,) float32`` detection scores (0 for interpolated boxes).
        feature: ``(D,) float32`` one L2-normalised appearance feature, or ``None``.
        features: optional ``(T, D) float32`` per-frame features.
        det_indices: optional ``(T,) int64`` index of the detection taken in each frame
            (-1 for interpolated frames).
    """

    scenario: str
    camera_id: str
    track_id: int
    frames: np.ndarray
    xyxy: np.ndarray
    scores: np.ndarray
    feature: np.ndarray | None = None
    features: np.ndarray | None = None
    det_indices: np.ndarray | None = None

    def __post_init__(self) -> None:
        frames = _check("frames", self.frames, np.int64, (None,))
        t = len(frames)
        if t and np.any(np.diff(frames) <= 0):
            raise ValueError(f"tracklet {self.camera_id}/{self.track_id}: frames must be strictly increasing")
        _set(self, "frames", frames)
        _set(self, "xyxy", _check("xyxy", self.xyxy, np.float32, (t, 4)))
        _set(self, "scores", _check("scores", self.scores, np.float32, (t,)))
        if self.feature is not None:
            _set(self, "feature", _check("feature", self.feature, np.float32, (None,)))
        if self.features is not None:
            _set(self, "features", _check("features", self.features, np.float32, (t, None)))
        if self.det_indices is not None:
            _set(self, "det_indices", _check("det_indices", self.det_indices, np.int64, (t,)))

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def key(self) -> tuple[str, str, int]:
        """``(scenario, camera_id, track_id)``."""
        return (self.scenario, self.camera_id, self.track_id)

    @property
    def first_frame(self) -> int:
        return int(self.frames[0])

    @property
    def last_frame(self) -> int:
        return int(self.frames[-1])


# ---------------------------------------------------------------------------- GlobalAssignment
@dataclass(frozen=True, eq=False)
class GlobalAssignment:
    """``(scenario, camera, local track id) -> global id``; made only by ``mct.associate``.

    Attributes:
        scenarios: ``(N,)`` str.
        camera_ids: ``(N,)`` str.
        track_ids: ``(N,) int64`` local ids.
        global_ids: ``(N,) int64`` global vehicle ids (>= 1).
    """

    scenarios: np.ndarray
    camera_ids: np.ndarray
    track_ids: np.ndarray
    global_ids: np.ndarray
    _lookup: dict[tuple[str, str, int], int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(np.asarray(self.track_ids))
        _set(self, "scenarios", _check("scenarios", self.scenarios, object, (n,)).astype(str))
        _set(self, "camera_ids", _check("camera_ids", self.camera_ids, object, (n,)).astype(str))
        _set(self, "track_ids", _check("track_ids", self.track_ids, np.int64, (n,)))
        _set(self, "global_ids", _check("global_ids", self.global_ids, np.int64, (n,)))
        lookup: dict[tuple[str, str, int], int] = {}
        for s, c, t, g in zip(self.scenarios, self.camera_ids, self.track_ids, self.global_ids):
            key = (str(s), str(c), int(t))
            if key in lookup:
                raise ValueError(f"GlobalAssignment: tracklet {key} assigned twice")
            lookup[key] = int(g)
        _set(self, "_lookup", lookup)

    def __len__(self) -> int:
        return len(self.track_ids)

    def global_id(self, scenario: str, camera_id: str, track_id: int) -> int | None:
        """The global id of a tracklet, or ``None`` if it has none."""
        return self._lookup.get((scenario, camera_id, int(track_id)))
