"""Detector configuration (owned by ``mct.detect``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mct.schema import StrictModel


class SoftNMSConfig(StrictModel):
    """Soft-NMS (Bodla et al. 2017); ``method: hard`` is classic NMS."""

    method: Literal["linear", "gaussian", "hard"] = "gaussian"
    #: IoU threshold Nt for linear and hard decay (authors' default 0.3).
    iou_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    #: gaussian decay width (authors' default 0.5).
    sigma: float = Field(default=0.5, gt=0.0)
    #: a box is dropped once its decayed score falls below this (authors' default 0.001).
    min_score: float = Field(default=0.001, ge=0.0, le=1.0)
    #: the authors' "+1 pixel" area convention (``w = x2 - x1 + 1``); default: modern (torchvision).
    plus_one_area: bool = False


class DetectorConfig(StrictModel):
    """Which detector runs, and the filters applied to its output."""

    #: ``maskrcnn`` runs torchvision Mask R-CNN; ``file`` reads ``det/<det_file>``; ``gt`` feeds gt boxes.
    source: Literal["maskrcnn", "file", "gt"] = "file"
    det_file: str = "det_sim.txt"
    min_score: float = Field(default=0.3, ge=0.0, le=1.0)
    min_area: float = Field(default=0.0, ge=0.0)
    soft_nms: SoftNMSConfig = Field(default_factory=SoftNMSConfig)
