"""Which data a run reads: an AI City layout folder (real CityFlowV2 or synthetic)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from mct.schema import StrictModel


class DatasetConfig(StrictModel):
    """Where the cameras come from.

    ``root`` is a folder in the AI City layout (``train/``, ``validation/``, ``test/``,
    ``cam_timestamp/``, ``cam_framenum/``, ``eval/``). ``split`` picks one split folder;
    ``scenarios`` and ``cameras`` narrow it (empty = all). See ``docs/data.md``.
    """

    root: str = "data/demo"
    split: str = "validation"
    scenarios: tuple[str, ...] = ()
    cameras: tuple[str, ...] = ()
    #: evaluation ground truth file, relative to ``root`` (empty: ``eval/ground_truth_<split>.txt``).
    ground_truth: str = ""
    #: stop each camera after this many frames (0 = all); for quick experiments. Applied
    #: by whoever iterates the frames; the loader reports the full ``num_frames``.
    max_frames: int = Field(default=0, ge=0)
    #: fps of a camera whose video is absent or whose header has no fps (frames/s).
    #: CityFlowV2 videos are 10 fps ...
    default_fps: float = Field(default=10.0, gt=0)
    #: ... except these cameras (camera id -> fps): c015 (S03) runs at 8 fps (CityFlowV2 ReadMe).
    default_fps_by_camera: dict[str, float] = Field(default_factory=lambda: {"c015": 8.0})
    #: a roi.jpg pixel is inside the ROI when its grey value is >= this (0-255). The file is
    #: black/white but JPEG-compressed, so edges ring; 128 splits the two levels.
    min_roi_value: int = Field(default=128, ge=1, le=255)
    #: a camera folder without ``vdo.avi`` is an error (otherwise allowed: detection-file runs).
    require_video: bool = False

    @field_validator("default_fps_by_camera")
    @classmethod
    def _camera_ids_and_positive_fps(cls, value: dict[str, float]) -> dict[str, float]:
        for cam, fps in value.items():
            if not re.match(r"^c\d+$", cam):
                raise ValueError(f"camera id {cam!r}: expected 'c' followed by digits, e.g. 'c015'")
            if not fps > 0:
                raise ValueError(f"{cam}: fps must be > 0, got {fps}")
        return value
