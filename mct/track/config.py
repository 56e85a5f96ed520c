"""Tracker configuration (owned by ``mct.track``); defaults are the Deep SORT reference values."""

from __future__ import annotations

from pydantic import Field

from mct.schema import StrictModel


class TrackerConfig(StrictModel):
    """Deep SORT (Wojke et al. 2017), reference defaults."""

    max_cosine_distance: float = Field(default=0.2, ge=0.0, le=2.0)
    nn_budget: int = Field(default=100, gt=0)
    max_iou_distance: float = Field(default=0.7, ge=0.0, le=1.0)
    max_age: int = Field(default=30, gt=0)
    n_init: int = Field(default=3, gt=0)


class TrackletConfig(StrictModel):
    """How tracks become tracklets."""

    min_length: int = Field(default=1, ge=1)
