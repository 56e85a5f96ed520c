"""Files a camera job writes between its stages: detections and streamed embeddings.

* ``detections.npz``: all detections of a camera, rows concatenated over frames:
  ``frames (F,) int64`` (every processed frame, also empty ones), ``counts (F,) int64``
  (detections per frame), ``xyxy (N, 4) float32`` pixels, ``scores (N,) float32``,
  ``class_ids (N,) int64``. Masks are not stored (no later stage reads them).
* ``embeddings.npy``: ``(N, D) float32``, row ``i`` belongs to detection row ``i``. It is
  written batch by batch to a raw temporary file and read back in row ranges, so a long
  video never holds all its features in memory.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

import numpy as np

from mct.atomic import atomic_path, tmp_name
from mct.detect.cache import detection_arrays, read_detection_arrays, write_detection_arrays
from mct.types import Detections

__all__ = ["DetectionsBuffer", "StoredDetections", "concat_detection_files", "concat_embedding_files", "EmbeddingWriter", "EmbeddingReader", "iter_detections"]


class DetectionsBuffer:
    """Per-frame detections kept as a few compact arrays per batch (not one object per
    frame), so that a long video adds only its boxes to memory."""

    def __init__(self) -> None:
        self._parts: list[dict[str, np.ndarray]] = []
        self.boxes = 0

    def extend(self, detections: Sequence[Detections]) -> None:
        if detections:
            part = detection_arrays(detections)
            self._parts.append(part)
            self.boxes += len(part["xyxy"])

    def arrays(self) -> dict[str, np.ndarray]:
        if not self._parts:
            return detection_arrays([])
        return {k: np.concatenate([p[k] for p in self._parts]) for k in self._parts[0]}

    def save(self, path: str | Path) -> None:
        write_detection_arrays(path, self.arrays())


def concat_detection_files(parts: Sequence[Path], path: str | Path) -> int:
    """Write the detections of ``parts`` (``detections.npz`` files, in order) as one file,
    atomically; returns its number of boxes. The same bytes as writing them in one go."""
    if not parts:
        raise ValueError(f"{path}: no detection chunks to join")
    arrays = [read_detection_arrays(p)[0] for p in parts]
    joined = {k: np.concatenate([a[k] for a in arrays]) for k in arrays[0]}
    write_detection_arrays(path, joined)
    return int(len(joined["xyxy"]))


def concat_embedding_files(parts: Sequence[Path], path: str | Path) -> None:
    """Write the rows of ``parts`` (``(n_i, D) float32`` ``.npy`` files, in order) as one
    ``(sum n_i, D)`` ``.npy`` file, atomically, streaming (never all rows in memory)."""
    if not parts:
        raise ValueError(f"{path}: no embedding chunks to join")
    readers = [EmbeddingReader(p) for p in parts]
    try:
        dims = {r.dim for r in readers if r.rows} or {readers[0].dim}
        if len(dims) != 1:
            raise ValueError(f"{path}: embedding chunks of different dims {sorted(dims)}: {[str(p) for p in parts]}")
        rows = sum(r.rows for r in readers)
        with atomic_path(path) as tmp, open(tmp, "wb") as out:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                      "shape": (rows, dims.pop())}
            np.lib.format.write_array_header_1_0(out, header)
            for r in readers:
                r.copy_rows_to(out)
    finally:
        for r in readers:
            r.close()


class StoredDetections:
    """``detections.npz`` as compact arrays; :class:`Detections` are made one frame at a time."""

    def __init__(self, path: str | Path) -> None:
        arrays, _ = read_detection_arrays(path)
        self.frames, self.counts = arrays["frames"], arrays["counts"]
        self.xyxy, self.scores, self.class_ids = arrays["xyxy"], arrays["scores"], arrays["class_ids"]
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def boxes(self) -> int:
        return int(len(self.xyxy))

    def __getitem__(self, i: int) -> Detections:
        sl = slice(int(self.offsets[i]), int(self.offsets[i + 1]))
        return Detections(int(self.frames[i]), self.xyxy[sl], self.scores[sl], self.class_ids[sl])

    def __iter__(self) -> Iterator[Detections]:
        return (self[i] for i in range(len(self)))

    def index_of_frame(self) -> dict[int, int]:
        return {int(f): i for i, f in enumerate(self.frames)}


class EmbeddingWriter:
    """Append ``(n, D) float32`` blocks; :meth:`close` writes ``path`` as one ``.npy`` atomically."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._raw_path = tmp_name(self.path.with_suffix(".raw"))
        self._raw: IO[bytes] | None = open(self._raw_path, "wb")
        self.rows = 0
        self.dim: int | None = None

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=np.float32)
        if block.ndim != 2:
            raise ValueError(f"{self.path}: embeddings must be (n, D), got shape {block.shape}")
        if len(block) == 0 and block.shape[1] == 0:
            return
        if self.dim is None:
            self.dim = block.shape[1]
        elif block.shape[1] != self.dim:
            raise ValueError(f"{self.path}: embedding dim changed from {self.dim} to {block.shape[1]}")
        if self._raw is None:
            raise ValueError(f"{self.path}: append after close")
        self._raw.write(block.tobytes())
        self.rows += len(block)

    def close(self, dim_if_empty: int = 0) -> None:
        """Finish: write the ``.npy`` header then the rows, rename into place."""
        if self._raw is None:
            return
        self._raw.close()
        self._raw = None
        dim = self.dim if self.dim is not None else dim_if_empty
        try:
            with atomic_path(self.path) as tmp, open(tmp, "wb") as out, open(self._raw_path, "rb") as raw:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                          "fortran_order": False, "shape": (self.rows, dim)}
                np.lib.format.write_array_header_1_0(out, header)
                shutil.copyfileobj(raw, out, length=1 << 20)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self._raw_path)

    def abort(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        with contextlib.suppress(OSError):
            os.unlink(self._raw_path)

    def __enter__(self) -> "EmbeddingWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class EmbeddingReader:
    """Read row ranges of an ``embeddings.npy`` without loading (or mapping) the whole file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh: io.BufferedReader = open(self.path, "rb")
        try:
            version = np.lib.format.read_magic(self._fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(self._fh)
        except ValueError as exc:
            self._fh.close()
            raise ValueError(f"{self.path}: not an .npy file: {exc}") from exc
        if dtype != np.float32 or fortran or len(shape) != 2:
            self._fh.close()
            raise ValueError(f"{self.path}: expected a C-ordered (N, D) float32 array, got {shape} {dtype}")
        self.rows, self.dim = int(shape[0]), int(shape[1])
        self._offset = self._fh.tell()

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as ``(stop - start, D) float32``."""
        if not (0 <= start <= stop <= self.rows):
            raise IndexError(f"{self.path}: rows [{start}, {stop}) outside 0..{self.rows}")
        n = stop - start
        self._fh.seek(self._offset + start * self.dim * 4)
        data = np.frombuffer(self._fh.read(n * self.dim * 4), dtype=np.float32)
        return data.reshape(n, self.dim).copy()

    def copy_rows_to(self, out: IO[bytes]) -> None:
        """Copy every row's bytes (no header) to ``out``, in blocks."""
        self._fh.seek(self._offset)
        shutil.copyfileobj(self._fh, out, length=1 << 20)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "EmbeddingReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_detections(detections: Iterable[Detections], embeddings: EmbeddingReader | None) -> Iterator[Detections]:
    """Detections frame by frame, each carrying its embeddings when a reader is given."""
    row = 0
    for det in detections:
        if embeddings is not None:
            det = det.with_embeddings(embeddings.read(row, row + len(det)))
        row += len(det)
        yield det
