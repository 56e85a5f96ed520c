"""Run configuration (owned by ``mct.run``): where outputs go and how cameras are scheduled."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mct.schema import StrictModel


class RayConfig(StrictModel):
    #: ``None``: start a local Ray instance; ``"auto"`` or ``"ray://host:10001"`` joins a cluster.
    address: str | None = None
    num_gpus_per_camera: float = Field(default=0.0, ge=0.0)
    num_cpus_per_camera: float = Field(default=1.0, gt=0.0)


class RunConfig(StrictModel):
    output_dir: str = "runs"
    executor: Literal["local", "ray"] = "local"
    workers: int = Field(default=2, ge=1)
    ray: RayConfig = Field(default_factory=RayConfig)
