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

Exactness, against the plain per-box loop (``tests/unit/test_soft_nms.py``):

* ``linear`` and ``hard``: the same selections and the same float64 products, in the same
  order, so the same kept indices and bit-identical scores.
* ``gaussian`` when every score is > 0 and ``min_score`` is at least the smallest normal
  float64 (the usual case) runs in the log domain: a box's key is ``log(score) - sum of
  o**2 / sigma`` over the boxes selected while it overlapped them, a decay is one
  multiply-add (no ``exp``), the box is dropped when its key is below ``log(min_score)``,
  and a kept score is ``exp(key)`` (exactly the input score for a box never decayed).
  Scores agree with the loop's products to about 1e-15 relative per decay (tested to
  1e-12). Equal scores with equal decay histories (duplicated boxes, say) give equal keys,
  so exact ties go to the lowest index as in the loop. The selection order (and the
  ``min_score`` cut) can differ from the loop's only between values that the loop itself
  separates by rounding alone: two current scores equal to about 15 digits but not
  exactly (e.g. two inputs a few ulps apart, or different decay histories whose products
  happen to coincide), or a score within rounding of ``min_score``. Detector scores
  (float32) are never that close unless equal.
* ``gaussian`` with ``exact=True`` (config ``soft_nms.exact``), or otherwise (a score <= 0,
  where a logarithm does not exist, or a tiny ``min_score``, where products lose precision
  in subnormals) multiplies the scores by
  ``exp(-o**2 / sigma)`` like the loop: exact, but one ``exp`` per decay.

Implementation (compiled with numba, float64):

* Slots: the boxes sorted by label, then along a Z (Morton) curve of their centres, in
  leaves of ``_BUCKET`` slots. A leaf is a flat block of ``_FIELDS`` arrays of
  ``_BUCKET`` values (x1, y1, x2, y2, area, label, key). A selection step processes a
  whole leaf with the same branch-free arithmetic in every slot (a slot that does not
  meet the selected box, or holds another label, a gone box or none, keeps its values),
  so the loops vectorise; boxes of different labels never meet (class-aware Soft-NMS with
  one global selection order, as running each class alone and merging by score).
* A tree over the leaves: each node holds the bounding box of the live boxes below it and
  the best key below it, as an integer rank (the float's bits, reordered so that integer
  order is float order: integer maxima vectorise, float ones do not here), with the leaf
  that holds it. The root gives the current best key; the box is the lowest input index
  among that leaf's boxes of that key (found then, and cached until the leaf changes), and
  two nodes with equal keys compare those boxes, so the first of equal maxima wins.
* A selection step: the box leaves play; a depth-first walk from the tree nodes covering
  its label's leaves skips every node whose bounding box fails the overlap formula
  (monotone in rounded arithmetic, so it never skips a box that the exact test accepts);
  each leaf reached is decayed at once (overlap test ``min(x2) - max(x1) (+1) > 0`` on both
  axes, IoU, decay, drop), giving its new best key in the same pass; a leaf's bounds are
  recomputed only when a box left it; then the changed leaves' ancestors are updated level
  by level, each once (their bounds only above a leaf whose bounds changed). Selected and
  dropped boxes leave, so a pair is looked at only while
  both boxes are in play, and no overlap graph is built. Cost: O(log N) plus O(1) per live
  box in the leaves near the selected one. ``hard`` costs less than
  ``torchvision.ops.nms`` (the dropped boxes leave at once).
* Inputs and outputs are torch tensors on the caller's device (CPU or CUDA); the (N, 4)
  boxes and (N,) scores are read as float64 numpy arrays on the CPU, where the loop runs.
* Area convention: modern (``w = x2 - x1``, as torchvision) by default;
  ``plus_one=True`` gives the authors' "+1 pixel" convention (``w = x2 - x1 + 1``).
  IoU of two boxes whose union is empty is 0.
* Compilation: the kernels are compiled on first use (about 10 s) and cached on disk
  next to this file (numba ``cache=True``; later processes, multiprocessing workers
  included, load them in well under a second). Where no cache folder is writable
  (read-only install and home), they are compiled in memory in each process instead.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import TYPE_CHECKING, Literal

import numba
import numpy as np
import torch
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

if TYPE_CHECKING:
    from mct.detect.config import SoftNMSConfig

log = logging.getLogger(__name__)

__all__ = ["soft_nms", "soft_nms_from_config", "METHODS"]

Method = Literal["linear", "gaussian", "hard"]
METHODS: tuple[str, ...] = ("linear", "gaussian", "hard")
_METHOD_CODE = {"linear": 0, "gaussian": 1, "hard": 2}
_LINEAR, _GAUSSIAN, _HARD, _GAUSSIAN_LOG = 0, 1, 2, 3
#: slots per leaf (processed together; tuned with benchmarks/bench_soft_nms.py)
_BUCKET = 32
#: the fields of a leaf, ``_BUCKET`` values each, in one flat float64 array
_X1, _Y1, _X2, _Y2, _AREA, _LABEL, _KEY = 0, 1, 2, 3, 4, 5, 6
_FIELDS = 7
_NO_BOX = 1 << 62
_LOW63 = 0x7FFFFFFFFFFFFFFF
#: the smallest normal float64; below it products lose precision (gaussian stays in products)
_MIN_NORMAL = sys.float_info.min


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


_CACHE = _disk_cache_available()
_njit = numba.njit(cache=_CACHE, nogil=True)
_njit_inline = numba.njit(cache=_CACHE, nogil=True, inline="always")


@intrinsic
def _float_bits(typingctx, x):  # noqa: ARG001 - numba's intrinsic signature
    """The IEEE-754 bits of a float64 as an int64 (a bit cast, no conversion)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):  # noqa: ARG001
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _bits_float(typingctx, x):  # noqa: ARG001 - numba's intrinsic signature
    """The float64 whose IEEE-754 bits are the int64 ``x`` (a bit cast, no conversion)."""
    if x != types.int64:
        return None

    def codegen(context, builder, signature, args):  # noqa: ARG001
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@_njit_inline
def _rank(key: float) -> int:
    """An int64 in the order of the float ``key`` (not NaN): ``a < b`` iff ``_rank(a) < _rank(b)``,
    ``a == b`` iff ``_rank(a) == _rank(b)`` (``-0.0`` ranks as ``0.0``)."""
    bits = _float_bits(key)
    neg = bits >> 63
    return (bits ^ (neg & _LOW63)) - neg


@_njit_inline
def _unrank(rank: int) -> float:
    """The float of rank ``rank`` (inverse of :func:`_rank`)."""
    return _bits_float(rank if rank >= 0 else (rank - 1) ^ _LOW63)


#: ranks of -inf (a gone box, an empty slot, an empty subtree) and +inf
_GONE = -9218868437227405312
_TOP = 9218868437227405312


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


@_njit_inline
def _interleave(gx: int, gy: int) -> int:
    """The Z-curve (Morton) code of a grid cell: the bits of ``gx`` and ``gy`` (16 bits each) interleaved."""
    gx = (gx | (gx << 8)) & 0x00FF00FF
    gx = (gx | (gx << 4)) & 0x0F0F0F0F
    gx = (gx | (gx << 2)) & 0x33333333
    gx = (gx | (gx << 1)) & 0x55555555
    gy = (gy | (gy << 8)) & 0x00FF00FF
    gy = (gy | (gy << 4)) & 0x0F0F0F0F
    gy = (gy | (gy << 2)) & 0x33333333
    gy = (gy | (gy << 1)) & 0x55555555
    return gx | (gy << 1)


@_njit
def _spatial_order(xyxy: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """Box order by label, then along a Z (Morton) curve of the box centres on a 1024 x 1024
    grid (ties in input order): two stable counting passes of 10 bits, then one by label."""
    n = xyxy.shape[0]
    x0, y0, x1, y1 = np.inf, np.inf, -np.inf, -np.inf
    for i in range(n):
        cx = 0.5 * (xyxy[i, 0] + xyxy[i, 2])
        cy = 0.5 * (xyxy[i, 1] + xyxy[i, 3])
        x0, y0, x1, y1 = min(x0, cx), min(y0, cy), max(x1, cx), max(y1, cy)
    # one cell size on both axes, so that curve neighbours are near neighbours in space
    scale = 1023.0 / max(x1 - x0, y1 - y0, 1e-300)
    code = np.empty(n, np.int64)
    for i in range(n):
        gx = min(int((0.5 * (xyxy[i, 0] + xyxy[i, 2]) - x0) * scale), 1023)
        gy = min(int((0.5 * (xyxy[i, 1] + xyxy[i, 3]) - y0) * scale), 1023)
        code[i] = _interleave(gx, gy)
    order = np.arange(n)
    tmp = np.empty(n, np.int64)
    count = np.zeros(max(1024, n_labels) + 1, np.int64)
    for shift in (0, 10):
        count[:] = 0
        for i in range(n):
            count[((code[i] >> shift) & 1023) + 1] += 1
        for d in range(1024):
            count[d + 1] += count[d]
        for p in range(n):
            i = order[p]
            d = (code[i] >> shift) & 1023
            tmp[count[d]] = i
            count[d] += 1
        order, tmp = tmp, order
    if n_labels > 1:
        count[:] = 0
        for i in range(n):
            count[labels[i] + 1] += 1
        for d in range(n_labels):
            count[d + 1] += count[d]
        for p in range(n):
            i = order[p]
            tmp[count[labels[i]]] = i
            count[labels[i]] += 1
        order = tmp
    return order


@_njit_inline
def _decay_leaf(
    data: np.ndarray, at: int, method: int, a1: float, b1: float, a2: float, b2: float, area_best: float,
    label: float, extra: float, nt: float, sigma: float, inv_sigma: float, min_key: float,
) -> tuple[int, int]:
    """Decay (or drop) the live boxes of the leaf at ``data[at:]`` that overlap the selected
    box ``a1, b1, a2, b2`` (of ``label``): (how many boxes left the leaf, its best rank now).

    Every slot goes through the same branch-free arithmetic (one that does not overlap
    keeps its values), indexed without sign (no negative-index check), so the loops
    vectorise. A gone box only needs ``x1 = +inf`` (it then meets nothing) and key -inf.
    The four loops repeat the overlap arithmetic on purpose: one loop per method keeps the
    method test out of the loop, and moving the shared lines into an inlined helper that
    takes ``data`` stopped the vectorisation (measured: clustered N = 1000 linear 1.7x ->
    3.5x ``torchvision.ops.nms``, gaussian 1.9x -> 4.1x)."""
    B = _BUCKET
    base = np.uint64(at)
    n_gone = 0
    top = _GONE
    if method == _GAUSSIAN_LOG:
        for k in range(B):
            x1, y1 = data[base + np.uint64(_X1 * B + k)], data[base + np.uint64(_Y1 * B + k)]
            x2, y2 = data[base + np.uint64(_X2 * B + k)], data[base + np.uint64(_Y2 * B + k)]
            area, key = data[base + np.uint64(_AREA * B + k)], data[base + np.uint64(_KEY * B + k)]
            iw = min(a2, x2) - max(a1, x1) + extra
            ih = min(b2, y2) - max(b1, y1) + extra
            hit = (iw > 0.0) & (ih > 0.0) & (data[base + np.uint64(_LABEL * B + k)] == label)
            inter = iw * ih
            union = area_best + area - inter
            o = inter / union if union > 0.0 else 0.0
            value = key - o * o * inv_sigma
            gone = hit & (value < min_key)
            n_gone += gone
            new = -np.inf if gone else (value if hit else key)
            data[base + np.uint64(_KEY * B + k)] = new
            data[base + np.uint64(_X1 * B + k)] = np.inf if gone else x1
            top = max(top, _rank(new))
    elif method == _LINEAR:
        for k in range(B):
            x1, y1 = data[base + np.uint64(_X1 * B + k)], data[base + np.uint64(_Y1 * B + k)]
            x2, y2 = data[base + np.uint64(_X2 * B + k)], data[base + np.uint64(_Y2 * B + k)]
            area, key = data[base + np.uint64(_AREA * B + k)], data[base + np.uint64(_KEY * B + k)]
            iw = min(a2, x2) - max(a1, x1) + extra
            ih = min(b2, y2) - max(b1, y1) + extra
            hit = (iw > 0.0) & (ih > 0.0) & (data[base + np.uint64(_LABEL * B + k)] == label)
            inter = iw * ih
            union = area_best + area - inter
            o = inter / union if union > 0.0 else 0.0
            w = 1.0 - o
            value = key * (w if o > nt else 1.0)
            gone = hit & (value < min_key)
            n_gone += gone
            new = -np.inf if gone else (value if hit else key)
            data[base + np.uint64(_KEY * B + k)] = new
            data[base + np.uint64(_X1 * B + k)] = np.inf if gone else x1
            top = max(top, _rank(new))
    elif method == _HARD:
        for k in range(B):
            x1, y1 = data[base + np.uint64(_X1 * B + k)], data[base + np.uint64(_Y1 * B + k)]
            x2, y2 = data[base + np.uint64(_X2 * B + k)], data[base + np.uint64(_Y2 * B + k)]
            area, key = data[base + np.uint64(_AREA * B + k)], data[base + np.uint64(_KEY * B + k)]
            iw = min(a2, x2) - max(a1, x1) + extra
            ih = min(b2, y2) - max(b1, y1) + extra
            hit = (iw > 0.0) & (ih > 0.0) & (data[base + np.uint64(_LABEL * B + k)] == label)
            inter = iw * ih
            union = area_best + area - inter
            o = inter / union if union > 0.0 else 0.0
            # factor 0 (dropped whatever min_score is) or 1 (dropped only below min_score)
            gone = hit & ((o > nt) | (key < min_key))
            n_gone += gone
            new = -np.inf if gone else key
            data[base + np.uint64(_KEY * B + k)] = new
            data[base + np.uint64(_X1 * B + k)] = np.inf if gone else x1
            top = max(top, _rank(new))
    else:  # gaussian on the scores themselves: one exp per overlapping box
        for k in range(B):
            x1, y1 = data[base + np.uint64(_X1 * B + k)], data[base + np.uint64(_Y1 * B + k)]
            x2, y2 = data[base + np.uint64(_X2 * B + k)], data[base + np.uint64(_Y2 * B + k)]
            iw = min(a2, x2) - max(a1, x1) + extra
            ih = min(b2, y2) - max(b1, y1) + extra
            if iw > 0.0 and ih > 0.0 and data[base + np.uint64(_LABEL * B + k)] == label:
                inter = iw * ih
                union = area_best + data[base + np.uint64(_AREA * B + k)] - inter
                o = inter / union if union > 0.0 else 0.0
                value = data[base + np.uint64(_KEY * B + k)] * math.exp(-(o * o) / sigma)
                if value < min_key:
                    n_gone += 1
                    data[base + np.uint64(_KEY * B + k)] = -np.inf
                    data[base + np.uint64(_X1 * B + k)] = np.inf
                else:
                    data[base + np.uint64(_KEY * B + k)] = value
            top = max(top, _rank(data[base + np.uint64(_KEY * B + k)]))
    return n_gone, top


@_njit_inline
def _leaf_top(data: np.ndarray, at: int, leaf_size: int) -> int:
    """The best rank in the leaf at ``data[at:]`` (``_GONE`` if it holds no live box)."""
    base = np.uint64(at + _KEY * _BUCKET)
    top = _GONE
    # leaf_size == _BUCKET, but not a compile-time constant, so that the loop stays a loop
    # and vectorises (numba turns LLVM's SLP vectoriser off: unrolled code stays scalar)
    for k in range(leaf_size):
        top = max(top, _rank(data[base + np.uint64(k)]))
    return top


@_njit_inline
def _leaf_bounds(data: np.ndarray, at: int, leaf_size: int) -> tuple[float, float, float, float]:
    """The bounding box of the live boxes in the leaf at ``data[at:]`` (+inf, +inf, -inf, -inf
    if none); integer minima and maxima of ranks, which vectorise."""
    B = _BUCKET
    base = np.uint64(at)
    lo_x, lo_y, hi_x, hi_y = _TOP, _TOP, _GONE, _GONE
    for k in range(leaf_size):
        x1, y1 = data[base + np.uint64(_X1 * B + k)], data[base + np.uint64(_Y1 * B + k)]
        x2, y2 = data[base + np.uint64(_X2 * B + k)], data[base + np.uint64(_Y2 * B + k)]
        live = x1 != np.inf  # a gone box keeps stale y1, x2, y2
        r_x1, r_y1, r_x2, r_y2 = _rank(x1), _rank(y1), _rank(x2), _rank(y2)
        lo_x = min(lo_x, r_x1)
        lo_y = min(lo_y, r_y1 if live else _TOP)
        hi_x = max(hi_x, r_x2 if live else _GONE)
        hi_y = max(hi_y, r_y2 if live else _GONE)
    return _unrank(lo_x), _unrank(lo_y), _unrank(hi_x), _unrank(hi_y)


@_njit_inline
def _best_box_of(
    b: int, top: int, data: np.ndarray, slot_box: np.ndarray, leaf_size: int, best_box: np.ndarray,
    best_known: np.ndarray,
) -> int:
    """The lowest input index among leaf ``b``'s boxes of rank ``top`` (the first of equal
    maxima), cached until the leaf changes."""
    if not best_known[b]:
        keys = np.uint64((b * _FIELDS + _KEY) * _BUCKET)
        boxes = np.uint64(b * _BUCKET)
        best = _NO_BOX
        for k in range(leaf_size):
            box = slot_box[boxes + np.uint64(k)]
            best = min(best, box if _rank(data[keys + np.uint64(k)]) == top else _NO_BOX)
        best_box[b] = best
        best_known[b] = True
    return best_box[b]


@_njit
def _tie_winner(
    left: int, right: int, rank: int, tleaf: np.ndarray, data: np.ndarray, slot_box: np.ndarray, leaf_size: int,
    best_box: np.ndarray, best_known: np.ndarray,
) -> int:
    """Of two tree nodes whose best keys have the same rank, the one whose box has the lower input index."""
    bl = _best_box_of(tleaf[left], rank, data, slot_box, leaf_size, best_box, best_known)
    br = _best_box_of(tleaf[right], rank, data, slot_box, leaf_size, best_box, best_known)
    return right if br < bl else left


@_njit_inline
def _merge_best(node: int, tkey: np.ndarray, tleaf: np.ndarray, tie_child: int) -> tuple[bool, bool]:
    """Tree node ``node`` takes the better child (higher rank; on equal ranks ``tie_child``, or
    the left one if that is 0); returns whether it changed and whether the ranks were equal."""
    left, right = 2 * node, 2 * node + 1
    kl, kr = tkey[left], tkey[right]
    child = right if kr > kl else left
    tie = kr == kl and kl != _GONE
    if tie and tie_child > 0:
        child = tie_child
    rank, holder = tkey[child], tleaf[child]
    changed = rank != tkey[node] or holder != tleaf[node]
    tkey[node], tleaf[node] = rank, holder
    return changed, tie


@_njit_inline
def _merge_bounds(node: int, bx1: np.ndarray, by1: np.ndarray, bx2: np.ndarray, by2: np.ndarray) -> bool:
    """Tree node ``node`` takes the union of its children's bounds; returns whether it changed."""
    left, right = 2 * node, 2 * node + 1
    x1, y1 = min(bx1[left], bx1[right]), min(by1[left], by1[right])
    x2, y2 = max(bx2[left], bx2[right]), max(by2[left], by2[right])
    changed = not (x1 == bx1[node] and y1 == by1[node] and x2 == bx2[node] and y2 == by2[node])
    bx1[node], by1[node], bx2[node], by2[node] = x1, y1, x2, y2
    return changed


@_njit
def _soft_nms_kernel(
    xyxy: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    n_labels: int,
    method: int,
    iou_threshold: float,
    sigma: float,
    min_score: float,
    extra: float,
    leaf_size: int,
    exact: bool,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(kept indices in selection order, their scores, error kind, error index); method 0
    linear, 1 gaussian, 2 hard; ``leaf_size`` must be ``_BUCKET`` (passed at run time, see
    :func:`_leaf_top`); ``exact``: gaussian never in the log domain. Error kind as
    :func:`_first_invalid` (nothing else done if not 0)."""
    n = scores.shape[0]
    keep = np.empty(n, np.int64)
    kept = np.empty(n)
    invalid, bad = _first_invalid(xyxy, scores)
    if invalid:
        return keep[:0], kept[:0], invalid, bad
    B = _BUCKET
    F = _FIELDS
    if method == _GAUSSIAN and not exact and min_score >= _MIN_NORMAL and scores.min() > 0.0:
        method = _GAUSSIAN_LOG
    log_domain = method == _GAUSSIAN_LOG
    # slots: the boxes by label, then in curve order; a label's boxes are consecutive
    order = _spatial_order(xyxy, labels, n_labels)
    n_leaves = (n + B - 1) // B
    data = np.empty(n_leaves * F * B)
    for b in range(n_leaves):  # empty slots: x1 = +inf meets no box, key -inf
        data[(b * F + _X1) * B:(b * F + _Y1 + 1) * B] = np.inf
        data[(b * F + _X2) * B:(b * F + _Y2 + 1) * B] = -np.inf
        data[(b * F + _AREA) * B:(b * F + _LABEL + 1) * B] = 0.0
        data[(b * F + _KEY) * B:(b * F + _KEY + 1) * B] = -np.inf
    slot_box = np.full(n_leaves * B, _NO_BOX, np.int64)
    slot = np.empty(n, np.int64)
    label_first = np.full(n_labels, n, np.int64)  # slots of each label: [first, last]
    label_last = np.zeros(n_labels, np.int64)
    initial_key = np.empty(n)
    for s in range(n):
        i = order[s]
        slot[i] = s
        slot_box[s] = i
        label_first[labels[i]] = min(label_first[labels[i]], s)
        label_last[labels[i]] = s
        at = s // B * F * B + s % B
        data[at + _X1 * B], data[at + _Y1 * B] = xyxy[i, 0], xyxy[i, 1]
        data[at + _X2 * B], data[at + _Y2 * B] = xyxy[i, 2], xyxy[i, 3]
        data[at + _AREA * B] = (xyxy[i, 2] - xyxy[i, 0] + extra) * (xyxy[i, 3] - xyxy[i, 1] + extra)
        data[at + _LABEL * B] = labels[i]
        initial_key[i] = math.log(scores[i]) if log_domain else scores[i]
        data[at + _KEY * B] = initial_key[i]
    min_key = math.log(min_score) if log_domain else min_score
    size = 1
    while size < n_leaves:
        size *= 2
    # the tree over leaves: each node holds the bounding box of the live boxes below it and
    # the best of them: the rank of its key and the leaf holding it
    bx1, by1 = np.full(2 * size, np.inf), np.full(2 * size, np.inf)
    bx2, by2 = np.full(2 * size, -np.inf), np.full(2 * size, -np.inf)
    tkey = np.full(2 * size, _GONE, np.int64)
    tleaf = np.full(2 * size, -1, np.int64)
    best_box = np.empty(n_leaves, np.int64)  # per leaf, valid where best_known
    best_known = np.zeros(n_leaves, np.bool_)
    for b in range(n_leaves):
        tkey[size + b], tleaf[size + b] = _leaf_top(data, b * F * B, leaf_size), b
        bx1[size + b], by1[size + b], bx2[size + b], by2[size + b] = _leaf_bounds(data, b * F * B, leaf_size)
    for node in range(size - 1, 0, -1):
        _merge_bounds(node, bx1, by1, bx2, by2)
        if _merge_best(node, tkey, tleaf, 0)[1]:
            winner = _tie_winner(2 * node, 2 * node + 1, tkey[2 * node], tleaf, data, slot_box, leaf_size,
                                 best_box, best_known)
            _merge_best(node, tkey, tleaf, winner)
    inv_sigma = 1.0 / sigma
    stack = np.empty(3 * 64, np.int64)  # depth-first walk: <= 2 * depth start nodes + depth
    # tree nodes of one level to update: 2 * node, + 1 if its bounds changed
    changed = np.empty(n_leaves + 1, np.int64)
    mark = np.zeros(2 * size, np.int8)  # 1: to update, 3: bounds too
    dirty = np.zeros(n_leaves, np.bool_)  # leaves changed in this step
    dirty_list = np.empty(n_leaves + 1, np.int64)
    n_kept = 0
    while tkey[1] != _GONE:
        own = tleaf[1]
        best = _best_box_of(own, tkey[1], data, slot_box, leaf_size, best_box, best_known)
        sb = slot[best]
        at = sb // B * F * B + sb % B
        keep[n_kept] = best
        kept[n_kept] = data[at + _KEY * B]
        n_kept += 1
        data[at + _X1 * B] = np.inf  # out of play
        data[at + _KEY * B] = -np.inf
        own_node = size + own
        a1, b1, a2, b2 = xyxy[best, 0], xyxy[best, 1], xyxy[best, 2], xyxy[best, 3]
        area_best = (a2 - a1 + extra) * (b2 - b1 + extra)
        label = labels[best]
        label_f = float(label)
        # 1. the tree nodes covering the leaves of its label, then a depth-first walk below
        # them that skips a node whose bounding box does not meet the selected box (the same
        # overlap formula on the bounds: monotone in the rounded arithmetic, so it never skips
        # a box that the exact test on the box accepts); each leaf reached is decayed at once
        top_n = 0
        left, right = label_first[label] // B + size, label_last[label] // B + 1 + size
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
        m = 0
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
            b = node - size
            n_gone, top = _decay_leaf(
                data, b * F * B, method, a1, b1, a2, b2, area_best, label_f, extra, iou_threshold, sigma, inv_sigma,
                min_key,
            )
            tkey[node] = top
            best_known[b] = False
            left_box = n_gone > 0 or node == own_node
            if left_box:  # the bounds shrink only when a box left
                bx1[node], by1[node], bx2[node], by2[node] = _leaf_bounds(data, b * F * B, leaf_size)
            if node == own_node:
                own_node = 0
            changed[m] = 2 * node + left_box
            m += 1
        if own_node > 0:  # not reached (a box of zero width or height meets nothing)
            tkey[own_node] = _leaf_top(data, own * F * B, leaf_size)
            best_known[own] = False
            bx1[own_node], by1[own_node], bx2[own_node], by2[own_node] = _leaf_bounds(data, own * F * B, leaf_size)
            changed[m] = 2 * own_node + 1
            m += 1
        # 2. the changed leaves' ancestors, level by level, each once. A node that holds a
        # changed leaf is passed on even if it looks the same: that leaf's best box (the
        # lowest index among its best keys), which decides ties above, may differ
        n_dirty = m
        for k in range(m):
            dirty_list[k] = (changed[k] >> 1) - size
            dirty[dirty_list[k]] = True
        while m > 0:
            m_up = 0
            for k in range(m):
                parent = changed[k] >> 2
                if parent >= 1:
                    if mark[parent] == 0:
                        changed[m_up] = parent
                        m_up += 1
                    mark[parent] |= 1 + 2 * (changed[k] & 1)
            m = 0
            for k in range(m_up):
                node = changed[k]
                bounds_changed = mark[node] == 3 and _merge_bounds(node, bx1, by1, bx2, by2)
                mark[node] = 0
                best_changed, tie = _merge_best(node, tkey, tleaf, 0)
                if tie:  # equal best keys (rare): the lower input index
                    bl, br = tleaf[2 * node], tleaf[2 * node + 1]
                    if best_known[bl] and best_known[br]:
                        winner = 2 * node + 1 if best_box[br] < best_box[bl] else 2 * node
                    else:
                        winner = _tie_winner(2 * node, 2 * node + 1, tkey[2 * node], tleaf, data, slot_box, leaf_size,
                                             best_box, best_known)
                    best_changed |= _merge_best(node, tkey, tleaf, winner)[0]
                if bounds_changed or best_changed or (tleaf[node] >= 0 and dirty[tleaf[node]]):
                    changed[m] = 2 * node + bounds_changed
                    m += 1
        for k in range(n_dirty):
            dirty[dirty_list[k]] = False
    if log_domain:  # back from logarithms; a box never decayed keeps its score exactly
        for k in range(n_kept):
            i = keep[k]
            kept[k] = scores[i] if kept[k] == initial_key[i] else math.exp(kept[k])
    return keep[:n_kept], kept[:n_kept], 0, -1


def _label_ranks(class_ids: torch.Tensor | None, n: int) -> tuple[np.ndarray, int]:
    """``(N,) int64`` dense ranks of the labels (all 0 without labels) and how many labels."""
    if class_ids is None:
        return np.zeros(n, np.int64), 1
    uniques, ranks = np.unique(class_ids.detach().cpu().numpy(), return_inverse=True)
    return ranks.astype(np.int64).reshape(n), len(uniques)


def _as_float64(t: torch.Tensor) -> np.ndarray:
    """``t`` as a C-contiguous float64 numpy array on the CPU (a view where it already is one)."""
    t = t.detach()
    if t.device.type != "cpu" or t.dtype not in (torch.float32, torch.float64):
        t = t.to("cpu", torch.float64)
    return np.ascontiguousarray(t.numpy(), dtype=np.float64)


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
    exact: bool = False,
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
        exact: gaussian multiplies the scores by ``exp(-o**2 / sigma)`` like the per-box
            loop (bit-identical to it) instead of summing in the log domain (about 1e-15
            relative from it, and faster on clustered boxes); linear and hard are always
            exact.

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
    boxes_np = _as_float64(xyxy)
    scores_np = _as_float64(scores)
    labels, n_labels = _label_ranks(class_ids, n)
    keep, kept_scores, invalid, bad = _soft_nms_kernel(
        boxes_np,
        scores_np,
        labels,
        n_labels,
        _METHOD_CODE[method],
        float(iou_threshold),
        float(sigma),
        float(min_score),
        1.0 if plus_one else 0.0,
        _BUCKET,
        bool(exact),
    )
    if invalid == 1:
        raise ValueError(f"soft_nms: scores must be finite, got scores[{bad}] = {scores_np[bad]}")
    if invalid == 2:
        raise ValueError(f"soft_nms: box coordinates must be finite, got xyxy[{bad}] = {boxes_np[bad].tolist()}")
    if invalid == 3:
        raise ValueError(f"soft_nms: expected x1 <= x2 and y1 <= y2, got xyxy[{bad}] = {boxes_np[bad].tolist()}")
    if scores.dtype == torch.float32:
        kept_t = torch.from_numpy(kept_scores.astype(np.float32))
    else:
        kept_t = torch.from_numpy(kept_scores).to(scores.dtype)
    keep_t = torch.from_numpy(keep)
    if device.type != "cpu":
        return keep_t.to(device), kept_t.to(device)
    return keep_t, kept_t


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
        exact=cfg.exact,
    )
