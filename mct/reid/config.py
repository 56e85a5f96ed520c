"""Re-ID embedder configuration (owned by ``mct.reid``)."""

from __future__ import annotations

from pydantic import Field

from mct.schema import StrictModel


class EmbedderConfig(StrictModel):
    """The appearance embedder applied to every detection."""

    enabled: bool = True
    arch: str = "resnet18"
    #: ``imagenet``, a checkpoint path, or ``none`` (random init, tests only).
    weights: str = "none"
    crop_height: int = Field(default=256, gt=0)
    crop_width: int = Field(default=256, gt=0)
    batch_size: int = Field(default=64, gt=0)
    device: str = "auto"
