"""A tracklet store on disk for city-scale association: columns as NumPy memmaps plus a
JSON manifest, appended in time-ordered batches, read by time range.

Why memmaps: NumPy is already a dependency (no new one), a column file is raw
little-endian values that any tool can read, and a time-range read is a slice of the
mapped file: zero-copy, only the pages of that range are read, so a window of a day of a
1,000-camera city costs the window's memory, not the day's.

Layout of a store folder::

    manifest.json     format version, camera keys, feature dim and dtype, rows committed,
                      one entry per batch (rows, first and last start time), finished flag
    pca.npz           (optional) the PCA the features were reduced with: mean, components
    camera.i32        (N,) int32 camera code (index into the manifest's camera_keys)
    track_id.i64      (N,) int64 local track id
    start_s.f64       (N,) float64 first frame time, seconds on the scenario clock
    end_s.f64         (N,) float64 last frame time
    entry_xy.f32      (N, 2) float32 bottom centre of the first box, pixels
    exit_xy.f32       (N, 2) float32 bottom centre of the last box, pixels
    features.f16|f32  (N, D) float16 or float32 L2-normalised appearance features

Rows are ordered by ``start_s`` (non-decreasing across batches): a time range is the rows
between two binary searches. An append writes every column file, flushes them to disk,
then replaces the manifest atomically; the manifest is the commit. A writer killed
mid-batch leaves column files longer than the manifest says (or, after a crash of the
machine, a manifest ahead of its files): :meth:`TrackletStore.open` detects either, drops
the torn batch with a warning, and the stream recomputes the windows it touched.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from mct.associate.table import TrackletTable

__all__ = ["TrackletStore", "OrderedAppender", "STORE_VERSION"]

log = logging.getLogger(__name__)

STORE_VERSION = 1
MANIFEST = "manifest.json"
PCA_FILE = "pca.npz"
#: (file name, dtype, per-row shape) of the fixed columns; features are added per store.
_COLUMNS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("camera", "<i4", ()),
    ("track_id", "<i8", ()),
    ("start_s", "<f8", ()),
    ("end_s", "<f8", ()),
    ("entry_xy", "<f4", (2,)),
    ("exit_xy", "<f4", (2,)),
)
_SUFFIX = {"<i4": "i32", "<i8": "i64", "<f8": "f64", "<f4": "f32", "<f2": "f16"}


def _write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


@dataclass(frozen=True)
class _Column:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def file(self) -> str:
        return f"{self.name}.{_SUFFIX[self.dtype.str]}"

    @property
    def row_bytes(self) -> int:
        return int(self.dtype.itemsize * int(np.prod(self.shape, dtype=np.int64)))


class TrackletStore:
    """Tracklets of many cameras in column files, appended in time order, read by time range.

    Create with :meth:`create`, reopen with :meth:`open` (a writer: recovers a torn last
    batch) or :meth:`open` with ``readonly=True`` (a reader in another process: sees the
    committed rows; :meth:`refresh` picks up later batches).
    """

    def __init__(self, path: Path, manifest: dict, readonly: bool) -> None:
        self.path = Path(path)
        self._manifest = manifest
        self.readonly = readonly
        self._pca: tuple[np.ndarray, np.ndarray] | None = None
        if (self.path / PCA_FILE).exists():
            with np.load(self.path / PCA_FILE) as z:
                self._pca = (z["mean"].astype(np.float32), z["components"].astype(np.float32))

    # ------------------------------------------------------------------ open / create
    @classmethod
    def create(
        cls,
        path: str | Path,
        camera_keys: Sequence[tuple[str, str]],
        dim: int,
        feature_dtype: Literal["float32", "float16"] = "float32",
        pca_dim: int = 0,
        pca_sample: int = 50_000,
    ) -> "TrackletStore":
        """A new, empty store in folder ``path`` (created; must not hold a store already).

        Args:
            camera_keys: ``(scenario, camera_id)`` of each camera code used by :meth:`append`.
            dim: the dim of the features given to :meth:`append`.
            feature_dtype: how features are kept on disk: ``float16`` halves the size (cosines
                change by about 1e-3).
            pca_dim: 0 keeps ``dim`` dims; else features are reduced to ``pca_dim`` dims by a
                PCA fitted on (at most ``pca_sample`` rows of) the first appended batch.
        """
        path = Path(path)
        if (path / MANIFEST).exists():
            raise FileExistsError(f"tracklet store {path}: already exists")
        if feature_dtype not in ("float32", "float16"):
            raise ValueError(f"tracklet store {path}: feature_dtype must be float32 or float16, got {feature_dtype!r}")
        if not 0 <= pca_dim <= dim:
            raise ValueError(f"tracklet store {path}: pca_dim must be in 0..{dim} (the feature dim), got {pca_dim}")
        path.mkdir(parents=True, exist_ok=True)
        manifest = {
            "version": STORE_VERSION,
            "camera_keys": [list(map(str, k)) for k in camera_keys],
            "input_dim": int(dim),
            "dim": int(pca_dim or dim),
            "feature_dtype": feature_dtype,
            "pca_dim": int(pca_dim),
            "pca_sample": int(pca_sample),
            "rows": 0,
            "batches": [],
            "last_start_s": None,
            "last_key": None,
            "max_duration_s": 0.0,
            "finished": False,
        }
        store = cls(path, manifest, readonly=False)
        for col in store._columns():
            (path / col.file).touch()
        _write_json_atomic(path / MANIFEST, manifest)
        return store

    @classmethod
    def open(cls, path: str | Path, readonly: bool = False) -> "TrackletStore":
        """Open an existing store. A writer (``readonly=False``) checks every column file
        against the manifest and drops a torn last batch (a warning names the rows dropped);
        a reader only maps the committed rows."""
        path = Path(path)
        if not (path / MANIFEST).exists():
            raise FileNotFoundError(f"tracklet store {path}: no {MANIFEST}")
        manifest = json.loads((path / MANIFEST).read_text())
        if manifest.get("version") != STORE_VERSION:
            raise ValueError(f"tracklet store {path}: format version {manifest.get('version')!r}, expected {STORE_VERSION}")
        store = cls(path, manifest, readonly)
        if not readonly:
            store._recover()
        return store

    def _columns(self) -> list[_Column]:
        m = self._manifest
        cols = [_Column(name, np.dtype(dt), shape) for name, dt, shape in _COLUMNS]
        cols.append(_Column("features", np.dtype("<f2" if m["feature_dtype"] == "float16" else "<f4"), (m["dim"],)))
        return cols

    def _recover(self) -> None:
        """Make every column file hold exactly the committed rows: drop torn batches."""
        m = self._manifest
        held = min((self.path / c.file).stat().st_size // c.row_bytes if (self.path / c.file).exists() else 0 for c in self._columns())
        if held < m["rows"]:
            # the manifest is ahead of the data (the machine died before the files reached
            # disk): drop whole batches until the rest is on disk
            dropped = 0
            while m["batches"] and m["rows"] > held:
                b = m["batches"].pop()
                m["rows"] -= b["rows"]
                dropped += b["rows"]
            last = m["batches"][-1] if m["batches"] else None
            m["last_start_s"] = last["last_start_s"] if last else None
            m["last_key"] = last["last_key"] if last else None
            m["finished"] = False
            log.warning("tracklet store %s: manifest lists %d rows the column files do not hold: dropped the last "
                        "batch(es), %d rows (append them again; windows after %s s are recomputed)",
                        self.path, dropped, dropped, m["last_start_s"])
            _write_json_atomic(self.path / MANIFEST, m)
        for c in self._columns():
            f = self.path / c.file
            size = f.stat().st_size if f.exists() else 0
            want = m["rows"] * c.row_bytes
            if size != want:
                if size > want:
                    log.warning("tracklet store %s: %s holds %d rows past the %d committed (a writer was killed "
                                "mid-batch): torn batch dropped", self.path, c.file, (size - want) // c.row_bytes, m["rows"])
                with open(f, "ab") as fh:
                    fh.truncate(want)

    def refresh(self) -> None:
        """Re-read the manifest (a reader sees batches committed since it opened)."""
        self._manifest = json.loads((self.path / MANIFEST).read_text())
        if self._pca is None and (self.path / PCA_FILE).exists():
            with np.load(self.path / PCA_FILE) as z:
                self._pca = (z["mean"].astype(np.float32), z["components"].astype(np.float32))

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return int(self._manifest["rows"])

    @property
    def camera_keys(self) -> tuple[tuple[str, str], ...]:
        return tuple((s, c) for s, c in self._manifest["camera_keys"])

    @property
    def dim(self) -> int:
        """Dim of the stored (and read) features."""
        return int(self._manifest["dim"])

    @property
    def finished(self) -> bool:
        """True once the writer called :meth:`finish`: no more batches will come."""
        return bool(self._manifest["finished"])

    @property
    def last_start_s(self) -> float | None:
        """Start time of the last committed row (``None`` while empty)."""
        v = self._manifest["last_start_s"]
        return None if v is None else float(v)

    @property
    def max_duration_s(self) -> float:
        """The longest ``end_s - start_s`` of the committed rows."""
        return float(self._manifest["max_duration_s"])

    @property
    def batches(self) -> list[dict]:
        return [dict(b) for b in self._manifest["batches"]]

    def nbytes(self) -> int:
        """Bytes of the committed rows on disk."""
        return len(self) * sum(c.row_bytes for c in self._columns())

    # ------------------------------------------------------------------ write
    def append(
        self,
        camera: np.ndarray,
        track_id: np.ndarray,
        start_s: np.ndarray,
        end_s: np.ndarray,
        features: np.ndarray,
        entry_xy: np.ndarray | None = None,
        exit_xy: np.ndarray | None = None,
    ) -> None:
        """Append one batch of ``n`` rows and commit it.

        Args:
            camera: ``(n,)`` camera codes (index into :attr:`camera_keys`).
            start_s, end_s: ``(n,)`` seconds; ``start_s`` non-decreasing within the batch and
                not before the last committed row.
            features: ``(n, input dim)`` appearance features (normalised here).
            entry_xy, exit_xy: ``(n, 2)`` pixels (``None``: zeros).

        Raises ``ValueError`` naming the camera, track and time of the first row out of time
        order, or a column of the wrong length; the store is left unchanged.
        """
        if self.readonly:
            raise PermissionError(f"tracklet store {self.path}: opened read-only")
        if self.finished:
            raise ValueError(f"tracklet store {self.path}: finished, no more batches")
        m = self._manifest
        camera = np.asarray(camera, np.int32)
        n = len(camera)
        track_id = np.asarray(track_id, np.int64)
        start_s, end_s = np.asarray(start_s, np.float64), np.asarray(end_s, np.float64)
        features = np.asarray(features, np.float32)
        entry_xy = np.zeros((n, 2), np.float32) if entry_xy is None else np.asarray(entry_xy, np.float32)
        exit_xy = np.zeros((n, 2), np.float32) if exit_xy is None else np.asarray(exit_xy, np.float32)
        for name, arr, shape in (("track_id", track_id, (n,)), ("start_s", start_s, (n,)), ("end_s", end_s, (n,)),
                                 ("features", features, (n, m["input_dim"])), ("entry_xy", entry_xy, (n, 2)), ("exit_xy", exit_xy, (n, 2))):
            if arr.shape != shape:
                raise ValueError(f"tracklet store {self.path}: {name} has shape {arr.shape}, expected {shape}")
        if n == 0:
            return
        if camera.min() < 0 or camera.max() >= len(m["camera_keys"]):
            raise ValueError(f"tracklet store {self.path}: camera codes must be in 0..{len(m['camera_keys']) - 1}, got {camera.min()}..{camera.max()}")
        if np.any(end_s < start_s):
            r = int(np.flatnonzero(end_s < start_s)[0])
            raise ValueError(f"tracklet store {self.path}: camera {self._camera_name(camera[r])} track {track_id[r]}: "
                             f"ends at {end_s[r]:.3f} s, before its start {start_s[r]:.3f} s")
        self._check_order(camera, track_id, start_s)
        stored = self._reduce(features)
        values = {"camera": camera, "track_id": track_id, "start_s": start_s, "end_s": end_s,
                  "entry_xy": entry_xy, "exit_xy": exit_xy, "features": stored}
        for c in self._columns():
            with open(self.path / c.file, "ab") as fh:
                fh.write(np.ascontiguousarray(values[c.name], dtype=c.dtype).tobytes())
                fh.flush()
                os.fsync(fh.fileno())
        last_key = [self._camera_name(camera[-1]), int(track_id[-1])]
        m["batches"].append({"rows": n, "first_start_s": float(start_s[0]), "last_start_s": float(start_s[-1]), "last_key": last_key})
        m["rows"] += n
        m["last_start_s"] = float(start_s[-1])
        m["last_key"] = last_key
        m["max_duration_s"] = max(float(m["max_duration_s"]), float((end_s - start_s).max()))
        _write_json_atomic(self.path / MANIFEST, m)  # the commit

    def finish(self) -> None:
        """Mark the store complete: readers stop waiting for more batches."""
        self._manifest["finished"] = True
        _write_json_atomic(self.path / MANIFEST, self._manifest)

    def _camera_name(self, code: int) -> str:
        s, c = self._manifest["camera_keys"][int(code)]
        return f"{s}/{c}"

    def _check_order(self, camera: np.ndarray, track_id: np.ndarray, start_s: np.ndarray) -> None:
        prev = self.last_start_s
        if prev is not None and start_s[0] < prev:
            pc, pt = self._manifest["last_key"]
            raise ValueError(f"tracklet store {self.path}: camera {self._camera_name(camera[0])} track {track_id[0]} starts at "
                             f"{start_s[0]:.3f} s, before {prev:.3f} s (camera {pc} track {pt}, already stored): "
                             "append tracklets in time order (start_s non-decreasing)")
        back = np.flatnonzero(np.diff(start_s) < 0)
        if len(back):
            r = int(back[0]) + 1
            raise ValueError(f"tracklet store {self.path}: camera {self._camera_name(camera[r])} track {track_id[r]} starts at "
                             f"{start_s[r]:.3f} s, before {start_s[r - 1]:.3f} s (camera {self._camera_name(camera[r - 1])} "
                             f"track {track_id[r - 1]}, earlier in the batch): append tracklets in time order (start_s non-decreasing)")

    def _reduce(self, features: np.ndarray) -> np.ndarray:
        m = self._manifest
        if m["pca_dim"]:
            if self._pca is None:
                from mct.associate.index import fit_pca  # faiss lives there: only a PCA store needs it

                pca = fit_pca(_normalise(features), m["pca_dim"], m["pca_sample"])
                np.savez(self.path / PCA_FILE, mean=pca.mean, components=pca.components)
                self._pca = (pca.mean, pca.components)
                log.info("tracklet store %s: PCA %d -> %d dims fitted on the first batch (%d rows)",
                         self.path, m["input_dim"], m["pca_dim"], min(len(features), m["pca_sample"]))
            mean, comp = self._pca
            return _normalise((_normalise(features) - mean) @ comp)
        return _normalise(features)

    # ------------------------------------------------------------------ read
    def _map(self, col: _Column, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi`` of one column, mapped (no copy; nothing read until touched)."""
        n = len(self)
        if hi <= lo or n == 0:
            return np.zeros((0, *col.shape), col.dtype)
        mm = np.memmap(self.path / col.file, dtype=col.dtype, mode="r", shape=(n, *col.shape))
        return mm[lo:hi]

    def column(self, name: str, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Rows ``lo:hi`` of column ``name`` as a read-only memmap view."""
        cols = {c.name: c for c in self._columns()}
        if name not in cols:
            raise KeyError(f"tracklet store {self.path}: no column {name!r} (have {', '.join(cols)})")
        return self._map(cols[name], lo, len(self) if hi is None else hi)

    def rows_between(self, t0: float, t1: float) -> tuple[int, int]:
        """``(lo, hi)``: the committed rows with ``t0 <= start_s < t1`` are ``lo:hi``
        (two binary searches on the mapped start times)."""
        start = self.column("start_s")
        return int(np.searchsorted(start, t0, "left")), int(np.searchsorted(start, t1, "left"))

    def table(self, lo: int, hi: int) -> TrackletTable:
        """Rows ``lo:hi`` as a :class:`TrackletTable` (features as float32, L2-normalised;
        the table's ``source`` is the store row)."""
        cols = {c.name: self._map(c, lo, hi) for c in self._columns()}
        feats = _normalise(np.asarray(cols["features"], np.float32))
        table = TrackletTable.from_arrays(
            self.camera_keys, np.array(cols["camera"]), np.array(cols["track_id"]), np.array(cols["start_s"]),
            np.array(cols["end_s"]), feats, np.array(cols["entry_xy"]), np.array(cols["exit_xy"]),
        )
        object.__setattr__(table, "source", np.arange(lo, hi, dtype=np.int64))
        return table

    def read_between(self, t0: float, t1: float) -> TrackletTable:
        """The committed rows with ``t0 <= start_s < t1`` as a table; nothing else is read."""
        return self.table(*self.rows_between(t0, t1))


class OrderedAppender:
    """Appends batches that arrive out of order (several workers) in sequence order.

    Batch ``seq`` is appended once batches ``0..seq-1`` are; later ones wait in memory. One
    writer (a Ray actor, a thread) owns one appender, so the store keeps one time order and
    the same input gives the same store whatever order the workers finish in.
    """

    def __init__(self, store: TrackletStore, first_seq: int = 0) -> None:
        self.store = store
        self.next_seq = first_seq
        self._waiting: dict[int, dict[str, np.ndarray]] = {}

    def put(self, seq: int, **columns: np.ndarray) -> int:
        """Queue batch ``seq`` (the columns of :meth:`TrackletStore.append`); append every
        batch that is now next in order. Returns the number of batches appended."""
        if seq < self.next_seq or seq in self._waiting:
            raise ValueError(f"tracklet store {self.store.path}: batch {seq} given twice (next expected {self.next_seq})")
        self._waiting[seq] = columns
        done = 0
        while self.next_seq in self._waiting:
            self.store.append(**self._waiting.pop(self.next_seq))
            self.next_seq += 1
            done += 1
        return done

    def finish(self) -> None:
        """Mark the store finished; raises ``ValueError`` if batches are still missing."""
        if self._waiting:
            raise ValueError(f"tracklet store {self.store.path}: batches {sorted(self._waiting)} wait for batch {self.next_seq}")
        self.store.finish()
