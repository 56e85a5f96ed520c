"""One camera, all per-camera stages: detect -> embed -> track -> tracklets.

:func:`run_camera_job` is a pure function of (camera, config, run folder) -> files: it
runs the same in a local worker process and in a Ray worker. Each stage writes into its
content-addressed cache folder (``cache/<stage>/<S>_<cam>/<fingerprint>/``) and records
completion there; a stage whose record matches its fingerprint is skipped. The camera's
current outputs are then hard-linked into ``cameras/<S>_<cam>/``.

Frames are decoded and processed ``run.batch_frames`` at a time; embeddings stream to
disk, so the memory of a job does not grow with the length of the video (detections and
tracklets, a few dozen bytes per box, are kept).

Fingerprints (what invalidates what):

* detect: the camera, ``dataset`` (root, split, max_frames, ground_truth) and ``detector``;
* embed: detect + ``reid`` + ``seed`` (random-init weights depend on it) + ``tracker.mode``;
* track: embed + ``tracker`` + ``tracklets``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

import mct
from mct.detect.config import find_weights_file
from mct.run import run_folder as rf
from mct.run.stages import Stages
from mct.run.storage import DetectionsBuffer, EmbeddingReader, EmbeddingWriter, StoredDetections, iter_detections
from mct.types import Camera, Detections

log = logging.getLogger(__name__)

__all__ = [
    "CAMERA_STAGES",
    "CameraJob",
    "CameraResult",
    "ProgressFn",
    "camera_fingerprints",
    "embedding_enabled",
    "job_is_cached",
    "run_camera_job",
]

CAMERA_STAGES = ("detect", "embed", "track")

#: ``progress(camera_key, frames_done, frames_total_or_None, stage)``
ProgressFn = Callable[[str, int, "int | None", str], None]

DETECTIONS_FILE = "detections.npz"
EMBEDDINGS_FILE = "embeddings.npy"
TRACKS_FILE = "tracks.txt"


def embedding_enabled(cfg: Any) -> bool:
    """Whether the embed stage runs: whenever re-ID is on.

    A motion-only tracker ignores the embeddings, but the tracklets still need their
    appearance feature for cross-camera association, so motion-only tracking embeds too.
    """
    return bool(cfg.reid.enabled)


def _section(model: Any, exclude: Sequence[str] = ()) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude=set(exclude))


def _weights_path(weights: str) -> str | None:
    """A weights setting that names a file (not ``none``/``coco``/``imagenet``)."""
    return None if weights.lower() in ("", "none", "coco", "imagenet") else weights


def _detector_weights_file(weights: str) -> Path | None:
    """The detector checkpoint the run will load (found as the detector finds it)."""
    name = _weights_path(weights)
    return None if name is None else find_weights_file(name)


def camera_fingerprints(camera: Camera, cfg: Any) -> dict[str, str]:
    """``{stage: fingerprint}`` for the per-camera stages of ``camera`` under ``cfg``.

    The dataset's selection keys (``scenarios``, ``cameras``) are left out: choosing more
    cameras must not invalidate the ones already done.
    """
    key = list(camera.key)
    dataset = _section(cfg.dataset, exclude=("scenarios", "cameras"))
    root = camera.root
    inputs = rf.files_signature(
        camera.video_path,
        _detector_weights_file(cfg.detector.weights) if cfg.detector.source == "maskrcnn" else None,
        root / "det" / cfg.detector.det_file if root is not None and cfg.detector.source == "file" else None,
        root / cfg.detector.gt_file if root is not None and cfg.detector.source == "gt" else None,
    )
    detect = rf.fingerprint("detect", mct.__version__, key, dataset, _section(cfg.detector), inputs)
    embed = rf.fingerprint(
        "embed", detect, _section(cfg.reid), rf.files_signature(_weights_path(cfg.reid.weights)), cfg.seed,
        embedding_enabled(cfg),
    )
    track = rf.fingerprint("track", embed, _section(cfg.tracker), _section(cfg.tracklets))
    return {"detect": detect, "embed": embed, "track": track}


@dataclass(frozen=True)
class CameraJob:
    """Everything one camera job needs (picklable: it travels to worker processes)."""

    camera: Camera
    config: Any  # mct.config.Config
    run_root: str
    cache_root: str
    force: bool = False
    stages: Stages = field(default_factory=Stages)

    @property
    def key(self) -> str:
        return rf.camera_dirname(*self.camera.key)


@dataclass
class CameraResult:
    """What a camera job did; ``status`` is ``ok`` or ``failed`` (with ``error``)."""

    scenario: str
    camera_id: str
    status: str = "ok"
    error: str | None = None
    #: stage -> {status: computed|cached|skipped, fingerprint, seconds, frames, fps, dir}
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: output name -> path inside the run folder
    outputs: dict[str, str] = field(default_factory=dict)
    frames: int = 0
    seconds: float = 0.0
    num_tracklets: int = 0
    #: extra timings (video decoding)
    timings: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return rf.camera_dirname(self.scenario, self.camera_id)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CameraResult":
        return cls(**data)


def _frame_range(job: CameraJob) -> tuple[int | None, int | None]:
    """``(total_frames_or_None, stop_exclusive_or_None)`` for this camera and config."""
    total, max_frames = job.camera.num_frames, job.config.dataset.max_frames
    if max_frames:
        total = min(total, max_frames) if total is not None else None
        return total, (total if total is not None else max_frames) + 1
    return total, (total + 1 if total is not None else None)


def _batches(it: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in it:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, t0: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


def _timed_iter(it: Iterator[Any], timer: _Timer, name: str) -> Iterator[Any]:
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            timer.add(name, t0)
            return
        timer.add(name, t0)
        yield item


def _stage_entry(status: str, fp: str, stage_dir: Path, seconds: float = 0.0, frames: int = 0, **extra: Any) -> dict[str, Any]:
    fps = frames / seconds if seconds > 0 else None
    return {"status": status, "fingerprint": fp, "dir": str(stage_dir), "seconds": round(seconds, 4),
            "frames": frames, "fps": None if fps is None else round(fps, 2), **extra}


def _cached_entry(stage_dir: Path, fp: str) -> dict[str, Any]:
    record = rf.read_json(stage_dir / "done.json")
    return _stage_entry("cached", fp, stage_dir, record.get("seconds", 0.0), record.get("frames", 0),
                        **{k: v for k, v in record.items() if k in ("timings",)})


def job_is_cached(job: CameraJob) -> bool:
    """True when every stage of ``job`` is already done (it needs no worker, only linking)."""
    if job.force:
        return False
    folder = rf.RunFolder(job.run_root, job.cache_root)
    fps = camera_fingerprints(job.camera, job.config)
    stages = ["detect", "track"] + (["embed"] if embedding_enabled(job.config) else [])
    return all(rf.stage_is_done(folder.stage_dir(s, job.key, fps[s]), fps[s]) for s in stages)


# ---------------------------------------------------------------------------- the job
def run_camera_job(job: CameraJob, progress: ProgressFn | None = None) -> CameraResult:
    """Run every per-camera stage of ``job`` that is not already done; never raises for a
    bad camera (the error lands in the result and ``error.txt``), only on interrupt."""
    cam = job.camera
    result = CameraResult(cam.scenario, cam.camera_id)
    cam_dir = rf.RunFolder(job.run_root, job.cache_root).camera_dir(*cam.key)
    t_start = time.perf_counter()
    try:
        cam_dir.mkdir(parents=True, exist_ok=True)
        (cam_dir / "error.txt").unlink(missing_ok=True)
        _run_stages(job, result, progress)
        _link_outputs(job, result, cam_dir)
    except Exception as exc:  # one bad camera must not stop the others
        result.status = "failed"
        result.error = f"{type(exc).__name__}: {exc}"
        log.error("camera %s failed: %s", job.key, result.error)
        try:
            rf.write_text_atomic(cam_dir / "error.txt", traceback.format_exc())
        except OSError:  # pragma: no cover - the folder itself is unwritable
            pass
    result.seconds = round(time.perf_counter() - t_start, 4)
    try:
        rf.write_json_atomic(cam_dir / "status.json", result.to_dict())
    except OSError:  # pragma: no cover
        pass
    return result


def _run_stages(job: CameraJob, result: CameraResult, progress: ProgressFn | None) -> None:
    cfg, cam, stages = job.config, job.camera, job.stages
    folder = rf.RunFolder(job.run_root, job.cache_root)
    fps = camera_fingerprints(cam, cfg)
    dirs = {s: folder.stage_dir(s, job.key, fps[s]) for s in CAMERA_STAGES}
    embed_on = embedding_enabled(cfg)

    need_detect = job.force or not rf.stage_is_done(dirs["detect"], fps["detect"])
    need_embed = embed_on and (job.force or need_detect or not rf.stage_is_done(dirs["embed"], fps["embed"]))
    need_track = job.force or need_detect or need_embed or not rf.stage_is_done(dirs["track"], fps["track"])
    if need_track:  # something to compute (a fully cached job may run in the main process)
        stages.prepare_worker(cfg.seed, cfg.run.threads_per_job)

    if need_detect or need_embed:
        _detect_and_embed(job, result, dirs, fps, need_detect, need_embed, progress)
    if not need_detect:
        result.stages["detect"] = _cached_entry(dirs["detect"], fps["detect"])
    if not embed_on:
        result.stages["embed"] = _stage_entry("skipped", fps["embed"], dirs["embed"])
    elif not need_embed:
        result.stages["embed"] = _cached_entry(dirs["embed"], fps["embed"])

    if need_track:
        _track(job, result, dirs, fps, embed_on, progress)
    else:
        result.stages["track"] = _cached_entry(dirs["track"], fps["track"])
        result.num_tracklets = int(rf.read_json(dirs["track"] / "done.json").get("tracklets", 0))
    result.frames = int(result.stages["detect"].get("frames", 0))


def _detect_and_embed(
    job: CameraJob,
    result: CameraResult,
    dirs: dict[str, Path],
    fps: dict[str, str],
    need_detect: bool,
    need_embed: bool,
    progress: ProgressFn | None,
) -> None:
    """One pass over the video (when frames are needed) for whichever of detect/embed is due."""
    cfg, cam, stages = job.config, job.camera, job.stages
    for s in ("detect", "embed"):
        rf.remove_temp_files(dirs[s])
    timer = _Timer()
    t0 = time.perf_counter()
    detector = stages.detector(cfg.detector, cam) if need_detect else None
    timer.add("detect_setup", t0)
    cached = None if need_detect else StoredDetections(dirs["detect"] / DETECTIONS_FILE)
    cached_index = None if cached is None else cached.index_of_frame()
    embedder = None
    if need_embed:
        t0 = time.perf_counter()
        embedder = stages.embedder(cfg.reid, cfg.seed)
        timer.add("embed_setup", t0)
    stages.prepare_worker(cfg.seed, cfg.run.threads_per_job)  # models may have reset threads

    total, stop = _frame_range(job)
    needs_frames = need_embed or bool(detector is not None and detector.needs_frames)
    if needs_frames:
        if cam.video_path is None:
            where = cam.root / "vdo.avi" if cam.root is not None else "the camera folder"
            raise FileNotFoundError(f"{where}: video not found, and this run needs frames "
                                    f"(detector {cfg.detector.source}, re-ID {'on' if need_embed else 'off'})")
        frame_iter: Iterator[tuple[int, np.ndarray | None]] = _timed_iter(
            stages.iter_frames(Path(cam.video_path), 1, stop), timer, "decode")
    else:
        if cached is not None:
            numbers = cached.frames.tolist()
        else:
            if total is None:
                if cam.video_path is None:
                    raise ValueError(f"{job.key}: the number of frames is unknown (no cam_framenum entry, no video)")
                total = stages.video_num_frames(Path(cam.video_path))
                if cfg.dataset.max_frames:
                    total = min(total, cfg.dataset.max_frames)
            numbers = list(range(1, total + 1))
        frame_iter = ((n, None) for n in numbers)

    all_dets = DetectionsBuffer()
    writer = EmbeddingWriter(dirs["embed"] / EMBEDDINGS_FILE) if need_embed else None
    done = 0
    try:
        for batch in _batches(frame_iter, cfg.run.batch_frames):
            numbers_b = [n for n, _ in batch]
            frames_b = [f for _, f in batch] if needs_frames else None
            if detector is not None:
                t0 = time.perf_counter()
                dets_b = detector.detect(numbers_b, frames_b if detector.needs_frames else None)
                timer.add("detect", t0)
                if len(dets_b) != len(numbers_b):
                    raise ValueError(f"{job.key}: detector returned {len(dets_b)} results for {len(numbers_b)} frames")
                all_dets.extend(dets_b)  # only computed detections are written (cached ones are on disk)
            else:
                if cached is None or cached_index is None:  # pragma: no cover - set whenever detector is None
                    raise RuntimeError("internal: no detector and no cached detections")
                dets_b = [cached[cached_index[n]] if n in cached_index else Detections.empty(n) for n in numbers_b]
            if writer is not None and embedder is not None and frames_b is not None:
                t0 = time.perf_counter()
                embs = embedder.embed_many(frames_b, [d.xyxy for d in dets_b])
                timer.add("embed", t0)
                for d, e in zip(dets_b, embs):
                    if len(e) != len(d):
                        raise ValueError(f"{job.key}: frame {d.frame}: {len(e)} embeddings for {len(d)} boxes")
                writer.append(np.concatenate(embs) if embs else np.zeros((0, embedder.dim), np.float32))
            done += len(batch)
            del batch, frames_b
            stages.release_heap()
            if progress is not None:
                progress(job.key, done, total, "detect" if need_detect else "embed")
        if done == 0:
            raise ValueError(f"{job.key}: no frames to process (video empty or max_frames excludes all)")
        if cached is not None and done < len(cached):
            # embeddings must align with the cached detections row for row
            raise ValueError(f"{cam.video_path}: decoding ended after {done} frames, but the cached detections "
                             f"cover {len(cached)} frames (up to frame {int(cached.frames[-1])}); rerun with --force")
        decode_s = timer.seconds.get("decode", 0.0)
        if need_detect:
            # the detector's frames/s counts decoding only when the detector reads frames
            seconds = timer.seconds.get("detect", 0.0) + timer.seconds.get("detect_setup", 0.0)
            if detector is not None and detector.needs_frames and not need_embed:
                seconds += decode_s
            all_dets.save(dirs["detect"] / DETECTIONS_FILE)
            n_boxes = all_dets.boxes
            rf.mark_stage_done(dirs["detect"], fps["detect"], [DETECTIONS_FILE],
                               {"seconds": seconds, "frames": done, "detections": n_boxes, "camera": job.key})
            result.stages["detect"] = _stage_entry("computed", fps["detect"], dirs["detect"], seconds, done,
                                                   detections=n_boxes)
        if writer is not None and embedder is not None:
            writer.close(dim_if_empty=int(embedder.dim))
            writer = None
            seconds = timer.seconds.get("embed", 0.0) + timer.seconds.get("embed_setup", 0.0) + decode_s
            rf.mark_stage_done(dirs["embed"], fps["embed"], [EMBEDDINGS_FILE],
                               {"seconds": seconds, "frames": done, "camera": job.key})
            result.stages["embed"] = _stage_entry("computed", fps["embed"], dirs["embed"], seconds, done)
        if needs_frames:
            result.timings["decode_seconds"] = round(decode_s, 4)
            result.timings["decode_fps"] = round(done / decode_s, 2) if decode_s > 0 else None
    finally:
        if writer is not None:
            writer.abort()


def _track(
    job: CameraJob,
    result: CameraResult,
    dirs: dict[str, Path],
    fps: dict[str, str],
    embed_on: bool,
    progress: ProgressFn | None,
) -> None:
    from mct.data.mot import write_mot
    from mct.track.tracklets import tracklets_to_mot_rows

    cfg, cam, stages = job.config, job.camera, job.stages
    rf.remove_temp_files(dirs["track"])
    t0 = time.perf_counter()
    detections = StoredDetections(dirs["detect"] / DETECTIONS_FILE)
    reader = EmbeddingReader(dirs["embed"] / EMBEDDINGS_FILE) if embed_on else None
    try:
        n_boxes = detections.boxes
        if reader is not None and reader.rows != n_boxes:
            raise ValueError(f"{reader.path}: {reader.rows} embeddings for {n_boxes} detections")
        tracker = stages.tracker(cfg.tracker, cam)
        builder = stages.tracklet_builder(cfg.tracklets, cam)
        total = len(detections)
        for i, det in enumerate(iter_detections(detections, reader), start=1):
            matches = tracker.update(det)
            builder.add(det, matches, tracker.tentative_matches)
            if progress is not None and (i % 256 == 0 or i == total):
                progress(job.key, i, total, "track")
        tracklets = builder.finish()
    finally:
        if reader is not None:
            reader.close()
    name = stages.tracklets_name
    with rf.atomic_path(dirs["track"] / name) as tmp:
        stages.save_tracklets(tmp, tracklets)
    with rf.atomic_path(dirs["track"] / TRACKS_FILE) as tmp:
        write_mot(tmp, tracklets_to_mot_rows(tracklets))
    seconds = time.perf_counter() - t0
    frames = len(detections)
    rf.mark_stage_done(dirs["track"], fps["track"], [name, TRACKS_FILE],
                       {"seconds": seconds, "frames": frames, "tracklets": len(tracklets), "camera": job.key})
    result.stages["track"] = _stage_entry("computed", fps["track"], dirs["track"], seconds, frames,
                                          tracklets=len(tracklets))
    result.num_tracklets = len(tracklets)


def _link_outputs(job: CameraJob, result: CameraResult, cam_dir: Path) -> None:
    """Hard-link the current stage outputs into ``cameras/<S>_<cam>/`` (the browsable view)."""
    names = {"detect": [DETECTIONS_FILE], "embed": [EMBEDDINGS_FILE], "track": [job.stages.tracklets_name, TRACKS_FILE]}
    for stage, files in names.items():
        entry = result.stages.get(stage)
        if entry is None or entry["status"] == "skipped":
            for name in files:
                (cam_dir / name).unlink(missing_ok=True)
            continue
        for name in files:
            src = Path(entry["dir"]) / name
            rf.link_atomic(src, cam_dir / name)
            result.outputs[name] = str(cam_dir / name)


def tracklets_path(run_root: str | Path, scenario: str, camera_id: str, stages: Stages | None = None) -> Path:
    """Where the run folder holds a camera's tracklets."""
    name = (stages or Stages()).tracklets_name
    return rf.RunFolder(run_root).camera_dir(scenario, camera_id) / name
