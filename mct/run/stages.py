"""The per-camera stage implementations a camera job calls, behind one small seam.

:class:`Stages` builds the real detector, embedder, tracker and tracklet builder from
their packages (imported lazily, inside the worker that needs them). Tests pass a
subclass with small fakes; nothing else in ``mct.run`` imports a stage package directly,
so this file is where the orchestration meets the stage interfaces.

A subclass must be defined at module level (camera jobs are pickled to worker processes
and Ray workers).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import numpy as np

from mct.associate.config import AssociationConfig
from mct.config import Config
from mct.data.config import DatasetConfig
from mct.detect.config import DetectorConfig, find_weights_file
from mct.evaluate.config import EvaluationConfig
from mct.reid.config import EmbedderConfig
from mct.track.config import TrackerConfig, TrackletConfig
from mct.track.output import TrackerOutput
from mct.types import Camera, Detections, GlobalAssignment, Tracklet

log = logging.getLogger(__name__)

__all__ = ["Stages", "PipelineStages", "Detector", "Embedder", "Tracker", "TrackletBuilder", "weights_file"]


def weights_file(kind: str, weights: str) -> Path | None:
    """The checkpoint file a ``detector.weights`` (``kind="detector"``) or ``reid.weights``
    (``kind="reid"``) setting names, found as that stage finds it; ``None`` when the setting
    names no file (``none``, ``coco``, ``imagenet``) or the file does not exist."""
    if weights.strip().lower() in ("", "none", "coco", "imagenet"):
        return None
    if kind == "detector":
        return find_weights_file(weights)  # the detector's own lookup (cwd, then the repository)
    path = Path(weights).expanduser()
    return path if path.is_file() else None


class Detector(Protocol):
    needs_frames: bool

    def detect(self, frame_numbers: Sequence[int], frames: Sequence[np.ndarray] | None) -> list[Detections]: ...


class Embedder(Protocol):
    dim: int

    def embed_many(self, frames: Sequence[np.ndarray], xyxy_list: Sequence[np.ndarray]) -> list[np.ndarray]: ...


class Tracker(Protocol):
    def update(self, dets: Detections) -> TrackerOutput: ...


class TrackletBuilder(Protocol):
    def add(self, dets: Detections, output: TrackerOutput) -> None: ...

    def finish(self) -> list[Tracklet]: ...


class Stages:
    """Factories of the real stages; override methods to inject other implementations."""

    #: the file name of the stored tracklets inside a stage folder.
    tracklets_name = "tracklets.npz"

    # --------------------------------------------------------------- environment
    def prepare_worker(self, seed: int, threads: int) -> None:
        """Seed the random generators and cap the threads of this worker process."""
        np.random.seed(seed)
        _fixed_mmap_threshold()
        try:
            import cv2

            cv2.setNumThreads(threads)
        except ImportError:  # pragma: no cover - cv2 is a dependency
            pass
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            torch.manual_seed(seed)
            torch.set_num_threads(threads)

    def release_heap(self) -> None:
        """Return the heap's free pages to the OS; called after each batch of frames."""
        release_heap()

    # --------------------------------------------------------------- frames
    def iter_frames(self, path: Path, start: int, stop: int | None) -> Iterator[tuple[int, np.ndarray]]:
        from mct.data.video import iter_frames

        return iter_frames(path, start=start, stop=stop)

    def video_num_frames(self, path: Path) -> int:
        from mct.data.video import video_info

        return video_info(path).num_frames

    # --------------------------------------------------------------- stages
    def detector(self, cfg: DetectorConfig, camera: Camera) -> Detector:
        from mct.detect import DETECTORS

        return DETECTORS[cfg.source](cfg, camera)

    def embedder(self, cfg: EmbedderConfig, seed: int) -> Embedder:
        from mct.reid.embedder import Embedder as RealEmbedder

        import torch  # the embedder imports it anyway; seeds its random init

        torch.manual_seed(seed)
        return RealEmbedder(cfg)

    def tracker(self, cfg: TrackerConfig, camera: Camera) -> Tracker:
        from mct.track.deep_sort import DeepSortTracker

        return DeepSortTracker(cfg, camera.fps)

    def tracklet_builder(self, cfg: TrackletConfig, camera: Camera) -> TrackletBuilder:
        from mct.track.tracklets import TrackletBuilder as RealBuilder

        return _BuilderAdapter(RealBuilder(cfg, camera))

    def load_weights(self, kind: str, what: str, cfg: Config) -> None:
        """Load a checkpoint as its stage will, raising on one that does not load: ``kind``
        ``detector`` or ``reid`` (``what``: the file), or ``coco`` (``what``: the detector
        model; found in torch's cache, which may be filled when downloads are allowed)."""
        if kind == "detector":
            from mct.detect.maskrcnn import read_checkpoint

            read_checkpoint(what)
        elif kind == "reid":
            from mct.reid.model import load_checkpoint

            load_checkpoint(what, cfg.reid)
        elif kind == "coco":
            from mct.detect.maskrcnn import coco_weights_file, read_checkpoint

            path = coco_weights_file(what)
            if path.is_file():
                read_checkpoint(path)
            elif not cfg.detector.allow_download:
                raise FileNotFoundError(f"COCO weights of {what}: {path} not found and detector.allow_download is false")
        else:
            raise ValueError(f"unknown weights kind {kind!r}")

    def save_tracklets(self, path: Path, tracklets: Sequence[Tracklet]) -> None:
        from mct.track.tracklets import save_tracklets

        save_tracklets(path, tracklets)

    def load_tracklets(self, path: Path) -> list[Tracklet]:
        from mct.track.tracklets import load_tracklets

        return list(load_tracklets(path))


#: glibc's ``M_MMAP_THRESHOLD`` for worker processes: blocks this large or larger are mmap'd
#: (glibc's own ceiling for its dynamic threshold on 64-bit, fixed here so it never drifts).
MMAP_THRESHOLD_BYTES = 32 << 20


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    """glibc through ctypes, or None (another libc, another platform); looked up once."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - glibc has it, musl does not
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def _fixed_mmap_threshold() -> None:
    """Fix glibc's mmap threshold (``MMAP_THRESHOLD_BYTES``) for this process.

    Left dynamic, glibc raises the threshold after the first large free; fixed, it stays
    put. It must not be small: at glibc's initial 128 KiB every activation of the detector
    and re-ID network is a fresh mmap whose pages fault in zeroed on first touch, and the
    shipped demo detector ran at 10.7 instead of 17.2 frames/s (one thread; re-ID 61
    instead of 99 crops/s). RSS is kept flat by :func:`release_heap` instead. No-op where
    glibc is absent. ``MCT_MMAP_THRESHOLD`` (bytes; 0 leaves glibc's dynamic threshold)
    overrides the size, for measuring.
    """
    size = int(os.environ.get("MCT_MMAP_THRESHOLD", MMAP_THRESHOLD_BYTES))
    libc = _libc()
    if libc is not None and size > 0:
        libc.mallopt(-3, size)  # M_MMAP_THRESHOLD


def release_heap() -> None:
    """Give the free pages of the heap back to the OS (``malloc_trim(0)``).

    A camera job calls it after each batch of frames: decoded frames and crop batches are
    freed between small arrays the job keeps, and without it those holes stay resident,
    so RSS crept up with video length (benchmarks/bench_run_memory.py).
    ``MCT_MALLOC_TRIM=0`` turns it off, for measuring.
    """
    if os.environ.get("MCT_MALLOC_TRIM", "1") == "0":
        return
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


class _BuilderAdapter:
    """Adapts ``mct.track.tracklets.TrackletBuilder`` to the two calls the job makes."""

    def __init__(self, builder: Any) -> None:
        self.builder = builder

    def add(self, dets: Detections, output: TrackerOutput) -> None:
        self.builder.add(dets, output)  # same call; the adapter pins the seam in one place

    def finish(self) -> list[Tracklet]:
        return list(self.builder.finish())


class PipelineStages(Stages):
    """Adds the stages that run once per run in the main process (dataset, association,
    evaluation) to the per-camera factories of :class:`Stages`."""

    def load_dataset(self, cfg: DatasetConfig) -> tuple[list[Camera], Path | None, Path | None, dict[str, str]]:
        """``(cameras, evaluation ground truth or None, split folder holding roi.jpg files,
        {camera key: error} of cameras that could not be loaded)``.

        One unreadable camera (a corrupt video header, a bad roi.jpg) must not stop the
        others: when loading the whole split fails, each camera folder is loaded on its
        own and the ones that fail are returned with their message.
        """
        from mct.data.aicity import dataset_from_config

        try:
            ds = dataset_from_config(cfg)
            return list(ds.cameras), ds.ground_truth_path(), Path(ds.root) / ds.split, {}
        except (OSError, ValueError) as first_error:
            keys = _camera_folders(cfg)
            if not keys:
                raise
            log.warning("loading %s/%s failed (%s); loading its cameras one by one", cfg.root, cfg.split, first_error)
        cameras: list[Camera] = []
        failures: dict[str, str] = {}
        ds = None
        for scenario, camera_id in keys:
            try:
                one = dataset_from_config(cfg.model_copy(update={"scenarios": (scenario,),
                                                                 "cameras": (f"{scenario}/{camera_id}",)}))
            except (OSError, ValueError) as exc:
                failures[f"{scenario}_{camera_id}"] = f"{type(exc).__name__}: {exc}"
                continue
            ds = one
            cameras.extend(one.cameras)
        gt = ds.ground_truth_path() if ds is not None else None
        return cameras, gt, Path(cfg.root) / cfg.split, failures

    def check_topology(self, path: Path) -> None:
        """Read a topology file (or folder) as association will; raises on a bad one."""
        from mct.config import load_topology

        load_topology(path)

    def associate(
        self, tracklets: Sequence[Tracklet], cameras: Sequence[Camera], cfg: AssociationConfig, links_path: Path | None = None
    ) -> GlobalAssignment:
        """Global ids; with ``links_path``, the camera links the association used are written
        there in the topology file format (inspect, edit, reuse as ``association.topology``)."""
        from mct.associate import associate
        from mct.associate.topology import write_topology
        from mct.config import load_topology

        details: dict[str, Any] = {}
        assignment = associate(tracklets, cameras, cfg, load_topology(cfg.topology) if cfg.topology else None, details=details)
        if links_path is not None and "links" in details:
            from mct.atomic import atomic_path

            with atomic_path(links_path) as tmp:
                write_topology(tmp, details["links"].to_topology())
        return assignment

    def write_submission(self, path: Path, tracklets: Sequence[Tracklet], assignment: GlobalAssignment) -> int:
        """Write the AI City submission file of the tracklets that have a global id; returns rows."""
        from mct.associate import write_submission_rows
        from mct.data.submission import write_submission

        rows = write_submission_rows(tracklets, assignment)
        write_submission(path, rows)
        return len(rows)

    def evaluate(self, gt_path: Path, pred_path: Path, roi_dir: Path | None, cfg: EvaluationConfig) -> dict[str, Any]:
        from mct.evaluate import evaluate_mtmc

        result = evaluate_mtmc(gt_path, pred_path, roi_dir=roi_dir if cfg.use_roi else None, min_iou=cfg.iou_threshold)
        return _to_plain(result)


def _camera_folders(cfg: DatasetConfig) -> list[tuple[str, str]]:
    """``(scenario, camera_id)`` of the camera folders the dataset selection names."""
    import re

    split = Path(cfg.root) / cfg.split
    if not split.is_dir():
        return []
    out = []
    for scen in sorted(p for p in split.iterdir() if p.is_dir() and re.match(r"^S\d+$", p.name)):
        if cfg.scenarios and scen.name not in cfg.scenarios:
            continue
        for cam in sorted(p for p in scen.iterdir() if p.is_dir() and re.match(r"^c\d+$", p.name)):
            if cfg.cameras and cam.name not in cfg.cameras and f"{scen.name}/{cam.name}" not in cfg.cameras:
                continue
            out.append((scen.name, cam.name))
    return out


def _to_plain(value: Any) -> Any:
    """An evaluation result (dataclass, mapping, numpy scalars) as JSON-able data."""
    import dataclasses

    if hasattr(value, "to_dict"):
        value = value.to_dict()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
