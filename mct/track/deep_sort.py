"""Deep SORT (Wojke et al. 2017) for one camera, vectorised over tracks.

One call of :meth:`DeepSortTracker.update` per frame does, as the reference
implementation does (``tracker.predict(); tracker.update(detections)``):

1. predict every track one frame ahead (one batched Kalman step for all tracks);
2. the matching cascade over confirmed tracks, level by level in order of frames since
   their last match: cost = smallest cosine distance between the detection's feature and
   the track's gallery of its last ``nn_budget`` features, impossible above
   ``max_cosine_distance`` or where the squared Mahalanobis distance of the detection to the
   track exceeds ``gating_threshold`` (9.4877, 95% chi-square with 4 dof);
3. IoU matching (cost ``1 - IoU``, impossible above ``max_iou_distance``) of the tentative
   tracks plus the confirmed tracks matched one frame ago that the cascade missed;
4. Kalman update of the matched tracks (batched), their features join their galleries;
   unmatched tentative tracks die, confirmed ones die once frames since their last match
   exceed ``max_age``; each unmatched detection starts a tentative track, confirmed after
   ``n_init`` consecutive hits.

Tracks live in stacked arrays (``mean (N, 8)``, compact ``cov (N, 3, 4)``, counters ``(N,)``) in
creation order, which is the reference's list order; the appearance cost is computed only
for pairs that pass the motion gate (the others are impossible anyway, so the result is
the same as computing the full matrix). :mod:`mct.track.reference` is the straightforward
per-track version used as the oracle in the tests and the baseline in the benchmark.

Options beyond the reference (``TrackerConfig``): ``mode: motion_only`` (no embeddings;
the cascade uses the gated ``1 - IoU`` of the predicted box), ``motion_weight`` (the
paper's combined cost ``lambda d_mahalanobis + (1 - lambda) d_cosine``), ``max_age_s``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from mct.track.config import TrackerConfig
from mct.track.kalman import BatchKalman
from mct.track.matching import (
    INFTY_COST,
    GalleryPool,
    iou_xyxy,
    l2_normalise,
    matching_cascade,
    min_cost_matching,
)
from mct.types import Detections, xyah_to_xyxy, xyxy_to_xyah

__all__ = ["DeepSortTracker", "TrackView", "detections_xyah", "skipped_frames"]

logger = logging.getLogger(__name__)


def skipped_frames(last_frame: int | None, dets: Detections) -> list[Detections]:
    """Empty detections for the frames skipped between ``last_frame`` and ``dets.frame``.

    A tracker processes each of them (one Kalman step each) before ``dets``, so a detection
    file without rows for some frames tracks the same as one with empty frames. Frames
    that do not increase are an error.
    """
    frame = int(dets.frame)
    if last_frame is None:
        return []
    if frame <= last_frame:
        raise ValueError(f"frame {frame}: frames must increase, the last one was {last_frame}")
    return [Detections.empty(missing) for missing in range(last_frame + 1, frame)]


@dataclass(frozen=True)
class TrackView:
    """A read-only snapshot of one live track (for inspection and tests).

    Attributes:
        track_id: local id (1, 2, ... per tracker instance).
        confirmed: False while tentative.
        hits: number of matched frames.
        age: frames since creation.
        time_since_update: frames since the last match (0 = matched this frame).
        xyxy: ``(4,) float64`` the Kalman state mean as a box, pixels.
    """

    track_id: int
    confirmed: bool
    hits: int
    age: int
    time_since_update: int
    xyxy: np.ndarray


def detections_xyah(dets: Detections) -> np.ndarray:
    """``(N, 4) float64`` measurements of ``dets``; a box without positive width and height raises."""
    xyxy = dets.xyxy
    bad = (xyxy[:, 2] <= xyxy[:, 0]) | (xyxy[:, 3] <= xyxy[:, 1]) | ~np.isfinite(xyxy).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"frame {dets.frame}: detection {i} has box xyxy {xyxy[i].tolist()}: "
            "width and height must be positive and finite"
        )
    return xyxy_to_xyah(xyxy)


class DeepSortTracker:
    """Deep SORT for one camera.

    Args:
        cfg: tracker config (defaults are the reference values).
        fps: the camera's frame rate (used when ``cfg.max_age_s`` is set).

    Track ids come from a per-instance counter starting at 1, so trackers of different
    cameras or processes never share state.
    """

    def __init__(self, cfg: TrackerConfig, fps: float):
        self.cfg = cfg
        self.fps = float(fps)
        self.max_age = cfg.max_age_frames(fps)
        self._use_appearance = cfg.mode == "deep_sort"
        self._kf = BatchKalman(cfg.std_weight_position, cfg.std_weight_velocity)
        self._next_id = 1
        self._last_frame: int | None = None
        self._mean = np.zeros((0, 8))
        self._cov = np.zeros((0, 3, 4))  # compact covariance, see BatchKalman
        self._ids = np.zeros(0, dtype=np.int64)
        self._hits = np.zeros(0, dtype=np.int64)
        self._age = np.zeros(0, dtype=np.int64)
        self._tsu = np.zeros(0, dtype=np.int64)
        self._confirmed = np.zeros(0, dtype=bool)
        self._galleries = GalleryPool(cfg.nn_budget)
        self._slots = np.zeros(0, dtype=np.int64)  # gallery slot per track (-1: none)
        #: ``(track_id, det_index)`` of the last frame's detections taken by tentative
        #: tracks, new ones included (the reference reports only confirmed tracks; a
        #: tracklet builder may keep these and add them once the track is confirmed).
        self.tentative_matches: list[tuple[int, int]] = []

    # ------------------------------------------------------------------ inspection
    def __len__(self) -> int:
        """Number of live (tentative or confirmed) tracks."""
        return len(self._ids)

    @property
    def last_frame(self) -> int | None:
        """The frame of the last :meth:`update`, or ``None`` before the first."""
        return self._last_frame

    def tracks(self) -> list[TrackView]:
        """Snapshots of the live tracks, in creation order."""
        xyxy = xyah_to_xyxy(self._mean[:, :4]) if len(self) else np.zeros((0, 4))
        return [
            TrackView(int(i), bool(c), int(h), int(a), int(t), xyxy[k].copy())
            for k, (i, c, h, a, t) in enumerate(
                zip(self._ids, self._confirmed, self._hits, self._age, self._tsu)
            )
        ]

    def state_xyxy(self, track_ids: np.ndarray | list[int]) -> np.ndarray:
        """``(K, 4) float64`` Kalman state boxes of live tracks ``track_ids``; unknown ids raise."""
        ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
        pos = {int(t): k for k, t in enumerate(self._ids)}
        missing = [int(t) for t in ids if int(t) not in pos]
        if missing:
            raise KeyError(f"no live track with id {missing[0]}")
        rows = np.array([pos[int(t)] for t in ids], dtype=np.int64)
        return xyah_to_xyxy(self._mean[rows, :4]) if len(rows) else np.zeros((0, 4))

    # ------------------------------------------------------------------ update
    def update(self, dets: Detections) -> list[tuple[int, int]]:
        """Process one frame; returns ``(track_id, det_index)`` of confirmed tracks updated in it.

        Frames must increase; frames skipped since the last call are processed as empty
        frames first (one Kalman step each), so a detection file without rows for some
        frames tracks the same as one with empty frames. In ``deep_sort`` mode a non-empty
        ``dets`` must carry ``embeddings``.
        """
        for empty in skipped_frames(self._last_frame, dets):
            self._step(empty)
        self._last_frame = int(dets.frame)
        return self._step(dets)

    def _step(self, dets: Detections) -> list[tuple[int, int]]:
        cfg = self.cfg
        # 1. predict
        if len(self):
            self._mean, self._cov = self._kf.predict(self._mean, self._cov)
            self._age += 1
            self._tsu += 1

        n_dets = len(dets)
        features = None
        if n_dets and self._use_appearance:
            if dets.embeddings is None:
                raise ValueError(
                    f"frame {dets.frame}: tracker.mode is deep_sort but the detections carry no "
                    "embeddings (enable the embedder or set tracker.mode: motion_only)"
                )
            features = l2_normalise(dets.embeddings)
        det_xyah = detections_xyah(dets) if n_dets else np.zeros((0, 4))

        # 2. + 3. associate
        matches, unmatched_tracks, unmatched_dets = self._associate(dets, det_xyah, features)

        # 4. update matched tracks (one batched Kalman step)
        if matches:
            rows = np.array([t for t, _ in matches], dtype=np.int64)
            cols = np.array([d for _, d in matches], dtype=np.int64)
            self._mean[rows], self._cov[rows] = self._kf.update(self._mean[rows], self._cov[rows], det_xyah[cols])
            self._hits[rows] += 1
            self._tsu[rows] = 0
            self._confirmed[rows] |= self._hits[rows] >= cfg.n_init
            if features is not None:
                self._galleries.add(self._slots[rows], features[cols])
        # missed tracks: tentative ones die at their first miss, confirmed ones after max_age
        keep = np.ones(len(self), dtype=bool)
        if unmatched_tracks:
            miss = np.array(unmatched_tracks, dtype=np.int64)
            keep[miss] = self._confirmed[miss] & (self._tsu[miss] <= self.max_age)

        out: list[tuple[int, int]] = []
        tentative: list[tuple[int, int]] = []
        for t, d in matches:
            (out if self._confirmed[t] else tentative).append((int(self._ids[t]), int(d)))
        out.sort()

        if not keep.all():
            self._remove(~keep)
        if unmatched_dets:
            new = np.array(unmatched_dets, dtype=np.int64)
            self._add(det_xyah[new], None if features is None else features[new])
            tentative += zip(self._ids[-len(new):].tolist(), new.tolist())
        self.tentative_matches = sorted(tentative)
        return out

    # ------------------------------------------------------------------ association
    def _associate(
        self, dets: Detections, det_xyah: np.ndarray, features: np.ndarray | None
    ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        cfg = self.cfg
        n_dets = len(dets)
        all_dets = np.arange(n_dets, dtype=np.int64)
        if len(self) == 0 or n_dets == 0:
            return [], list(range(len(self))), all_dets.tolist()

        confirmed = np.flatnonzero(self._confirmed)
        matches_a: list[tuple[int, int]] = []
        unmatched_a: list[int] = []
        unmatched_dets = all_dets
        if len(confirmed):
            cost, max_cost = self._cascade_cost(confirmed, dets, det_xyah, features)
            matches_a, unmatched_a, rest = matching_cascade(
                cost, max_cost, self._tsu[confirmed], self.max_age, confirmed, all_dets
            )
            unmatched_dets = np.asarray(rest, dtype=np.int64)

        # IoU stage: tentative tracks, then confirmed ones matched one frame ago
        tentative = np.flatnonzero(~self._confirmed).tolist()
        recent = [t for t in unmatched_a if self._tsu[t] == 1]
        old = [t for t in unmatched_a if self._tsu[t] != 1]
        candidates = np.array(tentative + recent, dtype=np.int64)
        matches_b: list[tuple[int, int]] = []
        unmatched_b: list[int] = candidates.tolist()
        if len(candidates) and len(unmatched_dets):
            cost = 1.0 - iou_xyxy(xyah_to_xyxy(self._mean[candidates, :4]), dets.xyxy[unmatched_dets])
            cost[self._tsu[candidates] > 1] = INFTY_COST
            matches_b, unmatched_b, rest = min_cost_matching(cost, cfg.max_iou_distance, candidates, unmatched_dets)
            unmatched_dets = np.asarray(rest, dtype=np.int64)
        return matches_a + matches_b, old + unmatched_b, unmatched_dets.tolist()

    def _cascade_cost(
        self, confirmed: np.ndarray, dets: Detections, det_xyah: np.ndarray, features: np.ndarray | None
    ) -> tuple[np.ndarray, float]:
        """``(len(confirmed), N)`` cascade cost (impossible pairs = INFTY_COST) and its threshold."""
        cfg = self.cfg
        maha = self._kf.gating_distance(self._mean[confirmed], self._cov[confirmed], det_xyah)
        gate_ok = maha <= cfg.gating_threshold
        if not self._use_appearance:
            iou_cost = 1.0 - iou_xyxy(xyah_to_xyxy(self._mean[confirmed, :4]), dets.xyxy)
            return np.where(gate_ok, iou_cost, INFTY_COST), cfg.max_iou_distance
        if features is None:  # _step raises before this for deep_sort mode without embeddings
            raise RuntimeError("appearance cost requested without detection features")
        # appearance cost only for the pairs that pass the motion gate (the others are
        # impossible whatever their cost), all pairs in one batched product
        cosine = np.full(maha.shape, INFTY_COST)
        rows, cols = np.nonzero(gate_ok)
        if len(rows):
            cosine[rows, cols] = self._galleries.nn_cosine_distance(self._slots[confirmed[rows]], features[cols])
        if cfg.motion_weight == 0.0:
            return cosine, cfg.max_cosine_distance  # gated pairs already INFTY_COST
        lam = cfg.motion_weight
        ok = gate_ok & (cosine <= cfg.max_cosine_distance)
        combined = lam * maha + (1.0 - lam) * cosine
        max_cost = lam * cfg.gating_threshold + (1.0 - lam) * cfg.max_cosine_distance
        return np.where(ok, combined, INFTY_COST), max_cost

    # ------------------------------------------------------------------ bookkeeping
    def _add(self, xyah: np.ndarray, features: np.ndarray | None) -> None:
        n = len(xyah)
        mean, cov = self._kf.initiate(xyah)
        self._mean = np.concatenate([self._mean, mean])
        self._cov = np.concatenate([self._cov, cov])
        self._ids = np.concatenate([self._ids, np.arange(self._next_id, self._next_id + n, dtype=np.int64)])
        self._next_id += n
        self._hits = np.concatenate([self._hits, np.ones(n, dtype=np.int64)])
        self._age = np.concatenate([self._age, np.ones(n, dtype=np.int64)])
        self._tsu = np.concatenate([self._tsu, np.zeros(n, dtype=np.int64)])
        # n_init == 1: the reference still creates the track tentative; it is confirmed at
        # its next hit (hits >= n_init is checked in update only).
        self._confirmed = np.concatenate([self._confirmed, np.zeros(n, dtype=bool)])
        if features is None:
            slots = np.full(n, -1, dtype=np.int64)
        else:
            slots = self._galleries.allocate(features)
        self._slots = np.concatenate([self._slots, slots])

    def _remove(self, drop: np.ndarray) -> None:
        keep = ~drop
        logger.debug("deleting tracks %s", self._ids[drop].tolist())
        self._mean = self._mean[keep]
        self._cov = self._cov[keep]
        self._ids = self._ids[keep]
        self._hits = self._hits[keep]
        self._age = self._age[keep]
        self._tsu = self._tsu[keep]
        self._confirmed = self._confirmed[keep]
        gone = self._slots[drop]
        self._galleries.release(gone[gone >= 0])
        self._slots = self._slots[keep]


def reference_output(tracker: DeepSortTracker) -> tuple[np.ndarray, np.ndarray]:
    """The reference application's output of the last frame: ``(track_ids (K,), xyxy (K, 4) float64)``.

    Every confirmed track updated within the last frame (``time_since_update <= 1``: matched
    this frame, or coasting its first frame after a miss), with its Kalman state box (after
    this frame's update or prediction), in creation order, as ``deep_sort_app`` writes them.
    """
    views = [t for t in tracker.tracks() if t.confirmed and t.time_since_update <= 1]
    ids = np.array([t.track_id for t in views], dtype=np.int64)
    xyxy = np.stack([t.xyxy for t in views]) if views else np.zeros((0, 4))
    return ids, xyxy
