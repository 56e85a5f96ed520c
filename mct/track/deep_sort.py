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
paper's combined cost ``lambda d_mahalanobis + (1 - lambda) d_cosine``), ``max_age_s``;
and the ideas of later trackers (BYTE's low-score stage, OC-SORT's re-update, direction
cost and recovery, EMA features, NSA, one assignment without the cascade, the fused cost,
the xywh state), each a switch, run by :meth:`DeepSortTracker._associate_options` when any
association option is on, so that the faithful path stays the reference's code
(``docs/tracking.md``). ``mode: mct`` is a preset of them (``TRACKER_PRESETS``).
``update()`` returns a :class:`~mct.track.output.TrackerOutput`, the rows the frame writes
under ``TrackerConfig.output`` (``matched`` or the reference application's ``filtered``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from mct.track.config import TrackerConfig
from mct.track.kalman import BatchKalman
from mct.track.output import TrackerOutput
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


#: per-track state columns of :class:`DeepSortTracker`, all indexed by track row (creation
#: order); :meth:`DeepSortTracker._add` and :meth:`DeepSortTracker._remove` handle them together.
_COLUMNS = (
    "_mean", "_cov", "_ids", "_hits", "_age", "_tsu", "_confirmed", "_slots",
    "_obs_mean", "_obs_cov", "_obs_meas", "_hist", "_hist_n",
)


class DeepSortTracker:
    """Deep SORT for one camera, with the options of later trackers (all off by default).

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
        #: ``deep_sort`` needs embeddings; ``mct`` uses them when detections carry them
        self._appearance = {"deep_sort": "required", "motion_only": "off", "mct": "optional"}[cfg.mode]
        self._kf = BatchKalman(cfg.std_weight_position, cfg.std_weight_velocity, cfg.filter_state)
        self._xywh = cfg.filter_state == "xywh"
        self._next_id = 1
        self._last_frame: int | None = None
        self._galleries = GalleryPool(1 if cfg.ema_alpha is not None else cfg.nn_budget)
        self._hist_len = cfg.oc_direction_span + 1
        # what the options need remembered per observation (skipped otherwise: it costs per frame)
        self._keep_obs = cfg.oc_reupdate or cfg.oc_recovery
        self._keep_hist = cfg.oc_direction_weight > 0
        self._options = cfg.uses_options
        self._mean = np.zeros((0, 8))
        self._cov = np.zeros((0, 3, 4))  # compact covariance, see BatchKalman
        self._ids = np.zeros(0, dtype=np.int64)
        self._hits = np.zeros(0, dtype=np.int64)
        self._age = np.zeros(0, dtype=np.int64)
        self._tsu = np.zeros(0, dtype=np.int64)
        self._confirmed = np.zeros(0, dtype=bool)
        self._slots = np.zeros(0, dtype=np.int64)  # gallery slot per track (-1: none)
        # the filter right after the last observation and that observation (ORU, OCR)
        self._obs_mean = np.zeros((0, 8))
        self._obs_cov = np.zeros((0, 3, 4))
        self._obs_meas = np.zeros((0, 4))
        # the box centres of the last observations, oldest first (OCM), and how many are set
        self._hist = np.zeros((0, self._hist_len, 2))
        self._hist_n = np.zeros(0, dtype=np.int64)

    # ------------------------------------------------------------------ inspection
    def __len__(self) -> int:
        """Number of live (tentative or confirmed) tracks."""
        return len(self._ids)

    @property
    def last_frame(self) -> int | None:
        """The frame of the last :meth:`update`, or ``None`` before the first."""
        return self._last_frame

    def _to_xyxy(self, state_box: np.ndarray) -> np.ndarray:
        """``(N, 4)`` boxes of the filter's measurement space -> ``x1, y1, x2, y2``."""
        if not self._xywh:
            return xyah_to_xyxy(state_box)
        c, wh = state_box[:, :2], state_box[:, 2:4]
        return np.concatenate([c - wh / 2, c + wh / 2], axis=1)

    def tracks(self) -> list[TrackView]:
        """Snapshots of the live tracks, in creation order."""
        xyxy = self._to_xyxy(self._mean[:, :4]) if len(self) else np.zeros((0, 4))
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
        return self._to_xyxy(self._mean[rows, :4]) if len(rows) else np.zeros((0, 4))

    # ------------------------------------------------------------------ update
    def update(self, dets: Detections) -> TrackerOutput:
        """Process one frame; returns what it writes (``TrackerConfig.output``; its ``matches``
        are the ``(track_id, det_index)`` of the confirmed tracks matched in it).

        Frames must increase; frames skipped since the last call are processed as empty
        frames first (one Kalman step each), so a detection file without rows for some
        frames tracks the same as one with empty frames. In ``deep_sort`` mode a non-empty
        ``dets`` must carry ``embeddings``.
        """
        for empty in skipped_frames(self._last_frame, dets):
            self._step(empty)
        self._last_frame = int(dets.frame)
        return self._step(dets)

    def _measure(self, dets: Detections) -> np.ndarray:
        xyah = detections_xyah(dets)
        if not self._xywh:
            return xyah
        out = xyah.copy()
        out[:, 2] = xyah[:, 2] * xyah[:, 3]
        return out

    def _step(self, dets: Detections) -> TrackerOutput:
        cfg = self.cfg
        # 1. predict
        if len(self):
            self._mean, self._cov = self._kf.predict(self._mean, self._cov)
            self._age += 1
            self._tsu += 1

        n_dets = len(dets)
        features = None
        if n_dets and self._appearance != "off":
            if dets.embeddings is not None:
                features = l2_normalise(dets.embeddings)
            elif self._appearance == "required":
                raise ValueError(
                    f"frame {dets.frame}: tracker.mode is deep_sort but the detections carry no "
                    "embeddings (enable the embedder or set tracker.mode: motion_only or mct)"
                )
        meas = self._measure(dets) if n_dets else np.zeros((0, 4))

        # 2. + 3. associate
        if self._options:
            matches, unmatched_tracks, unmatched_dets = self._associate_options(dets, meas, features)
        else:
            matches, unmatched_tracks, unmatched_dets = self._associate(dets, meas, features)

        # 4. update matched tracks (one batched Kalman step)
        if matches:
            rows = np.array([t for t, _ in matches], dtype=np.int64)
            cols = np.array([d for _, d in matches], dtype=np.int64)
            if cfg.oc_reupdate:
                self._reupdate(rows, meas[cols])
            scores = dets.scores[cols] if cfg.nsa else None
            self._mean[rows], self._cov[rows] = self._kf.update(self._mean[rows], self._cov[rows], meas[cols], scores)
            self._hits[rows] += 1
            self._tsu[rows] = 0
            self._confirmed[rows] |= self._hits[rows] >= cfg.n_init
            self._observe(rows, meas[cols])
            if features is not None:
                self._add_features(rows, features[cols])
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
        written = self._written(out) if cfg.output == "filtered" else None
        if len(unmatched_dets):
            new = np.array(unmatched_dets, dtype=np.int64)
            self._add(meas[new], None if features is None else features[new])
            tentative += zip(self._ids[-len(new):].tolist(), new.tolist())
        if written is None:  # matched: the matched detections' boxes (``out`` is sorted by id)
            pairs = np.array(out, dtype=np.int64).reshape(-1, 2)
            written = (pairs[:, 0], pairs[:, 1], dets.xyxy[pairs[:, 1]].astype(np.float64))
        return TrackerOutput(int(dets.frame), *written, tuple(sorted(tentative)))

    def _written(self, matched: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``filtered``: ``(track_ids, det_indices, xyxy)`` of the confirmed tracks with
        ``time_since_update <= 1`` (after this frame's update and deletions), Kalman state
        boxes, in creation order; ``det_indices`` -1 for the coasted ones."""
        rows = np.flatnonzero(self._confirmed & (self._tsu <= 1))
        ids = self._ids[rows]
        taken = dict(matched)
        det_idx = np.array([taken.get(int(t), -1) for t in ids], dtype=np.int64)
        xyxy = self._to_xyxy(self._mean[rows, :4]) if len(rows) else np.zeros((0, 4))
        return ids, det_idx, xyxy

    # ------------------------------------------------------------------ association (reference)
    def _associate(
        self, dets: Detections, meas: np.ndarray, features: np.ndarray | None
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
            cost, max_cost = self._cascade_cost(confirmed, dets, meas, features)
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
            cost = 1.0 - iou_xyxy(self._to_xyxy(self._mean[candidates, :4]), dets.xyxy[unmatched_dets])
            cost[self._tsu[candidates] > 1] = INFTY_COST
            matches_b, unmatched_b, rest = min_cost_matching(cost, cfg.max_iou_distance, candidates, unmatched_dets)
            unmatched_dets = np.asarray(rest, dtype=np.int64)
        return matches_a + matches_b, old + unmatched_b, unmatched_dets.tolist()

    def _appearance_distance(self, rows: np.ndarray, cols: np.ndarray, features: np.ndarray) -> np.ndarray:
        """``(P,)`` cosine distance of detection ``cols[i]`` to track ``rows[i]``'s gallery (or EMA feature)."""
        return self._galleries.nn_cosine_distance(self._slots[rows], features[cols])

    def _cascade_cost(
        self, confirmed: np.ndarray, dets: Detections, meas: np.ndarray, features: np.ndarray | None
    ) -> tuple[np.ndarray, float]:
        """``(len(confirmed), N)`` cascade cost (impossible pairs = INFTY_COST) and its threshold."""
        cfg = self.cfg
        maha = self._kf.gating_distance(self._mean[confirmed], self._cov[confirmed], meas)
        gate_ok = maha <= cfg.gating_threshold
        if features is None or self._appearance == "off":
            iou_cost = 1.0 - iou_xyxy(self._to_xyxy(self._mean[confirmed, :4]), dets.xyxy)
            return np.where(gate_ok, iou_cost, INFTY_COST), cfg.max_iou_distance
        # appearance cost only for the pairs that pass the motion gate (the others are
        # impossible whatever their cost), all pairs in one batched product
        cosine = np.full(maha.shape, INFTY_COST)
        rows, cols = np.nonzero(gate_ok)
        if len(rows):
            cosine[rows, cols] = self._appearance_distance(confirmed[rows], cols, features)
        if cfg.motion_weight == 0.0:
            return cosine, cfg.max_cosine_distance  # gated pairs already INFTY_COST
        lam = cfg.motion_weight
        ok = gate_ok & (cosine <= cfg.max_cosine_distance)
        combined = lam * maha + (1.0 - lam) * cosine
        max_cost = lam * cfg.gating_threshold + (1.0 - lam) * cfg.max_cosine_distance
        return np.where(ok, combined, INFTY_COST), max_cost

    # ------------------------------------------------------------------ association (options)
    def _main_cost(
        self, tracks: np.ndarray, dets: Detections, meas: np.ndarray, features: np.ndarray | None, det_idx: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """``(len(tracks), len(det_idx))`` main-stage cost and its threshold (options path)."""
        cfg = self.cfg
        if cfg.cost == "reference":
            cost, max_cost = self._cascade_cost(tracks, dets[det_idx], meas[det_idx], None if features is None else features[det_idx])
            iou_cost = None
        else:
            maha = self._kf.gating_distance(self._mean[tracks], self._cov[tracks], meas[det_idx])
            gate_ok = maha <= cfg.gating_threshold
            iou_cost = 1.0 - iou_xyxy(self._to_xyxy(self._mean[tracks, :4]), dets.xyxy[det_idx])
            if features is None:
                cost = np.where(gate_ok & (iou_cost <= cfg.max_iou_distance), iou_cost, INFTY_COST)
                max_cost = cfg.max_iou_distance
            else:
                lam = cfg.appearance_weight
                cosine = np.full(maha.shape, INFTY_COST)
                r, c = np.nonzero(gate_ok)
                if len(r):
                    cosine[r, c] = self._appearance_distance(tracks[r], det_idx[c], features)
                ok = gate_ok & (cosine <= cfg.max_cosine_distance)
                cost = np.where(ok, lam * cosine + (1.0 - lam) * iou_cost, INFTY_COST)
                max_cost = lam * cfg.max_cosine_distance + (1.0 - lam) * 1.0
        if cfg.oc_direction_weight > 0:
            bonus = self._direction_bonus(tracks, dets, det_idx)
            cost = np.where(cost <= max_cost, cost - bonus, cost)
        return cost, max_cost

    def _direction_bonus(self, tracks: np.ndarray, dets: Detections, det_idx: np.ndarray) -> np.ndarray:
        """``(T, M)`` OCM: ``w * score * (pi/2 - angle) / pi`` (0 for tracks with < 2 observations)."""
        n = self._hist_n[tracks]
        hist = self._hist[tracks]
        # the oldest stored observation (the span's start, or the first when fewer are set)
        first = hist[np.arange(len(tracks)), np.maximum(self._hist_len - n, 0)]
        last = hist[:, -1]
        track_dir = last - first
        centre = (dets.xyxy[det_idx, :2].astype(np.float64) + dets.xyxy[det_idx, 2:].astype(np.float64)) / 2
        cand = centre[None, :, :] - first[:, None, :]
        norm_t = np.linalg.norm(track_dir, axis=1)
        norm_c = np.linalg.norm(cand, axis=2)
        cos = np.einsum("tk,tmk->tm", track_dir, cand) / np.maximum(norm_t[:, None] * norm_c, 1e-6)
        angle = np.arccos(np.clip(cos, -1.0, 1.0))
        valid = (n >= 2) & (norm_t > 0)
        term = (np.pi / 2 - np.abs(angle)) / np.pi
        return self.cfg.oc_direction_weight * term * valid[:, None] * dets.scores[det_idx].astype(np.float64)[None, :]

    def _associate_options(
        self, dets: Detections, meas: np.ndarray, features: np.ndarray | None
    ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        """The association with the options of ``TrackerConfig`` (see docs/tracking.md)."""
        cfg = self.cfg
        scores = dets.scores
        usable = scores >= cfg.min_score
        high = usable if cfg.byte_min_high_score is None else usable & (scores >= cfg.byte_min_high_score)
        low_dets = np.flatnonzero(usable & ~high)
        unmatched = np.flatnonzero(high)
        matches: list[tuple[int, int]] = []
        # a track past its buffer (more frames since its last match than max_age) takes part
        # in no stage and is deleted this frame, as in the cascade (whose levels end at max_age)
        expired = np.flatnonzero(self._confirmed & (self._tsu > self.max_age)).tolist()
        confirmed = np.flatnonzero(self._confirmed & (self._tsu <= self.max_age))
        unmatched_conf: list[int] = confirmed.tolist()
        # stage 1: confirmed tracks against the high detections (cascade or one assignment)
        if len(confirmed) and len(unmatched):
            cost, max_cost = self._main_cost(confirmed, dets, meas, features, unmatched)
            if cfg.matching_cascade:
                m, unmatched_conf, rest = matching_cascade(
                    cost, max_cost, self._tsu[confirmed], self.max_age, confirmed, np.arange(len(unmatched))
                )
            else:
                m, unmatched_conf, rest = min_cost_matching(cost, max_cost, confirmed, np.arange(len(unmatched)))
            matches += [(t, int(unmatched[d])) for t, d in m]
            unmatched = unmatched[np.asarray(rest, dtype=np.int64)] if len(rest) else np.zeros(0, np.int64)
        # stage 2 (reference IoU stage): tentative tracks and confirmed ones matched one frame ago
        tentative = np.flatnonzero(~self._confirmed).tolist()
        recent = [t for t in unmatched_conf if self._tsu[t] == 1]
        old = [t for t in unmatched_conf if self._tsu[t] != 1]
        candidates = np.array(tentative + recent, dtype=np.int64)
        left: list[int] = candidates.tolist()
        if len(candidates) and len(unmatched):
            cost = 1.0 - iou_xyxy(self._to_xyxy(self._mean[candidates, :4]), dets.xyxy[unmatched])
            m, left, rest = min_cost_matching(cost, cfg.max_iou_distance, candidates, unmatched)
            matches += m
            unmatched = np.asarray(rest, dtype=np.int64)
        # stage 3 (BYTE): confirmed tracks matched one frame ago against the low detections
        pending = [t for t in left if self._confirmed[t]]
        dead_tentative = [t for t in left if not self._confirmed[t]]
        if len(low_dets):
            byte_tracks = np.array([t for t in pending if self._tsu[t] == 1], dtype=np.int64)
            if len(byte_tracks):
                cost = 1.0 - iou_xyxy(self._to_xyxy(self._mean[byte_tracks, :4]), dets.xyxy[low_dets])
                m, _, _ = min_cost_matching(cost, cfg.byte_max_iou_distance, byte_tracks, low_dets)
                matches += m
                taken = {t for t, _ in m}
                pending = [t for t in pending if t not in taken]
        pending += old
        # stage 4 (OCR): the unmatched confirmed tracks' last observed boxes against the rest
        if cfg.oc_recovery and pending and len(unmatched):
            rec = np.array(sorted(pending), dtype=np.int64)
            cost = 1.0 - iou_xyxy(self._to_xyxy(self._obs_meas[rec]), dets.xyxy[unmatched])
            m, _, rest = min_cost_matching(cost, cfg.max_iou_distance, rec, unmatched)
            matches += m
            taken = {t for t, _ in m}
            pending = [t for t in pending if t not in taken]
            unmatched = np.asarray(rest, dtype=np.int64)
        unmatched = unmatched[scores[unmatched] >= cfg.min_new_track_score]
        return matches, sorted(pending + expired) + dead_tentative, sorted(int(d) for d in unmatched)

    # ------------------------------------------------------------------ options' state
    def _observe(self, rows: np.ndarray, meas: np.ndarray) -> None:
        """Remember the filter after this observation and the observation (ORU, OCR), and its centre (OCM)."""
        if self._keep_obs:
            self._obs_mean[rows] = self._mean[rows]
            self._obs_cov[rows] = self._cov[rows]
            self._obs_meas[rows] = meas
        if self._keep_hist:
            self._hist[rows, :-1] = self._hist[rows, 1:]
            self._hist[rows, -1] = meas[:, :2]
            self._hist_n[rows] = np.minimum(self._hist_n[rows] + 1, self._hist_len)

    def _reupdate(self, rows: np.ndarray, meas: np.ndarray) -> None:
        """ORU: tracks re-found after ``k >= 1`` coasted frames are rewound to their last
        observation and filtered along ``k`` virtual observations on the straight line to
        ``meas``, then predicted to this frame (the real update follows)."""
        gap = self._tsu[rows]  # frames since the last observation (>= 2 after coasting)
        for i in np.flatnonzero(gap >= 2).tolist():
            r, k = int(rows[i]), int(gap[i])
            mean, cov = self._obs_mean[r : r + 1], self._obs_cov[r : r + 1]
            start = self._obs_meas[r]
            for j in range(1, k):
                mean, cov = self._kf.predict(mean, cov)
                virtual = start + (meas[i] - start) * (j / k)
                mean, cov = self._kf.update(mean, cov, virtual[None])
            mean, cov = self._kf.predict(mean, cov)
            self._mean[r], self._cov[r] = mean[0], cov[0]

    def _add_features(self, rows: np.ndarray, features: np.ndarray) -> None:
        slots = self._slots[rows]
        have = slots >= 0
        if not have.all():  # tracks born on frames without embeddings get a gallery now
            self._slots[rows[~have]] = self._galleries.allocate(features[~have])
            slots, features = slots[have], features[have]
        if self.cfg.ema_alpha is None:
            self._galleries.add(slots, features)
        else:
            self._galleries.blend(slots, features, self.cfg.ema_alpha)

    # ------------------------------------------------------------------ bookkeeping
    def _add(self, meas: np.ndarray, features: np.ndarray | None) -> None:
        n = len(meas)
        mean, cov = self._kf.initiate(meas)
        hist = np.zeros((n, self._hist_len, 2))
        hist[:, -1] = meas[:, :2]
        # n_init == 1: the reference still creates the track tentative; it is confirmed at
        # its next hit (hits >= n_init is checked in update only).
        new = {
            "_mean": mean,
            "_cov": cov,
            "_ids": np.arange(self._next_id, self._next_id + n, dtype=np.int64),
            "_hits": np.ones(n, dtype=np.int64),
            "_age": np.ones(n, dtype=np.int64),
            "_tsu": np.zeros(n, dtype=np.int64),
            "_confirmed": np.zeros(n, dtype=bool),
            "_slots": np.full(n, -1, dtype=np.int64) if features is None else self._galleries.allocate(features),
            "_obs_mean": mean,
            "_obs_cov": cov,
            "_obs_meas": meas.astype(np.float64),
            "_hist": hist,
            "_hist_n": np.ones(n, dtype=np.int64),
        }
        self._next_id += n
        for name in _COLUMNS:
            setattr(self, name, np.concatenate([getattr(self, name), new[name]]))

    def _remove(self, drop: np.ndarray) -> None:
        logger.debug("deleting tracks %s", self._ids[drop].tolist())
        gone = self._slots[drop]
        self._galleries.release(gone[gone >= 0])
        keep = ~drop
        for name in _COLUMNS:
            setattr(self, name, getattr(self, name)[keep])

