"""Costs and assignment for Deep SORT: appearance galleries, IoU, gating, the matching cascade.

The assignment follows the reference implementation exactly:

* :func:`min_cost_matching`: costs above ``max_cost`` (including gated, "impossible"
  pairs) are clipped to ``max_cost + 1e-5`` before the Hungarian solver
  (``scipy.optimize.linear_sum_assignment``) runs; assigned pairs whose cost is above
  ``max_cost`` are then rejected. (Clipping rather than a huge value matters: the solver
  may prefer leaving a row unmatched to a slightly cheaper but complete assignment.)
  Unmatched detections are returned in the reference's order: the columns the solver left
  out in input order, then those of rejected pairs in row order.
* :func:`matching_cascade`: confirmed tracks level by level in order of frames since their
  last match (1, 2, ..., depth), each level matched against the still-unmatched detections.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = [
    "INFTY_COST",
    "FeatureGallery",
    "iou_xyxy",
    "l2_normalise",
    "nn_cosine_distance",
    "min_cost_matching",
    "matching_cascade",
]

#: cost given to impossible (gated) pairs before clipping; the reference's value.
INFTY_COST = 1e5
#: the reference adds this to ``max_cost`` when it clips impossible pairs.
_CLIP_EPS = 1e-5


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """``(N, D) float32`` rows scaled to unit length; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0).astype(np.float32)


def iou_xyxy(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """``(N, M) float64`` intersection over union of ``(N, 4)`` and ``(M, 4)`` ``x1, y1, x2, y2`` boxes.

    Modern area convention (``w = x2 - x1``, no +1), as the reference. Empty unions give 0.
    """
    a = np.asarray(a_xyxy, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b_xyxy, dtype=np.float64).reshape(-1, 4)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(br - tl, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nn_cosine_distance(gallery: np.ndarray, features: np.ndarray) -> np.ndarray:
    """``(M,)`` smallest cosine distance of each of ``features (M, D)`` to ``gallery (K, D)``.

    Both inputs L2-normalised ``float32``; distance ``1 - a . b`` in ``[0, 2]``.
    """
    return 1.0 - np.max(gallery @ features.T, axis=0)


class FeatureGallery:
    """The last ``budget`` appearance features of one track (a ring buffer).

    The reference keeps a list and trims it to its last ``nn_budget`` entries; the nearest
    neighbour distance does not depend on the order, so a ring buffer gives the same costs.
    Storage grows by doubling up to ``budget`` rows.
    """

    def __init__(self, budget: int, dim: int):
        if budget <= 0:
            raise ValueError(f"nn_budget must be > 0, got {budget}")
        self.budget = int(budget)
        self._data = np.empty((min(self.budget, 8), dim), dtype=np.float32)
        self._count = 0  # features ever added

    def __len__(self) -> int:
        return min(self._count, self.budget)

    @property
    def dim(self) -> int:
        return self._data.shape[1]

    def add(self, feature: np.ndarray) -> None:
        """Append one ``(D,)`` L2-normalised feature, dropping the oldest beyond the budget."""
        if self._count < self.budget:
            if self._count == len(self._data):
                grown = np.empty((min(self.budget, 2 * len(self._data)), self.dim), dtype=np.float32)
                grown[: self._count] = self._data[: self._count]
                self._data = grown
            self._data[self._count] = feature
        else:
            self._data[self._count % self.budget] = feature
        self._count += 1

    @property
    def samples(self) -> np.ndarray:
        """``(len, D) float32`` the stored features (a view; ring order, not age order)."""
        return self._data[: len(self)]


def min_cost_matching(
    cost: np.ndarray,
    max_cost: float,
    track_indices: np.ndarray,
    detection_indices: np.ndarray,
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Hungarian assignment on ``cost (len(track_indices), len(detection_indices))``.

    Entries above ``max_cost`` are impossible. Returns ``(matches, unmatched_tracks,
    unmatched_detections)`` with matches as ``(track_index, detection_index)`` pairs of
    the given index arrays (reference order, see the module docstring).
    """
    track_indices = np.asarray(track_indices)
    detection_indices = np.asarray(detection_indices)
    if len(track_indices) == 0 or len(detection_indices) == 0:
        return [], [int(t) for t in track_indices], [int(d) for d in detection_indices]
    clipped = np.where(cost > max_cost, max_cost + _CLIP_EPS, cost)
    rows, cols = linear_sum_assignment(clipped)
    assigned_cols = np.zeros(len(detection_indices), dtype=bool)
    assigned_cols[cols] = True
    assigned_rows = np.zeros(len(track_indices), dtype=bool)
    assigned_rows[rows] = True
    unmatched_detections = [int(d) for d in detection_indices[~assigned_cols]]
    unmatched_tracks = [int(t) for t in track_indices[~assigned_rows]]
    matches: list[tuple[int, int]] = []
    ok = cost[rows, cols] <= max_cost
    for r, c, good in zip(rows.tolist(), cols.tolist(), ok.tolist()):
        if good:
            matches.append((int(track_indices[r]), int(detection_indices[c])))
        else:
            unmatched_tracks.append(int(track_indices[r]))
            unmatched_detections.append(int(detection_indices[c]))
    return matches, unmatched_tracks, unmatched_detections


def matching_cascade(
    cost: np.ndarray,
    max_cost: float,
    time_since_update: np.ndarray,
    cascade_depth: int,
    track_indices: np.ndarray,
    detection_indices: np.ndarray,
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """The Deep SORT matching cascade.

    Args:
        cost: ``(len(track_indices), M)`` cost of every (track, detection) pair, impossible
            pairs above ``max_cost`` (e.g. :data:`INFTY_COST`); columns are all ``M``
            detections of the frame.
        max_cost: the assignment threshold.
        time_since_update: ``(len(track_indices),)`` frames since each track's last match.
        cascade_depth: levels ``1 .. cascade_depth`` (the reference uses ``max_age``).
        track_indices: ``(T,)`` the tracks' indices (returned in matches).
        detection_indices: the detections taking part (column numbers of ``cost``).

    Returns:
        ``(matches, unmatched_tracks, unmatched_detections)``; unmatched tracks sorted.
    """
    track_indices = np.asarray(track_indices, dtype=np.int64)
    unmatched = np.asarray(detection_indices, dtype=np.int64)
    time_since_update = np.asarray(time_since_update)
    matches: list[tuple[int, int]] = []
    if len(track_indices):
        levels = np.unique(time_since_update)
        for level in levels[(levels >= 1) & (levels <= cascade_depth)].tolist():
            if len(unmatched) == 0:
                break
            rows = np.flatnonzero(time_since_update == level)
            sub = cost[np.ix_(rows, unmatched)]
            level_matches, _, rest = min_cost_matching(sub, max_cost, rows, unmatched)
            matches += [(int(track_indices[r]), d) for r, d in level_matches]
            unmatched = np.asarray(rest, dtype=np.int64)
    matched = {t for t, _ in matches}
    unmatched_tracks = sorted(int(t) for t in track_indices if int(t) not in matched)
    return matches, unmatched_tracks, [int(d) for d in unmatched]
