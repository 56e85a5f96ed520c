"""A straightforward per-track Deep SORT: the oracle of the tests and the benchmark baseline.

Written the way the reference implementation is organised (a list of track objects, each
with its own filterpy ``KalmanFilter`` and feature list; per-track loops for prediction,
gating and costs; full appearance cost matrices per cascade level). It takes the same
:class:`~mct.track.config.TrackerConfig` and has the same ``update`` contract as
:class:`~mct.track.deep_sort.DeepSortTracker`, which must give the same output
(``tests/unit/test_track_deep_sort_equivalence.py``). Not used by the pipeline.

An oracle shares no code with its subject: the filter (a filterpy ``KalmanFilter`` with the
noise model written out here), the IoU, the box conversions and the assignment with the
reference's clipping rule are all written again below, plainly; only filterpy and scipy's
Hungarian solver are common to both.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from mct.track.config import TrackerConfig
from mct.types import Detections

__all__ = ["ReferenceDeepSortTracker"]

_INFTY_COST = 1e5  # the reference's cost of an impossible pair


def _to_xyah(x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
    w, h = x2 - x1, y2 - y1
    return np.array([x1 + w / 2, y1 + h / 2, w / h, h], dtype=np.float64)


def _to_xyxy(xyah: np.ndarray) -> np.ndarray:
    x, y, a, h = (float(v) for v in xyah[:4])
    w = a * h
    return np.array([x - w / 2, y - h / 2, x + w / 2, y + h / 2])


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one ``xyxy`` box with each row of ``others (M, 4)``, one pair at a time."""
    out = np.zeros(len(others))
    area = (box[2] - box[0]) * (box[3] - box[1])
    for j, o in enumerate(np.asarray(others, dtype=np.float64)):
        w = max(0.0, min(box[2], o[2]) - max(box[0], o[0]))
        h = max(0.0, min(box[3], o[3]) - max(box[1], o[1]))
        union = area + (o[2] - o[0]) * (o[3] - o[1]) - w * h
        out[j] = w * h / union if union > 0 else 0.0
    return out


def _min_cost_matching(
    cost: np.ndarray, max_cost: float, tracks: list[int], dets: list[int]
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """The reference's ``min_cost_matching``: clip at ``max_cost + 1e-5``, solve, reject pairs above."""
    if not tracks or not dets:
        return [], list(tracks), list(dets)
    clipped = cost.copy()
    clipped[clipped > max_cost] = max_cost + 1e-5
    rows, cols = linear_sum_assignment(clipped)
    matches, unmatched_tracks, unmatched_dets = [], [], []
    for c, d in enumerate(dets):
        if c not in cols:
            unmatched_dets.append(d)
    for r, t in enumerate(tracks):
        if r not in rows:
            unmatched_tracks.append(t)
    for r, c in zip(rows, cols):
        if cost[r, c] > max_cost:
            unmatched_tracks.append(tracks[r])
            unmatched_dets.append(dets[c])
        else:
            matches.append((tracks[r], dets[c]))
    return matches, unmatched_tracks, unmatched_dets


class _Filter:
    """One track's filterpy ``KalmanFilter`` with Deep SORT's noise model, written out."""

    def __init__(self, xyah: np.ndarray, wp: float, wv: float):
        from filterpy.kalman import KalmanFilter  # ~1.3 s to import; only the oracle needs it

        self.wp, self.wv = wp, wv
        self.kf = KalmanFilter(dim_x=8, dim_z=4)
        self.kf.F = np.eye(8)
        for i in range(4):
            self.kf.F[i, i + 4] = 1.0
        self.kf.H = np.eye(4, 8)
        self.kf.x = np.concatenate([xyah, np.zeros(4)])[:, None]
        h = xyah[3]
        std = [2 * wp * h, 2 * wp * h, 1e-2, 2 * wp * h, 10 * wv * h, 10 * wv * h, 1e-5, 10 * wv * h]
        self.kf.P = np.diag(np.square(std))

    @property
    def mean(self) -> np.ndarray:
        return self.kf.x[:, 0].copy()

    def _r(self) -> np.ndarray:
        h = self.kf.x[3, 0]
        return np.diag(np.square([self.wp * h, self.wp * h, 1e-1, self.wp * h]))

    def predict(self) -> None:
        h = self.kf.x[3, 0]
        wp, wv = self.wp, self.wv
        q = np.diag(np.square([wp * h, wp * h, 1e-2, wp * h, wv * h, wv * h, 1e-5, wv * h]))
        self.kf.predict(Q=q)

    def update(self, xyah: np.ndarray) -> None:
        self.kf.update(np.asarray(xyah, dtype=np.float64).reshape(4, 1), R=self._r())

    def gating_distance(self, xyah: np.ndarray) -> np.ndarray:
        """``(M,)`` squared Mahalanobis distances (Cholesky, as the reference)."""
        s = self.kf.H @ self.kf.P @ self.kf.H.T + self._r()
        d = np.asarray(xyah, dtype=np.float64).reshape(-1, 4) - (self.kf.H @ self.kf.x)[:, 0]
        z = np.linalg.solve(np.linalg.cholesky(s), d.T)
        return np.sum(z * z, axis=0)


class _Track:
    def __init__(self, xyah: np.ndarray, track_id: int, feature: np.ndarray | None, cfg: TrackerConfig):
        self.kf = _Filter(xyah, cfg.std_weight_position, cfg.std_weight_velocity)
        self.track_id = track_id
        self.hits = 1
        self.age = 1
        self.time_since_update = 0
        self.confirmed = False
        self.features: list[np.ndarray] = [] if feature is None else [feature]

    def xyxy(self) -> np.ndarray:
        return _to_xyxy(self.kf.mean)


class ReferenceDeepSortTracker:
    """Per-track Deep SORT with filterpy filters; same contract as ``DeepSortTracker``."""

    def __init__(self, cfg: TrackerConfig, fps: float):
        self.cfg = cfg
        self.max_age = cfg.max_age_frames(fps)
        self.tracks: list[_Track] = []
        self._next_id = 1
        self._last_frame: int | None = None

    def update(self, dets: Detections) -> list[tuple[int, int]]:
        frame = int(dets.frame)
        if self._last_frame is not None:
            if frame <= self._last_frame:
                raise ValueError(f"frame {frame}: frames must increase, the last one was {self._last_frame}")
            for missing in range(self._last_frame + 1, frame):
                self._step(Detections.empty(missing))
        self._last_frame = frame
        return self._step(dets)

    # ------------------------------------------------------------------
    def _step(self, dets: Detections) -> list[tuple[int, int]]:
        cfg = self.cfg
        for track in self.tracks:
            track.kf.predict()
            track.age += 1
            track.time_since_update += 1
        if cfg.mode not in ("deep_sort", "motion_only") or cfg.uses_options:
            raise ValueError(f"the oracle tracker implements the reference only (mode {cfg.mode!r})")
        appearance = cfg.mode == "deep_sort"
        features = None
        if len(dets) and appearance:
            if dets.embeddings is None:
                raise ValueError(f"frame {dets.frame}: detections carry no embeddings")
            e = dets.embeddings.astype(np.float32)
            norm = np.linalg.norm(e, axis=1, keepdims=True)
            features = e / np.where(norm > 0, norm, 1.0).astype(np.float32)
        xyah = np.array([_to_xyah(*map(float, b)) for b in dets.xyxy]).reshape(-1, 4)

        confirmed = [i for i, t in enumerate(self.tracks) if t.confirmed]
        unconfirmed = [i for i, t in enumerate(self.tracks) if not t.confirmed]

        # matching cascade
        unmatched_dets = list(range(len(dets)))
        matches_a: list[tuple[int, int]] = []
        max_cost = self._cascade_max_cost()
        for level in range(self.max_age):
            if not unmatched_dets:
                break
            level_tracks = [k for k in confirmed if self.tracks[k].time_since_update == 1 + level]
            if not level_tracks:
                continue
            cost = self._cascade_cost(level_tracks, unmatched_dets, dets, xyah, features)
            m, _, unmatched_dets = _min_cost_matching(cost, max_cost, level_tracks, unmatched_dets)
            matches_a += m
        matched_a = {t for t, _ in matches_a}
        unmatched_a = sorted(set(confirmed) - matched_a)

        # IoU stage
        candidates = unconfirmed + [k for k in unmatched_a if self.tracks[k].time_since_update == 1]
        unmatched_a = [k for k in unmatched_a if self.tracks[k].time_since_update != 1]
        cost = np.zeros((len(candidates), len(unmatched_dets)))
        for row, k in enumerate(candidates):
            if self.tracks[k].time_since_update > 1:
                cost[row] = _INFTY_COST
                continue
            cost[row] = 1.0 - _iou(self.tracks[k].xyxy(), dets.xyxy[unmatched_dets])
        matches_b, unmatched_b, unmatched_dets = _min_cost_matching(cost, cfg.max_iou_distance, candidates, unmatched_dets)

        # update, miss, create, delete
        deleted: set[int] = set()
        for k, d in matches_a + matches_b:
            track = self.tracks[k]
            track.kf.update(xyah[d])
            if features is not None:
                track.features.append(features[d])
                track.features = track.features[-cfg.nn_budget :]
            track.hits += 1
            track.time_since_update = 0
            if not track.confirmed and track.hits >= cfg.n_init:
                track.confirmed = True
        for k in unmatched_a + unmatched_b:
            track = self.tracks[k]
            if not track.confirmed or track.time_since_update > self.max_age:
                deleted.add(k)
        out = sorted(
            (self.tracks[k].track_id, d) for k, d in matches_a + matches_b if self.tracks[k].confirmed
        )
        for d in unmatched_dets:
            self.tracks.append(_Track(xyah[d], self._next_id, None if features is None else features[d], cfg))
            self._next_id += 1
        self.tracks = [t for i, t in enumerate(self.tracks) if i not in deleted]
        return out

    def _cascade_max_cost(self) -> float:
        cfg = self.cfg
        if cfg.mode == "motion_only":
            return cfg.max_iou_distance
        lam = cfg.motion_weight
        return lam * cfg.gating_threshold + (1.0 - lam) * cfg.max_cosine_distance

    def _cascade_cost(
        self,
        level_tracks: list[int],
        det_indices: list[int],
        dets: Detections,
        xyah: np.ndarray,
        features: np.ndarray | None,
    ) -> np.ndarray:
        cfg = self.cfg
        cost = np.zeros((len(level_tracks), len(det_indices)))
        for row, k in enumerate(level_tracks):
            track = self.tracks[k]
            maha = track.kf.gating_distance(xyah[det_indices])
            if cfg.mode == "motion_only":
                cost[row] = 1.0 - _iou(track.xyxy(), dets.xyxy[det_indices])
            else:
                gallery = np.stack(track.features)
                cosine = 1.0 - (gallery @ features[det_indices].T).max(axis=0)  # type: ignore[index]
                if cfg.motion_weight > 0:
                    lam = cfg.motion_weight
                    combined = lam * maha + (1.0 - lam) * cosine
                    combined[cosine > cfg.max_cosine_distance] = _INFTY_COST
                    cosine = combined
                cost[row] = cosine
            cost[row, maha > cfg.gating_threshold] = _INFTY_COST
        return cost
