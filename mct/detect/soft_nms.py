"""Soft-NMS (Bodla et al., ICCV 2017) with linear, gaussian and hard (classic NMS) decay.

The algorithm, as its authors define it: repeat — pick the remaining box with the highest
current score (the first of equal maxima, i.e. the lowest input index, wins), move it to
the output with that score; every remaining box ``b`` that overlaps it (``o = IoU``, the
boxes intersect with positive width and height) has its score multiplied by

* linear:   ``1 - o`` if ``o > iou_threshold`` else 1,
* gaussian: ``exp(-o**2 / sigma)``,
* hard:     0 if ``o > iou_threshold`` else 1 (classic NMS; a suppressed box is removed
  whatever ``min_score`` is, so ``hard`` equals ``torchvision.ops.nms``),

and ``b`` is dropped once its (decayed) score is below ``min_score``. Boxes that never
overlap a selected box keep their score and are never dropped, even below ``min_score``
(as in the authors' code, whose threshold check sits inside the overlap test); a box below
``min_score`` that does overlap a selected box is dropped, even where the factor is 1.
Scores are multiplied in selection order, in float64, exactly as the per-box loop does.

Implementation (compiled with numba, float64; exact: the same selections and the same
float products, in the same order, as the per-box loop):

* Selection: a tournament tree over input indices (``_GROUP`` boxes per leaf, each node
  holding the best live box below it and its current score). The root is the current
  best box; a tie goes to the left, i.e. to the lower index (first of equal maxima wins).
  A decayed or dropped box is re-ranked by walking up only while it was the winner of the
  node above, usually not at all or one or two steps.
* Neighbours: a bounds tree over the boxes in Z-curve order of their centres (grouped by
  class when ``class_ids`` is given, each class padded to whole leaves, so boxes of
  different classes never meet: exactly per-class Soft-NMS with the global selection
  order), ``_BUCKET`` boxes per leaf, each node holding the bounding box of its live
  boxes. A depth-first walk skips every node whose bounding box fails the overlap formula
  (monotone in rounded arithmetic, so it never skips a box that the exact test accepts);
  the boxes of a reached leaf get the exact test ``min(x2) - max(x1) (+1) > 0`` on both
  axes. Selected and dropped boxes leave the tree, so a pair is looked at only while both
  boxes are in play, and no overlap graph is built.
* A selection step: find the live overlapping boxes, compute their IoU and decay factor
  in one loop of independent iterations (the divisions and ``exp`` calls overlap), then
  decay or drop them and re-rank. Cost: O(log N) plus O(1) per live box near the selected
  one, instead of a pass over all boxes. ``hard`` equals classic NMS and costs about as
  much as ``torchvision.ops.nms`` (the dropped boxes leave at once).
* Inputs and outputs are torch tensors on the caller's device (CPU or CUDA); the (N, 4)
  boxes and (N,) scores are copied to float64 numpy on the CPU, where the loop runs.
* Area convention: modern (``w = x2 - x1``, as torchvision) by default;
  ``plus_one=True`` gives the authors' "+1 pixel" convention (``w = x2 - x1 + 1``).
  IoU of two boxes whose union is empty is 0.
* Compilation: the kernels are compiled on first use (several seconds) and cached on disk
  next to this file (numba ``cache=True``; later processes, multiprocessing workers
  included, load them in well under a second). Where no cache folder is writable
  (read-only install and home), they are compiled in memory in each process instead.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Literal

import numba
import numpy as np
import torch

if TYPE_CHECKING:
    from mct.detect.config import SoftNMSConfig

log = logging.getLogger(__name__)

__all__ = ["soft_nms", "soft_nms_from_config", "METHODS"]

Method = Literal["linear", "gaussian", "hard"]
METHODS: tuple[str, ...] = ("linear", "gaussian", "hard")
_METHOD_CODE = {"linear": 0, "gaussian": 1, "hard": 2}
#: boxes per leaf of the bounds tree (scanned one by one; tuned with benchmarks/bench_soft_nms.py)
_BUCKET = 16
#: boxes per leaf of the score tree (input indices; scanned one by one)
_GROUP = 8


def _cache_probe() -> int:
    return 0


def _disk_cache_available() -> bool:
    """Whether numba can cache this file's kernels on disk (next to it, or in the user's cache)."""
    try:
        numba.njit(cache=True)(_cache_probe)  # numba raises here when no cache folder is writable
    except RuntimeError as err:
        log.debug("soft_nms: kernels compiled in memory in each process (%s)", err)
        return False
    return True


_njit = numba.njit(cache=_disk_cache_available(), nogil=True)


@_njit
def _first_invalid(xyxy: np.ndarray, scores: np.ndarray) -> tuple[int, int]:
    """(0, -1) if valid, else (1, i) non-finite score, (2, i) non-finite box, (3, i) x2 < x1 or y2 < y1."""
    n = scores.shape[0]
    for i in range(n):
        if not np.isfinite(scores[i]):
            return 1, i
    for i in range(n):
        for c in range(4):
            if not np.isfinite(xyxy[i, c]):
                return 2, i
    for i in range(n):
        if xyxy[i, 2] < xyxy[i, 0] or xyxy[i, 3] < xyxy[i, 1]:
            return 3, i
    return 0, -1


@_njit
def _rescan(
    group: int, ssize: int, G: int, live: np.ndarray, top_score: np.ndarray, top_box: np.ndarray
) -> None:
    """Score tree: the leaf of ``group`` takes its best box (the first of equal maxima)."""
    best = group * G
    for i in range(group * G + 1, (group + 1) * G):
        if live[i] > live[best]:
            best = i
    top_score[ssize + group] = live[best]
    top_box[ssize + group] = best


@_njit
def _rematch(node: int, top_score: np.ndarray, top_box: np.ndarray) -> None:
    """Score tree: ``node`` takes the better of its two children (the left one on a tie)."""
    child = 2 * node + (top_score[2 * node + 1] > top_score[2 * node])
    top_score[node] = top_score[child]
    top_box[node] = top_box[child]


@_njit
def _morton_order(xyxy: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Box order by label (dense ranks), then along a Z (Morton) curve of the box centres."""
    n = xyxy.shape[0]
    cx = 0.5 * (xyxy[:, 0] + xyxy[:, 2])
    cy = 0.5 * (xyxy[:, 1] + xyxy[:, 3])
    x0, y0 = cx.min(), cy.min()
    # one cell size on both axes, so that curve neighbours are near neighbours in space
    step_x = step_y = max(cx.max() - x0, cy.max() - y0, 1e-300) / 1023.0
    code = np.zeros(n, np.int64)
    for i in range(n):
        gx = min(int((cx[i] - x0) / step_x), 1023)
        gy = min(int((cy[i] - y0) / step_y), 1023)
        c = 0
        for bit in range(10):
            c |= ((gx >> bit) & 1) << (2 * bit) | ((gy >> bit) & 1) << (2 * bit + 1)
        code[i] = labels[i] << 20 | c
    return np.argsort(code)


@_njit
def _refit_bucket(
    bucket: int, size: int, bucket_size: int, sx1: np.ndarray, sy1: np.ndarray, sx2: np.ndarray, sy2: np.ndarray,
    bx1: np.ndarray, by1: np.ndarray, bx2: np.ndarray, by2: np.ndarray,
) -> None:
    """Recompute the bounds of a bucket's tree leaf from its live slots, then of its ancestors."""
    x1, y1, x2, y2 = np.inf, np.inf, -np.inf, -np.inf
    for s in range(bucket * bucket_size, (bucket + 1) * bucket_size):
        x1, y1, x2, y2 = min(x1, sx1[s]), min(y1, sy1[s]), max(x2, sx2[s]), max(y2, sy2[s])
    node = size + bucket
    bx1[node], by1[node], bx2[node], by2[node] = x1, y1, x2, y2
    node //= 2
    while node >= 1:
        left, right = 2 * node, 2 * node + 1
        x1, y1 = min(bx1[left], bx1[right]), min(by1[left], by1[right])
        x2, y2 = max(bx2[left], bx2[right]), max(by2[left], by2[right])
        if x1 == bx1[node] and y1 == by1[node] and x2 == bx2[node] and y2 == by2[node]:
            return
        bx1[node], by1[node], bx2[node], by2[node] = x1, y1, x2, y2
        node //= 2


@_njit
def _soft_nms_kernel(
    xyxy: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    method: int,
    iou_threshold: float,
    sigma: float,
    min_score: float,
    extra: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(kept indices in selection order, their scores); method 0 linear, 1 gaussian, 2 hard."""
    n = scores.shape[0]
    B = _BUCKET
    order = _morton_order(xyxy, labels)
    # slots: the boxes in curve order, each label group padded to whole buckets of B slots
    n_slots = 0
    for p in range(n):
        if p > 0 and labels[order[p]] != labels[order[p - 1]]:
            n_slots = (n_slots + B - 1) // B * B
        n_slots += 1
    n_slots = (n_slots + B - 1) // B * B
    n_buckets = n_slots // B
    sx1, sy1 = np.full(n_slots, np.inf), np.full(n_slots, np.inf)
    sx2, sy2 = np.full(n_slots, -np.inf), np.full(n_slots, -np.inf)
    slot_box = np.full(n_slots, -1, np.int64)
    slot = np.empty(n, np.int64)
    first_bucket = np.empty(n, np.int64)  # of the box's label group
    end_bucket = np.empty(n, np.int64)
    area = np.empty(n)
    s = 0
    group_first = 0
    for p in range(n):
        i = order[p]
        if p > 0 and labels[i] != labels[order[p - 1]]:
            s = (s + B - 1) // B * B
            for k in range(group_first, p):
                end_bucket[order[k]] = s // B
            group_first = p
        slot[i] = s
        first_bucket[i] = slot[order[group_first]] // B
        slot_box[s] = i
        sx1[s], sy1[s], sx2[s], sy2[s] = xyxy[i, 0], xyxy[i, 1], xyxy[i, 2], xyxy[i, 3]
        area[i] = (xyxy[i, 2] - xyxy[i, 0] + extra) * (xyxy[i, 3] - xyxy[i, 1] + extra)
        s += 1
    for k in range(group_first, n):
        end_bucket[order[k]] = n_buckets
    size = 1
    while size < n_buckets:
        size *= 2
    # bounds tree over buckets: the bounding box of the live boxes below each node
    # (empty: +inf, +inf, -inf, -inf, which no box meets; a box leaving gets those too)
    bx1, by1 = np.full(2 * size, np.inf), np.full(2 * size, np.inf)
    bx2, by2 = np.full(2 * size, -np.inf), np.full(2 * size, -np.inf)
    for b in range(n_buckets):
        _refit_bucket(b, size, B, sx1, sy1, sx2, sy2, bx1, by1, bx2, by2)
    # score tree over input indices: each node holds the best live box below it, its index
    # and current score (-inf: none). Every index on the left of a node is lower than every
    # index on its right, so the first of equal maxima wins when a tie goes to the left.
    G = _GROUP
    n_groups = (n + G - 1) // G
    ssize = 1
    while ssize < n_groups:
        ssize *= 2
    live = np.full(n_groups * G, -np.inf)  # current score of a box still in play
    live[:n] = scores
    top_score = np.full(2 * ssize, -np.inf)
    top_box = np.zeros(2 * ssize, np.int64)
    for g in range(n_groups):
        _rescan(g, ssize, G, live, top_score, top_box)
    for node in range(ssize - 1, 0, -1):
        _rematch(node, top_score, top_box)
    stack = np.empty(4 * 64, np.int64)
    # the live boxes that meet the selected one: slot, intersection area, decay factor
    hit_slot = np.empty(n_slots, np.int64)
    hit_inter = np.empty(n_slots)
    hit_w = np.empty(n_slots)
    dirty = np.zeros(n_buckets, np.bool_)
    dirty_list = np.empty(n_buckets, np.int64)
    keep = np.empty(n, np.int64)
    kept = np.empty(n)
    n_kept = 0
    while top_score[1] > -np.inf:
        best = top_box[1]
        keep[n_kept] = best
        kept[n_kept] = live[best]
        n_kept += 1
        # out of play: it wins every node on its path
        live[best] = -np.inf
        _rescan(best // G, ssize, G, live, top_score, top_box)
        node = (ssize + best // G) // 2
        while node >= 1:
            _rematch(node, top_score, top_box)
            node //= 2
        s = slot[best]
        sx1[s], sy1[s], sx2[s], sy2[s] = np.inf, np.inf, -np.inf, -np.inf
        _refit_bucket(s // B, size, B, sx1, sy1, sx2, sy2, bx1, by1, bx2, by2)
        a1, b1, a2, b2 = xyxy[best, 0], xyxy[best, 1], xyxy[best, 2], xyxy[best, 3]
        # 1. find them: the tree nodes covering its label group, then a depth-first walk
        # below them that skips a node when even its bounding box does not meet the
        # selected box (the same overlap formula on the bounds: monotone in the rounded
        # arithmetic, so it never skips a box that the exact test on the box accepts)
        top_n = 0
        left, right = first_bucket[best] + size, end_bucket[best] + size
        while left < right:
            if left & 1:
                stack[top_n] = left
                top_n += 1
                left += 1
            if right & 1:
                right -= 1
                stack[top_n] = right
                top_n += 1
            left //= 2
            right //= 2
        n_hits = 0
        while top_n > 0:
            top_n -= 1
            node = stack[top_n]
            iw = min(a2, bx2[node]) - max(a1, bx1[node]) + extra
            ih = min(b2, by2[node]) - max(b1, by1[node]) + extra
            if not (iw > 0.0 and ih > 0.0):
                continue
            if node < size:
                stack[top_n] = 2 * node
                stack[top_n + 1] = 2 * node + 1
                top_n += 2
                continue
            for s in range((node - size) * B, (node - size + 1) * B):
                # exact overlap test (a gone box or an empty slot never meets); written
                # always, kept only on a hit, so the loop has no branch
                iw = min(a2, sx2[s]) - max(a1, sx1[s]) + extra
                ih = min(b2, sy2[s]) - max(b1, sy1[s]) + extra
                hit_slot[n_hits] = s
                hit_inter[n_hits] = iw * ih
                n_hits += (iw > 0.0) & (ih > 0.0)
        # 2. their decay factors, in a loop of independent iterations
        area_best = area[best]
        for k in range(n_hits):
            inter = hit_inter[k]
            union = area_best + area[slot_box[hit_slot[k]]] - inter
            o = inter / union if union > 0.0 else 0.0
            if method == 0:
                hit_w[k] = 1.0 - o if o > iou_threshold else 1.0
            elif method == 1:
                hit_w[k] = math.exp(-(o * o) / sigma)
            else:
                hit_w[k] = 0.0 if o > iou_threshold else 1.0
        # 3. decay or drop them, and re-rank
        n_dirty = 0
        for k in range(n_hits):
            s = hit_slot[k]
            j = slot_box[s]
            w = hit_w[k]
            value = live[j] * w
            if value < min_score or (method == 2 and w == 0.0):
                live[j] = -np.inf  # dropped
                sx1[s], sy1[s], sx2[s], sy2[s] = np.inf, np.inf, -np.inf, -np.inf
                if not dirty[s // B]:
                    dirty[s // B] = True
                    dirty_list[n_dirty] = s // B
                    n_dirty += 1
            elif w == 1.0:
                continue
            else:
                live[j] = value
            # j lost score (or left): only the nodes it was winning need a new winner
            up = ssize + j // G
            if top_box[up] != j:
                continue
            _rescan(j // G, ssize, G, live, top_score, top_box)
            up //= 2
            while up >= 1 and top_box[up] == j:
                _rematch(up, top_score, top_box)
                up //= 2
        for k in range(n_dirty):
            dirty[dirty_list[k]] = False
            _refit_bucket(dirty_list[k], size, B, sx1, sy1, sx2, sy2, bx1, by1, bx2, by2)
    return keep[:n_kept], kept[:n_kept]


def _validate(xyxy: np.ndarray, scores: np.ndarray) -> None:
    kind, bad = _first_invalid(xyxy, scores)
    if kind == 1:
        raise ValueError(f"soft_nms: scores must be finite, got scores[{bad}] = {scores[bad]}")
    if kind == 2:
        raise ValueError(f"soft_nms: box coordinates must be finite, got xyxy[{bad}] = {xyxy[bad].tolist()}")
    if kind == 3:
        raise ValueError(f"soft_nms: expected x1 <= x2 and y1 <= y2, got xyxy[{bad}] = {xyxy[bad].tolist()}")


def _label_ranks(class_ids: torch.Tensor | None, n: int) -> np.ndarray:
    """``(N,) int64`` dense ranks of the labels (all 0 without labels)."""
    if class_ids is None:
        return np.zeros(n, np.int64)
    return np.unique(class_ids.detach().cpu().numpy(), return_inverse=True)[1].astype(np.int64).reshape(n)


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
    if class_ids is not None and class_ids.shape != (n,):
        raise ValueError(f"soft_nms: class_ids must have shape ({n},), got {tuple(class_ids.shape)}")
    device = scores.device
    if n == 0:
        return torch.zeros(0, dtype=torch.int64, device=device), scores.new_zeros(0)
    boxes_np = np.ascontiguousarray(xyxy.detach().to("cpu", torch.float64).numpy())
    scores_np = np.ascontiguousarray(scores.detach().to("cpu", torch.float64).numpy())
    _validate(boxes_np, scores_np)
    labels = _label_ranks(class_ids, n)
    keep, kept_scores = _soft_nms_kernel(
        boxes_np,
        scores_np,
        labels,
        _METHOD_CODE[method],
        float(iou_threshold),
        float(sigma),
        float(min_score),
        1.0 if plus_one else 0.0,
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
