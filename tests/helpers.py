"""Test helpers shared by every test package: tiny hand-written AI City trees and videos.

``write_aicity_tree(tmp_path)`` writes a complete, minimal AI City layout in a few
milliseconds (16x16 two-frame MJPG videos), which the loader reads back::

    root/cam_timestamp/S01.txt, cam_framenum/S01.txt, eval/ground_truth_train.txt
    root/train/S01/c001/{vdo.avi, roi.jpg, calibration.txt, gt/gt.txt, det/det_test.txt}
    root/train/S01/c002/...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

__all__ = ["TinyCamera", "write_video", "write_aicity_tree", "TINY_HOMOGRAPHY"]

#: ground metres -> pixels: 2 px per metre, origin at pixel (4, 4); invertible.
TINY_HOMOGRAPHY = np.array([[2.0, 0.0, 4.0], [0.0, 2.0, 4.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class TinyCamera:
    """One camera of the tiny tree; ``gt`` rows are ``(frame, id, left, top, width, height)``."""

    camera_id: str = "c001"
    fps: float = 10.0
    time_offset_s: float = 0.0
    num_frames: int = 2
    gt: Sequence[tuple[int, int, int, int, int, int]] = ((1, 1, 2, 2, 6, 5), (2, 1, 3, 2, 6, 5))
    dets: Sequence[tuple[int, float, float, float, float, float]] = (
        (1, 2.0, 2.0, 6.0, 5.0, 0.9),
        (2, 3.5, 2.0, 6.0, 5.0, 0.8),
    )
    video: bool = True
    roi: bool = True
    calibration: bool = True


def frame_colour(frame: int) -> int:
    """Grey level of frame ``frame`` of :func:`write_video`: frame 1 -> 40, 2 -> 80, ..."""
    return (40 * frame) % 256


def write_video(path: Path, num_frames: int = 2, fps: float = 10.0, size: tuple[int, int] = (16, 16)) -> Path:
    """An MJPG AVI whose frame k is flat grey :func:`frame_colour` (k) (so a test can tell
    frames apart after JPEG compression). ``size`` is ``(width, height)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"{path}: cv2 cannot write MJPG video here")
    for k in range(1, num_frames + 1):
        writer.write(np.full((size[1], size[0], 3), frame_colour(k), np.uint8))
    writer.release()
    return path


def write_aicity_tree(
    root: Path,
    split: str = "train",
    scenario: str = "S01",
    cameras: Sequence[TinyCamera] = (TinyCamera("c001"), TinyCamera("c002", fps=8.0, time_offset_s=1.5)),
    size: tuple[int, int] = (16, 16),
    eval_gt: bool = True,
    framenum: bool = True,
) -> Path:
    """Write a minimal AI City layout under ``root`` and return ``root``.

    The ROI is the left half-plus (columns 0..11 inside); gt boxes use id 1 in every camera
    (so the vehicle is seen by two cameras); detections are written to ``det/det_test.txt``.
    """
    root = Path(root)
    split_dir = root / split / scenario
    lines_ts, lines_fn, eval_lines = [], [], []
    for cam in cameras:
        cam_dir = split_dir / cam.camera_id
        cam_dir.mkdir(parents=True, exist_ok=True)
        lines_ts.append(f"{cam.camera_id} {cam.time_offset_s:g}")
        lines_fn.append(f"{cam.camera_id} {cam.num_frames}")
        if cam.video:
            write_video(cam_dir / "vdo.avi", cam.num_frames, cam.fps, size)
        if cam.roi:
            roi = np.zeros((size[1], size[0]), np.uint8)
            roi[:, :12] = 255
            cv2.imwrite(str(cam_dir / "roi.jpg"), roi)
        if cam.calibration:
            h = ";".join(" ".join(f"{v:g}" for v in row) for row in TINY_HOMOGRAPHY)
            (cam_dir / "calibration.txt").write_text(f"Homography matrix: {h}\nReprojection error: 0.5\n")
        if cam.gt:
            (cam_dir / "gt").mkdir(exist_ok=True)
            (cam_dir / "gt" / "gt.txt").write_text(
                "".join(f"{f},{i},{l},{t},{w},{h},1,-1,-1,-1\n" for f, i, l, t, w, h in cam.gt)
            )
            number = int(cam.camera_id[1:])
            eval_lines += [f"{number} {i} {f} {l} {t} {w} {h} -1 -1\n" for f, i, l, t, w, h in cam.gt]
        if cam.dets:
            (cam_dir / "det").mkdir(exist_ok=True)
            (cam_dir / "det" / "det_test.txt").write_text(
                "".join(f"{f},-1,{l:g},{t:g},{w:g},{h:g},{s:g},-1,-1,-1\n" for f, l, t, w, h, s in cam.dets)
            )
    (root / "cam_timestamp").mkdir(parents=True, exist_ok=True)
    (root / "cam_timestamp" / f"{scenario}.txt").write_text("\n".join(lines_ts) + "\n")
    if framenum:
        (root / "cam_framenum").mkdir(parents=True, exist_ok=True)
        (root / "cam_framenum" / f"{scenario}.txt").write_text("\n".join(lines_fn) + "\n")
    if eval_gt:
        (root / "eval").mkdir(parents=True, exist_ok=True)
        (root / "eval" / f"ground_truth_{split}.txt").write_text("".join(eval_lines))
    return root
