"""Detection: Mask R-CNN with Soft-NMS, or precomputed detections read from files.

``DETECTORS`` maps ``DetectorConfig.source`` to a class built as ``cls(cfg, camera)``;
each has ``needs_frames`` and ``detect(frame_numbers, frames) -> list[Detections]``.
Torch is imported only when the ``maskrcnn`` detector is built.
"""

from __future__ import annotations

from typing import Any

from mct.detect.config import COCO_VEHICLES, PROJECT_CLASSES, DetectorConfig, SoftNMSConfig
from mct.detect.from_file import FileDetector, GtDetector
from mct.types import Camera

__all__ = ["DETECTORS", "DetectorConfig", "SoftNMSConfig", "PROJECT_CLASSES", "COCO_VEHICLES", "build_detector"]


def _maskrcnn(cfg: DetectorConfig, camera: Camera) -> Any:
    from mct.detect.maskrcnn import MaskRCNNDetector

    return MaskRCNNDetector(cfg, camera)


_maskrcnn.needs_frames = True  # type: ignore[attr-defined]

#: source name -> detector class (``maskrcnn`` imports torch lazily through a factory).
DETECTORS: dict[str, Any] = {"maskrcnn": _maskrcnn, "file": FileDetector, "gt": GtDetector}


def build_detector(cfg: DetectorConfig, camera: Camera) -> Any:
    """The detector named by ``cfg.source`` for ``camera``."""
    if cfg.source not in DETECTORS:
        raise ValueError(f"detector.source: expected one of {', '.join(DETECTORS)}, got {cfg.source!r}")
    return DETECTORS[cfg.source](cfg, camera)
