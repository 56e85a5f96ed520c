"""A straightforward per-track Deep SORT: the oracle of the tests and the benchmark baseline.

Written the way the reference implementation is organised (a list of track objects, each
with its own filterpy ``KalmanFilter`` and feature list; per-track loops for prediction,
gating and costs; full appearance cost matrices per cascade level). It takes the same
:class:`~mct.track.config.TrackerConfig` and has the same ``update`` contract as
:class:`~mct.track.deep_sort.DeepSortTracker`, which must give the same output
(``tests/unit/test_track_deep_sort_equivalence.py``). Not used by the pipeline.
"""

from __future__ import annotations

import numpy as np

from mct.track.config import TrackerConfig
from mct.track.deep_sort import detections_xyah, skipped_frames
from mct.track.kalman import FilterpyTrackFilter
from mct.track.matching import INFTY_COST, iou_xyxy, l2_normalise, min_cost_matching
from mct.types import Detections, xyah_to_xyxy

__all__ = ["ReferenceDeepSortTracker"]


class _Track:
    def __init__(self, xyah: np.ndarray, track_id: int, feature: np.ndarray | None, cfg: TrackerConfig):
        self.kf = FilterpyTrackFilter(xyah, cfg.std_weight_position, cfg.std_weight_velocity)
        self.track_id = track_id
        self.hits = 1
        self.age = 1
        self.time_since_update = 0
        self.confirmed = False
        self.features: list[np.ndarray] = [] if feature is None else [feature]

    def xyxy(self) -> np.ndarray:
        return xyah_to_xyxy(self.kf.mean[:4][None])[0]


class ReferenceDeepSortTracker:
    """Per-track Deep SORT with filterpy filters; same contract as ``DeepSortTracker``."""

    def __init__(self, cfg: TrackerConfig, fps: float):
        self.cfg = cfg
        self.max_age = cfg.max_age_frames(fps)
        self.tracks: list[_Track] = []
        self._next_id = 1
        self._last_frame: int | None = None

    def update(self, dets: Detections) -> list[tuple[int, int]]:
        for empty in skipped_frames(self._last_frame, dets):
            self._step(empty)
        self._last_frame = int(dets.frame)
        return self._step(dets)

    # ------------------------------------------------------------------
    def _step(self, dets: Detections) -> list[tuple[int, int]]:
        cfg = self.cfg
        for track in self.tracks:
            track.kf.predict()
            track.age += 1
            track.time_since_update += 1
        appearance = cfg.mode == "deep_sort"
        features = None
        if len(dets) and appearance:
            if dets.embeddings is None:
                raise ValueError(f"frame {dets.frame}: detections carry no embeddings")
            features = l2_normalise(dets.embeddings)
        xyah = detections_xyah(dets) if len(dets) else np.zeros((0, 4))

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
            m, _, unmatched_dets = min_cost_matching(cost, max_cost, np.array(level_tracks), np.array(unmatched_dets))
            matches_a += m
        matched_a = {t for t, _ in matches_a}
        unmatched_a = sorted(set(confirmed) - matched_a)

        # IoU stage
        candidates = unconfirmed + [k for k in unmatched_a if self.tracks[k].time_since_update == 1]
        unmatched_a = [k for k in unmatched_a if self.tracks[k].time_since_update != 1]
        cost = np.zeros((len(candidates), len(unmatched_dets)))
        for row, k in enumerate(candidates):
            if self.tracks[k].time_since_update > 1:
                cost[row] = INFTY_COST
                continue
            cost[row] = 1.0 - iou_xyxy(self.tracks[k].xyxy()[None], dets.xyxy[unmatched_dets])[0]
        matches_b, unmatched_b, unmatched_dets = min_cost_matching(
            cost, cfg.max_iou_distance, np.array(candidates, dtype=np.int64), np.array(unmatched_dets, dtype=np.int64)
        )

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
                cost[row] = 1.0 - iou_xyxy(track.xyxy()[None], dets.xyxy[det_indices])[0]
            else:
                gallery = np.stack(track.features)
                cosine = 1.0 - (gallery @ features[det_indices].T).max(axis=0)  # type: ignore[index]
                if cfg.motion_weight > 0:
                    lam = cfg.motion_weight
                    combined = lam * maha + (1.0 - lam) * cosine
                    combined[cosine > cfg.max_cosine_distance] = INFTY_COST
                    cosine = combined
                cost[row] = cosine
            cost[row, maha > cfg.gating_threshold] = INFTY_COST
        return cost
