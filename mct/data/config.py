"""Which data a run reads: an AI City layout folder (real CityFlowV2 or synthetic)."""

from __future__ import annotations

from pydantic import Field

from mct.schema import StrictModel


class DatasetConfig(StrictModel):
    """Where the cameras come from.

    ``root`` is a folder in the AI City layout (``train/``, ``validation/``, ``test/``,
    ``cam_timestamp/``, ``cam_framenum/``, ``eval/``). ``split`` picks one split folder;
    ``scenarios`` and ``cameras`` narrow it (empty = all).
    """

    root: str = "data/demo"
    split: str = "validation"
    scenarios: tuple[str, ...] = ()
    cameras: tuple[str, ...] = ()
    #: evaluation ground truth file, relative to ``root`` (empty: ``eval/ground_truth_<split>.txt``).
    ground_truth: str = ""
    #: stop each camera after this many frames (0 = all); for quick experiments.
    max_frames: int = Field(default=0, ge=0)
