"""From scored candidate pairs to global ids: constrained average-linkage agglomeration.

Only pairs found in each tracklet's k nearest neighbours are candidates (N * k pairs, never
N * N). They are visited best score first; the two clusters holding a pair merge when

1. the merged cluster has at most ``max_cluster_size`` tracklets;
2. no pair of tracklets across the two is impossible (score ``-inf``: two scenarios, one
   camera at once beyond a handover, faster than any vehicle) — the cannot-links;
3. the merge score is above ``min_log_lr``: the appearance log-likelihood ratio of the
   cosine of the two clusters' mean features (averaging a vehicle's views cancels much of
   each view's noise; for two single tracklets it is the pair's own), plus the **average**
   of the space-time terms (travel time, direction, co-location) over the ``|A| x |B|``
   pairs across the two clusters (pairs of cameras with no direct link left out) (average
   linkage: a vehicle's tracklets must agree in space and time as a whole, not only along
   the chain of pairs that joined them). The cut is on this likelihood ratio, not on a
   posterior: the candidates' prior depends on ``k``.

Pairs that are candidates use their stored space-time score (co-location included); the
other cross pairs are scored on the spot by the same kernel
(:func:`mct.associate.score.pair_log_lr`, without co-location, which is only measured for
candidates). The loop is compiled with numba.
"""

from __future__ import annotations

import itertools
import logging
import math

import numba
import numpy as np

from mct.associate.score import _NO_COLOCATION, PairModel, _appearance_llr, _score_many, pair_cosines, pair_log_lr, table_args
from mct.associate.table import TrackletTable

__all__ = ["candidate_pairs", "best_per_camera", "best_linked_in_time", "mutual_best", "constrained_agglomerative", "conflicts_within"]

log = logging.getLogger(__name__)


def candidate_pairs(idx: np.ndarray, table: TrackletTable | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Unordered pairs ``(i < j)`` from kNN lists ``idx`` ``(N, k) int64`` (-1 pads), each
    once, itself excluded; ``(E,) int64`` each, sorted by ``(i, j)``."""
    n, k = idx.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = idx.ravel()
    keep = (cols >= 0) & (cols != rows)
    a, b = np.minimum(rows, cols)[keep], np.maximum(rows, cols)[keep]
    code = np.unique(a * max(n, 1) + b)
    return code // max(n, 1), code % max(n, 1)


def _into_camera(table: TrackletTable, a: np.ndarray, b: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pair twice, keyed by (tracklet, the other's camera): ``a`` into ``b``'s camera,
    then ``b`` into ``a``'s; ``(2E,)`` keys and float64 scores."""
    n_c = max(len(table.camera_keys), 1)
    cam = table.camera.astype(np.int64)
    return np.concatenate([a * n_c + cam[b], b * n_c + cam[a]]), np.concatenate([s, s]).astype(np.float64)


@numba.njit(cache=True, nogil=True)
def _best_in_camera(keys: np.ndarray, order: np.ndarray, s: np.ndarray, mutual: np.ndarray, margin: np.ndarray) -> None:
    """Per group of equal ``keys`` (``(2E,)``, pair ``e`` as ``e`` and ``E + e``, visited in
    ``order``, sorted by key), fill ``mutual`` ``(E,) bool`` (the score is at least the
    group's maximum in both groups; a NaN in a group makes its maximum NaN, as
    ``np.maximum.at``) and ``margin`` ``(E,) float64`` (the score less the best of the
    others in the group, the smaller of the two groups; the ranking of a descending sort
    with NaN last, as ``np.lexsort``)."""
    m = len(s)
    total = len(order)
    mutual[:] = True
    margin[:] = np.inf
    lo = 0
    while lo < total:
        key = keys[order[lo]]
        hi = lo
        top1 = -np.inf
        top2 = -np.inf
        finite = 0
        has_nan = False
        while hi < total and keys[order[hi]] == key:
            v = s[order[hi] % m]
            if np.isnan(v):
                has_nan = True
            else:
                if finite == 0 or v > top1:
                    top2 = top1
                    top1 = v
                elif finite == 1 or v > top2:
                    top2 = v
                finite += 1
            hi += 1
        size = hi - lo
        best = top1 if finite else np.nan
        if size < 2:
            second = -np.inf
        elif finite >= 2:
            second = top2
        else:
            second = np.nan
        best_max = np.nan if has_nan else top1
        for p in range(lo, hi):
            e = order[p] % m
            v = s[e]
            if not v >= best_max:
                mutual[e] = False
            other = second if v >= best else best
            g = np.inf if other == -np.inf else v - other
            if np.isnan(g) or np.isnan(margin[e]):
                margin[e] = np.nan
            elif g < margin[e]:
                margin[e] = g
        lo = hi


def _rank_in_camera(table: TrackletTable, a: np.ndarray, b: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mutual_best` and :func:`second_best_margin` in one compiled pass over the pairs
    grouped by (tracklet, the other's camera): ``(2E,) int64`` keys and their sort order are
    the only temporaries (sorting keys and scores together, with unique, lexsort and the
    per-pair gathers, held 20 arrays of 2E: 1.1 GB on the 1M benchmark's pairs)."""
    m = len(a)
    mutual, margin = np.empty(m, bool), np.empty(m, np.float64)
    if m == 0:
        return mutual, margin
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    n_c = max(len(table.camera_keys), 1)
    cam = table.camera
    keys = np.empty(2 * m, np.int64)
    np.multiply(a, n_c, out=keys[:m])
    keys[:m] += cam[b]
    np.multiply(b, n_c, out=keys[m:])
    keys[m:] += cam[a]
    order = np.argsort(keys, kind="stable")
    _best_in_camera(keys, order, np.ascontiguousarray(s, np.float64), mutual, margin)
    return mutual, margin


def mutual_best(table: TrackletTable, a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``(E,) bool``: pair ``e`` is the best-scoring pair of ``a[e]`` among its pairs with
    tracklets of ``b[e]``'s camera, and of ``b[e]`` among its pairs with ``a[e]``'s camera
    (ties count as best)."""
    return _rank_in_camera(table, a, b, s)[0]


def second_best_margin(table: TrackletTable, a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``(E,) float64``: how far pair ``e``'s score lies above the second-best score of
    ``a[e]`` into ``b[e]``'s camera and of ``b[e]`` into ``a[e]``'s camera (the smaller of
    the two margins; ``inf`` when there is no second pair)."""
    return _rank_in_camera(table, a, b, s)[1]


def best_per_camera(table: TrackletTable, a: np.ndarray, b: np.ndarray, s: np.ndarray, m: int) -> np.ndarray:
    """``(E,) bool``: pair ``e`` is among the ``m`` best-scoring pairs of ``a[e]`` with
    tracklets of ``b[e]``'s camera, or of ``b[e]`` with tracklets of ``a[e]``'s camera
    (NaN and ``-inf`` scores are never chosen)."""
    if len(a) == 0:
        return np.zeros(0, bool)
    keys, vals = _into_camera(table, a, b, s)
    vals = np.where(np.isfinite(vals), vals, -np.inf)
    order = np.lexsort((-vals, keys))
    k_sorted = keys[order]
    first = np.ones(len(order), bool)
    first[1:] = k_sorted[1:] != k_sorted[:-1]
    starts = np.flatnonzero(first)
    rank_in_group = np.arange(len(order)) - np.repeat(starts, np.diff(np.append(starts, len(order))))
    chosen = np.zeros(len(order), bool)
    chosen[order] = (rank_in_group < m) & np.isfinite(vals[order])
    e = len(a)
    return chosen[:e] | chosen[e:]


def best_linked_in_time(
    table: TrackletTable, links: object, model: PairModel, m: int, preselect: int, floor: float = -np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Space-time candidates: for each linked camera pair ``c -> d`` of
    :func:`mct.associate.constraints.linked_windows`, the pairs among the ``m`` best by the
    full score of ``model`` of each tracklet of ``c`` into ``d`` and of each tracklet of
    ``d`` into ``c``, of the ``preselect`` best by the space-time terms alone (no features
    read; :func:`mct.associate.score.best_in_windows`), scoring above ``floor``; ``(a, b)``
    once each, ``a`` seen first. A few camera pairs' windows are in memory at a time (one per thread, twice over),
    whatever the size of the day.
    """
    from concurrent.futures import ThreadPoolExecutor

    from mct.associate.constraints import first_seen_first, linked_windows
    from mct.associate.score import best_in_windows, compute_threads

    kept_a, kept_b = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    # camera pairs on threads (the pass releases the GIL), a few at a time, read back in order
    n = compute_threads()
    windows = linked_windows(table, links)
    with ThreadPoolExecutor(n) as pool:
        while batch := list(itertools.islice(windows, 2 * n)):
            for pa, pb in pool.map(lambda w: best_in_windows(table, model, *w, m, preselect, floor), batch):
                kept_a.append(pa)
                kept_b.append(pb)
    return first_seen_first(table, np.concatenate(kept_a), np.concatenate(kept_b))


@numba.njit(cache=True, nogil=True)
def _cluster(
    n: int, pa: np.ndarray, pb: np.ndarray, indptr: np.ndarray, nbr: np.ndarray, val: np.ndarray,
    min_mean: float, max_size: int,
    feats: np.ndarray, start: np.ndarray, end: np.ndarray, cam: np.ndarray, scen: np.ndarray, motion: np.ndarray,
    app: np.ndarray, kappa: float, log_i0: float,
    l_lo: np.ndarray, l_hi: np.ndarray, l_spread: np.ndarray, l_min: np.ndarray, l_known: np.ndarray,
    l_mass: np.ndarray, horizon: np.ndarray, n_c: int, terms: np.ndarray, handover_s: float,
    g_off: np.ndarray, g_t: np.ndarray, g_xy: np.ndarray, col_c0: float, col_s2: float, col_w: float,
) -> tuple:
    space_time = terms.copy()
    space_time[0] = 0.0
    parent = np.arange(n)
    size = np.ones(n, np.int64)
    nxt = np.full(n, -1, np.int64)
    tail = np.arange(n)
    merges = 0
    refused = 0
    for e in range(len(pa)):
        ra = pa[e]
        while parent[ra] != ra:
            parent[ra] = parent[parent[ra]]
            ra = parent[ra]
        rb = pb[e]
        while parent[rb] != rb:
            parent[rb] = parent[parent[rb]]
            rb = parent[rb]
        if ra == rb:
            continue
        if size[ra] + size[rb] > max_size:
            refused += 1
            continue
        # the linkage: each member pair's candidate score without appearance, looked up
        # (CSR by lower row), else scored, in one call for the merge (a compiled call per
        # pair costs more than the pair)
        total = 0.0
        count = 0
        ok = True
        n_new = 0
        new_x = np.empty(size[ra] * size[rb], np.int64)
        new_y = np.empty(size[ra] * size[rb], np.int64)
        x = ra
        while x >= 0 and ok:
            y = rb
            while y >= 0:
                u, v = min(x, y), max(x, y)
                lo, hi = indptr[u], indptr[u + 1]
                while lo < hi:
                    mid = (lo + hi) // 2
                    if nbr[mid] < v:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo < indptr[u + 1] and nbr[lo] == v:
                    s = val[lo]
                    if s == -np.inf:
                        ok = False
                        break
                    if not np.isnan(s):  # NaN: no direct link, no evidence
                        total += s
                        count += 1
                else:
                    new_x[n_new] = x
                    new_y[n_new] = y
                    n_new += 1
                y = nxt[y]
            x = nxt[x]
        if ok and n_new:
            for s in _score_many(new_x[:n_new], new_y[:n_new], feats, start, end, cam, scen, motion, app, kappa, log_i0,
                                 l_lo, l_hi, l_spread, l_min, l_known, l_mass, horizon, n_c, space_time, handover_s,
                                 g_off, g_t, g_xy, col_c0, col_s2, col_w):
                if s == -np.inf:
                    ok = False
                    break
                if not np.isnan(s):
                    total += s
                    count += 1
        if not ok or count == 0:
            refused += 1
            continue
        mean = total / count
        if terms[0] > 0.0:
            # appearance of the two clusters: the cosine of their mean features (averaging
            # a vehicle's views cancels much of each view's noise)
            ca = np.zeros(feats.shape[1])
            cb = np.zeros(feats.shape[1])
            x = ra
            while x >= 0:
                ca += feats[x]
                x = nxt[x]
            y = rb
            while y >= 0:
                cb += feats[y]
                y = nxt[y]
            mean += terms[0] * _appearance_llr(np.dot(ca, cb) / math.sqrt(np.dot(ca, ca) * np.dot(cb, cb)), app)
        if mean <= min_mean:
            refused += 1
            continue
        if size[ra] < size[rb]:
            ra, rb = rb, ra
        nxt[tail[ra]] = rb
        tail[ra] = tail[rb]
        parent[rb] = ra
        size[ra] += size[rb]
        merges += 1
    roots = np.empty(n, np.int64)
    for x in range(n):
        r = x
        while parent[r] != r:
            r = parent[r]
        roots[x] = r
    return roots, merges, refused


def constrained_agglomerative(
    table: TrackletTable,
    model: PairModel,
    pair_a: np.ndarray,
    pair_b: np.ndarray,
    scores: np.ndarray,
    min_log_lr: float,
    max_cluster_size: int,
) -> np.ndarray:
    """Cluster the table's rows; see the module docstring.

    Args:
        model: the pair model.
        pair_a, pair_b: ``(E,) int64`` candidate pairs, any order.
        scores: ``(E,) float64`` their full scores (:func:`mct.associate.score.score_pairs`).
        min_log_lr: the decision threshold on the merge's log-likelihood ratio (0: the
            evidence favours one vehicle).

    Returns:
        ``(N,) int64`` cluster labels ``0..M-1``, numbered in order of each cluster's first row.
    """
    n = len(table)
    if n == 0:
        return np.zeros(0, np.int64)
    pair_a = np.asarray(pair_a, np.int64)
    pair_b = np.asarray(pair_b, np.int64)
    scores = np.asarray(scores, np.float64)
    lo_, hi_ = np.minimum(pair_a, pair_b), np.maximum(pair_a, pair_b)
    # CSR of the candidate scores without appearance (the loop adds the clusters' own), by
    # (lower row, higher row)
    space_time = scores
    if model.terms[0] and model.appearance.source != "off":
        cos = pair_cosines(table.features, pair_a, pair_b)
        space_time = scores - float(model.terms[0]) * model.appearance.log_lr(cos)
    code = lo_ * n + hi_
    if len(code) > 1 and not (code[1:] >= code[:-1]).all():  # the association's candidates come sorted
        order = np.argsort(code, kind="stable")
        lo_, nbr, val = lo_[order], hi_[order], space_time[order]
    else:
        nbr, val = hi_, space_time
    del code
    indptr = np.cumsum(np.bincount(lo_ + 1, minlength=n + 1))
    # the cut is on the likelihood ratio: the candidates' prior share of true pairs falls as
    # k rises (more neighbours asked, more of them false), so a cut on the posterior would
    # let a search setting decide merges (docs/association.md, "The cut")
    min_mean = float(min_log_lr)
    visit = np.flatnonzero(scores > min_mean)  # no evidence at all (0 at even odds) merges nothing
    visit = visit[np.argsort(-scores[visit], kind="stable")]
    roots, merges, refused = _cluster(
        n, pair_a[visit], pair_b[visit], indptr, nbr, val, min_mean, int(max_cluster_size),
        *table_args(table), *model.kernel_args(), *_NO_COLOCATION,  # the linkage scores pairs without co-location
    )
    _, first, labels = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    log.debug("clustering: %d pairs visited, %d merges, %d refused, %d clusters", len(visit), merges, refused, len(first))
    return rank[labels.ravel()]


def conflicts_within(table: TrackletTable, model: PairModel, labels: np.ndarray) -> int:
    """Number of impossible pairs inside clusters (0 for a valid result); for tests and checks.

    Cost grows with the square of cluster sizes: not for use on huge tables.
    """
    count = 0
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for grp in np.split(order, bounds):
        if len(grp) < 2:
            continue
        a, b = np.triu_indices(len(grp), 1)
        count += int(np.isneginf(pair_log_lr(table, model, grp[a], grp[b])).sum())
    return count
