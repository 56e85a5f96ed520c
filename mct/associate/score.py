"""One score per candidate pair: the evidence that two tracklets are one vehicle, summed as
log-likelihood ratios (same vehicle vs different vehicles).

Terms (each 0 when it has nothing to say; see docs/association.md):

* **appearance** — the cosine of the two features through :class:`AppearanceModel`: two
  normal densities on Fisher's ``z = atanh(cosine)``, one for different vehicles (fitted on
  pairs known to be different: two tracklets seen at once in one camera) and one for the
  same vehicle (fitted with EM on the candidate pairs as a two-component mixture whose
  different-vehicle component is held fixed; or on labelled pairs). The mixture weight is
  the prior share of true pairs among candidates, hence the prior log-odds of a pair.
* **travel_time** — the gap between the two through the camera link
  (:meth:`mct.associate.links.LinkArrays.gap_log_lr`): a window with soft edges over a
  uniform horizon; ``-inf`` below the link's ``min_gap_s`` (faster than any vehicle).
* **direction** — heading at the exit of the earlier tracklet and at the entry of the later
  one against the step between them on the ground (views apart), or against each other
  (views seen at once): a von Mises density of the angle (concentration ``kappa``) over a
  uniform one, :class:`DirectionModel`.
* **colocation** — two tracklets of different cameras seen at once: the median ground
  distance between their tracks, a Rayleigh density of scale ``sigma_m`` (one vehicle: two
  views put its ground point a few metres apart) over the density of the distance between
  two points spread over a disc of radius ``radius_m`` (different vehicles),
  :class:`ColocationModel`.

Terms are added with weight 1 by default: each is a log-likelihood ratio in its own right,
so their sum is the log-likelihood ratio of the pair if the cues are independent given
same/different (they are close to it: what a vehicle looks like says nothing of when it
drives). Labelled tracks can fit other weights (:mod:`mct.associate.labelled`, a topology
file's ``score`` section): a term over-confident on some kind of scene then counts less.
The sum plus the prior log-odds is the posterior log-odds of the pair; one threshold cuts it.

The per-pair arithmetic is one numba kernel (:func:`pair_log_lr`), used both for the
candidate pairs and inside the clustering loop (:mod:`mct.associate.clustering`), so a pair
is scored the same way wherever it is met.
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Sequence

import numba
import numpy as np
from scipy.special import i0e

from mct.associate.links import OUTLIER_RATE, LinkArrays
from mct.associate.motion import overlap_median

__all__ = [
    "TERMS",
    "AppearanceModel",
    "DirectionModel",
    "ColocationModel",
    "PairModel",
    "LinkTable",
    "pair_log_lr",
    "score_pairs",
]

log = logging.getLogger(__name__)

#: the evidence terms, in the order of ``association.terms``.
TERMS = ("appearance", "travel_time", "direction", "colocation")

#: no single term may say more than this (log odds of about 1 : 10^8): a fitted density's
#: far tail is not evidence.
TERM_CAP = 20.0
#: cosines are clipped to +-this before atanh (|z| <= 3.8).
_COS_CLIP = 0.999
#: steps between two tracklets shorter than this (metres) give no direction: the bottom
#: centre of a box wanders a few metres as the view of a vehicle changes.
MIN_STEP_M = 10.0
#: seen together for at least this long (seconds) before co-location is judged: a second
#: or two of frames makes the median distance robust to one bad box.
MIN_TOGETHER_S = 2.0


# ---------------------------------------------------------------------------- appearance
def _z(cos: np.ndarray) -> np.ndarray:
    return np.arctanh(np.clip(np.asarray(cos, np.float64), -_COS_CLIP, _COS_CLIP))


def _norm_logpdf(z: np.ndarray, mean: float, std: float) -> np.ndarray:
    return -0.5 * ((z - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))


@dataclass(frozen=True)
class AppearanceModel:
    """Cosine similarity -> log-likelihood ratio, through two normals on ``z = atanh(cos)``.

    Attributes:
        neg_mean, neg_std: different vehicles.
        pos_mean, pos_std: the same vehicle.
        prior: share of candidate pairs that are one vehicle (the mixture weight), in (0, 1).
        source: ``"scene"`` (known negatives + EM on the candidates), ``"labels"``,
            ``"generic"`` (:data:`GENERIC`, for scenes too small to fit) or ``"off"`` (ratio 0).
        n_negatives, n_pairs: how many pairs each part was fitted on.

    The ratio is made monotone in the cosine: where the two parabolas of the log densities
    would turn the ratio back up at low cosine (or down at high cosine), it is held at its
    value at the turning point.
    """

    neg_mean: float = 0.0
    neg_std: float = 0.3
    pos_mean: float = 1.0
    pos_std: float = 0.3
    prior: float = 0.5
    source: str = "off"
    n_negatives: int = 0
    n_pairs: int = 0

    @property
    def params(self) -> np.ndarray:
        """``(6,) float64`` the kernel's view: neg mean/std, pos mean/std, z clamp lo/hi."""
        lo, hi = -np.inf, np.inf
        a = 0.5 / self.neg_std**2 - 0.5 / self.pos_std**2  # coefficient of z^2 in the ratio
        if abs(a) > 1e-9:
            vertex = (self.neg_mean / self.neg_std**2 - self.pos_mean / self.pos_std**2) / (2 * a)
            if a > 0:
                lo = vertex  # opens upwards: below the vertex the ratio would rise again
            else:
                hi = vertex  # opens downwards: above the vertex it would fall again
        return np.array([self.neg_mean, self.neg_std, self.pos_mean, self.pos_std, lo, hi], np.float64)

    @property
    def prior_log_odds(self) -> float:
        p = min(max(self.prior, 1e-6), 1 - 1e-6)
        return math.log(p / (1 - p))

    def log_lr(self, cos: np.ndarray) -> np.ndarray:
        """``(P,) float64`` log-likelihood ratio of cosines ``cos`` (any shape)."""
        p = self.params
        z = np.clip(_z(cos), p[4], p[5])
        out = _norm_logpdf(z, p[2], p[3]) - _norm_logpdf(z, p[0], p[1])
        return np.clip(out, -TERM_CAP, TERM_CAP)

    @classmethod
    def fit_scene(cls, negative_cos: np.ndarray, candidate_cos: np.ndarray, iterations: int = 200) -> "AppearanceModel":
        """Fit from the run itself.

        Args:
            negative_cos: ``(M,)`` cosines of pairs known to be different vehicles (two
                tracklets seen at once in one camera, found the way candidates are found).
            candidate_cos: ``(P,)`` cosines of the candidate pairs (a mixture of both).
            iterations: EM steps at most (stops when the weight moves less than 1e-6).

        Returns:
            The model; ``source="off"`` (all ratios 0) when either set has fewer than 20
            pairs or the mixture finds no component above the negatives.
        """
        neg = _z(negative_cos)
        cand = _z(candidate_cos)
        if len(neg) < MIN_FIT_PAIRS or len(cand) < MIN_FIT_PAIRS:
            log.warning("appearance calibration: %d known-different pairs, %d candidates: too few to fit, the generic "
                        "calibration is used (even odds at cosine %.2f)", len(neg), len(cand), GENERIC.even_cosine())
            return replace(GENERIC, n_negatives=len(neg), n_pairs=len(cand))
        m0, s0 = float(neg.mean()), max(float(neg.std()), 0.02)
        f0 = np.exp(_norm_logpdf(cand, m0, s0))
        # start: the candidates above the negatives' 95th percentile
        top = cand[cand > m0 + 1.645 * s0]
        if len(top) < 5:
            top = np.sort(cand)[-max(5, len(cand) // 10):]
        prior, m1, s1 = 0.3, float(top.mean()), max(float(top.std()), 0.05)
        for _ in range(iterations):
            f1 = np.exp(_norm_logpdf(cand, m1, s1))
            num = prior * f1
            r = num / np.maximum(num + (1 - prior) * f0, 1e-300)
            w = float(r.sum())
            if w < 1.0:
                break
            new_prior = w / len(cand)
            m1 = float((r * cand).sum() / w)
            s1 = max(math.sqrt(float((r * (cand - m1) ** 2).sum() / w)), 0.02)
            done = abs(new_prior - prior) < 1e-6
            prior = new_prior
            if done:
                break
        if m1 <= m0 or prior <= 0:
            log.warning("appearance calibration: no same-vehicle component above the known-different pairs; the generic calibration is used")
            return replace(GENERIC, n_negatives=len(neg), n_pairs=len(cand))
        model = cls(m0, s0, m1, s1, float(min(max(prior, 1e-4), 1 - 1e-4)), "scene", len(neg), len(cand))
        log.info(
            "appearance calibration (scene): different z %.3f +- %.3f (%d pairs), same z %.3f +- %.3f, "
            "prior %.3f of %d candidates; log-LR 0 at cosine %.3f",
            m0, s0, len(neg), m1, s1, prior, len(cand), model.even_cosine(),
        )
        return model

    @classmethod
    def fit_labelled(cls, positive_cos: np.ndarray, negative_cos: np.ndarray, prior: float) -> "AppearanceModel":
        """From pairs whose truth is known: ``(P,)`` same-vehicle and ``(M,)`` different-vehicle cosines."""
        pos, neg = _z(positive_cos), _z(negative_cos)
        if len(pos) < 5 or len(neg) < 5:
            raise ValueError(f"appearance calibration: need at least 5 pairs of each kind, got {len(pos)} same and {len(neg)} different")
        return cls(float(neg.mean()), max(float(neg.std()), 0.02), float(pos.mean()), max(float(pos.std()), 0.02),
                   prior, "labels", len(neg), len(pos))

    def even_cosine(self) -> float:
        """The cosine at which the ratio crosses 0 (NaN if it never does in (-1, 1))."""
        grid = np.linspace(-_COS_CLIP, _COS_CLIP, 2001)
        llr = self.log_lr(grid)
        above = np.flatnonzero(llr >= 0)
        return float(grid[above[0]]) if len(above) and above[0] > 0 else float("nan")


#: fewer known-different or candidate pairs than this: too few to fit (a tiny scene).
MIN_FIT_PAIRS = 20

#: the calibration of a scene too small to fit one (a few tracklets): re-ID cosines of
#: different vehicles around 0.2 and of one vehicle around 0.75, even prior; even odds at
#: cosine 0.52. A weak, generic default, logged when used; any real run fits its own.
GENERIC = AppearanceModel(0.2, 0.25, 1.0, 0.3, 0.5, "generic")


# ---------------------------------------------------------------------------- direction
@dataclass(frozen=True)
class DirectionModel:
    """Angle between a heading and the way the vehicle went: von Mises of concentration
    ``kappa`` (one vehicle) over uniform (different vehicles, or no relation).

    ``log_lr(cos a) = kappa * cos a - log I0(kappa)``. The default ``kappa = 1`` is a weak
    prior (at most +0.73 going straight on, -1.27 going straight back per heading); the
    self-training refits it from confident pairs (:meth:`fit`).
    """

    kappa: float = 1.0
    n_pairs: int = 0

    @property
    def log_i0(self) -> float:
        return float(math.log(i0e(self.kappa)) + self.kappa)

    def log_lr(self, cos: np.ndarray) -> np.ndarray:
        return self.kappa * np.asarray(cos, np.float64) - self.log_i0

    def fit(self, cos: np.ndarray, prior_weight: float = 20.0) -> "DirectionModel":
        """Refit ``kappa`` from ``(P,)`` cosines of confident pairs (maximum likelihood through
        Banerjee's approximation ``kappa = R (2 - R^2) / (1 - R^2)`` of the mean resultant
        length ``R``), shrunk to the current ``kappa`` as if it were ``prior_weight`` pairs;
        capped at 8 (about 20 degrees)."""
        cos = np.asarray(cos, np.float64)
        cos = cos[np.isfinite(cos)]
        if len(cos) == 0:
            return self
        r = float(np.clip(cos.mean(), 0.0, 0.99))
        k_fit = r * (2 - r * r) / (1 - r * r)
        k = (len(cos) * k_fit + prior_weight * self.kappa) / (len(cos) + prior_weight)
        return DirectionModel(float(min(max(k, 0.0), 8.0)), len(cos))


# ---------------------------------------------------------------------------- co-location
@dataclass(frozen=True)
class ColocationModel:
    """Median ground distance ``d`` (metres) of two tracklets seen at once.

    One vehicle: Rayleigh of scale ``sigma_m`` (two views put its ground point a few metres
    apart: each sees another bottom edge of the car). Different vehicles: two points of a
    disc of radius ``radius_m`` (the shared ground of the two views), ``p(d) ~ 2 d / R^2``
    for small ``d``. ``log_lr(d) = log(R^2 / (2 sigma^2)) - d^2 / (2 sigma^2)``.
    """

    sigma_m: float = 4.0
    radius_m: float = 50.0
    n_pairs: int = 0

    @property
    def params(self) -> tuple[float, float]:
        """``(log(R^2 / (2 sigma^2)), sigma^2)``: :meth:`log_lr` is ``c0 - d^2 / (2 s2)``."""
        s2 = self.sigma_m**2
        return math.log(self.radius_m**2 / (2 * s2)), s2

    def log_lr(self, d: np.ndarray) -> np.ndarray:
        d = np.asarray(d, np.float64)
        c0, s2 = self.params
        out = c0 - d * d / (2 * s2)
        return np.where(np.isfinite(d), np.clip(out, -TERM_CAP, TERM_CAP), 0.0)

    def fit(self, d: np.ndarray, prior_weight: float = 10.0) -> "ColocationModel":
        """Refit ``sigma_m`` from ``(P,)`` distances of confident pairs (Rayleigh maximum
        likelihood ``sigma^2 = mean(d^2) / 2``), shrunk to the current scale as if it were
        ``prior_weight`` pairs; at least 1 m."""
        d = np.asarray(d, np.float64)
        d = d[np.isfinite(d)]
        if len(d) == 0:
            return self
        s2 = (float((d * d).sum()) / 2 + prior_weight * self.sigma_m**2) / (len(d) + prior_weight)
        return ColocationModel(max(math.sqrt(s2), 1.0), self.radius_m, len(d))


# ---------------------------------------------------------------------------- links, as arrays
@dataclass(frozen=True, eq=False)
class LinkTable:
    """What the kernel needs of a :class:`mct.associate.links.LinkArrays`, flattened to
    ``(S * C * C,) float64`` arrays indexed ``(s * C + a) * C + b``: the window ``lo``,
    ``hi``, ``spread_s``, the hard bound ``min_gap_s``, ``known`` (1/0) and ``mass`` (the
    window density's mass within the horizon, its normaliser); ``horizon_s`` ``(S,)``."""

    n_cameras: int
    lo: np.ndarray
    hi: np.ndarray
    spread_s: np.ndarray
    min_gap_s: np.ndarray
    known: np.ndarray
    mass: np.ndarray
    horizon_s: np.ndarray

    @classmethod
    def from_arrays(cls, arrays: "LinkArrays") -> "LinkTable":
        from mct.associate.links import _window_mass

        n_s, n_c = arrays.lo.shape[0], arrays.lo.shape[1]
        known = np.asarray(arrays.known, bool)
        lo = np.where(known, arrays.lo, 0.0)
        hi = np.where(known, arrays.hi, 0.0)
        sd = np.where(known, arrays.spread_s, 1.0)
        horizon = np.broadcast_to(np.maximum(arrays.horizon_s, 1e-9)[:, None, None], lo.shape)
        mass = _window_mass(-horizon.ravel(), horizon.ravel(), lo.ravel(), hi.ravel(), sd.ravel()) if lo.size else np.zeros(0)
        flat = lambda x: np.ascontiguousarray(np.asarray(x, np.float64).ravel())  # noqa: E731
        return cls(n_c, flat(lo), flat(hi), flat(sd), flat(arrays.min_gap_s), flat(known), flat(mass),
                   np.ascontiguousarray(np.asarray(arrays.horizon_s, np.float64)) if n_s else np.ones(0))


# ---------------------------------------------------------------------------- the pair model
@dataclass(frozen=True, eq=False)
class PairModel:
    """Everything the pair score needs: the fitted term models, the compiled links, which
    terms are on, and the same-camera handover allowance.

    Attributes:
        terms: ``(4,)`` weight per :data:`TERMS` (0: off; 1: the term's log-likelihood
            ratio as it is; fitted weights from labelled tracks, :func:`fit_term_weights`).
        handover_s: two tracklets of one camera sharing at most this long at their ends are
            consecutive fragments (gap 0), not a conflict.
    """

    appearance: AppearanceModel
    direction: DirectionModel
    colocation: ColocationModel
    links: LinkTable
    terms: np.ndarray = field(default_factory=lambda: np.ones(4))
    handover_s: float = 0.0

    @property
    def prior_log_odds(self) -> float:
        return self.appearance.prior_log_odds if self.terms[0] and self.appearance.source != "off" else 0.0

    def kernel_args(self) -> tuple:
        t = self.terms.astype(np.float64)
        if self.appearance.source == "off":
            t[0] = 0.0
        lk = self.links
        return (
            self.appearance.params,
            float(self.direction.kappa),
            float(self.direction.log_i0),
            lk.lo, lk.hi, lk.spread_s, lk.min_gap_s, lk.known, lk.mass, lk.horizon_s, int(lk.n_cameras),
            t, float(self.handover_s),
        )


@numba.njit(cache=True, nogil=True)
def _ndtr(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@numba.njit(cache=True, nogil=True)
def _gap_llr(lo: float, hi: float, sd: float, mass: float, horizon: float, gap: float, outlier: float) -> float:
    """:meth:`mct.associate.links.LinkArrays.gap_log_lr` of one known link: a window
    ``[lo, hi]`` convolved with N(0, sd^2), normalised over ``[-horizon, horizon]``, mixed
    with ``outlier`` of the uniform density it is compared with."""
    width = hi - lo
    if width > 1e-6 * sd:
        dens = (_ndtr((gap - lo) / sd) - _ndtr((gap - hi) / sd)) / width
    else:
        z = (gap - lo) / sd
        dens = math.exp(-0.5 * z * z) / (sd * math.sqrt(2.0 * math.pi))
    dens /= max(mass, 1e-12)
    u = 1.0 / (2.0 * max(horizon, 1e-9))
    v = (1.0 - outlier) * dens + outlier * u
    if v <= 0.0:
        return -np.inf
    return math.log(v) - math.log(u)


@numba.njit(cache=True, nogil=True)
def _cap(x: float) -> float:
    return min(max(x, -TERM_CAP), TERM_CAP)


@numba.njit(cache=True, nogil=True)
def _appearance_llr(cos: float, app: np.ndarray) -> float:
    """:meth:`AppearanceModel.log_lr` of one cosine (``app``: :attr:`AppearanceModel.params`)."""
    return _appearance_llr_of(cos, app[0], app[1], app[2], app[3], app[4], app[5])


@numba.njit(cache=True, nogil=True)
def _appearance_llr_of(cos: float, n_mean: float, n_std: float, p_mean: float, p_std: float, z_lo: float, z_hi: float) -> float:
    c = min(max(cos, -_COS_CLIP), _COS_CLIP)
    z = 0.5 * math.log((1.0 + c) / (1.0 - c))
    z = min(max(z, z_lo), z_hi)
    r0 = (z - n_mean) / n_std
    r1 = (z - p_mean) / p_std
    return _cap(-0.5 * r1 * r1 - math.log(p_std) + 0.5 * r0 * r0 + math.log(n_std))


@numba.njit(cache=True, nogil=True)
def _unit_known(h0: float, h1: float) -> bool:
    return h0 != 0.0 or h1 != 0.0


@numba.njit(cache=True, nogil=True)
def _heading_llr(hx: float, hy: float, sx: float, sy: float, kappa: float, log_i0: float) -> float:
    """von Mises log-likelihood ratio of a unit heading against a unit direction; 0 if the heading is unknown."""
    if not _unit_known(hx, hy):
        return 0.0
    return kappa * (hx * sx + hy * sy) - log_i0


@numba.njit(cache=True, nogil=True)
def _direction(
    together: bool, a_exit_x: float, a_exit_y: float, a_in_hx: float, a_in_hy: float, a_out_hx: float, a_out_hy: float,
    b_entry_x: float, b_entry_y: float, b_in_hx: float, b_in_hy: float, b_out_hx: float, b_out_hy: float,
    kappa: float, log_i0: float,
) -> float:
    """The direction term of ``a`` seen before ``b``, from their motion rows (0 entry xy,
    1 exit xy in metres, NaN unknown; 2 entry heading, 3 exit heading, unit, 0 unknown):
    seen at once, one vehicle heads the same way in both views (entry headings, else exit);
    apart, ``a``'s exit heading and ``b``'s entry heading point along the step between them."""
    if together:
        if _unit_known(a_in_hx, a_in_hy) and _unit_known(b_in_hx, b_in_hy):
            return kappa * (a_in_hx * b_in_hx + a_in_hy * b_in_hy) - log_i0
        if _unit_known(a_out_hx, a_out_hy) and _unit_known(b_out_hx, b_out_hy):
            return kappa * (a_out_hx * b_out_hx + a_out_hy * b_out_hy) - log_i0
        return 0.0
    sx = b_entry_x - a_exit_x
    sy = b_entry_y - a_exit_y
    dist = math.sqrt(sx * sx + sy * sy)
    if not (dist > MIN_STEP_M):  # NaN too
        return 0.0
    sx /= dist
    sy /= dist
    return _heading_llr(a_out_hx, a_out_hy, sx, sy, kappa, log_i0) + _heading_llr(b_in_hx, b_in_hy, sx, sy, kappa, log_i0)


@numba.njit(cache=True, nogil=True)
def _score_many(
    a_rows: np.ndarray, b_rows: np.ndarray, feats: np.ndarray, start: np.ndarray, end: np.ndarray, cam: np.ndarray,
    scen: np.ndarray, motion: np.ndarray, app: np.ndarray, kappa: float, log_i0: float,
    l_lo: np.ndarray, l_hi: np.ndarray, l_spread: np.ndarray, l_min: np.ndarray, l_known: np.ndarray,
    l_mass: np.ndarray, horizon: np.ndarray, n_c: int, terms: np.ndarray, handover_s: float,
    g_off: np.ndarray, g_t: np.ndarray, g_xy: np.ndarray, col_c0: float, col_s2: float, col_w: float,
) -> np.ndarray:
    """The pair score of rows ``a_rows[e]``, ``b_rows[e]``: :func:`pair_log_lr`, plus
    co-location weighted ``col_w`` (0: without; ``col_c0``, ``col_s2``:
    :attr:`ColocationModel.params`; ``g_*``: the ground tracks' arrays).

    The whole pair rule is in this one loop, with helpers of scalars only: a compiled
    helper that takes arrays counts references on each of them per call, and that cost
    (about 300 ns a pair with this many arrays) was most of the pairs' time."""
    out = np.empty(len(a_rows), np.float64)
    n_mean, n_std, p_mean, p_std, z_lo, z_hi = app[0], app[1], app[2], app[3], app[4], app[5]
    w_app, w_time, w_dir = terms[0], terms[1], terms[2]
    dim = feats.shape[1]
    for e in range(len(a_rows)):
        i, j = a_rows[e], b_rows[e]
        if scen[i] != scen[j]:
            out[e] = -np.inf
            continue
        # a: the tracklet seen first (the vehicle's earlier visit)
        if start[i] < start[j] or (start[i] == start[j] and end[i] <= end[j]):
            a, b = i, j
        else:
            a, b = j, i
        gap = start[b] - end[a]
        same_cam = cam[a] == cam[b]
        if same_cam and gap <= 0.0:
            # one camera, seen at once: a conflict unless a short handover at the ends
            if end[b] >= end[a] and -gap <= handover_s + 1e-6:
                gap = 0.0
            else:
                out[e] = -np.inf
                continue
        k = (scen[a] * n_c + cam[a]) * n_c + cam[b]
        if l_min[k] == np.inf:
            out[e] = np.nan  # no direct link (the vehicle passes another camera between them)
            continue
        if gap < l_min[k]:
            out[e] = -np.inf
            continue
        total = 0.0
        if w_app > 0.0:
            # cosine of L2-normalised rows, summed in float64 on four independent sums
            # (one chain of dependent additions ran at a quarter of the speed)
            s0 = s1 = s2 = s3 = 0.0
            d = 0
            while d + 4 <= dim:
                s0 += feats[i, d] * feats[j, d]
                s1 += feats[i, d + 1] * feats[j, d + 1]
                s2 += feats[i, d + 2] * feats[j, d + 2]
                s3 += feats[i, d + 3] * feats[j, d + 3]
                d += 4
            while d < dim:
                s0 += feats[i, d] * feats[j, d]
                d += 1
            dot = (s0 + s1) + (s2 + s3)
            total += w_app * _appearance_llr_of(dot, n_mean, n_std, p_mean, p_std, z_lo, z_hi)
        if w_time > 0.0 and l_known[k] > 0.0:
            total += w_time * _cap(_gap_llr(l_lo[k], l_hi[k], l_spread[k], l_mass[k], horizon[scen[a]], gap, OUTLIER_RATE))
        if w_dir > 0.0:
            total += w_dir * _direction(
                gap <= 0.0 and not same_cam,
                motion[a, 1, 0], motion[a, 1, 1], motion[a, 2, 0], motion[a, 2, 1], motion[a, 3, 0], motion[a, 3, 1],
                motion[b, 0, 0], motion[b, 0, 1], motion[b, 2, 0], motion[b, 2, 1], motion[b, 3, 0], motion[b, 3, 1],
                kappa, log_i0)
        if col_w > 0.0 and not same_cam and g_off[i + 1] > g_off[i] and g_off[j + 1] > g_off[j]:
            # ColocationModel.log_lr of the median distance seen together (0 where they
            # were not), weighted; the overlap test first, without a call
            together_s = min(g_t[g_off[i + 1] - 1], g_t[g_off[j + 1] - 1]) - max(g_t[g_off[i]], g_t[g_off[j]])
            if together_s >= MIN_TOGETHER_S:
                dist_m = overlap_median(g_off, g_t, g_xy, i, j, MIN_TOGETHER_S)
                if math.isfinite(dist_m):
                    total += col_w * min(max(col_c0 - dist_m * dist_m / (2.0 * col_s2), -TERM_CAP), TERM_CAP)
        out[e] = total
    return out


@numba.njit(cache=True, nogil=True)
def _keep(vals: np.ndarray, keys: np.ndarray, r: int, s: float, e: int) -> None:
    """Insert score ``s`` of pair ``e`` into row ``r`` of the descending lists ``vals``
    (``keys`` beside it), dropping its last; a tie goes after the equal ones (the earlier
    pair wins)."""
    p = vals.shape[1]
    if p == 0 or not (s > vals[r, p - 1]):
        return
    k = p - 1
    while k > 0 and s > vals[r, k - 1]:
        vals[r, k] = vals[r, k - 1]
        keys[r, k] = keys[r, k - 1]
        k -= 1
    vals[r, k] = s
    keys[r, k] = e


@numba.njit(cache=True, nogil=True)
def _best_of(s: np.ndarray, pi: np.ndarray, pj: np.ndarray, nc: int, nd: int, keep_n: int, floor: float) -> np.ndarray:
    """Sorted indices of the pairs ``e`` among the ``keep_n`` best scores ``s`` of their
    ``pi[e]`` or of their ``pj[e]`` (ties: the earlier pair), scoring above ``floor``."""
    va = np.full((nc, keep_n), -np.inf)
    ka = np.full((nc, keep_n), -1, np.int64)
    vb = np.full((nd, keep_n), -np.inf)
    kb = np.full((nd, keep_n), -1, np.int64)
    for e in range(len(s)):
        if math.isfinite(s[e]) and s[e] > floor:
            _keep(va, ka, pi[e], s[e], e)
            _keep(vb, kb, pj[e], s[e], e)
    chosen = np.unique(np.concatenate((ka.ravel(), kb.ravel())))
    return chosen[chosen >= 0]


@numba.njit(cache=True, nogil=True)
def _best_in_windows(
    rows_c: np.ndarray, rows_d: np.ndarray, first: np.ndarray, last: np.ndarray, m: int, pre: int, terms_pre: np.ndarray,
    floor: float, g_off: np.ndarray, g_t: np.ndarray, g_xy: np.ndarray, col_c0: float, col_s2: float, col_w: float,
    feats: np.ndarray, start: np.ndarray, end: np.ndarray, cam: np.ndarray,
    scen: np.ndarray, motion: np.ndarray, app: np.ndarray, kappa: float, log_i0: float,
    l_lo: np.ndarray, l_hi: np.ndarray, l_spread: np.ndarray, l_min: np.ndarray, l_known: np.ndarray,
    l_mass: np.ndarray, horizon: np.ndarray, n_c: int, terms: np.ndarray, handover_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    nc, nd = len(rows_c), len(rows_d)
    # every pair, in the order of enumeration (a-major, each a's mates by start time)
    n_all = 0
    for i in range(nc):
        n_all += max(last[i] - first[i], 0)
    pi = np.empty(n_all, np.int64)
    pj = np.empty(n_all, np.int64)
    e = 0
    for i in range(nc):
        for j in range(first[i], last[i]):
            pi[e] = i
            pj[e] = j
            e += 1
    for stage in range(2):
        if stage == 0 and pre <= 0:
            continue
        s = _score_many(rows_c[pi], rows_d[pj], feats, start, end, cam, scen, motion, app, kappa, log_i0,
                        l_lo, l_hi, l_spread, l_min, l_known, l_mass, horizon, n_c, terms_pre if stage == 0 else terms,
                        handover_s, g_off, g_t, g_xy, col_c0, col_s2, col_w)
        chosen = _best_of(s, pi, pj, nc, nd, pre if stage == 0 else m, -np.inf if stage == 0 else floor)
        pi, pj = pi[chosen], pj[chosen]
    return rows_c[pi], rows_d[pj]


def best_in_windows(
    table: object, model: PairModel, rows_c: np.ndarray, rows_d: np.ndarray, first: np.ndarray, last: np.ndarray,
    m: int, preselect: int = 0, floor: float = -np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Of the pairs of one linked camera pair's windows (:func:`mct.associate.constraints.linked_windows`:
    ``rows_c[i]`` with ``rows_d[first[i]:last[i]]``), those among the ``m`` best by
    :func:`score_pairs` of their first tracklet into ``rows_d``'s camera or of their second
    into ``rows_c``'s camera (ties: the earlier pair; NaN and ``-inf`` never); ``(a, b)`` in
    the order of enumeration. With ``preselect`` > 0, only the pairs among the
    ``preselect`` best by the space-time terms alone (the same rule; no features read) are
    scored in full. Pairs whose full score is not above ``floor`` are never kept (with the
    merge cut as the floor: a candidate that could not start a merge).

    The same pairs as :func:`mct.associate.clustering.best_per_camera` on the enumerated
    pairs, in one compiled pass: the windows of a busy camera pair hold millions of pairs."""
    if m <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    args = model.kernel_args()
    terms_pre = args[-2].copy()
    terms_pre[0] = 0.0
    return _best_in_windows(
        np.ascontiguousarray(rows_c, np.int64), np.ascontiguousarray(rows_d, np.int64),
        np.ascontiguousarray(first, np.int64), np.ascontiguousarray(last, np.int64), int(m), int(preselect), terms_pre, float(floor),
        *colocation_args(table, model), *table_args(table), *args,
    )


def colocation_args(table: object, model: PairModel) -> tuple:
    """:func:`_score_many`'s co-location arguments ``(g_off, g_t, g_xy, c0, s2, weight)``:
    the table's ground tracks and the fitted :class:`ColocationModel`, weighted as the
    model's terms say; :data:`_NO_COLOCATION` without ground tracks."""
    ground = getattr(table, "ground", None)
    if ground is None:
        return _NO_COLOCATION
    c0, s2 = model.colocation.params
    return ground.offsets, ground.times, ground.xy, c0, s2, float(model.terms[3])


def pair_cosines(features: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 8_192) -> np.ndarray:
    """``(P,) float64`` cosines of rows ``a[p]``, ``b[p]`` of L2-normalised ``features``, in
    chunks on threads (gathering all pairs' features at once would cost P x D floats: 28 GB
    for 1M tracklets' 7M pairs at D = 512; a chunk of 8,192 pairs gathers 32 MB at D = 512,
    per thread)."""
    out = np.empty(len(a), np.float64)

    def one(lo: int) -> None:
        hi = min(len(a), lo + chunk)
        out[lo:hi] = np.einsum("ij,ij->i", features[a[lo:hi]], features[b[lo:hi]])

    starts = range(0, len(a), chunk)
    if len(starts) < 2 or compute_threads() == 1:
        for lo in starts:
            one(lo)
    else:  # numpy releases the GIL in the gather and the product
        with ThreadPoolExecutor(compute_threads()) as pool:
            list(pool.map(one, starts))
    return out


def table_args(table: object) -> tuple:
    """The kernel's view of a :class:`~mct.associate.table.TrackletTable`."""
    return (
        table.features, table.start_s, table.end_s,  # type: ignore[attr-defined]
        table.camera.astype(np.int64), table.scenario.astype(np.int64), table.motion,  # type: ignore[attr-defined]
    )


def pair_log_lr(table: object, model: PairModel, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(P,) float64`` log-likelihood ratio (same vehicle vs different) of rows ``a[p]``,
    ``b[p]`` of ``table``: appearance, travel time and direction (co-location is added by
    :func:`score_pairs`); ``-inf`` for an impossible pair (two scenarios; one camera at once
    beyond the handover; faster than any vehicle); NaN where the two cameras have no direct
    link (a topology's ``unlisted: forbid``): such a pair is never merged directly, and says
    nothing when it ends up in one vehicle through a camera between them."""
    a = np.ascontiguousarray(a, np.int64)
    b = np.ascontiguousarray(b, np.int64)
    if len(a) == 0:
        return np.zeros(0, np.float64)
    args = (*table_args(table), *model.kernel_args(), *_NO_COLOCATION)
    n = compute_threads()
    if n == 1 or len(a) < PARALLEL_MIN_PAIRS:
        return _score_many(a, b, *args)
    # the kernel releases the GIL: chunks on threads, the same numbers in the same places
    edges = np.linspace(0, len(a), n + 1).astype(np.int64)
    with ThreadPoolExecutor(n) as pool:
        parts = pool.map(lambda lo_hi: _score_many(a[lo_hi[0]:lo_hi[1]], b[lo_hi[0]:lo_hi[1]], *args), zip(edges[:-1], edges[1:]))
        return np.concatenate(list(parts))


#: :func:`_score_many`'s co-location arguments for none.
_NO_COLOCATION = (np.zeros(1, np.int64), np.zeros(0), np.zeros((0, 2)), 0.0, 1.0, 0.0)

#: pair lists shorter than this are scored on one thread.
PARALLEL_MIN_PAIRS = 100_000


def compute_threads() -> int:
    """Threads for the compiled pair kernels: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def colocation_distance(table: object, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(P,) float64`` median ground distance (metres) of pairs of different cameras seen
    together for at least :data:`MIN_TOGETHER_S`; NaN otherwise or without ground tracks."""
    from mct.associate.motion import overlap_distance

    out = np.full(len(a), np.nan)
    ground = getattr(table, "ground", None)
    if ground is None or len(a) == 0:
        return out
    cam = table.camera  # type: ignore[attr-defined]
    other = cam[a] != cam[b]
    rows = np.flatnonzero(other)
    out[rows] = overlap_distance(ground, a[rows], b[rows], MIN_TOGETHER_S)
    return out


def score_pairs(
    table: object, model: PairModel, a: np.ndarray, b: np.ndarray, distance: np.ndarray | None = None
) -> np.ndarray:
    """``(P,) float64`` the full pair score: :func:`pair_log_lr` plus co-location
    (``distance``: :func:`colocation_distance` of the pairs, computed if ``None``)."""
    s = pair_log_lr(table, model, a, b)
    if model.terms[3]:
        d = colocation_distance(table, a, b) if distance is None else distance
        s = s + float(model.terms[3]) * model.colocation.log_lr(d)
    return s


def term_breakdown(table: object, model: PairModel, a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Each term's ``(P,)`` log-likelihood ratio alone, unweighted (for diagnostics, tests
    and fitting the weights)."""
    out: dict[str, np.ndarray] = {}
    for t, name in enumerate(TERMS[:3]):
        only = np.zeros(4)
        only[t] = 1.0
        out[name] = pair_log_lr(table, PairModel(model.appearance, model.direction, model.colocation, model.links, only, model.handover_s), a, b)
    out["colocation"] = model.colocation.log_lr(colocation_distance(table, a, b))
    return out


def terms_mask(names: Sequence[str]) -> np.ndarray:
    """``(4,) bool`` from a list of term names (each must be one of :data:`TERMS`)."""
    bad = [n for n in names if n not in TERMS]
    if bad:
        raise ValueError(f"association.terms: unknown term(s) {bad}; expected some of {list(TERMS)}")
    return np.array([t in names for t in TERMS], bool)


def direction_cosines(table: object, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(Q,) float64``: the cosines the direction term judges for pairs ``(a[p], b[p])``
    (heading against the step between views apart, heading against heading for views seen
    at once), pooled; for refitting :class:`DirectionModel`."""
    m = table.motion  # type: ignore[attr-defined]
    start, end = table.start_s, table.end_s  # type: ignore[attr-defined]
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    first = (start[a] < start[b]) | ((start[a] == start[b]) & (end[a] <= end[b]))
    x, y = np.where(first, a, b), np.where(first, b, a)
    together = start[y] <= end[x]
    out: list[np.ndarray] = []
    known = lambda h: np.any(h != 0, axis=1)  # noqa: E731
    for row in (2, 3):
        ok = together & known(m[x, row]) & known(m[y, row])
        out.append(np.einsum("ij,ij->i", m[x[ok], row], m[y[ok], row]))
    step = m[y, 0] - m[x, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.hypot(step[:, 0], step[:, 1])
        unit = step / dist[:, None]
        far = ~together & (dist > MIN_STEP_M)
    for h in (m[x, 3], m[y, 2]):
        ok = far & known(h)
        out.append(np.einsum("ij,ij->i", h[ok], unit[ok]))
    return np.concatenate(out) if out else np.zeros(0)
