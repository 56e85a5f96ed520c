"""Small, fast, deterministic stand-ins for the stages, injected into the orchestration.

They let the run machinery (caching, resume, executors, faults) be tested in seconds
without models. Defined at module level so camera jobs carrying them pickle to worker
processes and Ray workers. ``python -m tests.e2e.fakes RUN_DIR ROOT [KEY=VALUE ...]``
runs a whole pipeline with them (used by the kill-and-resume test).
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from mct.run.stages import PipelineStages
from mct.track.output import TrackerOutput
from mct.types import Camera, Detections, GlobalAssignment, Tracklet

W, H = 64, 48


def write_video(path: Path, num_frames: int, fps: float = 10.0, seed: int = 0) -> None:
    """A tiny MJPG video whose brightness changes with the frame number."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: cannot write MJPG here")
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 60, size=(H, W, 3), dtype=np.uint8)
    for n in range(1, num_frames + 1):
        frame = base.copy()
        frame[:, (2 * n) % W] = 255
        writer.write(frame)
    writer.release()


def make_layout(root: Path, cameras: Sequence[str] = ("c001", "c002", "c003"), num_frames: int = 30) -> Path:
    """``root/validation/S01/<cam>/vdo.avi`` plus an evaluation ground truth file."""
    for i, cam in enumerate(cameras):
        write_video(root / "validation" / "S01" / cam / "vdo.avi", num_frames, seed=i)
    (root / "eval").mkdir(parents=True, exist_ok=True)
    (root / "eval" / "ground_truth_validation.txt").write_text("1 1 1 0 0 10 10 -1 -1\n")
    return root


class FakeDetector:
    """Two boxes per frame moving in opposite directions; scores depend on the pixels."""

    needs_frames = True

    def __init__(self, cfg: Any, camera: Camera, delay_s: float = 0.0, block_file: str | None = None,
                 block_at_frame: int | None = None) -> None:
        self.cfg, self.camera, self.delay_s, self.block_file = cfg, camera, delay_s, block_file
        self.block_at_frame = block_at_frame

    def _blocked(self, frame_numbers: Sequence[int]) -> bool:
        if not self.block_file or Path(self.block_file).exists():
            return False
        if self.block_at_frame is not None:  # every camera, from this frame on
            return max(frame_numbers) >= self.block_at_frame
        return self.camera.camera_id != "c001"

    def detect(self, frame_numbers: Sequence[int], frames: Sequence[np.ndarray] | None) -> list[Detections]:
        if frames is None:
            raise ValueError("FakeDetector needs frames")
        out = []
        # cameras after the first (or every camera from block_at_frame on) wait for
        # block_file: a test can stop the run mid-way for sure
        while self._blocked(frame_numbers):
            time.sleep(0.02)
        for n, frame in zip(frame_numbers, frames):
            if self.delay_s:
                time.sleep(self.delay_s)
            x1 = float(n % 40)
            x2 = float(40 - n % 40)
            xyxy = np.array([[x1, 5, x1 + 12, 17], [x2, 25, x2 + 14, 40]], np.float32)
            score = 0.5 + float(frame.mean()) / 512.0
            out.append(Detections(n, xyxy, np.array([score, score / 2], np.float32)))
        return out


class FakeEmbedder:
    dim = 4

    def embed_many(self, frames: Sequence[np.ndarray], xyxy_list: Sequence[np.ndarray]) -> list[np.ndarray]:
        out = []
        for frame, xyxy in zip(frames, xyxy_list):
            rows = []
            for x1, y1, x2, y2 in xyxy.astype(int):
                crop = frame[max(y1, 0):max(y2, 1), max(x1, 0):max(x2, 1)]
                v = np.array([*crop.reshape(-1, 3).mean(0), (x2 - x1) * 10.0], np.float32) + 1.0
                rows.append(v / np.linalg.norm(v))
            out.append(np.array(rows, np.float32).reshape(len(xyxy), self.dim))
        return out


class FakeTracker:
    """Detection index i is track i + 1 (the two fake cars never swap); every track is confirmed."""

    def update(self, dets: Detections) -> TrackerOutput:
        return TrackerOutput.from_matches(dets, [(i + 1, i) for i in range(len(dets))])


class FakeBuilder:
    def __init__(self) -> None:
        self.rows: dict[int, list[tuple[int, np.ndarray, float, np.ndarray | None]]] = {}

    def add(self, dets: Detections, matches: list[tuple[int, int]]) -> None:
        for track_id, i in matches:
            emb = None if dets.embeddings is None else dets.embeddings[i]
            self.rows.setdefault(track_id, []).append((dets.frame, dets.xyxy[i], float(dets.scores[i]), emb))

    def finish(self, camera: Camera) -> list[Tracklet]:
        out = []
        for tid, rows in sorted(self.rows.items()):
            feats = [r[3] for r in rows if r[3] is not None]
            feature = np.mean(feats, axis=0).astype(np.float32) if feats else None
            out.append(Tracklet(camera.scenario, camera.camera_id, tid, [r[0] for r in rows],
                                np.stack([r[1] for r in rows]), [r[2] for r in rows], feature))
        return out


class _BoundBuilder:
    def __init__(self, camera: Camera) -> None:
        self.camera, self.inner = camera, FakeBuilder()

    def add(self, dets: Detections, output: TrackerOutput) -> None:
        self.inner.add(dets, output.matches)

    def finish(self) -> list[Tracklet]:
        return self.inner.finish(self.camera)


class FakeStages(PipelineStages):
    """Every stage faked; the dataset is read from ``<root>/<split>/<S>/<cam>/vdo.avi``.

    ``crash_camera``: that camera's worker process dies hard (``os._exit``);
    ``delay_s``: seconds the detector sleeps per frame (to interrupt a run mid-way).
    """

    tracklets_name = "tracklets.pkl"

    def __init__(self, delay_s: float = 0.0, crash_camera: str | None = None, block_file: str | None = None,
                 block_at_frame: int | None = None) -> None:
        self.delay_s = delay_s
        self.crash_camera = crash_camera
        self.block_file = block_file
        self.block_at_frame = block_at_frame

    def load_dataset(self, cfg: Any) -> tuple[list[Camera], Path | None, Path | None, dict[str, str]]:
        split = Path(cfg.root) / cfg.split
        cams = []
        for scen in sorted(p for p in split.iterdir() if p.is_dir()):
            for cam in sorted(p for p in scen.iterdir() if p.is_dir()):
                if cfg.cameras and cam.name not in cfg.cameras:
                    continue
                cams.append(Camera(scen.name, cam.name, cam / "vdo.avi", fps=10.0, num_frames=None, root=cam))
        gt = Path(cfg.root) / "eval" / f"ground_truth_{cfg.split}.txt"
        return cams, gt if gt.is_file() else None, split, {}

    def detector(self, cfg: Any, camera: Camera) -> FakeDetector:
        if camera.camera_id == self.crash_camera:
            os._exit(3)
        return FakeDetector(cfg, camera, self.delay_s, self.block_file, self.block_at_frame)

    def embedder(self, cfg: Any, seed: int) -> FakeEmbedder:
        return FakeEmbedder()

    def tracker(self, cfg: Any, camera: Camera) -> FakeTracker:
        return FakeTracker()

    def tracklet_builder(self, cfg: Any, camera: Camera) -> _BoundBuilder:
        return _BoundBuilder(camera)

    def save_tracklets(self, path: Path, tracklets: Sequence[Tracklet]) -> None:
        with open(path, "wb") as fh:
            pickle.dump(list(tracklets), fh)

    def load_tracklets(self, path: Path) -> list[Tracklet]:
        with open(path, "rb") as fh:
            return pickle.load(fh)

    def associate(self, tracklets: Sequence[Tracklet], cameras: Sequence[Camera], cfg: Any, links_path: Any = None) -> GlobalAssignment:
        # the fake cars are the same vehicle in every camera: global id = local id (+ k, so
        # that association settings visibly change the result)
        n = len(tracklets)
        return GlobalAssignment(np.array([t.scenario for t in tracklets], object),
                                np.array([t.camera_id for t in tracklets], object),
                                np.array([t.track_id for t in tracklets], np.int64),
                                np.array([t.track_id + cfg.k for t in tracklets], np.int64).reshape(n))

    def evaluate(self, gt_path: Path, pred_path: Path, roi_dir: Path | None, cfg: Any) -> dict[str, Any]:
        rows = np.loadtxt(pred_path, ndmin=2)
        ids = len(np.unique(rows[:, 1])) if len(rows) else 0
        return {"IDF1": 1.0 / (1 + ids), "IDP": 0.5, "IDR": len(rows) / 1000.0, "rows": int(len(rows))}


def fake_config(root: Path, *overrides: str) -> Any:
    from mct.config import load_config

    return load_config(None, [f"dataset.root={root}", "dataset.split=validation", "run.workers=2",
                              "reid.weights=none", *overrides])


def main(argv: Sequence[str]) -> int:
    """``python -m tests.e2e.fakes RUN_DIR ROOT BLOCK_FILE [block_at=N] [KEY=VALUE ...]``: a
    fake pipeline run whose cameras after c001 (with ``block_at=N``: every camera, from
    frame N on) wait until BLOCK_FILE exists."""
    from mct.run.runner import run_pipeline

    run_dir, root, block_file = argv[0], argv[1], argv[2]
    rest = list(argv[3:])
    block_at = next((int(a.split("=", 1)[1]) for a in rest if a.startswith("block_at=")), None)
    cfg = fake_config(Path(root), *[a for a in rest if not a.startswith("block_at=")])
    stages = FakeStages(block_file=block_file, block_at_frame=block_at)
    summary = run_pipeline(cfg, run_dir, stages=stages, progress=False)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
