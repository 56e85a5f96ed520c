"""Ray executor: camera jobs as Ray tasks (the only module of mct that imports ray).

* ``run.ray.address`` unset: a local Ray instance is started with ``num_cpus = run.workers``
  and shut down afterwards. Set: ``ray.init(address=...)`` joins that cluster ("auto", or
  "ray://head:10001"); the cluster must have mct installed and see the run folder at the
  same path (a shared file system), since camera jobs write straight into it.
* Each task asks for ``run.ray.num_cpus_per_camera`` CPUs and ``run.ray.num_gpus_per_camera``
  GPUs (Ray resources; Ray sets CUDA_VISIBLE_DEVICES in the worker).
* The task body is :func:`mct.run.camera_job.run_camera_job`, the same as locally.
  A task whose worker dies fails only its camera.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import ray
from ray.util.queue import Empty, Queue

from mct.run.camera_job import CameraJob, CameraResult, run_camera_job

log = logging.getLogger(__name__)

__all__ = ["run_ray"]


def _ray_task(job: CameraJob, progress_queue: Any) -> dict[str, Any]:
    def progress(key: str, done: int, total: int | None, stage: str) -> None:
        try:
            progress_queue.put_nowait((key, done, total, stage))
        except Exception:  # progress must never fail a job
            pass

    return run_camera_job(job, progress).to_dict()


def _init(address: str | None, workers: int) -> bool:
    """Connect to or start Ray; True when we started it (and must shut it down)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        return False
    if address:
        log.info("joining the Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=True)
        return False
    # local workers import mct (and, in tests, test modules) from the driver's path
    paths = [p for p in sys.path if p and Path(p).is_dir()]
    log.info("starting a local Ray instance with %d CPUs", workers)
    ray.init(
        num_cpus=workers,
        include_dashboard=False,
        log_to_driver=True,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(paths), "RAY_AUTH_MODE": "disabled"}},
    )
    return True


def run_ray(
    jobs: Sequence[CameraJob],
    run_cfg: Any,
    on_progress: Callable[[str, int, "int | None", str], None] | None = None,
    on_result: Callable[[CameraResult], None] | None = None,
) -> list[CameraResult]:
    """Run ``jobs`` as Ray tasks; results in the order of ``jobs``."""
    started = _init(run_cfg.ray.address, run_cfg.workers)
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0.0))
        # a local instance never gains GPUs: Ray would wait for them for ever (a cluster
        # that joins may scale up, so it is left to Ray)
        if started and run_cfg.ray.num_gpus_per_camera > gpus:
            raise ValueError(
                f"run.ray.num_gpus_per_camera: {run_cfg.ray.num_gpus_per_camera:g} GPUs per camera job, "
                f"but the Ray cluster has {gpus:g}"
            )
        progress_queue = Queue(actor_options={"num_cpus": 0})
        task = ray.remote(_ray_task).options(
            num_cpus=run_cfg.ray.num_cpus_per_camera,
            num_gpus=run_cfg.ray.num_gpus_per_camera,
            max_retries=0,
        )
        refs = {task.remote(job, progress_queue): job for job in jobs}
        results: dict[str, CameraResult] = {}

        def drain() -> None:
            while True:
                try:
                    item = progress_queue.get_nowait()
                except Empty:
                    return
                if on_progress is not None:
                    on_progress(*item)

        try:
            waiting = list(refs)
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1, timeout=0.2)
                drain()
                for ref in ready:
                    job = refs[ref]
                    try:
                        result = CameraResult.from_dict(ray.get(ref))
                    except ray.exceptions.RayError as exc:
                        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                        result = CameraResult(job.camera.scenario, job.camera.camera_id, status="failed",
                                              error=f"Ray task failed: {type(exc).__name__}: {message}")
                        log.error("camera %s failed: %s", job.key, result.error)
                    results[job.key] = result
                    if on_result is not None:
                        on_result(result)
            drain()
        except KeyboardInterrupt:
            log.warning("interrupted: cancelling %d Ray task(s)", len(refs) - len(results))
            for ref, job in refs.items():
                if job.key not in results:
                    ray.cancel(ref)  # raises KeyboardInterrupt in the task: its temp files go
            ray.wait(list(refs), num_returns=len(refs), timeout=10)
            raise
        return [results[j.key] for j in jobs]
    finally:
        if started:
            ray.shutdown()
