"""Run configuration (owned by ``mct.run``): where outputs go and how cameras are scheduled."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mct.schema import StrictModel


class RayConfig(StrictModel):
    #: ``None``: start a local Ray instance; ``"auto"`` or ``"ray://host:10001"`` joins a cluster.
    address: str | None = None
    #: GPUs each camera job asks Ray for (a Ray resource; fractions share a GPU).
    num_gpus_per_camera: float = Field(default=0.0, ge=0.0)
    num_cpus_per_camera: float = Field(default=1.0, gt=0.0)


class RunConfig(StrictModel):
    """Scheduling and run-folder options; none of them changes a result, so none is fingerprinted."""

    output_dir: str = "runs"
    executor: Literal["local", "ray"] = "local"
    #: camera jobs running at the same time (local processes; also ``num_cpus`` of a local Ray).
    workers: int = Field(default=2, ge=1)
    ray: RayConfig = Field(default_factory=RayConfig)
    #: frames decoded and processed together; bounds the memory a camera job holds.
    batch_frames: int = Field(default=8, ge=1)
    #: torch/OpenCV threads inside one camera job (jobs run in parallel already).
    threads_per_job: int = Field(default=1, ge=1)
    #: how local worker processes start; ``spawn`` is safe with torch and threads.
    start_method: Literal["spawn", "forkserver", "fork"] = "spawn"
