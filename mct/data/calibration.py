"""Camera calibration files (``calibration.txt``, CityFlow style) and ground <-> image mapping.

The file holds ``Key: value`` lines; matrices are written row by row, rows separated by
``;`` and values by spaces::

    Homography matrix: h11 h12 h13;h21 h22 h23;h31 h32 h33
    Intrinsic parameter matrix: fx 0 cx;0 fy cy;0 0 1        (optional)
    Distortion coefficients: k1 k2 p1 p2 [k3]                 (optional)
    Reprojection error: 1.34                                   (optional)

The homography maps ground-plane coordinates ``(x, y, 1)`` (GPS degrees in CityFlowV2,
metres in the synthetic world) to image pixels ``(u, v, 1)`` up to scale. When intrinsics
and distortion are given, the homography refers to the *undistorted* image: image points
are undistorted with OpenCV's model (``k1 k2 p1 p2 [k3 ...]``) before the inverse
homography, and ground points are distorted after it.

Keys are matched case-insensitively; an unknown key is logged as a warning and ignored
(real files may carry extra lines); a known key with a malformed value is an error naming
the file and line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["Calibration", "CalibrationError", "read_calibration", "write_calibration"]

log = logging.getLogger(__name__)

_HOMOGRAPHY = "homography matrix"
_INTRINSICS = "intrinsic parameter matrix"
_DISTORTION = "distortion coefficients"
_REPROJECTION = "reprojection error"

#: |w| below this (relative to the largest |w| of the batch) is "at the horizon": the point
#: maps to infinity and is returned as NaN.
_MIN_REL_W = 1e-12


#: the key whose line a :class:`Calibration` check's message (by its start) is about.
_CHECK_PREFIX = {_HOMOGRAPHY: "homography:", _INTRINSICS: "intrinsics:", _DISTORTION: "distortion"}


class CalibrationError(ValueError):
    """A calibration file is malformed; the message names the file and line."""


@dataclass(frozen=True, eq=False)
class Calibration:
    """One camera's calibration.

    Attributes:
        homography: ``(3, 3) float64`` ground ``(x, y, 1)`` -> undistorted image pixels.
        intrinsics: optional ``(3, 3) float64`` camera matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.
        distortion: optional ``(K,) float64`` OpenCV distortion coefficients (K in 4, 5, 8, 12, 14).
        reprojection_error: optional, pixels, as reported by the calibration tool.
    """

    homography: np.ndarray
    intrinsics: np.ndarray | None = None
    distortion: np.ndarray | None = None
    reprojection_error: float | None = None

    def __post_init__(self) -> None:
        h = np.asarray(self.homography, dtype=np.float64)
        if h.shape != (3, 3) or not np.isfinite(h).all():
            raise CalibrationError(f"homography: expected a finite 3x3 matrix, got shape {h.shape}")
        if abs(np.linalg.det(h)) == 0.0:
            raise CalibrationError("homography: the matrix is singular (determinant 0)")
        object.__setattr__(self, "homography", h)
        if self.intrinsics is not None:
            k = np.asarray(self.intrinsics, dtype=np.float64)
            if k.shape != (3, 3):
                raise CalibrationError(f"intrinsics: expected a 3x3 matrix, got shape {k.shape}")
            object.__setattr__(self, "intrinsics", k)
        if self.distortion is not None:
            d = np.asarray(self.distortion, dtype=np.float64).reshape(-1)
            if len(d) not in (4, 5, 8, 12, 14):
                raise CalibrationError(f"distortion: expected 4, 5, 8, 12 or 14 coefficients, got {len(d)}")
            object.__setattr__(self, "distortion", d)
        if (self.distortion is not None) and self.intrinsics is None:
            raise CalibrationError("distortion coefficients need an intrinsic parameter matrix")

    @property
    def has_distortion(self) -> bool:
        return self.distortion is not None and bool(np.any(self.distortion != 0))

    def image_to_ground(self, xy_image: np.ndarray) -> np.ndarray:
        """``(N, 2)`` image pixels -> ``(N, 2) float64`` ground coordinates.

        Points on or beyond the horizon line (where the inverse homography's ``w`` is ~0)
        give NaN.
        """
        pts = _points(xy_image)
        if self.has_distortion and len(pts):
            pts = cv2.undistortPoints(
                pts.reshape(-1, 1, 2), self.intrinsics, self.distortion, P=self.intrinsics
            ).reshape(-1, 2).astype(np.float64)
        return _apply(np.linalg.inv(self.homography), pts)

    def ground_to_image(self, xy_ground: np.ndarray) -> np.ndarray:
        """``(N, 2)`` ground coordinates -> ``(N, 2) float64`` image pixels (NaN at the horizon)."""
        pts = _apply(self.homography, _points(xy_ground))
        if self.has_distortion and len(pts):
            finite = np.isfinite(pts).all(axis=1)
            k_inv = np.linalg.inv(self.intrinsics)
            normalised = np.c_[pts[finite], np.ones(int(finite.sum()))] @ k_inv.T
            projected, _ = cv2.projectPoints(
                normalised.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), self.intrinsics, self.distortion
            )
            pts[finite] = projected.reshape(-1, 2)
        return pts


def _points(xy: np.ndarray) -> np.ndarray:
    pts = np.asarray(xy, dtype=np.float64)
    if pts.size == 0:
        return np.zeros((0, 2), np.float64)
    if pts.ndim == 1 and pts.shape[0] == 2:
        pts = pts.reshape(1, 2)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points: expected shape (N, 2), got {pts.shape}")
    return pts


def _apply(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    if not len(pts):
        return np.zeros((0, 2), np.float64)
    homog = np.c_[pts, np.ones(len(pts))] @ matrix.T
    w = homog[:, 2]
    scale = np.max(np.abs(w)) if len(w) else 1.0
    at_horizon = np.abs(w) <= _MIN_REL_W * max(scale, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = homog[:, :2] / w[:, None]
    out[at_horizon] = np.nan
    return out


# ---------------------------------------------------------------------------- file format
def _parse_matrix(path: Path, lineno: int, key: str, text: str, shape: tuple[int, int] | None) -> np.ndarray:
    rows = [r.replace(",", " ").split() for r in text.strip().strip(";").split(";")]
    try:
        values = [[float(v) for v in row] for row in rows]
    except ValueError as exc:
        raise CalibrationError(f"{path}:{lineno}: {key}: {exc.args[0]}") from None
    if shape is None:
        flat = [v for row in values for v in row]
        if not flat:
            raise CalibrationError(f"{path}:{lineno}: {key}: no values")
        return np.asarray(flat, dtype=np.float64)
    if len(values) != shape[0] or any(len(r) != shape[1] for r in values):
        got = ", ".join(str(len(r)) for r in values)
        raise CalibrationError(
            f"{path}:{lineno}: {key}: expected {shape[0]} rows of {shape[1]} values separated by ';', "
            f"got {len(values)} rows of {got} values"
        )
    out = np.asarray(values, dtype=np.float64)
    if not np.isfinite(out).all():
        raise CalibrationError(f"{path}:{lineno}: {key}: values must be finite")
    return out


def read_calibration(path: str | Path) -> Calibration:
    """Read a CityFlow ``calibration.txt``.

    Raises:
        FileNotFoundError: no such file.
        CalibrationError: no ``Homography matrix:`` line, a key given twice, or a value that
            is not a matrix of the right shape (message ``"{path}:{line}: ..."``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: calibration file not found")
    found: dict[str, tuple[int, np.ndarray | float]] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if ":" not in line:
            raise CalibrationError(f"{path}:{lineno}: expected 'Key: values', got {line[:60]!r}")
        key, value = (part.strip() for part in line.split(":", 1))
        lkey = key.lower()
        if lkey in found:
            raise CalibrationError(f"{path}:{lineno}: {key!r} given twice (first on line {found[lkey][0]})")
        if lkey == _HOMOGRAPHY or lkey == _INTRINSICS:
            found[lkey] = (lineno, _parse_matrix(path, lineno, key, value, (3, 3)))
        elif lkey == _DISTORTION:
            found[lkey] = (lineno, _parse_matrix(path, lineno, key, value, None))
        elif lkey == _REPROJECTION:
            try:
                found[lkey] = (lineno, float(value))
            except ValueError:
                raise CalibrationError(f"{path}:{lineno}: {key}: expected a number, got {value!r}") from None
        else:
            log.warning("%s:%d: unknown key %r ignored", path, lineno, key)
    if _HOMOGRAPHY not in found:
        raise CalibrationError(f"{path}: no 'Homography matrix:' line")
    get = lambda k: found[k][1] if k in found else None  # noqa: E731
    try:
        return Calibration(
            homography=get(_HOMOGRAPHY),  # type: ignore[arg-type]
            intrinsics=get(_INTRINSICS),  # type: ignore[arg-type]
            distortion=get(_DISTORTION),  # type: ignore[arg-type]
            reprojection_error=get(_REPROJECTION),  # type: ignore[arg-type]
        )
    except CalibrationError as exc:
        # name the line of the key the check is about
        text = str(exc)
        key = next((k for k, prefix in _CHECK_PREFIX.items() if text.startswith(prefix)), _HOMOGRAPHY)
        raise CalibrationError(f"{path}:{found[key][0]}: {text}") from None


def _format_matrix(matrix: np.ndarray) -> str:
    return ";".join(" ".join(f"{v:.10e}" for v in row) for row in np.atleast_2d(matrix))


def write_calibration(
    path: str | Path,
    calibration: Calibration | np.ndarray,
    intrinsics: np.ndarray | None = None,
    distortion: np.ndarray | None = None,
    reprojection_error: float | None = None,
) -> Path:
    """Write ``calibration.txt`` (a :class:`Calibration`, or a ``(3, 3)`` homography plus the
    optional parts). Values print with 11 significant digits (``%.10e``), so a read-back
    matrix equals the written one to ~1e-10 relative. Parent folders are created.
    """
    if not isinstance(calibration, Calibration):
        calibration = Calibration(np.asarray(calibration), intrinsics, distortion, reprojection_error)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"Homography matrix: {_format_matrix(calibration.homography)}"]
    if calibration.intrinsics is not None:
        lines.append(f"Intrinsic parameter matrix: {_format_matrix(calibration.intrinsics)}")
    if calibration.distortion is not None:
        lines.append(f"Distortion coefficients: {_format_matrix(calibration.distortion)}")
    if calibration.reprojection_error is not None:
        lines.append(f"Reprojection error: {calibration.reprojection_error:.6f}")
    path.write_text("\n".join(lines) + "\n")
    return path
