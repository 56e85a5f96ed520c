"""MOTChallenge-style text files: ground truth, detections and tracker results.

One box per line, comma-separated, frames 1-based::

    gt   (AI City gt/gt.txt):   frame,id,left,top,width,height,flag,cls,vis,-1
    det  (AI City det/*.txt):   frame,-1,left,top,width,height,confidence,-1,-1,-1
    pred (tracker results):     frame,id,left,top,width,height[,conf,...]

Columns 7-10 are kept as read (``conf``, ``cls``, ``vis``, ``col10``). How many columns a
line may have depends on ``kind`` (:data:`ACCEPTED_COLUMNS`):

* ``"gt"``: 9 or 10 (MOTChallenge 16/17 gt.txt has 9; AI City and MOT15 have 10).
* ``"det"``: 7 to 10 (the confidence in column 7 is required).
* ``"pred"``: 6 to 10 (a result file may stop after the box).

Missing trailing columns read as ``conf = 1`` and ``cls = vis = col10 = -1``. Every line
of one file must have the same number of columns. Blank lines are allowed (and counted
for line numbers); a file with no rows gives an empty :class:`MotRows`.

Parsing is vectorised (pandas' C parser, ~0.1 s for 300k lines); only when that fails
is the file walked line by line to name the first bad line, e.g.
``gt.txt:12: expected 10 comma-separated columns, got 7``. Values are checked after the
parse: frame and id must be integers, frame >= 1, width and height > 0, all finite.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import pandas as pd

from mct.types import Detections, _check, _index, tlwh_to_xyxy, xyxy_to_tlwh

__all__ = [
    "ACCEPTED_COLUMNS",
    "MotFormatError",
    "MotKind",
    "MotRows",
    "read_mot",
    "write_mot",
]

log = logging.getLogger(__name__)

MotKind = Literal["gt", "det", "pred"]

#: kind -> the column counts a file of that kind may have (every line the same).
ACCEPTED_COLUMNS: dict[str, tuple[int, ...]] = {
    "gt": (9, 10),
    "det": (7, 8, 9, 10),
    "pred": (6, 7, 8, 9, 10),
}

_COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "gt": ("frame", "id", "left", "top", "width", "height", "flag", "class", "visibility", "column 10"),
    "det": ("frame", "id", "left", "top", "width", "height", "confidence", "column 8", "column 9", "column 10"),
    "pred": ("frame", "id", "left", "top", "width", "height", "confidence", "column 8", "column 9", "column 10"),
}

#: defaults of columns 7..10 when a file stops earlier.
_DEFAULTS = (1.0, -1.0, -1.0, -1.0)


class MotFormatError(ValueError):
    """A MOT text file is malformed; the message names the file, the line and the value."""


# ---------------------------------------------------------------------------- rows
@dataclass(frozen=True, eq=False)
class MotRows:
    """The rows of one MOT file (one camera), as arrays in file order.

    Attributes:
        frame: ``(N,) int64`` 1-based frame numbers.
        id: ``(N,) int64`` object / track ids (-1 in detection files).
        tlwh: ``(N, 4) float32`` left, top, width, height in pixels.
        conf: ``(N,) float32`` column 7: the gt flag (1 = evaluate, 0 = ignore) or the
            detection confidence.
        cls: ``(N,) int64`` column 8 (class in MOTChallenge gt; -1 in AI City).
        vis: ``(N,) float32`` column 9 (visibility in MOTChallenge gt; -1 in AI City).
        col10: ``(N,) float32`` column 10 (-1 in AI City).
    """

    frame: np.ndarray
    id: np.ndarray
    tlwh: np.ndarray
    conf: np.ndarray
    cls: np.ndarray
    vis: np.ndarray
    col10: np.ndarray

    def __post_init__(self) -> None:
        frame = _check("frame", self.frame, np.int64, (None,))
        n = len(frame)
        set_ = object.__setattr__
        set_(self, "frame", frame)
        set_(self, "id", _check("id", self.id, np.int64, (n,)))
        tlwh = np.asarray(self.tlwh, dtype=np.float32)
        if tlwh.size == 0:
            tlwh = tlwh.reshape(0, 4)
        set_(self, "tlwh", _check("tlwh", tlwh, np.float32, (n, 4)))
        set_(self, "conf", _check("conf", self.conf, np.float32, (n,)))
        set_(self, "cls", _check("cls", self.cls, np.int64, (n,)))
        set_(self, "vis", _check("vis", self.vis, np.float32, (n,)))
        set_(self, "col10", _check("col10", self.col10, np.float32, (n,)))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def empty(cls) -> "MotRows":
        return cls.from_arrays(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4), np.float32))

    @classmethod
    def from_arrays(
        cls,
        frame: np.ndarray,
        id: np.ndarray | None,
        tlwh: np.ndarray,
        conf: np.ndarray | float = 1.0,
        cls_: np.ndarray | int = -1,
        vis: np.ndarray | float = -1.0,
        col10: np.ndarray | float = -1.0,
    ) -> "MotRows":
        """Rows from arrays; scalars broadcast, ``id=None`` means -1 (detections)."""
        frame = np.asarray(frame, dtype=np.int64).reshape(-1)
        n = len(frame)

        def full(value: Any, dtype: Any) -> np.ndarray:
            arr = np.asarray(value, dtype=dtype)
            return np.full(n, arr, dtype=dtype) if arr.ndim == 0 else arr

        return cls(
            frame,
            full(-1 if id is None else id, np.int64),
            tlwh,
            full(conf, np.float32),
            full(cls_, np.int64),
            full(vis, np.float32),
            full(col10, np.float32),
        )

    @classmethod
    def from_xyxy(cls, frame: np.ndarray, id: np.ndarray | None, xyxy: np.ndarray, conf: np.ndarray | float = 1.0) -> "MotRows":
        """Rows from ``(N, 4)`` ``x1, y1, x2, y2`` boxes."""
        return cls.from_arrays(frame, id, xyxy_to_tlwh(np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)), conf)

    @classmethod
    def concat(cls, parts: "list[MotRows] | tuple[MotRows, ...]") -> "MotRows":
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls)))

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, index: Any) -> "MotRows":
        """The rows selected by a boolean mask, an integer array or a slice (a new object)."""
        idx = _index(len(self), index)
        return MotRows(*(getattr(self, f.name)[idx] for f in dataclasses.fields(self)))

    @property
    def xyxy(self) -> np.ndarray:
        """``(N, 4) float32`` ``x1, y1, x2, y2`` pixels."""
        return tlwh_to_xyxy(self.tlwh)

    @property
    def col7(self) -> np.ndarray:
        """Alias of :attr:`conf` (column 7)."""
        return self.conf

    @cached_property
    def _frame_index(self) -> dict[int, np.ndarray]:
        if not len(self):
            return {}
        order = np.argsort(self.frame, kind="stable")
        frames, starts = np.unique(self.frame[order], return_index=True)
        return {int(f): idx for f, idx in zip(frames, np.split(order, starts[1:]))}

    @property
    def frames(self) -> np.ndarray:
        """``(F,) int64`` the distinct frame numbers, sorted."""
        return np.fromiter(self._frame_index.keys(), dtype=np.int64, count=len(self._frame_index))

    def rows_in_frame(self, frame: int) -> np.ndarray:
        """``(K,) int64`` row indices of ``frame`` in file order (empty if none)."""
        return self._frame_index.get(int(frame), np.zeros(0, np.int64))

    def by_frame(self) -> dict[int, "MotRows"]:
        """``{frame: rows of that frame}`` for every frame that has rows, sorted by frame."""
        return {f: self[idx] for f, idx in self._frame_index.items()}

    def iter_frames(self) -> Iterator[tuple[int, "MotRows"]]:
        """``(frame, rows)`` pairs in frame order (frames without rows are skipped)."""
        for f, idx in self._frame_index.items():
            yield f, self[idx]

    def to_detections(self, frame: int) -> Detections:
        """The rows of ``frame`` as :class:`Detections` (scores = column 7, class ids 0).

        A frame with no rows gives empty detections.
        """
        idx = self.rows_in_frame(frame)
        return Detections(int(frame), self.xyxy[idx], self.conf[idx])


# ---------------------------------------------------------------------------- reading
def _parse_line_by_line(path: Path, kind: str, accepted: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The slow, exact parser: ``(values (N, C) float64, line numbers (N,))``; raises for the
    first malformed line. Used when the vectorised parse fails or looks irregular."""
    names = _COLUMN_NAMES[kind]
    want = _want(accepted)
    first_n: int | None = None
    rows: list[list[float]] = []
    lines: list[int] = []
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text:
                continue
            cells = text.split(",")
            n = len(cells)
            if n not in accepted:
                hint = " (trailing comma?)" if cells[-1].strip() == "" else ""
                if n == 1 and len(text.split()) > 1:
                    hint = " (separated by spaces? MOT files use commas)"
                raise MotFormatError(f"{path}:{lineno}: expected {want} comma-separated columns, got {n}{hint}")
            if first_n is None:
                first_n = n
            elif n != first_n:
                raise MotFormatError(
                    f"{path}:{lineno}: expected {first_n} comma-separated columns like the lines above, got {n}"
                )
            row = []
            for k, cell in enumerate(cells):
                try:
                    value = float(cell)
                except ValueError:
                    raise MotFormatError(
                        f"{path}:{lineno}: column {k + 1} ({names[k]}): expected a number, got {cell.strip()!r}"
                    ) from None
                if not math.isfinite(value):
                    raise MotFormatError(
                        f"{path}:{lineno}: column {k + 1} ({names[k]}): expected a finite number, got {cell.strip()!r}"
                    )
                row.append(value)
            rows.append(row)
            lines.append(lineno)
    if not rows:
        return np.zeros((0, 10)), np.zeros(0, np.int64)
    return np.asarray(rows, dtype=np.float64), np.asarray(lines, dtype=np.int64)


def _want(accepted: tuple[int, ...]) -> str:
    if len(accepted) == 1:
        return str(accepted[0])
    if len(accepted) > 2 and accepted == tuple(range(accepted[0], accepted[-1] + 1)):
        return f"{accepted[0]} to {accepted[-1]}"
    return " or ".join(str(a) for a in accepted)


def _parse_table(path: Path, kind: str, accepted: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(values (N, C) float64, line numbers (N,) int64)`` of the non-blank lines."""
    try:
        df = pd.read_csv(
            path, header=None, sep=",", skip_blank_lines=False, dtype=np.float64, engine="c",
            quoting=csv.QUOTE_NONE,
        )
    except (pd.errors.EmptyDataError, pd.errors.ParserError, ValueError, TypeError):
        # empty file, leading blank lines, ragged or non-numeric lines: the exact parser
        # either reads it or names the bad line
        return _parse_line_by_line(path, kind, accepted)
    values = df.to_numpy(dtype=np.float64)
    if values.shape[1] not in accepted:
        return _parse_line_by_line(path, kind, accepted)
    finite = np.isfinite(values)
    if finite.all():
        return values, np.arange(1, len(values) + 1, dtype=np.int64)
    # With skip_blank_lines=False every physical line is a row, so row i is line i + 1 and a
    # blank line is an all-NaN row. Keep the fast result when every non-finite row is really
    # a blank line (a "nan,nan,..." line is not); anything else (short lines, nan/inf values)
    # goes to the exact parser, which names the line.
    suspicious = np.flatnonzero(~finite.all(axis=1))
    if finite[suspicious].any():
        return _parse_line_by_line(path, kind, accepted)
    text_lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    if len(text_lines) < len(values) or any(text_lines[i].strip() for i in suspicious):
        return _parse_line_by_line(path, kind, accepted)
    keep = np.ones(len(values), bool)
    keep[suspicious] = False
    return values[keep], np.flatnonzero(keep) + 1


def read_mot(path: str | Path, kind: MotKind = "gt") -> MotRows:
    """Read a MOT txt file of ``kind`` (``"gt"``, ``"det"`` or ``"pred"``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        MotFormatError: a malformed line: wrong column count, a non-numeric value, a
            non-integer frame or id, frame < 1, width or height <= 0; the message is
            ``"{path}:{line}: ..."``.
    """
    path = Path(path)
    if kind not in ACCEPTED_COLUMNS:
        raise ValueError(f"read_mot: kind must be one of {sorted(ACCEPTED_COLUMNS)}, got {kind!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: MOT {kind} file not found")
    accepted = ACCEPTED_COLUMNS[kind]
    values, lines = _parse_table(path, kind, accepted)
    n, ncols = values.shape
    if n == 0:
        return MotRows.empty()
    if ncols < 10:
        fill = np.broadcast_to(np.asarray(_DEFAULTS[ncols - 6 :], np.float64), (n, 10 - ncols))
        values = np.concatenate([values, fill], axis=1)
    _check_values(path, values, lines)
    return MotRows(
        values[:, 0].astype(np.int64),
        values[:, 1].astype(np.int64),
        values[:, 2:6].astype(np.float32),
        values[:, 6].astype(np.float32),
        values[:, 7].astype(np.int64),
        values[:, 8].astype(np.float32),
        values[:, 9].astype(np.float32),
    )


def _bad_int(path: Path, values: np.ndarray, lines: np.ndarray, col: int, name: str) -> None:
    i = int(np.flatnonzero(values[:, col] != np.round(values[:, col]))[0])
    raise MotFormatError(f"{path}:{lines[i]}: {name} must be an integer, got {values[i, col]:g}")


def _check_values(path: Path, values: np.ndarray, lines: np.ndarray) -> None:
    frame, w, h = values[:, 0], values[:, 4], values[:, 5]
    for col, name in ((0, "frame"), (1, "id"), (7, "column 8 (class)")):
        col_values = values[:, col]
        if not np.all(col_values == np.round(col_values)):
            _bad_int(path, values, lines, col, name)
    checks = (
        (frame < 1, "frame must be >= 1 (frames are 1-based)", 0),
        (w <= 0, "width must be > 0", 4),
        (h <= 0, "height must be > 0", 5),
    )
    for bad, message, col in checks:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            more = int(bad.sum()) - 1
            extra = f" ({more} more such line{'s' if more != 1 else ''})" if more else ""
            raise MotFormatError(f"{path}:{lines[i]}: {message}, got {values[i, col]:g}{extra}")


# ---------------------------------------------------------------------------- writing
def _format_column(values: np.ndarray, decimals: int) -> tuple[np.ndarray, str]:
    """Integral columns print as integers; others with ``decimals`` places."""
    rounded = np.round(values.astype(np.float64), decimals)
    if np.all(rounded == np.round(rounded)):
        return rounded.astype(np.int64), "%d"
    return rounded, f"%.{decimals}f"


def write_mot(path: str | Path, rows: MotRows, decimals: int = 2) -> Path:
    """Write ``rows`` as a 10-column MOT txt file (AI City style), rows in the given order.

    Frame, id and column 8 are integers; the box and columns 7, 9, 10 print as integers
    when every value of the column is integral, else with ``decimals`` places. Parent
    folders are created. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not len(rows):
        path.write_text("")
        return path
    cols: list[np.ndarray] = [rows.frame, rows.id]
    fmts = ["%d", "%d"]
    for values in (*rows.tlwh.T, rows.conf):
        col, fmt = _format_column(values, decimals)
        cols.append(col)
        fmts.append(fmt)
    cols.append(rows.cls)
    fmts.append("%d")
    for values in (rows.vis, rows.col10):
        col, fmt = _format_column(values, decimals)
        cols.append(col)
        fmts.append(fmt)
    table = pd.DataFrame({i: c for i, c in enumerate(cols)})
    # one format string per row is the fastest pure-numpy route for mixed int/float columns
    line_fmt = ",".join(fmts)
    with path.open("w", encoding="utf-8") as fh:
        for record in table.itertuples(index=False, name=None):
            fh.write(line_fmt % record + "\n")
    return path
