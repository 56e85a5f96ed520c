"""CLEAR-MOT and identity (IDF1) metrics of one box sequence, vectorised.

This is our own implementation of the metrics that py-motmetrics computes (the library the
AI City evaluation calls), following its rules exactly so that the numbers are the same:

* IoU of ``tlwh`` boxes in float64 with motmetrics' formula; a pair may match when
  ``1 - IoU <= 1 - min_iou`` (for 0.5: IoU >= 0.5).
* Per frame (frames in increasing order, each frame that has a ground-truth or a predicted
  box): (1) every object, in file order, that has an earlier correspondence ``m[o] = h``
  keeps it when ``h`` is present and still overlaps enough; (2) the remaining pairs are
  assigned by a minimum-cost assignment on ``1 - IoU`` that first maximises the number of
  pairs (motmetrics' "expensive edge" rule, scipy's solver); a pair whose object had a
  different earlier correspondence is an identity switch; (3) the rest are misses and
  false positives.
* MOTA = 1 - (FN + FP + IDSW) / #GT boxes; MOTP here is the MOTChallenge devkit's: mean
  IoU of the matched pairs (motmetrics reports ``1 - MOTP``); MT / PT / ML: tracked for
  >= 80 %, 20-80 %, < 20 % of its boxes; Frag: times a track goes from matched to missed
  between its first and last match.
* IDF1 (Ristani et al. 2016): one global assignment between ground-truth and predicted
  identities maximising the number of boxes where the pair overlaps (IoU >= min_iou),
  solved with scipy's ``linear_sum_assignment``; IDTP is that maximum (unique even when the
  assignment is not). IDF1 = 2 IDTP / (#GT + #pred), IDP = IDTP / #pred, IDR = IDTP / #GT.

Why our own code: motmetrics 1.4.0 (the newest release) does not run on NumPy 2 and
pandas 3, and its event DataFrame costs minutes on a 300k-box submission; here only the
per-frame correspondence bookkeeping is a Python loop, everything else is array code.
The golden test (``tests/unit/test_eval_metrics.py``) reproduces the MOTChallenge devkit
values on TUD-Campus and TUD-Stadtmitte.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from mct.types import _check, _index

__all__ = ["TrackBoxes", "MotMetrics", "MatchDetails", "evaluate_boxes", "iou_distance_tlwh", "metrics_from_details"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- inputs
@dataclass(frozen=True, eq=False)
class TrackBoxes:
    """The boxes of one sequence (one camera, or the concatenated cameras of a scenario).

    Attributes:
        frame: ``(N,) int64`` frame numbers (any order; file order within a frame matters
            only for ties, as in motmetrics).
        obj_id: ``(N,) int64`` identity of each box.
        tlwh: ``(N, 4) float64`` left, top, width, height in pixels.
    """

    frame: np.ndarray
    obj_id: np.ndarray
    tlwh: np.ndarray

    def __post_init__(self) -> None:
        frame = _check("frame", self.frame, np.int64, (None,))
        n = len(frame)
        object.__setattr__(self, "frame", frame)
        object.__setattr__(self, "obj_id", _check("obj_id", self.obj_id, np.int64, (n,)))
        tlwh = np.asarray(self.tlwh, dtype=np.float64)
        object.__setattr__(self, "tlwh", _check("tlwh", tlwh.reshape(0, 4) if tlwh.size == 0 else tlwh, np.float64, (n, 4)))

    @classmethod
    def empty(cls) -> "TrackBoxes":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)))

    @classmethod
    def from_rows(cls, rows: Any) -> "TrackBoxes":
        """From any object with ``frame``, ``id`` (or ``obj_id``) and ``tlwh`` arrays (``MotRows``, ``SubmissionRows``)."""
        ids = rows.obj_id if hasattr(rows, "obj_id") else rows.id
        return cls(rows.frame, ids, rows.tlwh)

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, index: Any) -> "TrackBoxes":
        idx = _index(len(self), index)
        return TrackBoxes(self.frame[idx], self.obj_id[idx], self.tlwh[idx])


# ---------------------------------------------------------------------------- outputs
@dataclass(frozen=True)
class MotMetrics:
    """CLEAR-MOT and identity metrics (motmetrics / MOTChallenge definitions; ratios in [0, 1]).

    ``nan`` where a ratio is 0 / 0 (e.g. IDP of an empty prediction), as motmetrics.
    ``motp`` is the devkit's: mean IoU of matched pairs (higher is better).
    """

    idf1: float
    idp: float
    idr: float
    idtp: int
    idfp: int
    idfn: int
    mota: float
    motp: float
    precision: float
    recall: float
    num_frames: int
    num_objects: int
    num_predictions: int
    num_matches: int
    num_switches: int
    num_false_positives: int
    num_misses: int
    num_fragmentations: int
    num_unique_objects: int
    num_unique_predictions: int
    mostly_tracked: int
    partially_tracked: int
    mostly_lost: int
    #: HOTA (Luiten et al. 2021) and its parts, means over the 19 localisation thresholds
    #: (``mct.evaluate.hota``, TrackEval's definition); ``nan`` where not computed (the
    #: MTMC evaluation does not compute them).
    hota: float = float("nan")
    det_a: float = float("nan")
    ass_a: float = float("nan")
    loc_a: float = float("nan")

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-ready: ``nan`` becomes ``None``."""
        out: dict[str, float | int | None] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = None if isinstance(v, float) and math.isnan(v) else v
        return out


@dataclass(frozen=True, eq=False)
class MatchDetails:
    """Per-box outcome, indexed like the inputs.

    Attributes:
        gt_match: ``(N_gt,) int64`` index of the predicted box matched by CLEAR-MOT, -1 = miss.
        gt_switch: ``(N_gt,) bool`` that match was an identity switch.
        gt_iou: ``(N_gt,) float64`` IoU of the match (nan for a miss).
        pred_matched: ``(N_pred,) bool`` matched by CLEAR-MOT (False = false positive).
        gt_idtp: ``(N_gt,) bool`` counted as IDTP under the global identity assignment.
        pred_idtp: ``(N_pred,) bool`` the same for predicted boxes.
        assigned_gt_ids, assigned_pred_ids: ``(K,) int64`` the global identity assignment
            (pairs with at least one overlap).
        num_frames: number of distinct frames with a ground-truth or predicted box.
    """

    gt_match: np.ndarray
    gt_switch: np.ndarray
    gt_iou: np.ndarray
    pred_matched: np.ndarray
    gt_idtp: np.ndarray
    pred_idtp: np.ndarray
    assigned_gt_ids: np.ndarray
    assigned_pred_ids: np.ndarray
    num_frames: int


# ---------------------------------------------------------------------------- geometry
def iou_distance_tlwh(a_tlwh: np.ndarray, b_tlwh: np.ndarray) -> np.ndarray:
    """``1 - IoU`` of paired boxes, elementwise: ``(P, 4)`` and ``(P, 4)`` -> ``(P,) float64``.

    The same floating-point operations as ``motmetrics.distances.boxiou`` (so a pair at
    exactly IoU 0.5 lands on the same side of the threshold); 1.0 where boxes do not meet.
    """
    a = np.asarray(a_tlwh, dtype=np.float64)
    b = np.asarray(b_tlwh, dtype=np.float64)
    a_min, b_min = a[:, :2], b[:, :2]
    a_max, b_max = a_min + a[:, 2:], b_min + b[:, 2:]
    i_size = np.maximum(np.minimum(a_max, b_max) - np.maximum(a_min, b_min), 0)
    i_vol = i_size[:, 0] * i_size[:, 1]
    a_size = np.maximum(a_max - a_min, 0)
    b_size = np.maximum(b_max - b_min, 0)
    u_vol = a_size[:, 0] * a_size[:, 1] + b_size[:, 0] * b_size[:, 1] - i_vol
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(i_vol == 0, 0.0, i_vol / u_vol)
    return 1 - iou


def _frame_groups(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frames, starts, counts)`` of a frame-sorted array."""
    if len(frame) == 0:
        z = np.zeros(0, np.int64)
        return z, z, z
    frames, starts, counts = np.unique(frame, return_index=True, return_counts=True)
    return frames, starts, counts


def _candidate_pairs(
    gt_frame: np.ndarray, pred_frame: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """All ``(gt index, pred index)`` pairs in the same frame, both inputs frame-sorted.

    Ordered by frame, then gt index, then pred index (row-major per frame, as motmetrics'
    distance matrix).
    """
    gf, gs, gc = _frame_groups(gt_frame)
    pf, ps, pc = _frame_groups(pred_frame)
    common, gi, pi = np.intersect1d(gf, pf, assume_unique=True, return_indices=True)
    if len(common) == 0:
        z = np.zeros(0, np.int64)
        return z, z
    ng, npred, g0, p0 = gc[gi], pc[pi], gs[gi], ps[pi]
    sizes = ng * npred
    total = int(sizes.sum())
    fidx = np.repeat(np.arange(len(common)), sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    k = np.arange(total, dtype=np.int64) - offsets[fidx]
    cols = npred[fidx]
    return g0[fidx] + k // cols, p0[fidx] + k % cols


# ---------------------------------------------------------------------------- assignment
def _min_cost_assignment(dists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """motmetrics' ``linear_sum_assignment`` (scipy solver): nan = forbidden pair.

    Forbidden pairs get a cost so large that the solver first maximises the number of
    allowed pairs, then minimises their cost; forbidden pairs are dropped from the answer.
    """
    valid = np.isfinite(dists)
    if not valid.any():
        z = np.zeros(0, np.int64)
        return z, z
    if valid.all():
        costs = dists.copy()
    else:
        r = min(dists.shape)
        c = np.abs(dists[valid]).max() + 1
        costs = np.where(valid, dists, 2 * r * c + 1)
    rids, cids = linear_sum_assignment(costs)
    keep = valid[rids, cids]
    return rids[keep], cids[keep]


def _repeated(frame: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``(P,) bool``: True where ``(frame, id)`` occurs more than once."""
    out = np.zeros(len(frame), bool)
    if len(frame) < 2:
        return out
    order = np.lexsort((ids, frame))
    f, i = frame[order], ids[order]
    same = (f[1:] == f[:-1]) & (i[1:] == i[:-1])
    out[order[1:][same]] = True
    out[order[:-1][same]] = True
    return out


def _clear_mot_matching(
    g_ids: np.ndarray,
    p_ids: np.ndarray,
    pair_g: np.ndarray,
    pair_p: np.ndarray,
    pair_d: np.ndarray,
    pair_frame: np.ndarray,
    g_range: dict[int, tuple[int, int]],
    p_range: dict[int, tuple[int, int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-frame correspondence rules (see the module docstring) on frame-sorted inputs.

    ``pair_*``: the allowed pairs (IoU >= threshold) in (frame, gt, pred) order, indices
    into the frame-sorted inputs; ``*_range``: frame -> ``(start, end)`` of its rows. A
    frame without an allowed pair cannot change the state, so only those with one are
    visited. Returns ``(gt_match (N_gt,) int64 pred index or -1, gt_switch bool, gt_dist)``.
    """
    n_gt = len(g_ids)
    gt_match = np.full(n_gt, -1, np.int64)
    gt_switch = np.zeros(n_gt, bool)
    gt_dist = np.full(n_gt, np.nan)
    if len(pair_g) == 0:
        return gt_match, gt_switch, gt_dist
    m: dict[int, int] = {}  # object id -> the predicted id it corresponded to last
    frames, starts = np.unique(pair_frame, return_index=True)
    bounds = np.append(starts, len(pair_g)).tolist()
    g_list, p_list, d_list = pair_g.tolist(), pair_p.tolist(), pair_d.tolist()
    gid, pid = g_ids.tolist(), p_ids.tolist()
    # A frame whose allowed pairs share no box (most frames) matches all of them whatever the
    # state: rule 1 keeps some, rule 2 takes the rest. Only the switch flags need the state.
    # (A frame where one id has two boxes is left to the exact path too.)
    shared = (np.bincount(pair_g, minlength=n_gt)[pair_g] > 1) | (np.bincount(pair_p)[pair_p] > 1)
    shared |= _repeated(pair_frame, g_ids[pair_g]) | _repeated(pair_frame, p_ids[pair_p])
    ambiguous = np.zeros(len(frames), bool)
    ambiguous[np.searchsorted(frames, pair_frame[shared])] = True
    for fi, frame in enumerate(frames.tolist()):
        lo, hi = bounds[fi], bounds[fi + 1]
        if not ambiguous[fi]:
            for k in range(lo, hi):
                g = g_list[k]
                o, h = gid[g], pid[p_list[k]]
                prev = m.get(o)
                if prev is not None and prev != h:
                    gt_switch[g] = True
                gt_match[g], gt_dist[g] = p_list[k], d_list[k]
                m[o] = h
            continue
        valid = {(g_list[k], p_list[k]): d_list[k] for k in range(lo, hi)}
        p0, p1 = p_range[frame]
        matched_g: set[int] = set()
        matched_p: set[int] = set()
        # 1. keep earlier correspondences: objects in file order; the first unmatched
        #    predicted box carrying the remembered id, if it still overlaps enough.
        positions: dict[int, list[int]] | None = None
        for g in dict.fromkeys(g_list[lo:hi]):
            h = m.get(gid[g])
            if h is None:
                continue
            if positions is None:
                positions = {}
                for p in range(p0, p1):
                    positions.setdefault(pid[p], []).append(p)
            p_first = next((p for p in positions.get(h, ()) if p not in matched_p), None)
            if p_first is None:
                continue
            d = valid.get((g, p_first))
            if d is None:
                continue
            matched_g.add(g)
            matched_p.add(p_first)
            gt_match[g], gt_dist[g] = p_first, d
        # 2. minimum-cost assignment of what is left
        rest = [(g, p, d) for (g, p), d in valid.items() if g not in matched_g and p not in matched_p]
        if not rest:
            continue
        if len({g for g, _, _ in rest}) == len(rest) and len({p for _, p, _ in rest}) == len(rest):
            chosen = rest  # the allowed pairs are already disjoint: the only optimum
        else:
            g0, g1 = g_range[frame]
            dists = np.full((g1 - g0, p1 - p0), np.nan)
            for g, p, d in rest:
                dists[g - g0, p - p0] = d
            rids, cids = _min_cost_assignment(dists)
            chosen = [(g0 + r, p0 + c, float(dists[r, c])) for r, c in zip(rids.tolist(), cids.tolist())]
        for g, p, d in chosen:
            o, h = gid[g], pid[p]
            prev = m.get(o)
            gt_switch[g] = prev is not None and prev != h
            gt_match[g], gt_dist[g] = p, d
            m[o] = h
    return gt_match, gt_switch, gt_dist


def _identity_assignment(
    g_codes: np.ndarray, p_codes: np.ndarray, n_g: int, n_p: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global identity assignment from the allowed pairs' id codes.

    Returns ``(assigned gt code (K,), assigned pred code (K,), overlap counts (K,))`` of
    the assignment maximising the summed counts (only pairs with a count > 0).
    """
    if len(g_codes) == 0:
        z = np.zeros(0, np.int64)
        return z, z, z
    key = g_codes * n_p + p_codes
    uniq, counts = np.unique(key, return_counts=True)
    ug, up = uniq // n_p, uniq % n_p
    rows, g_inv = np.unique(ug, return_inverse=True)
    cols, p_inv = np.unique(up, return_inverse=True)
    weights = np.zeros((len(rows), len(cols)))
    weights[g_inv, p_inv] = counts
    r, c = linear_sum_assignment(weights, maximize=True)
    w = weights[r, c]
    keep = w > 0
    return rows[r[keep]], cols[c[keep]], w[keep].astype(np.int64)


# ---------------------------------------------------------------------------- entry point
def _ratio(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


def evaluate_boxes(gt: TrackBoxes, pred: TrackBoxes, min_iou: float = 0.5) -> tuple[MotMetrics, MatchDetails]:
    """CLEAR-MOT and identity metrics of ``pred`` against ``gt`` (one sequence).

    Args:
        gt, pred: the boxes; ids must be unique within a frame for meaningful numbers
            (callers check and dedupe).
        min_iou: a pair may match when IoU >= ``min_iou`` (0.5 in MOTChallenge and AI City).
    Returns:
        ``(metrics, per-box details)``; details are indexed like the inputs.
    """
    if not (0.0 < min_iou <= 1.0):
        raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
    n_gt, n_pred = len(gt), len(pred)
    g_order = np.argsort(gt.frame, kind="stable")
    p_order = np.argsort(pred.frame, kind="stable")
    g_frame, p_frame = gt.frame[g_order], pred.frame[p_order]
    g_ids, p_ids = gt.obj_id[g_order], pred.obj_id[p_order]

    pair_g, pair_p = _candidate_pairs(g_frame, p_frame)
    dist = iou_distance_tlwh(gt.tlwh[g_order][pair_g], pred.tlwh[p_order][pair_p])
    allowed = ~(dist > 1.0 - min_iou)  # motmetrics: nan where dist > max distance
    pair_g, pair_p, dist = pair_g[allowed], pair_p[allowed], dist[allowed]

    gf, gs, gc = _frame_groups(g_frame)
    pf, ps, pc = _frame_groups(p_frame)
    g_range = {int(f): (int(s), int(s + c)) for f, s, c in zip(gf, gs, gc)}
    p_range = {int(f): (int(s), int(s + c)) for f, s, c in zip(pf, ps, pc)}
    num_frames = len(np.union1d(gf, pf))

    # --- CLEAR-MOT
    s_match, s_switch, s_dist = _clear_mot_matching(
        g_ids, p_ids, pair_g, pair_p, dist, g_frame[pair_g], g_range, p_range
    )
    gt_match = np.full(n_gt, -1, np.int64)
    matched_sorted = s_match >= 0
    gt_match[g_order[matched_sorted]] = p_order[s_match[matched_sorted]]
    gt_switch = np.zeros(n_gt, bool)
    gt_switch[g_order] = s_switch
    gt_iou = np.full(n_gt, np.nan)
    gt_iou[g_order] = 1.0 - s_dist
    pred_matched = np.zeros(n_pred, bool)
    pred_matched[gt_match[gt_match >= 0]] = True

    # --- identities
    g_uids, g_codes = np.unique(g_ids, return_inverse=True)
    p_uids, p_codes = np.unique(p_ids, return_inverse=True)
    ag, ap, _ = _identity_assignment(g_codes[pair_g], p_codes[pair_p], len(g_uids), max(len(p_uids), 1))
    assigned = np.full(len(g_uids), -1, np.int64)
    assigned[ag] = ap
    tp_pair = assigned[g_codes[pair_g]] == p_codes[pair_p]
    gt_idtp = np.zeros(n_gt, bool)
    gt_idtp[g_order[pair_g[tp_pair]]] = True
    pred_idtp = np.zeros(n_pred, bool)
    pred_idtp[p_order[pair_p[tp_pair]]] = True

    details = MatchDetails(
        gt_match=gt_match,
        gt_switch=gt_switch,
        gt_iou=gt_iou,
        pred_matched=pred_matched,
        gt_idtp=gt_idtp,
        pred_idtp=pred_idtp,
        assigned_gt_ids=g_uids[ag],
        assigned_pred_ids=p_uids[ap],
        num_frames=num_frames,
    )
    return metrics_from_details(gt, pred, details), details


def metrics_from_details(gt: TrackBoxes, pred: TrackBoxes, details: MatchDetails, subset_gt: np.ndarray | None = None,
                         subset_pred: np.ndarray | None = None) -> MotMetrics:
    """Aggregate per-box outcomes into :class:`MotMetrics`, optionally over a subset of boxes.

    ``subset_gt`` / ``subset_pred``: boolean masks (e.g. one camera's boxes of a
    concatenated sequence). Identity counts use the global assignment of ``details``.
    """
    sg = np.ones(len(gt), bool) if subset_gt is None else np.asarray(subset_gt, bool)
    sp = np.ones(len(pred), bool) if subset_pred is None else np.asarray(subset_pred, bool)
    n_gt, n_pred = int(sg.sum()), int(sp.sum())
    matched = (details.gt_match >= 0) & sg
    detections = int(matched.sum())
    switches = int((details.gt_switch & sg).sum())
    misses = n_gt - detections
    fps = int((~details.pred_matched & sp).sum())
    idtp = int((details.gt_idtp & sg).sum())
    # an identity true positive is a (gt box, predicted box) pair of one frame: the same count from both sides
    idfn, idfp = n_gt - idtp, n_pred - idtp

    ids = gt.obj_id[sg]
    frames = gt.frame[sg]
    flags = matched[sg]
    uids, codes = np.unique(ids, return_inverse=True)
    total = np.bincount(codes, minlength=len(uids))
    tracked = np.bincount(codes, weights=flags, minlength=len(uids))
    ratio = tracked / np.maximum(total, 1)
    # Fragmentation: matched -> missed transitions inside each object's matched span.
    order = np.lexsort((frames, codes))
    c, f = codes[order], flags[order]
    same = c[1:] == c[:-1]
    drops = int((f[:-1] & ~f[1:] & same).sum())
    if len(c):
        last = np.append(~same, True)  # last box of each object
        trailing = int((~f[last] & (tracked > 0)[c[last]]).sum())
    else:
        trailing = 0
    frag = drops - trailing

    frame_set = np.union1d(frames, pred.frame[sp])
    return MotMetrics(
        idf1=_ratio(2 * idtp, n_gt + n_pred),
        idp=_ratio(idtp, n_pred),
        idr=_ratio(idtp, n_gt),
        idtp=idtp,
        idfp=idfp,
        idfn=idfn,
        mota=1.0 - _ratio(misses + switches + fps, n_gt) if n_gt else float("nan"),
        motp=1.0 - _ratio(float(np.nansum(1.0 - details.gt_iou[matched])), detections) if detections else float("nan"),
        precision=_ratio(detections, detections + fps),
        recall=_ratio(detections, n_gt),
        num_frames=int(len(frame_set)) if subset_gt is not None else details.num_frames,
        num_objects=n_gt,
        num_predictions=n_pred,
        num_matches=detections - switches,
        num_switches=switches,
        num_false_positives=fps,
        num_misses=misses,
        num_fragmentations=frag,
        num_unique_objects=len(uids),
        num_unique_predictions=len(np.unique(pred.obj_id[sp])),
        mostly_tracked=int((ratio >= 0.8).sum()),
        partially_tracked=int(((ratio >= 0.2) & (ratio < 0.8)).sum()),
        mostly_lost=int((ratio < 0.2).sum()),
    )
