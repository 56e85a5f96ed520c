"""From kNN lists to global ids: candidate pairs, k-reciprocal re-ranking, constrained
agglomerative clustering.

Only the pairs found in each tracklet's k nearest neighbours are ever scored (N * k pairs,
never N * N). Clustering is agglomerative over that sparse candidate graph:

1. candidate pairs with similarity >= ``min_similarity`` whose constraint status is
   :data:`~mct.associate.constraints.LINK` are visited in order of descending similarity;
2. the two clusters holding a pair are merged only if the cosine similarity of their mean
   features (centroid linkage) is still >= ``min_similarity`` — this stops the chaining of
   single linkage, where A~B and B~C merge A with C however unlike they are;
3. and only if no tracklet of one cluster is in :data:`~mct.associate.constraints.CONFLICT`
   with a tracklet of the other (two time-overlapping tracklets of one camera) and the
   merged cluster has at most ``max_cluster_size`` tracklets;
4. with ``all_pairs_link`` (``association.all_pairs_link``), only if every pair of
   tracklets across the two clusters is :data:`~mct.associate.constraints.LINK`: complete
   linkage on the space-time rules, so one vehicle's tracklets are pairwise consistent in
   time, travel windows and direction, not only along the chain of pairs that merged them.
"""

from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm

from mct.associate.constraints import CONFLICT, LINK, Constraints
from mct.associate.table import TrackletTable

__all__ = ["candidate_pairs", "k_reciprocal_rerank", "mutual_best", "order_pairs", "constrained_agglomerative"]

log = logging.getLogger(__name__)

#: visit candidate pairs in chunks of this many (bounds the Python lists made from them).
_CHUNK = 200_000


def k_reciprocal_rerank(idx: np.ndarray, sims: np.ndarray, lam: float) -> np.ndarray:
    """k-reciprocal re-ranking (Zhong et al., CVPR 2017) restricted to the kNN lists.

    For each tracklet ``i`` its reciprocal set ``R(i)`` holds ``i`` and the ``j`` in its kNN
    list whose own list holds ``i``. Each ``R(i)`` becomes a weight vector
    ``V_i[j] = exp(-(2 - 2 s_ij))`` (squared distance of unit vectors), normalised to sum 1;
    the Jaccard similarity ``J = sum min(V_i, V_j) / sum max(V_i, V_j)`` is blended with the
    original similarity: ``(1 - lam) * J + lam * s`` (the paper's ``d* = (1 - lam) d_J + lam d``
    for similarities). The paper's expansion of ``R(i)`` by half-size reciprocal sets and its
    local query expansion are left out.

    Args:
        idx: ``(N, k) int64`` neighbour rows, -1 pads (rows of the same table).
        sims: ``(N, k) float32`` their similarities.
        lam: weight of the original similarity.

    Returns:
        ``(N, k) float32`` re-ranked similarities for the same ``idx`` entries (-inf at pads).
    """
    n, k = idx.shape
    if n == 0:
        return sims.copy()
    valid = idx >= 0
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = idx.ravel()
    ok = valid.ravel()
    code = rows[ok] * n + cols[ok]
    rev = cols[ok] * n + rows[ok]
    recip = np.zeros(n * k, bool)
    recip[np.flatnonzero(ok)] = np.isin(rev, code)
    recip = recip.reshape(n, k) | (idx == np.arange(n)[:, None])
    # reciprocal sets as (N, k + 1) padded rows: self first
    set_idx = np.where(recip, idx, -1)
    set_w = np.where(recip, np.exp(-(2.0 - 2.0 * sims.astype(np.float64))), 0.0)
    self_in = (idx == np.arange(n)[:, None]).any(axis=1)
    set_idx = np.concatenate([np.where(self_in, -1, np.arange(n))[:, None], set_idx], axis=1)
    set_w = np.concatenate([np.where(self_in, 0.0, 1.0)[:, None], set_w], axis=1)
    set_w /= np.maximum(set_w.sum(axis=1, keepdims=True), 1e-12)
    out = np.full((n, k), -np.inf, np.float32)
    chunk = max(1, 2_000_000 // (k * (k + 1) * (k + 1)))
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        qi = np.repeat(np.arange(lo, hi), k)
        qj = idx[lo:hi].ravel()
        vj = qj >= 0
        a_idx, a_w = set_idx[qi], set_w[qi]  # (E, k+1)
        b_idx, b_w = set_idx[np.maximum(qj, 0)], set_w[np.maximum(qj, 0)]
        same = (a_idx[:, :, None] == b_idx[:, None, :]) & (a_idx[:, :, None] >= 0)  # (E, k+1, k+1)
        inter = np.minimum(a_w[:, :, None], b_w[:, None, :])
        smin = (inter * same).sum(axis=(1, 2))
        smax = a_w.sum(axis=1) + b_w.sum(axis=1) - smin
        jac = smin / np.maximum(smax, 1e-12)
        s = sims[lo:hi].ravel().astype(np.float64)
        new = (1.0 - lam) * jac + lam * s
        out[lo:hi] = np.where(vj, new, -np.inf).reshape(hi - lo, k).astype(np.float32)
    return out


def candidate_pairs(
    table: TrackletTable,
    constraints: Constraints,
    idx: np.ndarray,
    sims: np.ndarray,
    min_similarity: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unordered pairs ``(i < j)`` from the kNN lists with similarity >= ``min_similarity``
    that the constraints allow to link; ``(E,) int64, (E,) int64, (E,) float32`` sorted by
    descending similarity (a pair found from both ends keeps its larger similarity)."""
    n, k = idx.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = idx.ravel()
    s = sims.ravel()
    keep = (cols >= 0) & (cols != rows) & (s >= min_similarity)
    a, b, s = np.minimum(rows, cols)[keep], np.maximum(rows, cols)[keep], s[keep]
    order = np.lexsort((-s, b, a))  # by pair, best similarity first
    a, b, s = a[order], b[order], s[order]
    first = np.ones(len(a), bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    a, b, s = a[first], b[first], s[first]
    st = constraints.status(table, a, b)
    link = st == LINK
    a, b, s = a[link], b[link], s[link]
    order = np.argsort(-s, kind="stable")
    log.debug("candidate pairs: %d from %d kNN entries (%d blocked by constraints)", len(a), n * k, int((~link).sum()))
    return a[order], b[order], s[order]


def mutual_best(table: TrackletTable, a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``(E,) bool``: pair ``e`` is the best-scoring pair of ``a[e]`` among its pairs with
    tracklets of ``b[e]``'s camera, and of ``b[e]`` among its pairs with ``a[e]``'s camera.

    ``(a, b, s)`` are candidate pairs (as :func:`candidate_pairs` returns them) and their
    similarities; ties count as best for every pair that reaches the maximum.
    """
    if len(a) == 0:
        return np.zeros(0, bool)
    n_c = max(len(table.camera_keys), 1)
    cam = table.camera.astype(np.int64)
    key_a = a * n_c + cam[b]  # a's pairs into b's camera
    key_b = b * n_c + cam[a]
    keys = np.concatenate([key_a, key_b])
    vals = np.concatenate([s, s]).astype(np.float64)
    uniq, inv = np.unique(keys, return_inverse=True)
    best = np.full(len(uniq), -np.inf)
    np.maximum.at(best, inv, vals)
    m = len(a)
    return (vals[:m] >= best[inv[:m]]) & (vals[m:] >= best[inv[m:]])


def order_pairs(
    table: TrackletTable,
    a: np.ndarray,
    b: np.ndarray,
    s: np.ndarray,
    min_similarity: float,
    mutual_min_similarity: float | None,
    colocated: np.ndarray | None = None,
    colocation_min_similarity: float | None = None,
    others_linkage: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The visiting order of candidate pairs ``(a, b)`` with similarities ``s``, and the
    centroid-linkage threshold each pair merges at.

    Tiers, each visited best first:

    1. with ``colocated`` (``(E,) bool``, pairs that stand at one place at once, see
       ``association.colocation_max_m``): those with ``s >= colocation_min_similarity``,
       at that threshold;
    2. with ``mutual_min_similarity``: the other mutual-best pairs (:func:`mutual_best`)
       with ``s >= mutual_min_similarity``, at that threshold;
    3. the remaining pairs with ``s >= min_similarity``, at ``others_linkage`` (default
       ``min_similarity``; with re-ranking the pairs' scale differs from the centroids').

    Returns:
        ``(a, b, thresholds)``: the pairs in visiting order and ``(E,) float64`` thresholds.
    """
    tiers: list[tuple[np.ndarray, float]] = []
    left = np.ones(len(a), bool)
    if colocated is not None and colocation_min_similarity is not None:
        near = np.asarray(colocated, bool) & (s >= colocation_min_similarity)
        tiers.append((near, colocation_min_similarity))
        left &= ~near
    if mutual_min_similarity is not None:
        mutual = left & mutual_best(table, a, b, s) & (s >= mutual_min_similarity)
        tiers.append((mutual, mutual_min_similarity))
        left &= ~mutual
    tiers.append((left & (s >= min_similarity), min_similarity if others_linkage is None else others_linkage))
    order, thresholds = [], []
    for mask, threshold in tiers:
        rows = np.flatnonzero(mask)
        order.append(rows[np.argsort(-s[rows], kind="stable")])
        thresholds.append(np.full(len(rows), threshold, np.float64))
    if len(tiers) > 1:
        log.debug("candidate pairs by tier: %s", [len(o) for o in order])
    keep = np.concatenate(order)
    return a[keep], b[keep], np.concatenate(thresholds)


def constrained_agglomerative(
    table: TrackletTable,
    constraints: Constraints,
    features: np.ndarray,
    pair_a: np.ndarray,
    pair_b: np.ndarray,
    min_similarity: float | np.ndarray,
    max_cluster_size: int,
    progress: bool = True,
    all_pairs_link: bool = False,
) -> np.ndarray:
    """Cluster the table's rows; see the module docstring for the rules.

    Args:
        features: ``(N, d) float32`` L2-normalised features used for centroid linkage.
        pair_a, pair_b: ``(E,)`` candidate pairs in the order to visit them (best first).
        min_similarity: the centroid-linkage threshold, one for all pairs or ``(E,)`` one
            per pair (see :func:`order_pairs`).
        all_pairs_link: a merge needs every cross pair of the two clusters to be
            :data:`~mct.associate.constraints.LINK` (rule 4), not only no ``CONFLICT``.

    Returns:
        ``(N,) int64`` cluster labels ``0..M-1``, numbered in order of each cluster's first row.
    """
    n = len(table)
    parent = list(range(n))
    size = [1] * n
    # feature sum per root with more than one member (singletons read ``features``): no
    # copy of the whole (N, d) matrix
    sums: dict[int, np.ndarray] = {}
    sq = np.einsum("ij,ij->i", features, features).astype(np.float64).tolist()  # |sum|^2 per root
    thresholds = np.broadcast_to(np.asarray(min_similarity, np.float64), (len(pair_a),))
    min_sim_sq = (thresholds * np.abs(thresholds)).tolist()
    # per root with more than one member: camera code -> member rows (singletons implicit)
    by_cam: dict[int, dict[int, list[int]]] = {}
    cam = table.camera.tolist()
    start = table.start_s.tolist()
    end = table.end_s.tolist()

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def members(r: int) -> dict[int, list[int]]:
        return by_cam.get(r) or {cam[r]: [r]}

    def not_all_linked(ra: int, rb: int) -> bool:
        rows_a = [r for rows in members(ra).values() for r in rows]
        rows_b = [r for rows in members(rb).values() for r in rows]
        i = np.repeat(np.array(rows_a, np.int64), len(rows_b))
        j = np.tile(np.array(rows_b, np.int64), len(rows_a))
        return bool((constraints.status(table, i, j) != LINK).any())

    clash = constraints.same_camera_conflict  # overlapping in time: a conflict unless a handover

    def conflict(ra: int, rb: int) -> bool:
        if all_pairs_link:
            return not_all_linked(ra, rb)  # CONFLICT is one way of not being LINK
        ma, mb = members(ra), members(rb)
        if len(ma) > len(mb):
            ma, mb = mb, ma
        for c, rows_a in ma.items():
            rows_b = mb.get(c)
            if rows_b is None:
                continue
            for x in rows_a:
                sx, ex = start[x], end[x]
                for y in rows_b:
                    if sx <= end[y] and start[y] <= ex and clash(sx, ex, start[y], end[y]):
                        return True
        return False

    merges = 0
    rejected = 0
    bar = tqdm(total=len(pair_a), desc="clustering", unit="pair", leave=False, **({} if progress else {"disable": True}))
    for lo in range(0, len(pair_a), _CHUNK):
        for x, y, t_sq in zip(pair_a[lo : lo + _CHUNK].tolist(), pair_b[lo : lo + _CHUNK].tolist(), min_sim_sq[lo : lo + _CHUNK]):
            ra, rb = find(x), find(y)
            if ra == rb:
                continue
            if size[ra] + size[rb] > max_cluster_size:
                rejected += 1
                continue
            ua = sums.get(ra)
            ua = features[ra] if ua is None else ua
            ub = sums.get(rb)
            ub = features[rb] if ub is None else ub
            dot = float(ua @ ub)
            # centroid cosine dot / sqrt(|a|^2 |b|^2) >= min_similarity, without the sqrt
            if dot * abs(dot) < t_sq * sq[ra] * sq[rb]:
                rejected += 1
                continue
            if conflict(ra, rb):
                rejected += 1
                continue
            if size[ra] < size[rb]:
                ra, rb = rb, ra
            ma, mb = members(ra), members(rb)
            by_cam.pop(rb, None)
            for c, rows in mb.items():
                ma.setdefault(c, []).extend(rows)
            by_cam[ra] = ma
            parent[rb] = ra
            size[ra] += size[rb]
            sums[ra] = ua + ub
            sums.pop(rb, None)
            sq[ra] = sq[ra] + sq[rb] + 2.0 * dot
            merges += 1
        bar.update(min(_CHUNK, len(pair_a) - lo))
    bar.close()
    roots = np.array([find(x) for x in range(n)], np.int64)
    _, first, labels = np.unique(roots, return_index=True, return_inverse=True)
    # renumber by first row so that labels do not depend on union order
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    log.debug("clustering: %d merges, %d merges refused (linkage, size or conflict), %d clusters", merges, rejected, len(first))
    return rank[labels.ravel()]


def conflicts_within(table: TrackletTable, constraints: Constraints, labels: np.ndarray) -> int:
    """Number of conflicting pairs inside clusters (0 for a valid result); for tests and checks.

    Cost grows with the square of cluster sizes: not for use on huge tables.
    """
    count = 0
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for grp in np.split(order, bounds):
        if len(grp) < 2:
            continue
        a, b = np.triu_indices(len(grp), 1)
        count += int((constraints.status(table, grp[a], grp[b]) == CONFLICT).sum())
    return count
