"""Re-ID retrieval metrics: mAP and CMC under the cross-camera protocol.

The standard protocol of the re-ID benchmarks (Market-1501, VeRi-776, CityFlow-ReID):
for each query, gallery items of the same identity *and* the same camera are ignored
(they are trivially similar frames of the same track); a query with no remaining true
match in the gallery is skipped. Then, over the gallery sorted by distance:

* CMC rank-k: 1 if a true match is among the first k, averaged over queries;
* AP: the mean, over the true matches, of the precision at each match's position;
  mAP averages AP over queries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["ReidMetrics", "reid_metrics", "cosine_distance", "split_query_gallery"]


@dataclass(frozen=True)
class ReidMetrics:
    """Result of :func:`reid_metrics`; ``cmc[k-1]`` is rank-k accuracy."""

    mAP: float
    cmc: np.ndarray
    num_queries: int
    num_valid_queries: int
    num_gallery: int

    @property
    def rank1(self) -> float:
        return float(self.cmc[0]) if len(self.cmc) > 0 else float("nan")

    @property
    def rank5(self) -> float:
        return float(self.cmc[4]) if len(self.cmc) > 4 else float("nan")

    def as_dict(self) -> dict[str, float | int]:
        out = {k: v for k, v in asdict(self).items() if k != "cmc"}
        out.update(rank1=self.rank1, rank5=self.rank5)
        return out


def cosine_distance(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """``(Q, D)``, ``(G, D)`` L2-normalised features -> ``(Q, G) float32`` ``1 - cos``."""
    return (1.0 - np.asarray(query, np.float32) @ np.asarray(gallery, np.float32).T).astype(np.float32)


def reid_metrics(
    distmat: np.ndarray,
    query_ids: np.ndarray,
    gallery_ids: np.ndarray,
    query_cams: np.ndarray,
    gallery_cams: np.ndarray,
    max_rank: int = 5,
) -> ReidMetrics:
    """mAP and CMC of a ``(Q, G)`` distance matrix (smaller = more similar).

    Args:
        distmat: ``(Q, G)`` float distances.
        query_ids, gallery_ids: ``(Q,)``, ``(G,)`` identity labels (any comparable dtype).
        query_cams, gallery_cams: ``(Q,)``, ``(G,)`` camera labels, e.g. ``"S02/c006"``.
        max_rank: length of the returned CMC curve.

    Ties in distance are broken by gallery order (a stable sort), so results are exact
    and reproducible. Raises ``ValueError`` when no query has a valid true match.
    """
    distmat = np.asarray(distmat, dtype=np.float64)
    q_ids, g_ids = np.asarray(query_ids), np.asarray(gallery_ids)
    q_cams, g_cams = np.asarray(query_cams), np.asarray(gallery_cams)
    if distmat.ndim != 2 or distmat.shape != (len(q_ids), len(g_ids)):
        raise ValueError(f"distmat: expected shape ({len(q_ids)}, {len(g_ids)}) from the labels, got {distmat.shape}")
    if len(q_cams) != len(q_ids) or len(g_cams) != len(g_ids):
        raise ValueError(f"camera labels: got {len(q_cams)} query / {len(g_cams)} gallery for {len(q_ids)} / {len(g_ids)} items")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    order = np.argsort(distmat, axis=1, kind="stable")
    cmc_sum = np.zeros(max_rank, np.float64)
    ap_sum = 0.0
    valid = 0
    for qi in range(len(q_ids)):
        idx = order[qi]
        keep = ~((g_ids[idx] == q_ids[qi]) & (g_cams[idx] == q_cams[qi]))
        matches = (g_ids[idx] == q_ids[qi])[keep]
        if not matches.any():
            continue
        valid += 1
        first = int(np.argmax(matches))  # 0-based position of the first true match
        if first < max_rank:
            cmc_sum[first:] += 1.0
        hits = np.cumsum(matches)
        positions = np.flatnonzero(matches)  # 0-based ranks of the true matches
        ap_sum += float(np.mean(hits[positions] / (positions + 1.0)))
    if valid == 0:
        raise ValueError("reid_metrics: no query has a true match in the gallery from another camera")
    return ReidMetrics(
        mAP=ap_sum / valid,
        cmc=cmc_sum / valid,
        num_queries=len(q_ids),
        num_valid_queries=valid,
        num_gallery=len(g_ids),
    )


def split_query_gallery(ids: np.ndarray, cams: np.ndarray, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Query / gallery indices for a set of crops grouped in (identity, camera) tracks.

    The query is the middle crop of every track; the gallery is every crop (the
    protocol then ignores a query's own track). Returns two int64 index arrays.
    """
    ids, cams, tracks = np.asarray(ids), np.asarray(cams), np.asarray(tracks)
    query = []
    for t in np.unique(tracks):
        members = np.flatnonzero(tracks == t)
        query.append(members[len(members) // 2])
    return np.asarray(sorted(query), np.int64), np.arange(len(ids), dtype=np.int64)
