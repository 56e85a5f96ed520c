"""Evaluation configuration (owned by ``mct.evaluate``)."""

from __future__ import annotations

from pydantic import Field

from mct.schema import StrictModel


class EvaluationConfig(StrictModel):
    """How a run is scored (the AI City protocol, ``docs/evaluation.md``)."""

    enabled: bool = True
    #: the minimum IoU of a match: a predicted box matches a ground-truth box when IoU >= this
    #: (0.5 in the official evaluation). Passed as ``min_iou`` to ``evaluate_mtmc``.
    iou_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    #: apply the ROI filter of the official evaluation to the prediction.
    use_roi: bool = True
