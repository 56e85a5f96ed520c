"""Where a tracklet enters and leaves its camera on the ground plane, and which way it moves.

The direction term of the pair score (:mod:`mct.associate.score`) needs, per tracklet, the ground-plane
position of its first and last box and its heading there. They come from the camera's
homography (``calibration.txt``: ground ``(x, y, 1)`` -> image pixels): the bottom centre of
a box is the point where the vehicle touches the road, mapped back to the ground with the
inverse homography.

* Heading at entry: from the first box to the box about ``heading_window_s`` later (at
  least one frame); at exit: from the box ``heading_window_s`` before the last to the last.
  A vehicle that moves less than ``min_moving_speed_mps * window`` in that time (waiting at
  a light, say) has no heading there: zero vector, and the term says nothing there.
* Units: the synthetic world's homographies use metres. CityFlowV2's use GPS degrees; a
  camera whose ground points all look like degrees (``|x|, |y| <= 180`` and a footprint
  under 0.05 degree across) is scaled by 111,320 m per degree on both axes. That ignores
  the cos(latitude) shrinking of longitude (0.74 at CityFlowV2's 42.5 deg N), which skews
  angles a little; the direction term reads cosines of headings, which such a skew
  changes little. ``association.world_units`` forces a choice.
* Cameras without a homography, and points the inverse homography sends to infinity (at or
  above the horizon), give NaN positions and zero headings: the terms skip them.

The co-location term needs the whole ground track of a
tracklet (:meth:`GroundMotion.track`, gathered in :class:`GroundTracks`): two tracklets of
different cameras seen at the same time are one vehicle only if they stand at one place,
so :func:`overlap_distance` measures how far apart their tracks are while both are seen.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numba
import numpy as np

from mct.types import Camera, Tracklet

__all__ = ["GroundMotion", "GroundTracks", "ground_points", "overlap_distance", "METRES_PER_DEGREE"]

log = logging.getLogger(__name__)

#: metres per degree of latitude (and of longitude at the equator), WGS-84 mean.
METRES_PER_DEGREE = 111_320.0
#: a ground footprint narrower than this (in ground units) with all coordinates within
#: +-180 is taken to be GPS degrees by ``world_units: auto``.
_DEGREE_SPAN = 0.05

Units = Literal["auto", "metres", "degrees"]


def ground_points(homography: np.ndarray, xy_pixels: np.ndarray) -> np.ndarray:
    """``(N, 2) float64`` ground coordinates of ``(N, 2)`` image points (NaN beyond the horizon).

    ``homography`` maps ground ``(x, y, 1)`` to image pixels (the calibration.txt convention).
    """
    return _apply_inverse(np.linalg.inv(np.asarray(homography, np.float64)), xy_pixels)


def _apply_inverse(inv: np.ndarray, xy_pixels: np.ndarray) -> np.ndarray:
    """:func:`ground_points` with the inverse homography already computed."""
    pts = np.asarray(xy_pixels, np.float64).reshape(-1, 2)
    p = np.c_[pts, np.ones(len(pts))] @ inv.T
    w = p[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(np.abs(w) > 1e-12, p[:, :2] / w, np.nan)
    out[~np.isfinite(out).all(axis=1)] = np.nan
    return out


class GroundMotion:
    """Entry and exit positions (metres) and unit headings of tracklets, one camera at a time.

    Args:
        heading_window_s: time over which a heading is measured.
        min_moving_speed_mps: below this average speed over the window there is no heading.
        units: ``auto``, ``metres`` or ``degrees`` (see the module docstring).
    """

    def __init__(self, heading_window_s: float = 1.0, min_moving_speed_mps: float = 1.5, units: Units = "auto") -> None:
        self.heading_window_s = float(heading_window_s)
        self.min_moving_speed_mps = float(min_moving_speed_mps)
        self.units = units
        self._scale: dict[tuple[str, str], float] = {}
        self._inverse: dict[tuple[str, str], np.ndarray] = {}  # per camera, computed once

    def scale(self, camera: Camera) -> float:
        """Metres per ground unit of ``camera``'s homography (decided once per camera)."""
        if camera.key in self._scale:
            return self._scale[camera.key]
        if self.units == "metres":
            s = 1.0
        elif self.units == "degrees":
            s = METRES_PER_DEGREE
        else:
            s = 1.0
            if camera.frame_size is not None and camera.homography is not None:
                w, h = camera.frame_size
                corners = ground_points(camera.homography, np.array([[0, h - 1], [w - 1, h - 1], [w / 2, h / 2]], np.float64))
                corners = corners[np.isfinite(corners).all(axis=1)]
                if len(corners) and np.all(np.abs(corners) <= 180.0) and np.ptp(corners, axis=0).max() < _DEGREE_SPAN:
                    s = METRES_PER_DEGREE
                    log.info("%s/%s: homography ground units look like GPS degrees: scaled to metres", *camera.key)
        self._scale[camera.key] = s
        return s

    def _ground(self, camera: Camera, xyxy: np.ndarray) -> np.ndarray:
        """Ground positions (metres) of the bottom centres of ``(L, 4)`` boxes of ``camera``."""
        boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
        feet = np.c_[(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]]
        inv = self._inverse.get(camera.key)
        if inv is None:
            inv = self._inverse[camera.key] = np.linalg.inv(np.asarray(camera.homography, np.float64))
        return _apply_inverse(inv, feet) * self.scale(camera)

    def track(self, tracklet: Tracklet, camera: Camera) -> np.ndarray:
        """``(L, 2) float64``: the ground position (metres) of every box of the tracklet, NaN
        where unknown (no homography, beyond the horizon)."""
        if camera.homography is None or len(tracklet) == 0:
            return np.full((len(tracklet), 2), np.nan)
        return self._ground(camera, tracklet.xyxy)

    def __call__(self, tracklet: Tracklet, camera: Camera) -> np.ndarray:
        """``(4, 2) float64``: entry position, exit position (metres), entry heading, exit heading (unit or zero)."""
        out = np.full((4, 2), np.nan)
        out[2:] = 0.0
        if camera.homography is None or len(tracklet) == 0:
            return out
        xyxy = tracklet.xyxy
        k = max(1, int(round(self.heading_window_s * camera.fps)))
        k = min(k, len(xyxy) - 1)
        idx = np.array([0, k, len(xyxy) - 1 - k, len(xyxy) - 1]) if k > 0 else np.array([0, 0, 0, 0])
        g = self._ground(camera, xyxy[idx])
        out[0], out[1] = g[0], g[3]
        if k == 0:
            return out
        for row, (a, b, frames) in enumerate(((g[0], g[1], tracklet.frames[idx[1]] - tracklet.frames[idx[0]]),
                                              (g[2], g[3], tracklet.frames[idx[3]] - tracklet.frames[idx[2]])), start=2):
            step = b - a
            dist = float(np.hypot(*step)) if np.isfinite(step).all() else 0.0
            seconds = max(float(frames), 1.0) / camera.fps
            if dist > 0 and dist >= self.min_moving_speed_mps * seconds:
                out[row] = step / dist
        return out


@dataclass(frozen=True, eq=False)
class GroundTracks:
    """The ground tracks of N tracklets, concatenated: row ``r`` owns the points
    ``offsets[r]:offsets[r + 1]``.

    Attributes:
        offsets: ``(N + 1,) int64``.
        times: ``(M,) float64`` scenario-clock seconds, increasing within a row.
        xy: ``(M, 2) float64`` ground positions, metres (NaN: unknown).
    """

    offsets: np.ndarray
    times: np.ndarray
    xy: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[np.ndarray, np.ndarray]]) -> "GroundTracks":
        """From one ``(times (L,), xy (L, 2))`` pair per row."""
        lengths = np.array([len(t) for t, _ in rows], np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        times = np.concatenate([np.asarray(t, np.float64) for t, _ in rows]) if rows else np.zeros(0)
        xy = np.concatenate([np.asarray(g, np.float64).reshape(-1, 2) for _, g in rows]) if rows else np.zeros((0, 2))
        return cls(offsets, times, xy)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """``(times (L,), xy (L, 2))`` of row ``r`` (views, not copies)."""
        lo, hi = self.offsets[r], self.offsets[r + 1]
        return self.times[lo:hi], self.xy[lo:hi]


def overlap_distance(tracks: GroundTracks, a: np.ndarray, b: np.ndarray, min_overlap_s: float) -> np.ndarray:
    """``(E,) float64``: for each pair ``(a[e], b[e])`` of rows, the median ground distance
    (metres) between the two tracks over the time both are seen, ``b``'s track linearly
    interpolated at ``a``'s times. NaN when they are seen together for less than
    ``min_overlap_s`` seconds or no position of that time is known.

    Only meaningful for rows of one scenario (one clock); the caller pairs them.
    """
    a, b = np.ascontiguousarray(a, np.int64), np.ascontiguousarray(b, np.int64)
    return _overlap_many(tracks.offsets, tracks.times, tracks.xy, a, b, float(min_overlap_s))


@numba.njit(cache=True, nogil=True)
def _overlap_many(offsets: np.ndarray, times: np.ndarray, xy: np.ndarray, a: np.ndarray, b: np.ndarray, min_overlap_s: float) -> np.ndarray:
    out = np.empty(len(a), np.float64)
    for e in range(len(a)):
        out[e] = overlap_median(offsets, times, xy, a[e], b[e], min_overlap_s)
    return out


@numba.njit(cache=True, nogil=True)
def overlap_median(offsets: np.ndarray, times: np.ndarray, xy: np.ndarray, i: int, j: int, min_overlap_s: float) -> float:
    """:func:`overlap_distance` of one pair of rows ``i``, ``j`` of a :class:`GroundTracks`
    given as its arrays (for compiled callers)."""
    lo_i, hi_i, lo_j, hi_j = offsets[i], offsets[i + 1], offsets[j], offsets[j + 1]
    if hi_i == lo_i or hi_j == lo_j:
        return np.nan
    lo = max(times[lo_i], times[lo_j])
    hi = min(times[hi_i - 1], times[hi_j - 1])
    if not (hi - lo >= min_overlap_s):
        return np.nan
    tb = times[lo_j:hi_j]
    bx = np.ascontiguousarray(xy[lo_j:hi_j, 0])
    by = np.ascontiguousarray(xy[lo_j:hi_j, 1])
    d = np.empty(hi_i - lo_i, np.float64)
    n = 0
    for r in range(lo_i, hi_i):
        t = times[r]
        if t < lo or t > hi:
            continue
        dx = xy[r, 0] - np.interp(t, tb, bx)
        dy = xy[r, 1] - np.interp(t, tb, by)
        v = math.hypot(dx, dy)
        if math.isfinite(v):
            d[n] = v
            n += 1
    if n == 0:
        return np.nan
    return float(np.median(d[:n]))
