"""The AI City submission / evaluation-ground-truth format (``track1.txt``, ``ground_truth_*.txt``).

One box per line, 9 columns::

    camera_id obj_id frame_id xmin ymin width height xworld yworld
    1 34 56 1513 339 405 175 -1 -1

``camera_id`` is the integer of the camera folder (``c006`` -> 6), frames are 1-based,
the box is ``tlwh`` in pixels. Separators may be spaces, tabs or commas (the official
evaluation splits on ``\\s+|\\t+|,``). A file may be a ``.txt`` or an archive (``.zip``,
``.tar.gz``, ``.tgz``) holding exactly one file, as the official evaluation accepts.

What :func:`read_submission` checks, and what the official evaluation does instead:

* wrong column count -> error naming the line (the official tool fails to parse, or reads
  the missing columns as NaN and then fails).
* non-integer camera, id, frame or box values (``12.5`` and also ``12.0``) -> error. The
  official tool reads such a column as float and then fails with ``IndexError`` when it
  indexes the ROI image with it. ``xworld``/``yworld`` are not used by the evaluation and
  may be real numbers (read as float64).
* ``frame_id < 1`` or ``camera_id < 1`` -> error (frames are 1-based; a frame 0 would land on
  the previous camera's last frame after the official frame concatenation).
* ``width <= 0`` or ``height <= 0`` -> error (the official tool would score such a box as an
  IoU of 0 or, for negative sizes, with a meaningless IoU).
* duplicate ``(camera_id, frame_id, obj_id)`` rows -> error by default; with
  ``duplicates="keep_first"`` the first row of each group is kept and a warning is logged;
  ``duplicates="keep"`` keeps them all (the evaluation drops them after its filters, as the
  official tool does).
  The official tool keeps the first one of each group of the prediction silently and does
  not check the ground truth at all.

Parsing is vectorised (pandas' C parser, ~0.2 s for 300k lines); only when the fast parse
fails (mixed separators, a bad line) is the text walked line by line, which either reads it
correctly or names the first bad line: ``track1.txt:12: expected 9 columns, got 7``.
"""

from __future__ import annotations

import io
import logging
import re
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mct.types import _check, _index, tlwh_to_xyxy

__all__ = [
    "COLUMNS",
    "SubmissionFormatError",
    "SubmissionRows",
    "duplicate_mask",
    "read_submission",
    "read_submission_text",
    "write_submission",
]

log = logging.getLogger(__name__)

#: the 9 columns, in file order.
COLUMNS = ("camera_id", "obj_id", "frame_id", "xmin", "ymin", "width", "height", "xworld", "yworld")
#: file name endings the official evaluation accepts.
_SUFFIXES = (".txt", ".zip", ".tar.gz", ".tgz")
#: a separator: a comma with optional blanks around it, or a run of blanks.
_SEP = re.compile(r"[ \t]*,[ \t]*|[ \t]+")

Duplicates = Literal["error", "keep_first", "keep"]


class SubmissionFormatError(ValueError):
    """A submission file is malformed; the message names the file, the line and the value."""


# ---------------------------------------------------------------------------- rows
@dataclass(frozen=True, eq=False)
class SubmissionRows:
    """The rows of one submission (or evaluation ground-truth) file, as arrays in file order.

    Attributes:
        camera: ``(N,) int64`` camera number (``c006`` -> 6).
        obj_id: ``(N,) int64`` global identity.
        frame: ``(N,) int64`` 1-based frame number in that camera.
        tlwh: ``(N, 4) int64`` left, top, width, height in pixels.
        world: ``(N, 2) float64`` ``xworld, yworld`` (-1 when unknown; unused by the evaluation).
        line: ``(N,) int64`` 1-based line number in the source file (``arange(1, N+1)``
            when the rows were not read from a file); used in error messages.
        source: where the rows came from (a path, or ``"<memory>"``).
    """

    camera: np.ndarray
    obj_id: np.ndarray
    frame: np.ndarray
    tlwh: np.ndarray
    world: np.ndarray | None = None
    line: np.ndarray | None = None
    source: str = "<memory>"

    def __post_init__(self) -> None:
        camera = _check("camera", self.camera, np.int64, (None,))
        n = len(camera)
        set_ = object.__setattr__
        set_(self, "camera", camera)
        set_(self, "obj_id", _check("obj_id", self.obj_id, np.int64, (n,)))
        set_(self, "frame", _check("frame", self.frame, np.int64, (n,)))
        tlwh = np.asarray(self.tlwh)
        if tlwh.size == 0:
            tlwh = tlwh.reshape(0, 4)
        if tlwh.dtype.kind == "f" and not np.array_equal(tlwh, np.round(tlwh)):
            raise SubmissionFormatError(f"{self.source}: tlwh must hold integers (the submission format), got {tlwh.dtype}")
        set_(self, "tlwh", _check("tlwh", tlwh, np.int64, (n, 4)))
        world = np.full((n, 2), -1.0) if self.world is None else self.world
        world = np.asarray(world, dtype=np.float64)
        if world.size == 0:
            world = world.reshape(0, 2)
        set_(self, "world", _check("world", world, np.float64, (n, 2)))
        line = np.arange(1, n + 1, dtype=np.int64) if self.line is None else self.line
        set_(self, "line", _check("line", line, np.int64, (n,)))

    @classmethod
    def empty(cls, source: str = "<memory>") -> "SubmissionRows":
        z = np.zeros(0, np.int64)
        return cls(z, z, z, np.zeros((0, 4), np.int64), source=source)

    @classmethod
    def from_array(cls, rows: Any, source: str = "<memory>") -> "SubmissionRows":
        """Rows from an ``(N, 9)`` (or ``(N, 7)``: no world columns) array-like."""
        arr = np.asarray(rows)
        if arr.size == 0:
            return cls.empty(source)
        if arr.ndim != 2 or arr.shape[1] not in (7, 9):
            raise SubmissionFormatError(f"{source}: expected an (N, 9) array of submission rows, got shape {arr.shape}")
        world = arr[:, 7:9].astype(np.float64) if arr.shape[1] == 9 else None
        return cls(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3:7], world, source=source)

    def __len__(self) -> int:
        return len(self.camera)

    def __getitem__(self, index: Any) -> "SubmissionRows":
        """The rows selected by a boolean mask, an integer array or a slice (a new object)."""
        idx = _index(len(self), index)
        return SubmissionRows(
            self.camera[idx], self.obj_id[idx], self.frame[idx], self.tlwh[idx], self.world[idx], self.line[idx], self.source
        )

    @property
    def xyxy(self) -> np.ndarray:
        """``(N, 4) int64`` ``x1, y1, x2, y2`` = ``(xmin, ymin, xmin + width, ymin + height)``."""
        return tlwh_to_xyxy(self.tlwh)

    @property
    def cameras(self) -> np.ndarray:
        """``(C,) int64`` the distinct camera numbers, sorted."""
        return np.unique(self.camera)

    def to_array(self) -> np.ndarray:
        """``(N, 9) float64`` in file column order."""
        return np.column_stack([self.camera, self.obj_id, self.frame, self.tlwh, self.world]).astype(np.float64)

    def where(self, what: int | np.ndarray) -> str:
        """``"file:line"`` of row index ``what`` (for messages)."""
        return f"{self.source}:{int(self.line[int(what)])}"


# ---------------------------------------------------------------------------- reading
def _open_text(path: Path) -> tuple[str, str]:
    """``(text, source name)`` of a ``.txt`` or of the single file inside an archive."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: submission file not found")
    if not path.is_file():
        raise SubmissionFormatError(f"{path}: not a file")
    name = path.name.lower()
    if not name.endswith(_SUFFIXES):
        raise SubmissionFormatError(
            f"{path}: unsupported file type; expected one of {', '.join(_SUFFIXES)} (as the official evaluation)"
        )
    if name.endswith(".txt"):
        data, source = path.read_bytes(), str(path)
    elif name.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                _check_members(path, [m.filename for m in members], len(zf.infolist()) - len(members))
                data, source = zf.read(members[0]), f"{path}:{members[0].filename}"
        except zipfile.BadZipFile as exc:
            raise SubmissionFormatError(f"{path}: not a valid zip archive ({exc})") from exc
    else:
        try:
            with tarfile.open(path, "r:gz") as tf:
                all_members = tf.getmembers()
                members = [m for m in all_members if m.isfile()]
                _check_members(path, [m.name for m in members], len(all_members) - len(members))
                fh = tf.extractfile(members[0])
                if fh is None:  # pragma: no cover - isfile() members always extract
                    raise SubmissionFormatError(f"{path}: cannot read {members[0].name}")
                data, source = fh.read(), f"{path}:{members[0].name}"
        except (tarfile.TarError, OSError) as exc:
            raise SubmissionFormatError(f"{path}: not a valid tar.gz archive ({exc})") from exc
    try:
        return data.decode("utf-8"), source
    except UnicodeDecodeError as exc:
        raise SubmissionFormatError(f"{source}: not a text file (byte {exc.start} is not UTF-8)") from exc


def _check_members(path: Path, files: list[str], n_other: int) -> None:
    if len(files) != 1:
        what = "no file" if not files else f"{len(files)} files ({', '.join(files[:5])})"
        raise SubmissionFormatError(f"{path}: the archive holds {what}; exactly one file is expected")
    if n_other:
        log.warning(
            "%s: the archive also holds %d folder entries; they are ignored here, but the official "
            "evaluation counts them as members and refuses an archive with more than one member",
            path,
            n_other,
        )


def _fast_parse(text: str) -> np.ndarray | None:
    """``(N, 9)`` values via pandas' C parser, or ``None`` when the text needs the slow path."""
    if not text.strip():
        return np.zeros((0, 9), np.float64)
    has_comma = "," in text
    try:
        df = pd.read_csv(
            io.StringIO(text),
            sep="," if has_comma else r"\s+",
            header=None,
            skipinitialspace=True,
            engine="c",
        )
    except (ValueError, pd.errors.ParserError):
        return None
    if df.shape[1] != 9 or df.isna().to_numpy().any():
        return None
    # Integer columns must have parsed as integers: "12.0" or "12.5" make a float column.
    if not all(pd.api.types.is_integer_dtype(df[c].dtype) for c in df.columns[:7]):
        return None
    if not all(pd.api.types.is_numeric_dtype(df[c].dtype) and not pd.api.types.is_bool_dtype(df[c].dtype) for c in df.columns[7:]):
        return None
    return df.to_numpy(dtype=np.float64)


def _slow_parse(text: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """``(values (N, 9) float64, line numbers (N,))``, or an error naming the first bad line."""
    values: list[list[float]] = []
    lines: list[int] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        tokens = _SEP.split(stripped)
        if len(tokens) != 9:
            raise SubmissionFormatError(
                f"{source}:{number}: expected 9 columns ({' '.join(COLUMNS)}), got {len(tokens)}: {raw.strip()[:80]!r}"
            )
        row: list[float] = []
        for col, token in enumerate(tokens):
            row.append(_parse_token(token, col, source, number))
        values.append(row)
        lines.append(number)
    arr = np.asarray(values, dtype=np.float64).reshape(-1, 9)
    return arr, np.asarray(lines, dtype=np.int64)


def _parse_token(token: str, col: int, source: str, number: int) -> float:
    name = COLUMNS[col]
    if col < 7:
        try:
            return float(int(token))
        except ValueError:
            pass
        try:
            float(token)
        except ValueError:
            raise SubmissionFormatError(f"{source}:{number}: column {name}: {token!r} is not a number") from None
        raise SubmissionFormatError(
            f"{source}:{number}: column {name}: {token!r} is not an integer (the format has integer "
            "columns; the official evaluation fails with an IndexError on non-integer boxes)"
        )
    try:
        value = float(token)
    except ValueError:
        raise SubmissionFormatError(f"{source}:{number}: column {name}: {token!r} is not a number") from None
    if not np.isfinite(value):
        raise SubmissionFormatError(f"{source}:{number}: column {name}: {token!r} is not finite")
    return value


def _line_numbers(text: str) -> np.ndarray:
    """1-based numbers of the non-blank lines (the rows of the fast parse)."""
    return np.asarray([i for i, raw in enumerate(text.splitlines(), start=1) if raw.strip()], dtype=np.int64)


def read_submission_text(text: str, source: str = "<memory>", duplicates: Duplicates = "error") -> SubmissionRows:
    """Parse submission text (see the module docstring for the checks)."""
    values = _fast_parse(text)
    if values is None:
        values, lines = _slow_parse(text, source)
    else:
        lines = _line_numbers(text) if len(values) else np.zeros(0, np.int64)
        if len(lines) != len(values):  # e.g. a line the C parser read differently: be exact
            values, lines = _slow_parse(text, source)
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        raise SubmissionFormatError(f"{source}:{lines[bad]}: a value is not finite")
    ints = values[:, :7].astype(np.int64)
    rows = SubmissionRows(ints[:, 0], ints[:, 1], ints[:, 2], ints[:, 3:7], values[:, 7:9], lines, source)
    _check_values(rows)
    return _handle_duplicates(rows, duplicates)


def read_submission(path: str | Path, duplicates: Duplicates = "error") -> SubmissionRows:
    """Read a submission or evaluation ground truth: ``.txt``, or a ``.zip`` / ``.tar.gz`` with one file.

    Raises :class:`SubmissionFormatError` (a ``ValueError``) naming the file, the line and
    the value for malformed input, and ``FileNotFoundError`` for a missing file.
    """
    text, source = _open_text(Path(path))
    rows = read_submission_text(text, source, duplicates)
    log.debug("%s: %d rows, %d cameras", source, len(rows), len(rows.cameras))
    return rows


def _first(rows: SubmissionRows, bad: np.ndarray) -> tuple[int, int]:
    idx = np.flatnonzero(bad)
    return int(idx[0]), len(idx)


def _check_values(rows: SubmissionRows) -> None:
    if not len(rows):
        return
    checks = (
        (rows.camera < 1, "camera_id", rows.camera, "must be >= 1 (c001 is 1)"),
        (rows.frame < 1, "frame_id", rows.frame, "must be >= 1 (frames are 1-based)"),
        (rows.tlwh[:, 2] <= 0, "width", rows.tlwh[:, 2], "must be > 0"),
        (rows.tlwh[:, 3] <= 0, "height", rows.tlwh[:, 3], "must be > 0"),
    )
    for bad, name, values, rule in checks:
        if bad.any():
            i, n = _first(rows, bad)
            more = f" ({n - 1} more such rows)" if n > 1 else ""
            raise SubmissionFormatError(f"{rows.where(i)}: {name} {int(values[i])} {rule}{more}")


def duplicate_mask(rows: SubmissionRows) -> np.ndarray:
    """``(N,) bool``: True for every row whose ``(camera, frame, obj_id)`` appeared on an earlier row."""
    n = len(rows)
    if n == 0:
        return np.zeros(0, bool)
    order = np.lexsort((np.arange(n), rows.obj_id, rows.frame, rows.camera))
    c, f, o = rows.camera[order], rows.frame[order], rows.obj_id[order]
    same = (c[1:] == c[:-1]) & (f[1:] == f[:-1]) & (o[1:] == o[:-1])
    dup = np.zeros(n, bool)
    dup[order[1:][same]] = True
    return dup


def _handle_duplicates(rows: SubmissionRows, duplicates: Duplicates) -> SubmissionRows:
    if duplicates not in ("error", "keep_first", "keep"):
        raise ValueError(f"duplicates must be 'error', 'keep_first' or 'keep', got {duplicates!r}")
    if duplicates == "keep":
        return rows
    dup = duplicate_mask(rows)
    if not dup.any():
        return rows
    i, n = _first(rows, dup)
    first = np.flatnonzero(
        (rows.camera == rows.camera[i]) & (rows.frame == rows.frame[i]) & (rows.obj_id == rows.obj_id[i])
    )[0]
    what = (
        f"{rows.where(i)}: duplicate row for camera {rows.camera[i]}, frame {rows.frame[i]}, id {rows.obj_id[i]} "
        f"(first at line {rows.line[first]}); {n} duplicate rows in all"
    )
    if duplicates == "error":
        raise SubmissionFormatError(what + "; the official evaluation keeps the first row of each (pass duplicates='keep_first')")
    log.warning("%s; keeping the first row of each, as the official evaluation does", what)
    return rows[~dup]


# ---------------------------------------------------------------------------- writing
def _format(rows: SubmissionRows) -> str:
    if not len(rows):
        return ""
    ints = np.column_stack([rows.camera, rows.obj_id, rows.frame, rows.tlwh])
    world = rows.world
    if np.array_equal(world, np.round(world)):
        table = np.column_stack([ints, world.astype(np.int64)])
        buf = io.StringIO()
        np.savetxt(buf, table, fmt="%d", delimiter=" ")
        return buf.getvalue()
    buf = io.StringIO()
    np.savetxt(buf, np.column_stack([ints.astype(np.float64), world]), fmt=["%d"] * 7 + ["%.6f"] * 2, delimiter=" ")
    return buf.getvalue()


def write_submission(path: str | Path, rows: SubmissionRows | Any) -> Path:
    """Write rows (a :class:`SubmissionRows` or an ``(N, 9)`` integer array) as a submission.

    ``.txt`` is written as is; ``.zip`` holds one ``<stem>.txt``. Rows are written in the
    given order, space-separated, world columns as integers when they are integral.
    Returns the path written.
    """
    path = Path(path)
    if not isinstance(rows, SubmissionRows):
        rows = SubmissionRows.from_array(rows, source=str(path))
    _check_values(rows)
    text = _format(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.lower().endswith(".zip"):
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(path.name[: -len(".zip")] + ".txt", text)
    elif path.name.lower().endswith(".txt"):
        path.write_text(text)
    else:
        raise SubmissionFormatError(f"{path}: write a .txt or a .zip submission")
    log.debug("wrote %d rows to %s", len(rows), path)
    return path
