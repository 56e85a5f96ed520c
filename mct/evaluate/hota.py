"""HOTA (Luiten et al., IJCV 2021) of one box sequence, as TrackEval computes it.

Our own implementation of TrackEval's ``HOTA`` metric (the reference implementation; the
``trackeval`` 1.3.0 fork on PyPI is its NumPy-2 version), step for step, so that the
numbers agree to floating-point rounding (``tests/unit/test_eval_hota.py`` checks 1e-6
against ``trackeval`` on the MOT15 sequences when it is installed, and golden values
measured with it otherwise):

1. Per frame, the similarity of every (gt, predicted) pair is their IoU, TrackEval's
   formula on ``tlwh`` boxes (``x2 = x + w``; empty boxes and unions give 0).
2. Global alignment: per frame each pair's IoU is divided by
   ``row sum + column sum - IoU`` of that frame's IoU matrix (0 where that is not above
   machine epsilon) and summed over the sequence per (gt id, predicted id); the alignment
   score of an id pair is that sum over ``boxes of the gt id + boxes of the predicted id - sum``.
3. Per frame, one Hungarian assignment maximising ``alignment score x IoU`` (scipy's
   solver on the whole frame's matrix, as TrackEval); for each localisation threshold
   ``alpha`` in 0.05, 0.10, ..., 0.95 the assigned pairs with ``IoU >= alpha - eps`` are
   the true positives; the rest of the frame's boxes are FN and FP.
4. Per alpha: ``DetA = TP / (TP + FN + FP)``; ``AssA`` = mean over TPs of
   ``TPA / (TPA + FNA + FPA)`` of the TP's id pair (``TPA`` = frames the pair is a TP,
   ``TPA + FNA + FPA`` = boxes of the gt id + boxes of the predicted id - ``TPA``);
   ``HOTA = sqrt(DetA AssA)``; ``LocA`` = mean IoU of the TPs. The reported values are
   the means over the 19 alphas.

Several sequences combine as TrackEval's ``combine_sequences``: TP, FN, FP summed, AssA
(and AssRe, AssPr, LocA) averaged weighted by TP, i.e. :class:`HotaCounts` add up.

Why our own code rather than ``trackeval`` as a dependency: it requires ``opencv-python``,
which installs a second ``cv2`` over our ``opencv-python-headless``; its evaluator is built
around files and folders; and its per-alpha Python loop is replaced here by array code.
The per-frame Hungarian assignment stays a loop over frames (it is one solve per frame by
definition).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from mct.evaluate.metrics import TrackBoxes

__all__ = ["ALPHAS", "HotaCounts", "HotaSummary", "hota", "hota_counts", "iou_tlwh_trackeval"]

#: localisation thresholds, exactly TrackEval's ``np.arange(0.05, 0.99, 0.05)`` (19 values).
ALPHAS = np.arange(0.05, 0.99, 0.05)
_EPS = np.finfo(float).eps


def iou_tlwh_trackeval(a_tlwh: np.ndarray, b_tlwh: np.ndarray) -> np.ndarray:
    """``(N, M) float64`` IoU of ``tlwh`` boxes with TrackEval's formula (``_calculate_box_ious``)."""
    a = np.array(a_tlwh, dtype=np.float64).reshape(-1, 4)
    b = np.array(b_tlwh, dtype=np.float64).reshape(-1, 4)
    a[:, 2:] += a[:, :2]
    b[:, 2:] += b[:, :2]
    lo = np.minimum(a[:, None, :], b[None, :, :])
    hi = np.maximum(a[:, None, :], b[None, :, :])
    inter = np.maximum(lo[..., 2] - hi[..., 0], 0) * np.maximum(lo[..., 3] - hi[..., 1], 0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    inter[area_a <= _EPS, :] = 0
    inter[:, area_b <= _EPS] = 0
    inter[union <= _EPS] = 0
    union[union <= _EPS] = 1
    return inter / union


@dataclass(frozen=True)
class HotaSummary:
    """HOTA and its parts, each the mean over the 19 alphas (ratios in [0, 1])."""

    hota: float
    det_a: float
    ass_a: float
    loc_a: float
    det_re: float
    det_pr: float
    ass_re: float
    ass_pr: float


@dataclass(frozen=True)
class HotaCounts:
    """Summable HOTA counts of one or more sequences, per alpha (``(19,) float64`` each).

    Attributes:
        tp, fn, fp: detection true positives, misses and false positives.
        ass_sum, ass_re_sum, ass_pr_sum: the sum over TPs of their id pair's association
            IoU, recall and precision (``AssA = ass_sum / TP``).
        loc_sum: the sum of the TPs' IoU (``LocA = loc_sum / TP``).
    """

    tp: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHAS)))
    fn: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHAS)))
    fp: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHAS)))
    ass_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHAS)))
    ass_re_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHAS)))
    ass_pr_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHAS)))
    loc_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHAS)))

    def __add__(self, other: "HotaCounts") -> "HotaCounts":
        return HotaCounts(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))

    def per_alpha(self) -> dict[str, np.ndarray]:
        """``(19,)`` arrays HOTA, DetA, AssA, LocA, DetRe, DetPr, AssRe, AssPr (TrackEval's field names)."""
        tp = self.tp
        det_a = tp / np.maximum(1, tp + self.fn + self.fp)
        ass_a = self.ass_sum / np.maximum(1, tp)
        return {
            "HOTA": np.sqrt(det_a * ass_a),
            "DetA": det_a,
            "AssA": ass_a,
            "LocA": np.maximum(1e-10, self.loc_sum) / np.maximum(1e-10, tp),
            "DetRe": tp / np.maximum(1, tp + self.fn),
            "DetPr": tp / np.maximum(1, tp + self.fp),
            "AssRe": self.ass_re_sum / np.maximum(1, tp),
            "AssPr": self.ass_pr_sum / np.maximum(1, tp),
        }

    def summary(self) -> HotaSummary:
        """The means over the alphas."""
        a = self.per_alpha()
        return HotaSummary(*(float(np.mean(a[k])) for k in ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr")))


def hota_counts(gt: TrackBoxes, pred: TrackBoxes) -> HotaCounts:
    """HOTA counts of ``pred`` against ``gt`` (one sequence; filter ignored gt rows first).

    Args:
        gt, pred: boxes with frame numbers and ids; ids must be unique within a frame. Within
            a frame the boxes keep their input order (it decides ties of the assignment, as
            the file order does in TrackEval).
    Returns:
        :class:`HotaCounts`; ``hota_counts(gt, pred).summary().hota`` is HOTA.
    """
    n_alpha = len(ALPHAS)
    if len(pred) == 0 or len(gt) == 0:
        # TrackEval's early returns: every gt box a miss (or every predicted box a false positive)
        return HotaCounts(fn=np.full(n_alpha, float(len(gt))), fp=np.full(n_alpha, float(len(pred))))
    g_uids, g_code = np.unique(gt.obj_id, return_inverse=True)
    p_uids, p_code = np.unique(pred.obj_id, return_inverse=True)
    n_g, n_p = len(g_uids), len(p_uids)
    g_order = np.argsort(gt.frame, kind="stable")
    p_order = np.argsort(pred.frame, kind="stable")
    frames = np.union1d(gt.frame, pred.frame)
    g_bounds = np.searchsorted(gt.frame[g_order], frames, side="left"), np.searchsorted(gt.frame[g_order], frames, side="right")
    p_bounds = np.searchsorted(pred.frame[p_order], frames, side="left"), np.searchsorted(pred.frame[p_order], frames, side="right")

    # pass 1: per-frame similarities and the global alignment between ids
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    potential = np.zeros((n_g, n_p))
    for k in range(len(frames)):
        gi = g_order[g_bounds[0][k] : g_bounds[1][k]]
        pi = p_order[p_bounds[0][k] : p_bounds[1][k]]
        if len(gi) == 0 or len(pi) == 0:
            blocks.append((g_code[gi], p_code[pi], np.zeros((len(gi), len(pi)))))
            continue
        sim = iou_tlwh_trackeval(gt.tlwh[gi], pred.tlwh[pi])
        denom = sim.sum(0)[None, :] + sim.sum(1)[:, None] - sim
        sim_iou = np.zeros_like(sim)
        ok = denom > _EPS
        sim_iou[ok] = sim[ok] / denom[ok]
        gc, pc = g_code[gi], p_code[pi]
        potential[gc[:, None], pc[None, :]] += sim_iou
        blocks.append((gc, pc, sim))
    g_count = np.bincount(g_code, minlength=n_g).astype(np.float64)[:, None]
    p_count = np.bincount(p_code, minlength=n_p).astype(np.float64)[None, :]
    alignment = potential / (g_count + p_count - potential)

    # pass 2: one assignment per frame; the alpha thresholds applied to all pairs at once
    tp = np.zeros(n_alpha)
    fn = np.zeros(n_alpha)
    fp = np.zeros(n_alpha)
    m_g: list[np.ndarray] = []
    m_p: list[np.ndarray] = []
    m_sim: list[np.ndarray] = []
    for gc, pc, sim in blocks:
        if len(gc) == 0 or len(pc) == 0:
            fn += len(gc)
            fp += len(pc)
            continue
        score = alignment[gc[:, None], pc[None, :]] * sim
        rows, cols = linear_sum_assignment(-score)
        s = sim[rows, cols]
        matched = (s[None, :] >= ALPHAS[:, None] - _EPS).sum(axis=1)  # (19,)
        tp += matched
        fn += len(gc) - matched
        fp += len(pc) - matched
        m_g.append(gc[rows])
        m_p.append(pc[cols])
        m_sim.append(s)
    mg = np.concatenate(m_g) if m_g else np.zeros(0, np.int64)
    mp = np.concatenate(m_p) if m_p else np.zeros(0, np.int64)
    ms = np.concatenate(m_sim) if m_sim else np.zeros(0)
    ok = ms[None, :] >= ALPHAS[:, None] - _EPS  # (19, M): the pair is a TP at that alpha
    pair = mg * n_p + mp
    ass_sum = np.zeros(n_alpha)
    ass_re_sum = np.zeros(n_alpha)
    ass_pr_sum = np.zeros(n_alpha)
    loc_sum = np.zeros(n_alpha)
    g_c, p_c = g_count[:, 0], p_count[0]
    for a in range(n_alpha):
        if not ok[a].any():
            continue
        uniq, tpa = np.unique(pair[ok[a]], return_counts=True)
        ug, up = uniq // n_p, uniq % n_p
        tpa = tpa.astype(np.float64)
        # each TP of an id pair contributes that pair's score: TPA x score summed over pairs
        ass_sum[a] = np.sum(tpa * (tpa / np.maximum(1, g_c[ug] + p_c[up] - tpa)))
        ass_re_sum[a] = np.sum(tpa * (tpa / np.maximum(1, g_c[ug])))
        ass_pr_sum[a] = np.sum(tpa * (tpa / np.maximum(1, p_c[up])))
        loc_sum[a] = np.sum(ms[ok[a]])
    return HotaCounts(tp, fn, fp, ass_sum, ass_re_sum, ass_pr_sum, loc_sum)


def hota(gt: TrackBoxes, pred: TrackBoxes) -> HotaSummary:
    """HOTA, DetA, AssA, LocA (means over the alphas) of one sequence."""
    return hota_counts(gt, pred).summary()
