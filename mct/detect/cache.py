"""The detections file format: one ``numpy.savez`` archive of the detections of all
processed frames of a camera, concatenated:

* ``frames (F,) int64``: every processed frame, in processing order (empty ones too);
* ``counts (F,) int64``: detections per frame; rows of frame ``k`` are
  ``sum(counts[:k]) .. sum(counts[:k+1])``;
* ``xyxy (N, 4) float32`` pixels, ``scores (N,) float32``, ``class_ids (N,) int64``;
* ``masks (N, M, M) float16`` (optional): RoI-resolution masks, when every frame had them;
* ``meta``: a JSON string: ``{"camera": [scenario, camera_id], "detector": <the
  DetectorConfig as a mapping>, "format": 1}``.

``mct run`` (``mct.run.storage``) writes and reads its ``detections.npz`` through
:func:`write_detection_arrays` / :func:`read_detection_arrays`: one format, one writer. The file is written to a
temporary name in the same folder and renamed, so a crash never leaves half a file.
:func:`save_detections` / :func:`load_detections` convert from and to per-frame
:class:`~mct.types.Detections` (with masks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mct.atomic import atomic_path
from mct.types import Detections

__all__ = [
    "save_detections",
    "load_detections",
    "detection_arrays",
    "write_detection_arrays",
    "read_detection_arrays",
    "CACHE_FORMAT",
]

CACHE_FORMAT = 1


_KEYS = ("frames", "counts", "xyxy", "scores", "class_ids")


def write_detection_arrays(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> Path:
    """Write the archive's arrays (``frames``, ``counts``, ``xyxy``, ``scores``, ``class_ids``,
    optional ``masks``) plus ``meta`` atomically to ``path``. The one writer of the format."""
    path = Path(path)
    out = dict(arrays)
    out["meta"] = np.array(json.dumps({"format": CACHE_FORMAT, **(meta or {})}, sort_keys=True))
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **out)
    return path


def read_detection_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and check an archive: its arrays and its meta. The one reader of the format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: detection cache not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a detection cache (.npz): {exc}") from exc
    missing = [k for k in _KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{path}: detection cache lacks {', '.join(missing)}")
    counts = arrays["counts"]
    if int(counts.sum()) != len(arrays["xyxy"]) or len(counts) != len(arrays["frames"]):
        raise ValueError(
            f"{path}: counts sum to {int(counts.sum())} for {len(arrays['xyxy'])} boxes "
            f"and {len(arrays['frames'])} frames"
        )
    meta = json.loads(str(arrays.pop("meta"))) if "meta" in arrays else {}
    return arrays, meta


def detection_arrays(detections: Sequence[Detections]) -> dict[str, np.ndarray]:
    """The archive's box columns (``frames``, ``counts``, ``xyxy``, ``scores``,
    ``class_ids``) of per-frame detections, rows concatenated over frames."""
    return {
        "frames": np.array([d.frame for d in detections], dtype=np.int64),
        "counts": np.array([len(d) for d in detections], dtype=np.int64),
        "xyxy": np.concatenate([d.xyxy for d in detections]) if detections else np.zeros((0, 4), np.float32),
        "scores": np.concatenate([d.scores for d in detections]) if detections else np.zeros(0, np.float32),
        "class_ids": np.concatenate([d.class_ids for d in detections]) if detections else np.zeros(0, np.int64),
    }


def save_detections(path: str | Path, detections: Sequence[Detections], meta: dict[str, Any] | None = None) -> Path:
    """Write ``detections`` (one per frame, in processing order) atomically to ``path``."""
    arrays = detection_arrays(detections)
    mask_shapes = {d.masks.shape[1:] for d in detections if d.masks is not None}
    if detections and all(d.masks is not None for d in detections) and len(mask_shapes) == 1:
        arrays["masks"] = np.concatenate([d.masks for d in detections]).astype(np.float16)
    return write_detection_arrays(path, arrays, meta)


def load_detections(path: str | Path) -> tuple[list[Detections], dict[str, Any]]:
    """Read a cache file back: one :class:`Detections` per stored frame, and its meta."""
    arrays, meta = read_detection_arrays(path)
    masks = arrays.get("masks")
    out: list[Detections] = []
    start = 0
    for frame, n in zip(arrays["frames"].tolist(), arrays["counts"].tolist()):
        sl = slice(start, start + n)
        out.append(
            Detections(
                frame,
                arrays["xyxy"][sl],
                arrays["scores"][sl],
                arrays["class_ids"][sl],
                None if masks is None else masks[sl].astype(np.float32),
            )
        )
        start += n
    return out, meta
