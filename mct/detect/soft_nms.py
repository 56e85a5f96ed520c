"""Soft-NMS (Bodla et al., ICCV 2017) with linear, gaussian and hard (classic NMS) decay.

The algorithm, as its authors define it: repeat — pick the remaining box with the highest
current score (the first of equal maxima wins), move it to the output with that score;
every remaining box ``b`` that overlaps it (``o = IoU > 0``) has its score multiplied by

* linear:   ``1 - o`` if ``o > iou_threshold`` else 1,
* gaussian: ``exp(-o**2 / sigma)``,
* hard:     0 if ``o > iou_threshold`` else 1 (classic NMS; a suppressed box is removed
  whatever ``min_score`` is, so ``hard`` equals ``torchvision.ops.nms``),

and ``b`` is dropped once its decayed score is below ``min_score``. Boxes that never
overlap a selected box keep their score (and are never dropped, as in the authors' code,
whose threshold check sits inside the overlap test).

Implementation notes (why it looks the way it does):

* Overlaps are found once, up front, as a sparse neighbour list (a sort-and-sweep on
  ``x1`` finds the pairs whose x-ranges overlap, then their IoU is computed in one
  vectorised pass, in chunks so memory stays bounded). A selection step then touches only
  the selected box's neighbours: one ``argmax`` over the current scores plus a few array
  operations on the neighbour slice. There is no Python loop over boxes inside a step;
  the loop over selections is inherent to the algorithm.
* Boxes with no neighbour at all are never decayed and never decay anything; they skip
  the loop. The output order is then recovered exactly by a stable sort on (final score
  descending, index ascending): selection scores never increase (scores only decay and
  the maximum is taken each time) and the first of equal maxima wins.
* The loop runs in float64 numpy on the CPU: per-step numpy calls cost well under a
  microsecond each, several times less than torch dispatch, and a per-step device sync
  would make a CUDA loop slower still. Inputs and outputs are torch tensors on the
  caller's device (CPU or CUDA); only the (N, 4) boxes and (N,) scores are copied.
* Class-aware: boxes of different classes are never neighbours (the sweep lays the
  classes side by side along x, further apart than the whole extent, and the pair test
  also compares labels); that is exactly per-class Soft-NMS, and the merged output keeps
  the global selection order.
* Area convention: modern (``w = x2 - x1``, as torchvision) by default;
  ``plus_one=True`` gives the authors' "+1 pixel" convention (``w = x2 - x1 + 1``).
  IoU of two boxes whose union is empty (two zero-area boxes) is 0.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

if TYPE_CHECKING:
    from mct.detect.config import SoftNMSConfig

log = logging.getLogger(__name__)

__all__ = ["soft_nms", "soft_nms_from_config", "overlap_graph", "METHODS"]

Method = Literal["linear", "gaussian", "hard"]
METHODS: tuple[str, ...] = ("linear", "gaussian", "hard")

#: candidate pairs handled per chunk when building the overlap graph (bounds peak memory
#: to roughly 2M * 10 float64 temporaries, about 160 MB).
_PAIR_CHUNK = 2_000_000
#: cost model for switching from rounds to one selection per step: a round costs about as
#: much as one step per _ROUND_EDGES_PER_SELECTION remaining pairs plus a fixed overhead
#: (tuned with benchmarks/bench_soft_nms.py on uniform and clustered boxes)
_ROUND_EDGES_PER_SELECTION = 200
_ROUND_OVERHEAD_EDGES = 2000


def _validate(xyxy: np.ndarray, scores: np.ndarray) -> None:
    if not np.all(np.isfinite(scores)):
        bad = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise ValueError(f"soft_nms: scores must be finite, got scores[{bad}] = {scores[bad]}")
    if not np.all(np.isfinite(xyxy)):
        bad = int(np.flatnonzero(~np.isfinite(xyxy).all(axis=1))[0])
        raise ValueError(f"soft_nms: box coordinates must be finite, got xyxy[{bad}] = {xyxy[bad].tolist()}")
    inverted = (xyxy[:, 2] < xyxy[:, 0]) | (xyxy[:, 3] < xyxy[:, 1])
    if np.any(inverted):
        bad = int(np.flatnonzero(inverted)[0])
        raise ValueError(f"soft_nms: expected x1 <= x2 and y1 <= y2, got xyxy[{bad}] = {xyxy[bad].tolist()}")


def overlap_graph(
    xyxy: np.ndarray, plus_one: bool = False, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of boxes with a positive intersection (of the same label), and their IoU.

    Args:
        xyxy: ``(N, 4) float64`` boxes, ``x1 <= x2``, ``y1 <= y2``.
        plus_one: use the "+1 pixel" area convention.
        labels: optional ``(N,)`` integer labels; boxes of different labels never pair.

    Returns:
        ``(i, j, iou)``: ``(E,) int64``, ``(E,) int64``, ``(E,) float64`` with ``i < j``
        (original indices), one entry per overlapping unordered pair.
    """
    n = len(xyxy)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    if n < 2:
        return empty
    extra = 1.0 if plus_one else 0.0
    sweep_x1, sweep_x2 = xyxy[:, 0], xyxy[:, 2]
    if labels is not None and np.unique(labels).size > 1:
        # lay the labels side by side along x, further apart than the whole extent, so
        # one sweep finds same-label pairs only; the IoU itself uses the true coordinates
        span = float(xyxy[:, [0, 2]].max() - xyxy[:, [0, 2]].min()) + 2.0 + extra
        _, dense = np.unique(labels, return_inverse=True)
        shift = dense.astype(np.float64) * span - xyxy[:, 0].min()
        sweep_x1, sweep_x2 = sweep_x1 + shift, sweep_x2 + shift
    order = np.argsort(sweep_x1, kind="stable")
    x1s = sweep_x1[order]
    # sorted positions p < q overlap in x iff x1[q] < x2[p] + extra: candidates of p are
    # the positions p+1 .. end[p]-1 (a little slack against rounding of the shift; the
    # exact overlap test below decides)
    slack = 1e-9 * (1.0 + float(np.abs(x1s).max()))
    end = np.searchsorted(x1s, sweep_x2[order] + extra + slack, side="left")
    counts = np.maximum(end - np.arange(n) - 1, 0)
    total = int(counts.sum())
    if total == 0:
        return empty
    areas = (xyxy[:, 2] - xyxy[:, 0] + extra) * (xyxy[:, 3] - xyxy[:, 1] + extra)
    starts = np.cumsum(counts) - counts
    out_i, out_j, out_iou = [], [], []
    p0 = 0
    cum = np.cumsum(counts)
    while p0 < n:
        # take sorted positions p0 .. p1-1 so that their candidate count stays bounded
        p1 = int(np.searchsorted(cum, cum[p0 - 1] + _PAIR_CHUNK if p0 else _PAIR_CHUNK, side="right"))
        p1 = max(p1, p0 + 1)
        c = counts[p0:p1]
        k = int(c.sum())
        if k:
            pos_p = np.repeat(np.arange(p0, p1), c)
            offset = np.arange(k) - np.repeat(starts[p0:p1] - starts[p0], c)
            pos_q = pos_p + 1 + offset
            a = order[pos_p]
            b = order[pos_q]
            iw = np.minimum(xyxy[a, 2], xyxy[b, 2]) - np.maximum(xyxy[a, 0], xyxy[b, 0]) + extra
            ih = np.minimum(xyxy[a, 3], xyxy[b, 3]) - np.maximum(xyxy[a, 1], xyxy[b, 1]) + extra
            hit = (iw > 0) & (ih > 0)
            if labels is not None:
                hit &= labels[a] == labels[b]
            a, b, iw, ih = a[hit], b[hit], iw[hit], ih[hit]
            inter = iw * ih
            union = areas[a] + areas[b] - inter
            iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
            out_i.append(np.minimum(a, b))
            out_j.append(np.maximum(a, b))
            out_iou.append(iou)
        p0 = p1
    if not out_i:
        return empty
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_iou)


def _decay_weights(iou: np.ndarray, method: str, iou_threshold: float, sigma: float) -> np.ndarray:
    if method == "linear":
        return np.where(iou > iou_threshold, 1.0 - iou, 1.0)
    if method == "gaussian":
        return np.exp(-(iou * iou) / sigma)
    if method == "hard":
        return np.where(iou > iou_threshold, 0.0, 1.0)
    raise ValueError(f"soft_nms: method must be one of {METHODS}, got {method!r}")


def _sequential(
    cur: np.ndarray,
    kept: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    w: np.ndarray,
    min_score: float,
    hard: bool,
) -> None:
    """One selection per step over the boxes that still have neighbours; updates in place.

    ``cur`` holds current scores and ends holding final scores; ``kept`` is cleared for
    dropped boxes; ``(u, v, w)`` are the remaining overlapping pairs and their weights.
    """
    n = len(cur)
    src = np.concatenate([u, v])
    dst = np.concatenate([v, u])
    by_src = np.argsort(src, kind="stable")
    nbr = dst[by_src]
    nbr_w = np.concatenate([w, w])[by_src]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    bounds = indptr.tolist()
    in_graph = np.diff(indptr) > 0
    # -inf marks boxes that are out of play: selected, dropped or without neighbours
    current = np.where(in_graph, cur, -np.inf)
    for _ in range(int(in_graph.sum())):
        best = int(np.argmax(current))  # numpy returns the first of equal maxima
        value = current[best]
        if value == -np.inf:
            break
        cur[best] = value
        current[best] = -np.inf
        lo, hi = bounds[best], bounds[best + 1]
        nb = nbr[lo:hi]
        live = current[nb] > -np.inf
        nb = nb[live]
        if nb.size == 0:
            continue
        wl = nbr_w[lo:hi][live]
        decayed = current[nb] * wl
        drop = decayed < min_score
        if hard:
            drop |= wl == 0.0
        current[nb] = np.where(drop, -np.inf, decayed)
        kept[nb[drop]] = False


def _soft_nms_numpy(
    xyxy: np.ndarray,
    scores: np.ndarray,
    method: str,
    iou_threshold: float,
    sigma: float,
    min_score: float,
    plus_one: bool,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Core on float64 arrays; returns (kept indices in selection order, their scores).

    Works in rounds while that pays: each round selects, at once, every box that beats
    all its remaining neighbours (higher current score, or equal score and lower index).
    Such a box is selected by the sequential algorithm before any of its neighbours, with
    its current score, so nothing else can change it first; the decay weights depend on
    IoU only, so applying the decays of a whole round together gives the sequential
    result (up to the order of the float products on a box hit twice in one round).
    Dense clusters make rounds select few boxes; the rest then runs one selection per step.
    """
    n = len(scores)
    u, v, iou = overlap_graph(xyxy, plus_one, labels)
    w = _decay_weights(iou, method, iou_threshold, sigma)
    hard = method == "hard"
    cur = scores.copy()
    kept = np.ones(n, bool)
    while u.size:
        # u < v for every pair, so on equal scores u (the lower index) wins
        u_wins = cur[u] >= cur[v]
        loser = np.where(u_wins, v, u)
        winner = np.where(u_wins, u, v)
        beaten = np.zeros(n, bool)
        beaten[loser] = True
        selected = np.zeros(n, bool)
        selected[winner] = True
        selected &= ~beaten
        n_selected = int(selected.sum())
        if n_selected * _ROUND_EDGES_PER_SELECTION < u.size + _ROUND_OVERHEAD_EDGES:
            break
        hit = selected[winner]
        targets = loser[hit]
        weights = w[hit]
        np.multiply.at(cur, targets, weights)
        touched = np.zeros(n, bool)
        touched[targets] = True
        drop = touched & (cur < min_score)
        if hard:
            drop[targets[weights == 0.0]] = True
        kept &= ~drop
        out = selected | drop
        stay = ~(out[u] | out[v])
        u, v, w = u[stay], v[stay], w[stay]
    if u.size:
        _sequential(cur, kept, u, v, w, min_score, hard)
    idx = np.flatnonzero(kept)
    # selection order == stable sort by (final score desc, index asc); see module docstring
    order = idx[np.lexsort((idx, -cur[idx]))]
    return order, cur[order]


def soft_nms(
    xyxy: torch.Tensor,
    scores: torch.Tensor,
    class_ids: torch.Tensor | None = None,
    *,
    method: Method = "gaussian",
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    min_score: float = 0.001,
    plus_one: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-NMS; class-aware when ``class_ids`` is given.

    Args:
        xyxy: ``(N, 4)`` float boxes ``x1, y1, x2, y2`` in pixels (CPU or CUDA).
        scores: ``(N,)`` float scores; NaN or infinite values raise ``ValueError``.
        class_ids: optional ``(N,)`` integer labels; boxes of different labels never
            suppress each other.
        method: ``"linear"``, ``"gaussian"`` or ``"hard"``.
        iou_threshold: ``Nt`` for linear and hard decay (authors' default 0.3).
        sigma: gaussian width (authors' default 0.5).
        min_score: a decayed box whose score falls below this is dropped (authors' 0.001).
        plus_one: the authors' "+1 pixel" area convention instead of the modern one.

    Returns:
        ``keep``: ``(K,) int64`` indices into the input, in selection order, on the input's
        device; ``kept_scores``: ``(K,)`` their decayed scores, dtype of ``scores``.
    """
    if method not in METHODS:
        raise ValueError(f"soft_nms: method must be one of {METHODS}, got {method!r}")
    if not (sigma > 0):
        raise ValueError(f"soft_nms: sigma must be > 0, got {sigma}")
    if xyxy.ndim != 2 or xyxy.shape[1] != 4:
        raise ValueError(f"soft_nms: xyxy must have shape (N, 4), got {tuple(xyxy.shape)}")
    n = xyxy.shape[0]
    if scores.shape != (n,):
        raise ValueError(f"soft_nms: scores must have shape ({n},), got {tuple(scores.shape)}")
    device = scores.device
    if n == 0:
        return torch.zeros(0, dtype=torch.int64, device=device), scores.new_zeros(0)
    boxes_np = xyxy.detach().to("cpu", torch.float64).numpy()
    scores_np = scores.detach().to("cpu", torch.float64).numpy()
    _validate(boxes_np, scores_np)
    labels = None
    if class_ids is not None:
        if class_ids.shape != (n,):
            raise ValueError(f"soft_nms: class_ids must have shape ({n},), got {tuple(class_ids.shape)}")
        labels = class_ids.detach().to("cpu").numpy()
    keep, kept_scores = _soft_nms_numpy(
        boxes_np, scores_np, method, float(iou_threshold), float(sigma), float(min_score), plus_one, labels
    )
    return (
        torch.from_numpy(keep).to(device),
        torch.from_numpy(kept_scores).to(device=device, dtype=scores.dtype),
    )


def soft_nms_from_config(
    xyxy: torch.Tensor, scores: torch.Tensor, class_ids: torch.Tensor | None, cfg: "SoftNMSConfig"
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`soft_nms` with the parameters of a :class:`~mct.detect.config.SoftNMSConfig`."""
    return soft_nms(
        xyxy,
        scores,
        class_ids,
        method=cfg.method,
        iou_threshold=cfg.iou_threshold,
        sigma=cfg.sigma,
        min_score=cfg.min_score,
        plus_one=cfg.plus_one_area,
    )
