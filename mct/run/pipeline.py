"""``mct run`` of one config: camera jobs, then association, the submission file and evaluation.

:func:`run_single` checks the inputs (:mod:`mct.run.preflight`), runs one camera job per camera through the
configured executor (local processes or Ray), associates all tracklets across cameras,
writes the submission file and scores it when evaluation ground truth exists. Every stage
follows one protocol (:mod:`mct.run.protocol`). A config with a ``sweep`` runs each variant
through it (:mod:`mct.run.sweep`); :func:`mct.run.runner.run_pipeline` picks which.

Faults stay local: a camera that fails (missing or corrupt video, a crash, a dead worker)
is reported in ``summary.json`` with its message; the other cameras finish and keep their
results, association runs on the cameras that succeeded, and the run's status is
``failed``. Ctrl-C removes every temporary file and records ``interrupted``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import mct
from mct.config import Config, RunConfig, dump_config
from mct.run import run_folder as rf
from mct.run.camera_job import CAMERA_STAGES, CameraJob, CameraResult, job_is_cached, run_camera_job
from mct.run.preflight import RunInputs, preflight
from mct.run.progress import RunProgress
from mct.run.protocol import StageSpec, run_stage
from mct.run.stages import PipelineStages
from mct.types import Camera, GlobalAssignment, Tracklet

log = logging.getLogger(__name__)

__all__ = [
    "RunSummary",
    "run_single",
    "run_camera_jobs",
    "save_assignment",
    "load_assignment",
    "default_run_dir",
]

ASSIGNMENT_FILE = "assignment.csv"
SUBMISSION_FILE = "submission.txt"
#: the camera links the association used (topology file format; docs/association.md)
LINKS_FILE = "links.yaml"
METRICS_FILE = "metrics.json"


@dataclass
class RunSummary:
    """The outcome of one run (also written as ``summary.json``)."""

    name: str
    run_dir: str
    #: ``running`` until the run ends; then ok | failed | interrupted
    status: str = "running"
    #: what stopped the run, when it stopped on an error outside the cameras' own
    error: str | None = None
    seconds: float = 0.0
    cameras: list[CameraResult] = field(default_factory=list)
    association: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_cameras(self) -> list[CameraResult]:
        return [c for c in self.cameras if c.status != "ok"]

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def metrics(self) -> dict[str, Any]:
        return self.evaluation.get("metrics") or {}

    def to_dict(self) -> dict[str, Any]:
        stage_totals: dict[str, float] = {}
        for cam in self.cameras:
            for stage, entry in cam.stages.items():
                if entry.get("status") == "computed":
                    stage_totals[stage] = round(stage_totals.get(stage, 0.0) + float(entry.get("seconds", 0.0)), 4)
        return {
            "name": self.name,
            "run_dir": self.run_dir,
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "frames": int(sum(c.frames for c in self.cameras)),
            "failed": {c.key: c.error for c in self.failed_cameras},
            "stage_seconds": stage_totals,
            "cameras": {c.key: c.to_dict() for c in self.cameras},
            "association": self.association,
            "evaluation": self.evaluation,
        }


def default_run_dir(cfg: Config) -> Path:
    return Path(cfg.run.output_dir) / cfg.name


# ---------------------------------------------------------------------------- camera jobs
def run_camera_jobs(jobs: Sequence[CameraJob], run_cfg: RunConfig, progress: RunProgress | None = None) -> list[CameraResult]:
    """Run camera jobs on the configured executor."""
    on_progress = progress.on_progress if progress is not None else None
    on_result = progress.on_result if progress is not None else None
    results: dict[str, CameraResult] = {}
    # cameras whose every stage is done need no worker: link their outputs here
    todo = []
    for job in jobs:
        if job_is_cached(job):
            results[job.key] = run_camera_job(job)
            if on_result is not None:
                on_result(results[job.key])
        else:
            todo.append(job)
    if todo:
        log.info("%d camera job(s) to run, %d already done", len(todo), len(jobs) - len(todo))
        if run_cfg.executor == "ray":
            from mct.run.ray_executor import run_ray  # the only ray import of mct

            done = run_ray(todo, run_cfg, on_progress, on_result)
        else:
            from mct.run.local import run_local

            done = run_local(todo, run_cfg.workers, run_cfg.start_method, on_progress, on_result)
        results.update((r.key, r) for r in done)
    return [results[j.key] for j in jobs]


# ---------------------------------------------------------------------------- association
def save_assignment(path: Path, assignment: GlobalAssignment) -> None:
    """``scenario,camera_id,track_id,global_id`` lines (with a header), atomically."""
    lines = ["scenario,camera_id,track_id,global_id"]
    order = sorted(range(len(assignment)), key=lambda i: (str(assignment.scenarios[i]), str(assignment.camera_ids[i]),
                                                          int(assignment.track_ids[i])))
    for i in order:
        lines.append(f"{assignment.scenarios[i]},{assignment.camera_ids[i]},{int(assignment.track_ids[i])},"
                     f"{int(assignment.global_ids[i])}")
    rf.write_text_atomic(path, "\n".join(lines) + "\n")


def load_assignment(path: str | Path) -> GlobalAssignment:
    path = Path(path)
    lines = path.read_text().splitlines()
    if not lines or lines[0] != "scenario,camera_id,track_id,global_id":
        raise ValueError(f"{path}:1: expected the header 'scenario,camera_id,track_id,global_id'")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split(",")
        if len(parts) != 4:
            raise ValueError(f"{path}:{number}: expected 4 comma-separated columns, got {len(parts)}")
        try:
            rows.append((parts[0], parts[1], int(parts[2]), int(parts[3])))
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: track_id and global_id must be integers: {line!r}") from exc
    if not rows:
        return GlobalAssignment(np.zeros(0, object), np.zeros(0, object), np.zeros(0, np.int64), np.zeros(0, np.int64))
    s, c, t, g = zip(*rows)
    return GlobalAssignment(np.array(s, object), np.array(c, object), np.array(t, np.int64), np.array(g, np.int64))


def _associate(
    cfg: Config, folder: rf.RunFolder, cameras: Sequence[Camera], results: Sequence[CameraResult],
    stages: PipelineStages, force: bool,
) -> dict[str, Any]:
    ok = [r for r in results if r.status == "ok"]
    if not ok:
        return {"status": "skipped", "reason": "no camera finished"}
    ok_keys = {r.key for r in ok}
    cams = [c for c in cameras if rf.camera_dirname(*c.key) in ok_keys]
    track_fps = sorted((r.key, r.stages["track"]["fingerprint"]) for r in ok)
    fp = rf.fingerprint("association", mct.__version__, track_fps, cfg.association.model_dump(mode="json"),
                        rf.files_signature(getattr(cfg.association, "topology", "")))
    spec = StageSpec("association", "all", fp, folder.stage_dir("association", "all", fp),
                     (ASSIGNMENT_FILE, SUBMISSION_FILE))

    def compute(spec: StageSpec) -> dict[str, Any]:
        t0 = time.perf_counter()
        tracklets: list[Tracklet] = []
        for r in ok:
            tracklets.extend(stages.load_tracklets(Path(r.stages["track"]["dir"]) / stages.tracklets_name))
        log.info("associating %d tracklets of %d cameras", len(tracklets), len(cams))
        assignment = stages.associate(tracklets, cams, cfg.association, spec.path(LINKS_FILE))
        save_assignment(spec.path(ASSIGNMENT_FILE), assignment)  # atomic
        with spec.atomic(SUBMISSION_FILE) as tmp:
            n_rows = stages.write_submission(tmp, tracklets, assignment)
        return {"seconds": round(time.perf_counter() - t0, 4), "tracklets": len(tracklets),
                "global_ids": int(len(np.unique(assignment.global_ids))), "rows": int(n_rows), "cameras": sorted(ok_keys)}

    recomputed = any(r.stages["track"]["status"] == "computed" for r in ok)
    outcome = run_stage(spec, compute, force=force, inputs_changed=recomputed)
    info = {k: v for k, v in outcome.record.items() if k in ("seconds", "tracklets", "global_ids", "rows", "cameras")}
    folder.association_dir.mkdir(parents=True, exist_ok=True)
    for name in (ASSIGNMENT_FILE, SUBMISSION_FILE, LINKS_FILE):
        if name == LINKS_FILE and not spec.path(name).exists():
            continue  # no camera links (e.g. appearance only)
        rf.link_atomic(spec.path(name), folder.association_dir / name)
    rf.link_atomic(spec.path(SUBMISSION_FILE), folder.root / SUBMISSION_FILE)
    return {"status": outcome.status, "fingerprint": fp, "dir": str(spec.dir), "submission": str(folder.root / SUBMISSION_FILE),
            **info}


def _evaluate(
    cfg: Config, folder: rf.RunFolder, association: dict[str, Any], gt_path: Path | None, roi_dir: Path | None,
    stages: PipelineStages, force: bool,
) -> dict[str, Any]:
    if not cfg.evaluation.enabled:
        return {"status": "skipped", "reason": "evaluation.enabled is false"}
    if gt_path is None:
        return {"status": "skipped", "reason": "no evaluation ground truth for this split"}
    if association.get("status") not in ("computed", "cached"):
        return {"status": "skipped", "reason": "no association result"}
    st = Path(gt_path).stat()
    fp = rf.fingerprint("eval", association["fingerprint"], cfg.evaluation.model_dump(mode="json"),
                        [str(gt_path), st.st_size, st.st_mtime_ns])
    spec = StageSpec("eval", "all", fp, folder.stage_dir("eval", "all", fp), (METRICS_FILE,))

    def compute(spec: StageSpec) -> dict[str, Any]:
        t0 = time.perf_counter()
        metrics = stages.evaluate(Path(gt_path), Path(association["dir"]) / SUBMISSION_FILE, roi_dir, cfg.evaluation)
        rf.write_json_atomic(spec.path(METRICS_FILE), metrics)
        return {"seconds": round(time.perf_counter() - t0, 4), "ground_truth": str(gt_path)}

    outcome = run_stage(spec, compute, force=force, inputs_changed=association["status"] == "computed")
    metrics = rf.read_json(spec.path(METRICS_FILE))
    rf.link_atomic(spec.path(METRICS_FILE), folder.eval_dir / METRICS_FILE)
    # the headline numbers (IDF1, IDP, IDR, MOTA, ...); the full report stays in metrics.json
    headline = metrics.get("metrics") if isinstance(metrics.get("metrics"), dict) else metrics
    out = {"status": outcome.status, "fingerprint": fp, "seconds": round(float(outcome.record.get("seconds", 0.0)), 4),
           "ground_truth": str(gt_path), "report": str(folder.eval_dir / METRICS_FILE), "metrics": headline}
    figure = _eval_figure(folder.eval_dir)
    if figure is not None:
        out["figure"] = str(figure)
    return out


def _eval_figure(eval_dir: Path) -> Path | None:
    """``eval/eval.png`` (per-camera IDF1/IDP/IDR bars) beside ``metrics.json``; a figure that
    cannot be drawn is a warning (the metrics are in ``metrics.json``), never a failed run."""
    from mct.evaluate.report import write_run_figure

    try:
        return write_run_figure(eval_dir)
    except (OSError, ValueError) as exc:
        log.warning("%s: no figure drawn: %s", eval_dir, exc)
        return None


def _remove_temp_files_after_interrupt(folder: rf.RunFolder) -> None:
    """Ctrl-C: remove the temporary files of this run, but only of cameras whose lock is
    free (a worker that has not stopped yet keeps its files; the next run removes them)."""
    rf.remove_temp_files(folder.root, skip=rf.CAMERA_OWNED)
    for stage in ("association", "eval"):
        rf.remove_temp_files(folder.cache_root / stage)
    for lock in sorted((folder.cache_root / "locks").glob("*.lock")):
        key = lock.stem
        try:
            with rf.exclusive_lock(lock, timeout_s=0.0):
                for stage in CAMERA_STAGES:
                    rf.remove_temp_files(folder.cache_root / stage / key)
                rf.remove_temp_files(folder.root / "cameras" / key)
        except rf.LockedError as exc:
            log.warning("left the temporary files of camera %s: %s", key, exc)


# ---------------------------------------------------------------------------- one run
def run_single(
    cfg: Config,
    run_dir: str | Path | None = None,
    *,
    cache_root: str | Path | None = None,
    force: bool = False,
    stages: PipelineStages | None = None,
    progress: bool = True,
    argv: Sequence[str] | None = None,
    inputs: RunInputs | None = None,
) -> RunSummary:
    """Run the whole pipeline once (no sweep) into ``run_dir``; returns the summary.

    ``inputs``: what :func:`mct.run.preflight.preflight` returned for this run (checked
    here when not given). Raises :class:`~mct.run.preflight.PreflightError` before anything
    is written when the run cannot start.
    """
    stages = stages if stages is not None else PipelineStages()
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
    folder = rf.RunFolder(run_dir, cache_root)
    summary = RunSummary(cfg.name, str(folder.root))
    t0 = time.perf_counter()
    # the inputs are checked before the folder is touched: a run that cannot start leaves
    # the previous run's config, manifest and summary as they were
    if inputs is None:
        inputs = preflight(cfg, folder.root, stages, force=force, cache_root=cache_root)
    cameras, gt_path, roi_dir = list(inputs.cameras), inputs.ground_truth, inputs.roi_dir
    load_failures = inputs.load_failures
    folder.prepare(dump_config(cfg), cfg.seed, argv)
    bars: RunProgress | None = None
    try:
        log.info("run %s: %d camera(s), executor %s, output %s", cfg.name, len(cameras) + len(load_failures),
                 cfg.run.executor, folder.root)
        jobs = [CameraJob(cam, cfg, str(folder.root), str(folder.cache_root), force, stages) for cam in cameras]
        bars = RunProgress(len(jobs), enabled=progress and os.environ.get("TQDM_DISABLE", "") in ("", "0"))
        results = run_camera_jobs(jobs, cfg.run, bars)
        bars.close()
        for key, message in load_failures.items():
            scenario, camera_id = key.split("_", 1)
            log.error("camera %s FAILED: %s", key, message)
            failed = CameraResult(scenario, camera_id, status="failed", error=message)
            rf.write_json_atomic(folder.camera_dir(scenario, camera_id) / "status.json", failed.to_dict())
            results.append(failed)
        summary.cameras = sorted(results, key=lambda r: (r.scenario, r.camera_id))
        try:
            summary.association = _associate(cfg, folder, cameras, summary.cameras, stages, force)
        except Exception as exc:
            log.error("association failed: %s: %s", type(exc).__name__, exc)
            summary.association = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        try:
            summary.evaluation = _evaluate(cfg, folder, summary.association, gt_path, roi_dir, stages, force)
        except Exception as exc:
            log.error("evaluation failed: %s: %s", type(exc).__name__, exc)
            summary.evaluation = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        failed = bool(summary.failed_cameras) or "failed" in (summary.association.get("status"), summary.evaluation.get("status"))
        summary.status = "failed" if failed else "ok"
    except KeyboardInterrupt:
        summary.status = "interrupted"
        raise
    except BaseException as exc:
        # an unexpected error after the folder was prepared: the run did not finish
        summary.status = "failed"
        summary.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if bars is not None:
            bars.close()
        summary.seconds = time.perf_counter() - t0
        if summary.status == "interrupted":
            _remove_temp_files_after_interrupt(folder)
        rf.write_json_atomic(folder.summary_path, summary.to_dict())
    return summary
