"""Camera links: where and when a vehicle seen by one camera may appear in another.

A *link* from camera A to camera B is a travel-time window: the gap
``start_s(tracklet in B) - end_s(tracklet in A)``, seconds on the scenario clock, that one
vehicle may take (negative when the two views overlap and the vehicle is seen by both at
once). Links come from four sources, weakest first:

1. **prior** (:meth:`CameraLinks.from_geometry`, no labels): each camera's calibration
   (``calibration.txt``: ground -> image homography, metres or GPS degrees) puts its ROI on
   the ground (the *footprint*: the ROI pixels in front of the camera no coarser than
   2 m per pixel, or as far as its tracklets are seen) and the first and last box bottom
   centres of its tracklets there (the *entry* and *exit regions*). From A's exit region to B's entry region there is
   a ground distance: the nearest ``d_near`` (a low quantile of each exit point's nearest
   entry point) and the farthest ``d_far`` (a high quantile of all exit-entry distances).
   With the speed range of :class:`LinksConfig` the window is
   ``[d_near / max_speed, d_far / min_speed + stop_time]``, and the hard bound (faster than
   any vehicle) ``(d_min - 10 m) / (1.5 max_speed) - 2 s``, ``d_min`` the nearest all the ground
   the two cameras might see (up to 10 m per pixel) or their regions come; none when
   that is under 10 m. Two cameras whose footprints
   share more than 20 m^2 of ground *overlap*: the window opens to
   ``-(overlap extent / min_speed + stop_time)`` and there is no hard bound. One camera
   with itself (fragments of one visit): ``[0, fragment_gap_s]``.
2. **learned** (:meth:`CameraLinks.learned`): the window refitted from a run's confident
   cross-camera matches, shrunk towards the prior by a pseudo-count.
3. **labelled** (``mct fit-topology`` on ground truth) and 4. **file** (written by hand),
   both read with :meth:`CameraLinks.from_topology`; :meth:`CameraLinks.overridden_by` lets
   them win per camera pair.

:meth:`CameraLinks.compile` turns the links into :class:`LinkArrays` indexed by a
:class:`~mct.associate.table.TrackletTable`'s codes, whose :meth:`LinkArrays.gap_log_lr` is
the travel-time evidence of the pair score. A camera without calibration has no prior
link (``known`` False): the caller falls back to appearance and a wide window.

Ground units: metres, or GPS degrees (CityFlowV2) detected as in
:class:`mct.associate.motion.GroundMotion` and converted with 111,320 m per degree of
latitude and 111,320 cos(latitude) m per degree of longitude around a reference point per
scenario (the axis whose values exceed 90 in magnitude is the longitude; else the first
axis is the latitude, CityFlowV2's order).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Literal, Mapping, Sequence

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import ndtr

from mct.associate.config import LinksConfig, ScenarioTopology, TopologyFile, Transition
from mct.associate.motion import METRES_PER_DEGREE, GroundMotion
from mct.associate.table import TrackletTable
from mct.types import Camera

__all__ = [
    "CameraLinks",
    "Link",
    "LinkArrays",
    "LinksConfig",
    "SOURCE_FILE",
    "SOURCE_LABELLED",
    "SOURCE_LEARNED",
    "SOURCE_NAMES",
    "SOURCE_NONE",
    "SOURCE_PRIOR",
]

log = logging.getLogger(__name__)

SOURCE_NONE, SOURCE_PRIOR, SOURCE_LEARNED, SOURCE_LABELLED, SOURCE_FILE = 0, 1, 2, 3, 4
SOURCE_NAMES = {SOURCE_PRIOR: "prior", SOURCE_LEARNED: "learned", SOURCE_LABELLED: "labelled", SOURCE_FILE: "file"}
_SOURCE_CODE = {v: k for k, v in SOURCE_NAMES.items()}

#: share of same-vehicle gaps that fall outside any window (a detour, a stop to park): the
#: floor of the same-vehicle density, so the travel time alone never rules a pair out
#: (log-likelihood ratio >= log 0.01 = -4.6) except below the hard bound.
OUTLIER_RATE = 0.01
#: narrowest edge softness of any window, seconds (clock offsets, the frame a track starts on).
MIN_SPREAD_S = 1.0
#: a prior window's edges are soft over this fraction of its width.
PRIOR_SPREAD_FRAC = 0.1
#: the hard bound's speed is this many times ``max_speed_mps`` (the window's fastest speed
#: is plausible traffic; the bound is physics plus a margin).
HARD_SPEED_FACTOR = 1.5
#: ground positions from box bottom centres through a homography are off by a few metres
#: (box jitter, calibration); the hard bound's distance is shortened by this much.
POSITION_SLACK_M = 10.0
#: and its time by this much (cam_timestamp offsets, a track's first frame).
CLOCK_SLACK_S = 2.0
#: two footprints sharing at least this much ground overlap (two car footprints).
MIN_OVERLAP_M2 = 20.0
#: ROI pixels whose ground cell is longer than this (metres per pixel) are too far to
#: place a vehicle: left out of the footprint (100 m away for a 640x360 camera 6.5 m high)
#: unless the camera's tracklets are seen farther (see TRACKED_QUANTILE).
MAX_METRES_PER_PIXEL = 2.0
#: a tracklet's first or last box farther than this (metres per pixel) is a misplaced box
#: (a vehicle would be under a pixel long): not part of the entry or exit region.
MAX_TRACKED_METRES_PER_PIXEL = 10.0
#: the footprint reaches farther than MAX_METRES_PER_PIXEL where the camera's tracklets
#: are seen farther: this quantile of their entry and exit points' metres per pixel, times
#: the margin (a high camera whose ground truth follows vehicles far down the road).
TRACKED_QUANTILE, TRACKED_MARGIN = 0.95, 1.2
#: a camera with fewer entry (or exit) points on the ground uses its footprint instead.
MIN_REGION_POINTS = 5
#: quantiles of the distances behind the prior window (robust to a few misplaced points).
NEAR_QUANTILE, FAR_QUANTILE = 0.1, 0.9
#: points kept per region when measuring nearest distances, and for the far quantile
#: over all pairs (which costs FAR_POINTS^2).
MAX_REGION_POINTS, FAR_POINTS = 400, 100
#: a learned link needs at least this many (weighted) matches; fewer leave the prior.
MIN_LEARN_COUNT = 2.0
#: quantiles of the matched gaps taken as the data's window (robust to a wrong match).
LEARN_QUANTILES = (0.025, 0.975)

Units = Literal["auto", "metres", "degrees"]


# ---------------------------------------------------------------------------- one link
@dataclass(frozen=True)
class Link:
    """One directed camera link (see the module docstring).

    Attributes:
        lo_s, hi_s: the plausible gap window, seconds.
        spread_s: softness of its edges, seconds (> 0).
        min_gap_s: hard bound: smaller gaps are impossible (``-inf``: none; ``+inf``: no
            direct link at all, a topology's ``unlisted: forbid``).
        overlap: the two views overlap on the ground.
        source: ``SOURCE_PRIOR`` .. ``SOURCE_FILE``.
        count: observations behind the window (matches, ground-truth transitions).
        distance_m: ground distance from the exit region to the entry region (prior links).
        exit_zone, entry_zone: zones of a topology file (kept for writing it back).
        fixed: read from a topology file given to the run: never relearned, whatever its
            recorded ``source`` (a run's ``links.yaml`` edited and given back, say).
    """

    lo_s: float
    hi_s: float
    spread_s: float
    min_gap_s: float = -math.inf
    overlap: bool = False
    source: int = SOURCE_PRIOR
    count: int = 0
    distance_m: float = math.nan
    exit_zone: str = ""
    entry_zone: str = ""
    fixed: bool = False

    @property
    def forbidden(self) -> bool:
        return self.min_gap_s == math.inf


# ---------------------------------------------------------------------------- compiled arrays
@dataclass(frozen=True)
class LinkArrays:
    """Camera links compiled for one TrackletTable, indexed ``[scenario code, src camera code,
    dst camera code]`` with the table's codes. Gaps are ``start_s(dst tracklet) -
    end_s(src tracklet)``, seconds (negative = seen at once), the src tracklet being the
    one that starts first (as labelled and learned windows are fitted; ties: either).

    Attributes:
        lo, hi: ``(S, C, C) float64`` the plausible gap window (``nan`` where not known).
        spread_s: ``(S, C, C) float64`` softness of the window edges, seconds (> 0).
        min_gap_s: ``(S, C, C) float64`` hard bound: a smaller gap is impossible (``-inf``:
            none, e.g. overlapping views; ``+inf``: no direct link).
        overlap: ``(S, C, C) bool`` the two views overlap on the ground.
        known: ``(S, C, C) bool`` False where nothing is known (no calibration, another
            scenario): callers fall back to appearance and a wide window.
        source: ``(S, C, C) int8`` 0 none, 1 prior, 2 learned, 3 labelled, 4 file.
        horizon_s: ``(S,) float64`` different vehicles' gaps are taken as uniform over
            ``[-horizon_s, horizon_s]`` (the candidate horizon, see :meth:`CameraLinks.compile`).
    """

    lo: np.ndarray
    hi: np.ndarray
    spread_s: np.ndarray
    min_gap_s: np.ndarray
    overlap: np.ndarray
    known: np.ndarray
    source: np.ndarray
    horizon_s: np.ndarray

    def __post_init__(self) -> None:
        shape = self.lo.shape
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(f"LinkArrays.lo: expected (S, C, C), got {shape}")
        for name in ("hi", "spread_s", "min_gap_s", "overlap", "known", "source"):
            if getattr(self, name).shape != shape:
                raise ValueError(f"LinkArrays.{name}: expected {shape}, got {getattr(self, name).shape}")
        if self.horizon_s.shape != (shape[0],):
            raise ValueError(f"LinkArrays.horizon_s: expected ({shape[0]},), got {self.horizon_s.shape}")

    def reach_s(self) -> np.ndarray:
        """``(S, C) float64``: per scenario and camera, the largest known window end of its
        links in either direction (0 where none; the kNN search need not look further)."""
        hi = np.where(self.known & (self.min_gap_s < np.inf), self.hi, 0.0)
        return np.maximum(hi.max(axis=2, initial=0.0), hi.max(axis=1, initial=0.0))

    def gap_log_lr(self, s: np.ndarray, a: np.ndarray, b: np.ndarray, gap_s: np.ndarray) -> np.ndarray:
        """``(P,) float64`` log-likelihood ratio of the gap, same vehicle vs different vehicles.

        Same vehicle: the window ``[lo, hi]`` with Gaussian edges of width ``spread_s``
        (a uniform density convolved with a Gaussian) mixed with :data:`OUTLIER_RATE` of
        the different-vehicles density, conditioned on the gap lying within ``[-H, H]``
        as the different-vehicles density is.
        Different vehicles: uniform over ``[-H, H]``. ``-inf`` where
        ``gap < min_gap_s``; 0 where not known.

        Args:
            s, a, b: ``(P,)`` scenario, src and dst camera codes of the table.
            gap_s: ``(P,)`` gaps, seconds.
        """
        s, a, b = (np.asarray(x, np.int64) for x in (s, a, b))
        gap = np.asarray(gap_s, np.float64)
        known = self.known[s, a, b]
        out = np.zeros(len(gap), np.float64)
        if not known.any():
            return out
        k = np.flatnonzero(known)
        lo, hi, sd = self.lo[s[k], a[k], b[k]], self.hi[s[k], a[k], b[k]], self.spread_s[s[k], a[k], b[k]]
        horizon = np.maximum(self.horizon_s[s[k]], 1e-9)
        g = gap[k]
        uniform = 1.0 / (2.0 * horizon)
        # same vehicle: the window mixed with outliers, conditioned on the gap lying within
        # the horizon, as the different-vehicles density is (both tracklets were seen): a
        # window reaching beyond a short recording is not evidence against its true pairs,
        # and the threshold on the summed evidence does not depend on the recording's length.
        # Outliers first, so that a window wholly beyond the horizon says nothing rather
        # than blowing up its Gaussian tail.
        same = (1.0 - OUTLIER_RATE) * _window_density(g, lo, hi, sd) + OUTLIER_RATE * uniform
        mass = (1.0 - OUTLIER_RATE) * _window_mass(-horizon, horizon, lo, hi, sd) + OUTLIER_RATE
        with np.errstate(divide="ignore"):
            lr = np.log(same / mass) - np.log(uniform)
        lr[g < self.min_gap_s[s[k], a[k], b[k]]] = -np.inf
        out[k] = lr
        return out


def _window_density(g: np.ndarray, lo: np.ndarray, hi: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Density at ``g`` of uniform[lo, hi] convolved with N(0, sd^2)."""
    width = hi - lo
    wide = width > 1e-6 * sd
    out = np.empty(len(g))
    w = np.where(wide, width, 1.0)
    out[wide] = ((ndtr((g - lo) / sd) - ndtr((g - hi) / sd)) / w)[wide]
    z = (g - lo) / sd
    out[~wide] = (np.exp(-0.5 * z * z) / (sd * math.sqrt(2 * math.pi)))[~wide]
    return out


def _phi_integral(x: np.ndarray) -> np.ndarray:
    """Antiderivative of the standard normal CDF: ``x Phi(x) + phi(x)``."""
    return x * ndtr(x) + np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _window_mass(t0: np.ndarray, t1: np.ndarray, lo: np.ndarray, hi: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Mass of :func:`_window_density` within ``[t0, t1]``."""
    width = hi - lo
    wide = width > 1e-6 * sd
    w = np.where(wide, width, 1.0)
    upper = _phi_integral((t1 - lo) / sd) - _phi_integral((t0 - lo) / sd)
    lower = _phi_integral((t1 - hi) / sd) - _phi_integral((t0 - hi) / sd)
    mass = sd * (upper - lower) / w
    point = ndtr((t1 - lo) / sd) - ndtr((t0 - lo) / sd)
    return np.clip(np.where(wide, mass, point), 0.0, 1.0)


# ---------------------------------------------------------------------------- ground geometry
@dataclass
class _View:
    """One calibrated camera on its scenario's metric ground frame."""

    camera: Camera
    inverse: np.ndarray  # (3, 3) pixels -> ground units
    front: float  # sign of w for pixels on the ground in front of the camera
    degrees: bool
    footprint: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (P, 2) metres
    area: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (P,) m^2 per footprint sample
    cell: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (P,) metres per pixel there
    entry: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (K, 2) metres
    exit: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    # every ROI sample in front of the camera, of which the footprint is the near part
    all_footprint: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    all_area: np.ndarray = field(default_factory=lambda: np.zeros(0))
    all_cell: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _bounds: tuple[tuple[float, float], tuple[float, float]] | None = None

    def bounds(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((x_min, y_min), (x_max, y_max))`` of the footprint, metres (computed once)."""
        if self._bounds is None:
            lo, hi = self.footprint.min(axis=0), self.footprint.max(axis=0)
            self._bounds = ((float(lo[0]), float(lo[1])), (float(hi[0]), float(hi[1])))
        return self._bounds


class _Frame:
    """Ground units <-> metres for the cameras of one scenario (a shared origin for degrees)."""

    def __init__(self) -> None:
        self.origin: np.ndarray | None = None  # (lat0, lon0) degrees
        self.lon_axis = 1

    def set_origin(self, points_deg: np.ndarray) -> None:
        if self.origin is not None or not len(points_deg):
            return
        centre = np.nanmedian(points_deg, axis=0)
        self.lon_axis = 0 if abs(centre[0]) > 90.0 >= abs(centre[1]) else 1
        lat, lon = (centre[1], centre[0]) if self.lon_axis == 0 else (centre[0], centre[1])
        self.origin = np.array([lat, lon])

    def to_metres(self, pts: np.ndarray, degrees: bool) -> np.ndarray:
        if not degrees:
            return pts
        if self.origin is None:
            self.set_origin(pts)
        assert self.origin is not None
        lat_axis = 1 - self.lon_axis
        lat0, lon0 = self.origin
        out = np.empty_like(pts)
        out[:, 0] = (pts[:, lat_axis] - lat0) * METRES_PER_DEGREE
        out[:, 1] = (pts[:, self.lon_axis] - lon0) * METRES_PER_DEGREE * math.cos(math.radians(lat0))
        return out

    def from_metres(self, xy: np.ndarray, degrees: bool) -> np.ndarray:
        if not degrees:
            return xy
        assert self.origin is not None
        lat0, lon0 = self.origin
        out = np.empty_like(xy)
        out[:, 1 - self.lon_axis] = xy[:, 0] / METRES_PER_DEGREE + lat0
        out[:, self.lon_axis] = xy[:, 1] / (METRES_PER_DEGREE * math.cos(math.radians(lat0))) + lon0
        return out


def _project(matrix: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 2)`` points through a 3x3 projective matrix -> ``(N, 2)`` points, ``(N,)`` w."""
    p = np.c_[pts, np.ones(len(pts))] @ matrix.T
    w = p[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return p[:, :2] / w[:, None], w


def _ground(view: _View, frame: _Frame, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels -> ``(N, 2)`` metres, ``(N,) bool`` in front of the camera (and finite), and
    ``(N,)`` metres per pixel there (the longer side of the pixel's ground cell; NaN where
    not in front)."""
    px = np.asarray(pixels, np.float64).reshape(-1, 2)
    if not len(px):
        return np.zeros((0, 2)), np.zeros(0, bool), np.zeros(0)
    out = []
    ws = []
    for du, dv in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)):
        g, w = _project(view.inverse, px + [du, dv])
        ws.append(w)
        out.append(g)
    front = np.all([(np.sign(w) == view.front) & (np.abs(w) > 1e-12) for w in ws], axis=0)
    front &= np.all([np.isfinite(g).all(axis=1) for g in out], axis=0)
    metres = [np.full_like(g, np.nan) for g in out]
    if front.any():
        if view.degrees:
            frame.set_origin(out[0][front])
        for m, g in zip(metres, out):
            m[front] = frame.to_metres(g[front], view.degrees)
    with np.errstate(invalid="ignore"):
        cell = np.maximum(np.hypot(*(metres[1] - metres[0]).T), np.hypot(*(metres[2] - metres[0]).T))
    cell[~front] = np.nan
    return metres[0], front & np.isfinite(cell), cell


def _cell_area(view: _View, frame: _Frame, pixels: np.ndarray, step: float) -> np.ndarray:
    """Ground area (m^2) of the ``step x step`` pixel cell at each of ``pixels``."""
    g0 = _ground(view, frame, pixels)[0]
    gu = _ground(view, frame, pixels + [step, 0.0])[0]
    gv = _ground(view, frame, pixels + [0.0, step])[0]
    du, dv = gu - g0, gv - g0
    return np.abs(du[:, 0] * dv[:, 1] - du[:, 1] * dv[:, 0])


def _roi_pixels(camera: Camera) -> tuple[np.ndarray, float]:
    """A grid of ``(P, 2)`` pixel centres inside the camera's ROI (the whole frame without
    one), about 60 rows of samples, and the grid step (pixels)."""
    assert camera.frame_size is not None
    width, height = camera.frame_size
    step = float(max(2, min(width, height) // 60))
    us, vs = np.meshgrid(np.arange(step / 2, width, step), np.arange(step / 2, height, step))
    px = np.c_[us.ravel(), vs.ravel()]
    if camera.roi_mask is not None:
        inside = camera.roi_mask[px[:, 1].astype(int), px[:, 0].astype(int)]
        px = px[inside]
    return px, step


def _subsample(points: np.ndarray, n: int) -> np.ndarray:
    if len(points) <= n:
        return points
    return points[np.linspace(0, len(points) - 1, n).astype(np.int64)]


def _make_view(camera: Camera, frame: _Frame, units: Units, table_points: np.ndarray) -> _View:
    """The camera's :class:`_View`; raises ``ValueError`` naming the camera when its
    homography is singular or sends its whole ROI beyond the horizon."""
    name = f"{camera.scenario}/{camera.camera_id}"
    h = np.asarray(camera.homography, np.float64)
    # no condition-number test: a GPS-degree homography is legitimately ill-conditioned
    # (1e9 to 1e15); a nearly singular one is caught below, as a ROI mapped to infinity
    try:
        inverse = np.linalg.inv(h) if np.isfinite(h).all() and np.linalg.det(h) != 0.0 else None
    except np.linalg.LinAlgError:
        inverse = None
    if inverse is None or not np.isfinite(inverse).all():
        raise ValueError(f"camera {name}: the homography is singular (determinant {np.linalg.det(h):.3g})")
    if camera.frame_size is not None:
        width, height = camera.frame_size
        _, w = _project(inverse, np.array([[width / 2.0, height - 1.0]]))
    elif len(table_points):
        _, w = _project(inverse, table_points)
        w = np.array([np.median(w)])
    else:
        w = np.array([1.0])
    front = float(np.sign(w[0])) or 1.0
    if np.isfinite(w[0]) and w[0] != 0.0:
        inverse = inverse / abs(float(w[0]))  # a homography's scale is arbitrary: w = 1 at the reference pixel
    degrees = GroundMotion(units=units).scale(camera) != 1.0
    view = _View(camera, inverse, front, degrees)
    if camera.frame_size is not None:
        px, step = _roi_pixels(camera)
        g, front, cell = _ground(view, frame, px)
        with np.errstate(invalid="ignore"):
            near = front & (cell <= MAX_METRES_PER_PIXEL)
        if not near.any():
            raise ValueError(
                f"camera {name}: the homography maps its ROI ({len(px)} sampled pixels) to infinity or behind "
                f"the horizon ({int(front.sum())} in front of the camera, none within {MAX_METRES_PER_PIXEL} m per pixel)"
            )
        view.all_footprint = g[front]
        view.all_area = _cell_area(view, frame, px[front], step)
        view.all_cell = cell[front]
        _limit_footprint(view, MAX_METRES_PER_PIXEL)
    return view


def _limit_footprint(view: _View, max_cell: float) -> None:
    """The footprint: the ROI samples no farther than ``max_cell`` metres per pixel."""
    keep = view.all_cell <= max_cell
    if keep.any():
        view.footprint, view.area, view.cell = view.all_footprint[keep], view.all_area[keep], view.all_cell[keep]


def _tracked_footprint(view: _View, cells: np.ndarray) -> None:
    """The footprint reaches as far as the camera's tracklets are seen, when that is beyond
    :data:`MAX_METRES_PER_PIXEL`: :data:`TRACKED_MARGIN` times the :data:`TRACKED_QUANTILE`
    of their entry and exit points' metres per pixel (with at least
    :data:`MIN_REGION_POINTS` points)."""
    if len(cells) >= MIN_REGION_POINTS and len(view.all_cell):
        _limit_footprint(view, max(MAX_METRES_PER_PIXEL, TRACKED_MARGIN * float(np.quantile(cells, TRACKED_QUANTILE))))


def _in_view(view: _View, frame: _Frame, xy_m: np.ndarray) -> np.ndarray:
    """``(N,) bool``: ground points (metres) that ``view`` sees inside its frame, ROI and
    footprint."""
    cam = view.camera
    if cam.frame_size is None or not len(xy_m):
        return np.zeros(len(xy_m), bool)
    if view.degrees and frame.origin is None:
        return np.zeros(len(xy_m), bool)
    ground = frame.from_metres(xy_m, view.degrees)
    px, w = _project(np.asarray(cam.homography, np.float64), ground)
    # the pixel's back-projection must be in front of the camera too
    _, w_back = _project(view.inverse, np.nan_to_num(px))
    width, height = cam.frame_size
    ok = np.isfinite(px).all(axis=1) & (np.sign(w_back) == view.front)
    ok &= (px[:, 0] >= 0) & (px[:, 0] < width) & (px[:, 1] >= 0) & (px[:, 1] < height)
    if cam.roi_mask is not None and ok.any():
        idx = np.flatnonzero(ok)
        ok[idx] = cam.roi_mask[px[idx, 1].astype(int), px[idx, 0].astype(int)]
    if ok.any() and len(view.cell):
        # and near enough to be in the footprint (not in the far rows it leaves out)
        idx = np.flatnonzero(ok)
        with np.errstate(invalid="ignore"):
            ok[idx] = _ground(view, frame, px[idx])[2] <= view.cell.max()
    return ok


def _overlap(va: _View, vb: _View, frame: _Frame) -> tuple[float, float]:
    """Ground area (m^2) the two footprints share, and the extent (m) of the shared part."""
    if not len(va.footprint) or not len(vb.footprint):
        return 0.0, 0.0
    (lo_a, hi_a), (lo_b, hi_b) = va.bounds(), vb.bounds()
    if hi_a[0] < lo_b[0] or hi_a[1] < lo_b[1] or hi_b[0] < lo_a[0] or hi_b[1] < lo_a[1]:
        return 0.0, 0.0  # bounding boxes apart: nothing shared
    b_in_a = _in_view(va, frame, vb.footprint)
    a_in_b = _in_view(vb, frame, va.footprint)
    area = max(float(vb.area[b_in_a].sum()), float(va.area[a_in_b].sum()))
    shared = np.concatenate([vb.footprint[b_in_a], va.footprint[a_in_b]])
    extent = float(np.hypot(*np.ptp(shared, axis=0))) if len(shared) else 0.0
    return area, extent


@dataclass
class _Regions:
    """A camera's exit and entry regions as used for distances (its footprint when it has
    fewer than :data:`MIN_REGION_POINTS` points), subsampled, with a k-d tree of entries."""

    exits: np.ndarray  # (<= MAX_REGION_POINTS, 2) metres
    entries: np.ndarray
    entry_tree: cKDTree
    exits_far: np.ndarray  # (<= FAR_POINTS, 2): for the far quantile of all pairs
    entries_far: np.ndarray
    reach: np.ndarray  # (<= MAX_REGION_POINTS, 2): all the ground the camera might see, for the hard bound
    reach_tree: cKDTree

    @classmethod
    def of(cls, view: _View) -> "_Regions":
        exits = view.exit if len(view.exit) >= MIN_REGION_POINTS else view.footprint
        entries = view.entry if len(view.entry) >= MIN_REGION_POINTS else view.footprint
        exits, entries = _subsample(exits, MAX_REGION_POINTS), _subsample(entries, MAX_REGION_POINTS)
        with np.errstate(invalid="ignore"):
            seen = view.all_footprint[view.all_cell <= MAX_TRACKED_METRES_PER_PIXEL] if len(view.all_cell) else view.footprint
        reach = _subsample(np.concatenate([seen, view.footprint, view.entry, view.exit]), MAX_REGION_POINTS)
        return cls(exits, entries, cKDTree(entries), _subsample(exits, FAR_POINTS), _subsample(entries, FAR_POINTS),
                   reach, cKDTree(reach))


def _prior_link(ra: _Regions, rb: _Regions, shared: tuple[float, float], cfg: LinksConfig) -> Link:
    """The prior link from the camera of ``ra`` to that of ``rb`` (different cameras);
    ``shared``: their footprints' shared area (m^2) and its extent (m), see :func:`_overlap`."""
    nearest, _ = rb.entry_tree.query(ra.exits)
    d_near = float(np.quantile(nearest, NEAR_QUANTILE))
    # the hard bound's distance: the nearest the two views may come (all the ground each
    # might see, up to 10 m per pixel), or the regions if nearer: a detector that finds
    # vehicles in part of a view only must not push the bound past what the ground allows
    d_min = min(float(nearest.min()), float(rb.reach_tree.query(ra.reach)[0].min()))
    x, e = ra.exits_far, rb.entries_far
    d_far = float(np.quantile(np.hypot(x[:, None, 0] - e[None, :, 0], x[:, None, 1] - e[None, :, 1]), FAR_QUANTILE))
    hi = d_far / cfg.min_speed_mps + cfg.stop_time_s
    area, extent = shared
    if area >= MIN_OVERLAP_M2:
        lo = -(extent / cfg.min_speed_mps + cfg.stop_time_s)
        hard = -math.inf
        overlap = True
    else:
        lo = d_near / cfg.max_speed_mps
        # views that may come within the position slack of each other may share ground
        # out of the footprints' reach: no speed bound then
        hard = (d_min - POSITION_SLACK_M) / (HARD_SPEED_FACTOR * cfg.max_speed_mps) - CLOCK_SLACK_S
        hard = hard if d_min > POSITION_SLACK_M else -math.inf
        overlap = False
    spread = max(MIN_SPREAD_S, PRIOR_SPREAD_FRAC * (hi - lo))
    return Link(lo, hi, spread, hard, overlap, SOURCE_PRIOR, 0, d_near)


def _fragment_link(cfg: LinksConfig, source: int = SOURCE_PRIOR) -> Link:
    """Two fragments of one visit to one camera (handovers are the score's own rule)."""
    return Link(0.0, cfg.fragment_gap_s, max(MIN_SPREAD_S, PRIOR_SPREAD_FRAC * cfg.fragment_gap_s), -math.inf, False, source)


def _endpoint_excess(width: float, bound: float, n: float, qs: Sequence[float]) -> tuple[float, ...]:
    """Quantiles ``qs`` of how far a uniform distribution's end lies beyond the farthest of
    ``n`` draws spanning ``width`` seconds, with a flat prior over ``[0, bound]``: the
    likelihood of an end ``e`` beyond is ``(width + e)^-n``, so the posterior CDF is
    ``(1 - (1 + e/w)^(1-n)) / (1 - (1 + bound/w)^(1-n))`` (log-uniform for n = 1)."""
    if bound <= 0:
        return tuple(0.0 for _ in qs)
    w = max(width, MIN_SPREAD_S)
    out = []
    for q in qs:
        if abs(n - 1.0) < 1e-9:
            e = w * math.exp(q * math.log1p(bound / w)) - w
        else:
            r = math.exp((1.0 - n) * math.log1p(bound / w))  # (1 + bound/w)^(1-n)
            e = w * (1.0 - q * (1.0 - r)) ** (1.0 / (1.0 - n)) - w
        out.append(min(max(e, 0.0), bound))
    return tuple(out)


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(qs, cum, v)


# ---------------------------------------------------------------------------- all links
@dataclass(frozen=True, eq=False)
class CameraLinks:
    """Links of every scenario: ``links[scenario][(src, dst)]`` (camera ids), plus the
    footprints and entry/exit regions (metres) they came from.

    Attributes:
        links: ``{scenario: {(src, dst): Link}}``.
        cfg: the physical bounds used.
        camera_keys: the camera codes of the table the links were built on (``(scenario,
            camera_id)`` per code; empty when not built on a table), for :meth:`learned`.
        unknown: ``(scenario, camera_id)`` of cameras with no prior link (no calibration, or
            neither a frame size nor a tracklet to place on the ground).
        footprints, entries, exits: ``{(scenario, camera_id): (P, 2) float64}`` ground
            points, metres (prior links only).
        base: the links before any learning (prior, overridden by file and labelled
            links), the starting point and the prior of every :meth:`learned` call;
            ``None``: ``links``.
    """

    links: Mapping[str, Mapping[tuple[str, str], Link]]
    cfg: LinksConfig = field(default_factory=LinksConfig)
    camera_keys: tuple[tuple[str, str], ...] = ()
    unknown: tuple[tuple[str, str], ...] = ()
    footprints: Mapping[tuple[str, str], np.ndarray] = field(default_factory=dict)
    entries: Mapping[tuple[str, str], np.ndarray] = field(default_factory=dict)
    exits: Mapping[tuple[str, str], np.ndarray] = field(default_factory=dict)
    base: Mapping[str, Mapping[tuple[str, str], Link]] | None = None

    def link(self, scenario: str, src: str, dst: str) -> Link | None:
        """The link ``src -> dst`` of ``scenario``, or ``None``."""
        return self.links.get(scenario, {}).get((src, dst))

    # ------------------------------------------------------------------ prior
    @classmethod
    def from_geometry(
        cls,
        cameras: Sequence[Camera],
        table: TrackletTable | None = None,
        cfg: LinksConfig | None = None,
        units: Units = "auto",
    ) -> "CameraLinks":
        """Prior links from calibration, ROI and where the table's tracklets enter and leave
        (no labels). Cameras without a homography get no link (a warning names them).

        Args:
            cameras: every camera of the run (each scenario's links are between its cameras).
            table: the run's tracklets (entry and exit regions); ``None``: footprints only.
            units: ground units of the homographies (see :class:`~mct.associate.motion.GroundMotion`).

        Raises:
            ValueError: naming the camera, when its homography is singular or sends its
                whole ROI beyond the horizon.
        """
        cfg = cfg or LinksConfig()
        frames: dict[str, _Frame] = {}
        views: dict[tuple[str, str], _View] = {}
        unknown: list[tuple[str, str]] = []  # no calibration
        unplaced: list[tuple[str, str]] = []  # calibration, but nothing to place on the ground
        code = {key: i for i, key in enumerate(table.camera_keys)} if table is not None else {}
        if table is not None:  # rows of each camera code, without a pass over the table per camera
            by_camera = np.argsort(table.camera, kind="stable")
            bounds = np.searchsorted(table.camera[by_camera], np.arange(len(table.camera_keys) + 1))
        for cam in cameras:
            if cam.homography is None:
                unknown.append(cam.key)
                continue
            frame = frames.setdefault(cam.scenario, _Frame())
            if table is not None and cam.key in code:
                rows = by_camera[bounds[code[cam.key]] : bounds[code[cam.key] + 1]]
            else:
                rows = np.zeros(0, np.int64)
            entry_px = table.entry_xy[rows].astype(np.float64) if len(rows) else np.zeros((0, 2))
            exit_px = table.exit_xy[rows].astype(np.float64) if len(rows) else np.zeros((0, 2))
            view = _make_view(cam, frame, units, entry_px)
            g, ok, entry_cell = _ground(view, frame, entry_px)
            with np.errstate(invalid="ignore"):
                ok &= entry_cell <= MAX_TRACKED_METRES_PER_PIXEL
            view.entry = g[ok]
            g, ok_exit, exit_cell = _ground(view, frame, exit_px)
            with np.errstate(invalid="ignore"):
                ok_exit &= exit_cell <= MAX_TRACKED_METRES_PER_PIXEL
            view.exit = g[ok_exit]
            _tracked_footprint(view, np.concatenate([entry_cell[ok], exit_cell[ok_exit]]))
            if not len(view.footprint):  # no frame size: the tracklets' points are all we have
                view.footprint = np.concatenate([view.entry, view.exit])
                view.area = np.zeros(len(view.footprint))
            if not len(view.footprint):
                log.warning("camera %s/%s: no frame size and no tracklet on the ground: no camera links; "
                            "appearance and a wide time window only there", *cam.key)
                unplaced.append(cam.key)
                continue
            views[cam.key] = view
        if unknown:
            log.warning(
                "camera links: no calibration for %s: appearance and a wide time window only there",
                ", ".join(f"{s}/{c}" for s, c in unknown),
            )
        links: dict[str, dict[tuple[str, str], Link]] = {}
        regions = {key: _Regions.of(v) for key, v in views.items()}
        keys = list(views)
        for i, (sa, ca) in enumerate(keys):
            out = links.setdefault(sa, {})
            out[(ca, ca)] = _fragment_link(cfg)
            for sb, cb in keys[i + 1 :]:
                if sb != sa:
                    continue
                shared = _overlap(views[(sa, ca)], views[(sb, cb)], frames[sa])
                out[(ca, cb)] = _prior_link(regions[(sa, ca)], regions[(sb, cb)], shared, cfg)
                out[(cb, ca)] = _prior_link(regions[(sb, cb)], regions[(sa, ca)], shared, cfg)
        for scen, ls in links.items():
            for (src, dst), lk in sorted(ls.items()):
                if src != dst:
                    log.debug("prior link %s %s->%s: [%.1f, %.1f] s, hard %.1f s, overlap %s, %.0f m",
                              scen, src, dst, lk.lo_s, lk.hi_s, lk.min_gap_s, lk.overlap, lk.distance_m)
        return cls(
            links=links,
            cfg=cfg,
            camera_keys=tuple(table.camera_keys) if table is not None else (),
            unknown=tuple(unknown + unplaced),
            footprints={k: v.footprint for k, v in views.items()},
            entries={k: v.entry for k, v in views.items()},
            exits={k: v.exit for k, v in views.items()},
        )

    @classmethod
    def for_run(
        cls,
        cameras: Sequence[Camera],
        table: TrackletTable,
        cfg: LinksConfig | None = None,
        topology: TopologyFile | None = None,
        units: Units = "auto",
    ) -> "CameraLinks":
        """The links a run starts from: the prior from geometry, overridden by ``topology``
        (a file or labelled links) for every pair it has a link for. Raises as
        :meth:`from_geometry` and :meth:`from_topology`."""
        links = cls.from_geometry(cameras, table, cfg, units)
        if topology is not None:
            links = links.overridden_by(cls.from_topology(topology, cameras, cfg))
        return links

    # ------------------------------------------------------------------ file / labelled
    @classmethod
    def from_topology(cls, topology: TopologyFile, cameras: Sequence[Camera], cfg: LinksConfig | None = None) -> "CameraLinks":
        """Links of a topology file (hand-written, or ``mct fit-topology``), for ``cameras``.

        A scenario's own entry applies, else the ``"*"`` entry. Several transitions of one
        camera pair (different zones) become one window covering all of them. Pairs not
        listed, of cameras the file names: ``unlisted: forbid`` makes them links with no
        direct gap allowed (``min_gap_s = +inf``); ``allow`` with ``max_unlisted_gap_s > 0``
        a window ``[-max, max]``; ``allow`` alone leaves them to the other sources. A
        camera the file never names is left to the other sources (with a warning).

        Raises:
            ValueError: a transition or zone names a camera that is not among ``cameras``
                (of that scenario; for ``"*"``, of any scenario it applies to).
        """
        cfg = cfg or LinksConfig()
        by_scenario: dict[str, list[str]] = {}
        for cam in cameras:
            by_scenario.setdefault(cam.scenario, []).append(cam.camera_id)
        for name in topology.scenarios:
            if name != "*" and name not in by_scenario:
                log.warning("topology scenario %s is not among the run's scenarios (%s): ignored", name, ", ".join(sorted(by_scenario)))
        uses_star = [s for s in by_scenario if s not in topology.scenarios]
        for name, scen in topology.scenarios.items():
            if name == "*":
                known_ids = {c for s in uses_star for c in by_scenario[s]}
            elif name in by_scenario:
                known_ids = set(by_scenario[name])
            else:
                continue
            if name == "*" and not uses_star:
                continue
            named = [(f"transitions[{i}].src", t.src) for i, t in enumerate(scen.transitions)]
            named += [(f"transitions[{i}].dst", t.dst) for i, t in enumerate(scen.transitions)]
            named += [(f"cameras.{c}", c) for c in scen.cameras]
            bad = [f"{where}: {cam}" for where, cam in named if cam not in known_ids]
            if bad:
                raise ValueError(
                    f"topology scenarios.{name}: unknown camera(s) {'; '.join(bad)} "
                    f"(the run's cameras there: {', '.join(sorted(known_ids))})"
                )
        links: dict[str, dict[tuple[str, str], Link]] = {}
        for s_name, ids in by_scenario.items():
            scen = topology.scenarios.get(s_name, topology.scenarios.get("*"))
            if scen is None:
                continue
            out = links.setdefault(s_name, {})
            for (src, dst), ts in _group(scen).items():
                if src not in ids or dst not in ids:
                    continue  # '*' entries for cameras this scenario lacks
                out[(src, dst)] = _link_of(ts)
            # the unlisted rule covers the cameras the file speaks of; a camera it never
            # names keeps the links of the other sources (a file written for some cameras
            # must not cut the others off)
            named = {t.src for t in scen.transitions} | {t.dst for t in scen.transitions} | set(scen.cameras)
            covered = [c for c in ids if c in named]
            silent = sorted(set(ids) - named)
            if silent and (scen.unlisted == "forbid" or scen.max_unlisted_gap_s > 0):
                log.warning("topology of %s says nothing of camera(s) %s: their links come from geometry and the run",
                            s_name, ", ".join(silent))
            if scen.unlisted == "forbid":
                for src in covered:
                    for dst in covered:
                        out.setdefault((src, dst), Link(0.0, 0.0, MIN_SPREAD_S, math.inf, False, SOURCE_FILE, fixed=True))
            elif scen.max_unlisted_gap_s > 0:
                g = scen.max_unlisted_gap_s
                for src in covered:
                    for dst in covered:
                        out.setdefault((src, dst), Link(-g, g, max(MIN_SPREAD_S, PRIOR_SPREAD_FRAC * 2 * g), -math.inf, False, SOURCE_FILE,
                                                        fixed=True))
        return cls(links=links, cfg=cfg)

    def overridden_by(self, other: "CameraLinks") -> "CameraLinks":
        """These links with ``other``'s replacing them per camera pair (a file or labelled
        links over prior or learned ones); footprints and regions are kept."""
        merged = {s: dict(ls) for s, ls in self.links.items()}
        base = {s: dict(ls) for s, ls in (self.base if self.base is not None else self.links).items()}
        for s, ls in other.links.items():
            merged.setdefault(s, {}).update(ls)
            base.setdefault(s, {}).update(ls)
        return replace(self, links=merged, base=base, camera_keys=self.camera_keys or other.camera_keys)

    # ------------------------------------------------------------------ learned
    def learned(
        self,
        s: np.ndarray,
        a: np.ndarray,
        b: np.ndarray,
        gap_s: np.ndarray,
        weight: np.ndarray | None = None,
        table: TrackletTable | None = None,
    ) -> "CameraLinks":
        """Links refitted from confident matches: row ``p`` says a vehicle went from camera
        code ``a[p]`` to ``b[p]`` of scenario code ``s[p]`` with gap ``gap_s[p]`` seconds.

        Each call refits from :attr:`base` (the links before any learning), so that a
        second pass of self-training learns from its own matches, not from the first
        pass's windows; pairs with too few matches keep their base link.

        Per directed camera pair with at least :data:`MIN_LEARN_COUNT` (weighted) matches
        above its hard bound: the data's window is the :data:`LEARN_QUANTILES` of the gaps.
        Each of its edges may lie further out, up to the prior window's edge: the gaps are
        taken as draws of a uniform over the true window, whose end beyond the data's has
        the posterior ``(width + e)^-n`` over ``[0, room to the prior's edge]`` (a flat
        prior there; :func:`_endpoint_excess`), with ``n`` discounted to
        ``n^2 / (n + prior_count)`` against wrong matches. The learned edge is the
        posterior median, the softness the median-to-90% distance (at least the spacing
        ``width / (n + 1)`` of n draws): many matches give a tight window, few a wide and
        soft one; never narrower than the data's window, never beyond the prior's nor
        below the hard bound. A pair with no prior window takes the data's, its softness
        scaled by ``1 + prior_count / n``. One camera with
        itself is never learned (fragments are the tracker's business), nor are labelled
        links and links read from a file (:attr:`Link.fixed`).

        Args:
            s, a, b: ``(P,)`` scenario and camera codes of ``table`` (default: the table
                the links were built on).
            gap_s: ``(P,)`` gaps, seconds.
            weight: ``(P,)`` confidence of each match in ``[0, 1]`` (``None``: 1 each).
        """
        keys = tuple(table.camera_keys) if table is not None else self.camera_keys
        if not keys:
            raise ValueError("CameraLinks.learned: camera codes unknown (pass the table the codes refer to)")
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        gap = np.asarray(gap_s, np.float64)
        w = np.ones(len(gap)) if weight is None else np.asarray(weight, np.float64)
        if not (len(a) == len(b) == len(gap) == len(w) == len(np.asarray(s))):
            raise ValueError(f"CameraLinks.learned: s, a, b, gap_s, weight differ in length ({len(np.asarray(s))}, {len(a)}, {len(b)}, {len(gap)}, {len(w)})")
        base = self.base if self.base is not None else self.links
        merged = {sc: dict(ls) for sc, ls in base.items()}
        n0 = self.cfg.prior_count
        usable = (w > 0) & np.isfinite(gap)
        pair = (a * len(keys) + b)[usable]
        gap, w = gap[usable], w[usable]
        order = np.argsort(pair, kind="stable")
        pair, gap, w = pair[order], gap[order], w[order]
        starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]]) if len(pair) else np.zeros(0, np.int64)
        for lo_row, hi_row in zip(starts.tolist(), np.r_[starts[1:], len(pair)].tolist()):
            p = int(pair[lo_row])
            ca, cb = keys[p // len(keys)], keys[p % len(keys)]
            if ca[0] != cb[0] or ca[1] == cb[1]:
                continue
            scen, src, dst = ca[0], ca[1], cb[1]
            prior = merged.get(scen, {}).get((src, dst))
            if prior is not None and (prior.fixed or prior.source >= SOURCE_LABELLED):
                continue  # labelled links and links of a file are not relearned
            g, wp = gap[lo_row:hi_row], w[lo_row:hi_row]
            if prior is not None:
                keep = g >= prior.min_gap_s
                g, wp = g[keep], wp[keep]
            n = float(wp.sum())
            if n < MIN_LEARN_COUNT:
                continue
            lo_d, hi_d = _weighted_quantiles(g, wp, LEARN_QUANTILES)
            spread_d = max(MIN_SPREAD_S, (hi_d - lo_d) / (n + 1.0))
            if prior is None:
                lo, hi, spread = lo_d, hi_d, spread_d * (1.0 + n0 / n)
                hard, overlap = -math.inf, bool(lo_d < 0)
            else:
                # each edge: the posterior of a uniform's endpoint beyond the data's, flat
                # over the prior window (see _endpoint_excess), on n discounted by the
                # prior's pseudo-count; its median is the edge, its spread the softness
                n_eff = n * n / (n + n0)
                width = hi_d - lo_d
                hard, overlap = prior.min_gap_s, prior.overlap
                up50, up90 = _endpoint_excess(width, prior.hi_s - hi_d, n_eff, (0.5, 0.9))
                down_to = max(prior.lo_s, hard)
                dn50, dn90 = _endpoint_excess(width, lo_d - down_to, n_eff, (0.5, 0.9))
                lo, hi = lo_d - dn50, hi_d + up50
                spread = max(spread_d, 0.5 * ((up90 - up50) + (dn90 - dn50)))
                # overlap is the footprints' word: a few negative gaps (clock offsets, a
                # wrong match) do not make two views share ground
                lo = max(lo, hard)
            merged.setdefault(scen, {})[(src, dst)] = Link(
                float(lo), float(hi), float(spread), hard, overlap, SOURCE_LEARNED, int(round(n)),
                prior.distance_m if prior is not None else math.nan,
            )
            log.debug("learned link %s %s->%s from %.1f matches: [%.1f, %.1f] s", scen, src, dst, n, lo, hi)
        return replace(self, links=merged, base=base, camera_keys=keys)

    # ------------------------------------------------------------------ out
    def compile(self, table: TrackletTable, horizon_s: np.ndarray | None = None) -> LinkArrays:
        """:class:`LinkArrays` for ``table``'s scenario and camera codes.

        Args:
            horizon_s: ``(S,)`` the different-vehicles gap horizon per scenario code (the
                candidate pairs' gaps lie within it); default: the links' reach (the
                largest window edge plus 3 spreads) where every camera pair of the
                scenario has a link, else its time span in the table; at most the time
                span, at least 1 s.
        """
        n_s, n_c = len(table.scenarios), len(table.camera_keys)
        shape = (n_s, n_c, n_c)
        lo, hi = np.full(shape, np.nan), np.full(shape, np.nan)
        spread, hard = np.ones(shape), np.full(shape, -np.inf)
        overlap, known = np.zeros(shape, bool), np.zeros(shape, bool)
        source = np.zeros(shape, np.int8)
        scen_code = {name: i for i, name in enumerate(table.scenarios)}
        for i, (sa, ca) in enumerate(table.camera_keys):
            for j, (sb, cb) in enumerate(table.camera_keys):
                if sa != sb:
                    continue
                lk = self.link(sa, ca, cb)
                if lk is None:
                    continue
                k = (scen_code[sa], i, j)
                lo[k], hi[k], spread[k], hard[k] = lk.lo_s, lk.hi_s, lk.spread_s, lk.min_gap_s
                overlap[k], known[k], source[k] = lk.overlap, True, lk.source
        if horizon_s is None:
            horizon_s = np.ones(n_s)
            usable = known & (hard < np.inf)
            edge = np.where(usable, np.maximum(np.abs(lo), np.abs(hi)) + 3 * spread, 0.0)
            for i in range(n_s):
                rows = table.scenario == i
                if rows.any():
                    span = float(table.end_s[rows].max() - table.start_s[rows].min())
                    cams = np.unique(table.camera[rows])
                    # a camera pair with no link is searched over the whole span
                    all_known = bool(known[i][np.ix_(cams, cams)].all())
                    reach = float(edge[i].max()) if all_known else math.inf
                    horizon_s[i] = max(1.0, min(span, reach))
        return LinkArrays(lo, hi, spread, hard, overlap, known, source, np.asarray(horizon_s, np.float64))

    def to_topology(self) -> TopologyFile:
        """The links as a topology file (write it with
        :func:`mct.associate.topology.write_topology`): one transition per link, with its
        ``source``, ``count``, ``spread_s``, ``hard_min_gap_s`` and ``overlap``, and
        ``unlisted: allow`` (pairs with no link are left to the reader's own sources) unless
        some pair is forbidden, then ``unlisted: forbid`` and the forbidden pairs are left out.
        """
        scenarios: dict[str, ScenarioTopology] = {}
        for scen, ls in sorted(self.links.items()):
            transitions = []
            forbid = False
            for (src, dst), lk in sorted(ls.items()):
                if lk.forbidden:
                    forbid = True
                    continue
                transitions.append(
                    Transition(
                        src=src, dst=dst, min_gap_s=round(lk.lo_s, 3), max_gap_s=round(lk.hi_s, 3),
                        exit_zone=lk.exit_zone, entry_zone=lk.entry_zone, count=lk.count,
                        spread_s=round(lk.spread_s, 3),
                        hard_min_gap_s=round(lk.min_gap_s, 3) if math.isfinite(lk.min_gap_s) else None,
                        overlap=lk.overlap, source=SOURCE_NAMES.get(lk.source, "file"),  # type: ignore[arg-type]
                    )
                )
            scenarios[scen] = ScenarioTopology(transitions=transitions, unlisted="forbid" if forbid else "allow")
        return TopologyFile(scenarios=scenarios)


def _group(scen: ScenarioTopology) -> dict[tuple[str, str], list[Transition]]:
    out: dict[tuple[str, str], list[Transition]] = {}
    for t in scen.transitions:
        out.setdefault((t.src, t.dst), []).append(t)
    return out


def _link_of(ts: list[Transition]) -> Link:
    """One link covering the windows of a camera pair's transitions."""
    lo = min(t.min_gap_s for t in ts)
    hi = max(t.max_gap_s for t in ts)
    spreads = [t.spread_s for t in ts if t.spread_s is not None]
    spread = max(spreads) if spreads else max(MIN_SPREAD_S, PRIOR_SPREAD_FRAC * (hi - lo))
    hards = [t.hard_min_gap_s for t in ts]
    hard = -math.inf if any(h is None for h in hards) else min(h for h in hards if h is not None)
    overlaps = [t.overlap for t in ts if t.overlap is not None]
    overlap = any(overlaps) if overlaps else lo < 0
    zones = {(t.exit_zone, t.entry_zone) for t in ts}
    exit_zone, entry_zone = zones.pop() if len(zones) == 1 else ("", "")
    if len(ts) > 1:
        log.debug("topology %s->%s: %d transitions taken as one window [%.1f, %.1f] s", ts[0].src, ts[0].dst, len(ts), lo, hi)
    return Link(lo, hi, spread, hard, bool(overlap), _SOURCE_CODE[ts[0].source], sum(t.count for t in ts), math.nan, exit_zone, entry_zone,
                fixed=True)
