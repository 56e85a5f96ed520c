"""One camera, all per-camera stages: detect -> embed -> track -> tracklets.

:func:`run_camera_job` is a pure function of (camera, config, run folder) -> files: it
runs the same in a local worker process and in a Ray worker. Each stage goes through the
one stage protocol (:func:`mct.run.protocol.run_stages`): it writes into its
content-addressed cache folder (``cache/<stage>/<S>_<cam>/<fingerprint>/``) and records
completion there; a stage whose record matches its fingerprint is skipped. This module
supplies only the stages' fingerprints and compute functions. The camera's current
outputs are then hard-linked into ``cameras/<S>_<cam>/``.

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
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from pydantic import BaseModel

import mct
from mct.config import Config
from mct.run import run_folder as rf
from mct.run.protocol import StageSpec, run_stage, run_stages
from mct.run.stages import Stages, weights_file
from mct.run.storage import (
    DetectionsBuffer,
    EmbeddingReader,
    EmbeddingWriter,
    StoredDetections,
    concat_detection_files,
    concat_embedding_files,
    iter_detections,
)
from mct.types import Camera, Detections

log = logging.getLogger(__name__)

__all__ = [
    "CAMERA_STAGES",
    "CameraJob",
    "CameraResult",
    "ProgressFn",
    "camera_fingerprints",
    "camera_stage_specs",
    "embedding_enabled",
    "job_is_cached",
    "run_camera_job",
]

CAMERA_STAGES = ("detect", "embed", "track")

#: seconds a camera job waits for another process to release the camera's lock
LOCK_TIMEOUT_S = 60.0

#: ``progress(camera_key, frames_done, frames_total_or_None, stage)``
ProgressFn = Callable[[str, int, "int | None", str], None]

DETECTIONS_FILE = "detections.npz"
EMBEDDINGS_FILE = "embeddings.npy"
TRACKS_FILE = "tracks.txt"


def embedding_enabled(cfg: Config) -> bool:
    """Whether the embed stage runs: whenever re-ID is on.

    A motion-only tracker ignores the embeddings, but the tracklets still need their
    appearance feature for cross-camera association, so motion-only tracking embeds too.
    """
    return bool(cfg.reid.enabled)


def _section(model: BaseModel, exclude: Sequence[str] = ()) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude=set(exclude))


def camera_fingerprints(camera: Camera, cfg: Config) -> dict[str, str]:
    """``{stage: fingerprint}`` for the per-camera stages of ``camera`` under ``cfg``.

    The dataset's selection keys (``scenarios``, ``cameras``) are left out: choosing more
    cameras must not invalidate the ones already done.
    """
    key = list(camera.key)
    dataset = _section(cfg.dataset, exclude=("scenarios", "cameras"))
    root = camera.root
    inputs = rf.files_signature(
        camera.video_path,
        weights_file("detector", cfg.detector.weights) if cfg.detector.source == "maskrcnn" else None,
        root / "det" / cfg.detector.det_file if root is not None and cfg.detector.source == "file" else None,
        root / cfg.detector.gt_file if root is not None and cfg.detector.source == "gt" else None,
    )
    detect = rf.fingerprint("detect", mct.__version__, key, dataset, _section(cfg.detector), inputs)
    embed = rf.fingerprint(
        "embed", detect, _section(cfg.reid), rf.files_signature(_reid_weights_named(cfg.reid.weights)), cfg.seed,
        embedding_enabled(cfg),
    )
    track = rf.fingerprint("track", embed, _section(cfg.tracker), _section(cfg.tracklets))
    return {"detect": detect, "embed": embed, "track": track}


def _reid_weights_named(weights: str) -> str | None:
    """The re-ID weights path as written (a missing file signs as nothing, as before)."""
    return None if weights.strip().lower() in ("", "none", "coco", "imagenet") else weights


def camera_stage_specs(job: "CameraJob") -> dict[str, StageSpec]:
    """``{stage: StageSpec}`` of the per-camera stages of ``job`` (its folders and outputs)."""
    folder = rf.RunFolder(job.run_root, job.cache_root)
    fps = camera_fingerprints(job.camera, job.config)
    outputs = {"detect": (DETECTIONS_FILE,), "embed": (EMBEDDINGS_FILE,),
               "track": (job.stages.tracklets_name, TRACKS_FILE)}
    return {s: StageSpec(s, job.key, fps[s], folder.stage_dir(s, job.key, fps[s]), outputs[s]) for s in CAMERA_STAGES}


@dataclass(frozen=True)
class CameraJob:
    """Everything one camera job needs (picklable: it travels to worker processes)."""

    camera: Camera
    config: Config
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


def _skipped_entry(spec: StageSpec) -> dict[str, Any]:
    return {"status": "skipped", "fingerprint": spec.fingerprint, "dir": str(spec.dir), "seconds": 0.0, "frames": 0,
            "fps": None}


def job_is_cached(job: CameraJob) -> bool:
    """True when every stage of ``job`` is already done (it needs no worker, only linking)."""
    if job.force:
        return False
    specs = camera_stage_specs(job)
    stages = ["detect", "track"] + (["embed"] if embedding_enabled(job.config) else [])
    return all(specs[s].is_done() for s in stages)


# ---------------------------------------------------------------------------- the job
def run_camera_job(job: CameraJob, progress: ProgressFn | None = None) -> CameraResult:
    """Run every per-camera stage of ``job`` that is not already done; never raises for a
    bad camera (the error lands in the result and ``error.txt``), only on interrupt.

    The job holds the camera's lock (``cache/locks/<S>_<cam>.lock``) throughout: a second
    job on the same camera (a rerun while a killed run's worker is still stopping) waits
    for it instead of deleting its files, and fails after ``LOCK_TIMEOUT_S``.
    """
    cam = job.camera
    result = CameraResult(cam.scenario, cam.camera_id)
    folder = rf.RunFolder(job.run_root, job.cache_root)
    t_start = time.perf_counter()
    try:
        with rf.exclusive_lock(folder.lock_path(job.key), LOCK_TIMEOUT_S, what=f"camera {job.key}"):
            _run_locked(job, result, folder.camera_dir(*cam.key), progress, t_start)
    except rf.LockedError as exc:  # another live process owns the camera's files: touch nothing
        result.status = "failed"
        result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = round(time.perf_counter() - t_start, 4)
        log.error("camera %s failed: %s", job.key, result.error)
    return result


def _run_locked(job: CameraJob, result: CameraResult, cam_dir: Path, progress: ProgressFn | None,
                t_start: float) -> None:
    try:
        cam_dir.mkdir(parents=True, exist_ok=True)
        rf.remove_temp_files(cam_dir)
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


class _Prepared:
    """Seeds and thread limits set once per job, before the first stage that computes."""

    def __init__(self, job: CameraJob) -> None:
        self.job, self.done = job, False

    def __call__(self) -> None:
        if not self.done:
            self.job.stages.prepare_worker(self.job.config.seed, self.job.config.run.threads_per_job)
            self.done = True


def _run_stages(job: CameraJob, result: CameraResult, progress: ProgressFn | None) -> None:
    specs = camera_stage_specs(job)
    embed_on = embedding_enabled(job.config)
    prepare = _Prepared(job)
    group = [specs["detect"], specs["embed"]] if embed_on else [specs["detect"]]
    outcomes = run_stages(group, lambda due: _detect_and_embed(job, result, specs, due, prepare, progress),
                          force=job.force)
    for name, outcome in outcomes.items():
        result.stages[name] = outcome.entry()
    if not embed_on:
        result.stages["embed"] = _skipped_entry(specs["embed"])
    upstream_computed = any(o.status == "computed" for o in outcomes.values())
    track = run_stage(specs["track"], lambda spec: _track(job, spec, specs, embed_on, prepare, progress),
                      force=job.force, inputs_changed=upstream_computed)
    result.stages["track"] = track.entry()
    result.num_tracklets = int(track.record.get("tracklets", 0))
    result.frames = int(result.stages["detect"].get("frames", 0))


def _chunk_frames(cfg: Config) -> int:
    """Frames per saved chunk: ``run.chunk_frames`` rounded up to whole batches, so a resumed
    job feeds its models exactly the batches an uninterrupted one does (same bytes)."""
    batch = cfg.run.batch_frames
    return -(-cfg.run.chunk_frames // batch) * batch


class _Chunks:
    """The finished chunks of the due detect/embed stages of one camera.

    Chunk ``k`` holds positions ``[k * size, (k + 1) * size)`` of the frames in processing
    order: ``parts/chunk<size>/<k>.npz`` (detect) and ``<k>.npy`` (embed) in each stage's
    folder, each written atomically. ``end.json`` records how many frames there were once
    the pass reached the end of the video.
    """

    SUFFIX = {"detect": ".npz", "embed": ".npy"}

    def __init__(self, due: Sequence[StageSpec], size: int, key: str) -> None:
        self.size, self.key = size, key
        self.dirs = {s.name: s.parts_dir / f"chunk{size}" for s in due}
        for spec in due:
            if spec.parts_dir.is_dir():
                for other in spec.parts_dir.iterdir():
                    if other != self.dirs[spec.name]:  # saved with another chunk size: not reusable
                        log.info("%s: dropping the %s chunks of %s (run.chunk_frames changed)", key, spec.name, other.name)
                        shutil.rmtree(other, ignore_errors=True)
            self.dirs[spec.name].mkdir(parents=True, exist_ok=True)

    def path(self, stage: str, k: int) -> Path:
        return self.dirs[stage] / f"{k:06d}{self.SUFFIX[stage]}"

    def finished(self) -> int:
        """How many chunks from the first on every due stage has saved."""
        k = 0
        while all(self.path(stage, k).is_file() for stage in self.dirs):
            k += 1
        return k

    def end(self) -> int | None:
        """The number of frames, when a pass already reached the end of the video."""
        stage = next(iter(self.dirs))
        path = self.dirs[stage] / "end.json"
        return int(rf.read_json(path)["frames"]) if path.is_file() else None

    def mark_end(self, frames: int) -> None:
        for folder in self.dirs.values():
            rf.write_json_atomic(folder / "end.json", {"frames": frames})

    def paths(self, stage: str, frames: int) -> list[Path]:
        return [self.path(stage, k) for k in range(-(-frames // self.size))]


def _detect_and_embed(
    job: CameraJob,
    result: CameraResult,
    specs: dict[str, StageSpec],
    due: Sequence[StageSpec],
    prepare: _Prepared,
    progress: ProgressFn | None,
) -> dict[str, dict[str, Any]]:
    """The compute of detect and/or embed: one pass over the video (when frames are needed)
    for whichever is due, saved chunk by chunk (``run.chunk_frames``) and resumed from the
    last saved chunk; returns their ``done.json`` infos."""
    cfg, cam, stages = job.config, job.camera, job.stages
    need_detect = any(s.name == "detect" for s in due)
    need_embed = any(s.name == "embed" for s in due)
    chunks = _Chunks(due, _chunk_frames(cfg), job.key)
    first_chunk = chunks.finished()
    end = chunks.end()
    complete = end is not None and first_chunk * chunks.size >= end  # only the assembly is left
    start = first_chunk * chunks.size  # frames already saved (positions in processing order)
    if start:
        log.info("%s: resuming %s after frame %d (%d saved chunk(s) of %d frames)", job.key,
                 " + ".join(s.name for s in due), start, first_chunk, chunks.size)
    prepare()
    timer = _Timer()
    cached = None if need_detect else StoredDetections(specs["detect"].path(DETECTIONS_FILE))
    cached_index = None if cached is None else cached.index_of_frame()
    detector = embedder = None
    if not complete:
        t0 = time.perf_counter()
        detector = stages.detector(cfg.detector, cam) if need_detect else None
        timer.add("detect_setup", t0)
        if need_embed:
            t0 = time.perf_counter()
            embedder = stages.embedder(cfg.reid, cfg.seed)
            timer.add("embed_setup", t0)
        stages.prepare_worker(cfg.seed, cfg.run.threads_per_job)  # models may have reset threads

    total, stop = _frame_range(job)
    needs_frames = not complete and (need_embed or bool(detector is not None and detector.needs_frames))
    frame_iter: Iterator[tuple[int, np.ndarray | None]]
    if complete:
        frame_iter = iter(())
    elif needs_frames:
        if cam.video_path is None:
            where = cam.root / "vdo.avi" if cam.root is not None else "the camera folder"
            raise FileNotFoundError(f"{where}: video not found, and this run needs frames "
                                    f"(detector {cfg.detector.source}, re-ID {'on' if need_embed else 'off'})")
        # frames are consecutive from 1, so position p is frame p + 1
        frame_iter = _timed_iter(stages.iter_frames(Path(cam.video_path), start + 1, stop), timer, "decode")
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
        frame_iter = ((n, None) for n in numbers[start:])

    dets = DetectionsBuffer()
    writer: EmbeddingWriter | None = None
    chunk, in_chunk = first_chunk, 0
    done = end if complete and end is not None else start

    def save_chunk() -> None:
        nonlocal dets, writer, chunk, in_chunk
        if need_detect:
            dets.save(chunks.path("detect", chunk))  # atomic
            dets = DetectionsBuffer()
        if writer is not None and embedder is not None:
            writer.close(dim_if_empty=int(embedder.dim))  # atomic
            writer = None
        chunk, in_chunk = chunk + 1, 0

    try:
        for batch in _batches(frame_iter, cfg.run.batch_frames):
            if need_embed and writer is None:
                writer = EmbeddingWriter(chunks.path("embed", chunk))
            numbers_b = [n for n, _ in batch]
            frames_b = [f for _, f in batch] if needs_frames else None
            if detector is not None:
                t0 = time.perf_counter()
                dets_b = detector.detect(numbers_b, frames_b if detector.needs_frames else None)
                timer.add("detect", t0)
                if len(dets_b) != len(numbers_b):
                    raise ValueError(f"{job.key}: detector returned {len(dets_b)} results for {len(numbers_b)} frames")
                dets.extend(dets_b)  # only computed detections are written (cached ones are on disk)
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
            in_chunk += len(batch)
            del batch, frames_b
            if in_chunk >= chunks.size:
                save_chunk()
            stages.release_heap()
            if progress is not None:
                progress(job.key, done, total, "detect" if need_detect else "embed")
        if in_chunk:
            save_chunk()
        if done == 0:
            raise ValueError(f"{job.key}: no frames to process (video empty or max_frames excludes all)")
        if cached is not None and done < len(cached):
            # embeddings must align with the cached detections row for row
            raise ValueError(f"{cam.video_path}: decoding ended after {done} frames, but the cached detections "
                             f"cover {len(cached)} frames (up to frame {int(cached.frames[-1])}); rerun with --force")
        if not complete:
            chunks.mark_end(done)
    finally:
        if writer is not None:
            writer.abort()

    infos: dict[str, dict[str, Any]] = {}
    resumed = {"resumed_after_frames": start} if start else {}
    decode_s = timer.seconds.get("decode", 0.0)
    if need_detect:
        # the detector's frames/s counts decoding only when the detector reads frames
        seconds = timer.seconds.get("detect", 0.0) + timer.seconds.get("detect_setup", 0.0)
        if detector is not None and detector.needs_frames and not need_embed:
            seconds += decode_s
        boxes = concat_detection_files(chunks.paths("detect", done), specs["detect"].path(DETECTIONS_FILE))
        infos["detect"] = {"seconds": seconds, "frames": done, "detections": boxes, "camera": job.key, **resumed}
    if need_embed:
        concat_embedding_files(chunks.paths("embed", done), specs["embed"].path(EMBEDDINGS_FILE))
        seconds = timer.seconds.get("embed", 0.0) + timer.seconds.get("embed_setup", 0.0) + decode_s
        infos["embed"] = {"seconds": seconds, "frames": done, "camera": job.key, **resumed}
    if needs_frames:
        result.timings["decode_seconds"] = round(decode_s, 4)
        result.timings["decode_fps"] = round((done - start) / decode_s, 2) if decode_s > 0 else None
    return infos


def _track(
    job: CameraJob,
    spec: StageSpec,
    specs: dict[str, StageSpec],
    embed_on: bool,
    prepare: _Prepared,
    progress: ProgressFn | None,
) -> dict[str, Any]:
    """The compute of the track stage: Deep SORT over the stored detections (and embeddings),
    then the tracklets and their MOT rows; returns its ``done.json`` info."""
    from mct.data.mot import write_mot
    from mct.track.tracklets import tracklets_to_mot_rows

    cfg, cam, stages = job.config, job.camera, job.stages
    prepare()
    t0 = time.perf_counter()
    detections = StoredDetections(specs["detect"].path(DETECTIONS_FILE))
    reader = EmbeddingReader(specs["embed"].path(EMBEDDINGS_FILE)) if embed_on else None
    try:
        n_boxes = detections.boxes
        if reader is not None and reader.rows != n_boxes:
            raise ValueError(f"{reader.path}: {reader.rows} embeddings for {n_boxes} detections")
        tracker = stages.tracker(cfg.tracker, cam)
        builder = stages.tracklet_builder(cfg.tracklets, cam)
        total = len(detections)
        for i, det in enumerate(iter_detections(detections, reader), start=1):
            builder.add(det, tracker.update(det))
            if progress is not None and (i % 256 == 0 or i == total):
                progress(job.key, i, total, "track")
        tracklets = builder.finish()
    finally:
        if reader is not None:
            reader.close()
    with spec.atomic(stages.tracklets_name) as tmp:
        stages.save_tracklets(tmp, tracklets)
    with spec.atomic(TRACKS_FILE) as tmp:
        write_mot(tmp, tracklets_to_mot_rows(tracklets))
    return {"seconds": time.perf_counter() - t0, "frames": len(detections), "tracklets": len(tracklets),
            "camera": job.key}


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
