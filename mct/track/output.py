"""What one frame of tracking writes: :class:`TrackerOutput`, returned by every ``update()``.

The tracker decides which boxes a frame writes (``TrackerConfig.output``, docs/tracking.md):

- ``matched``: the confirmed tracks matched in this frame, each with its matched
  detection's box;
- ``filtered``: the reference Deep SORT application's convention: every confirmed track
  with ``time_since_update <= 1`` (matched this frame, or coasting its first frame after a
  miss), each with its Kalman state box (after this frame's update or prediction).

The tracklet builder (:class:`mct.track.tracklets.TrackletBuilder`) takes the record as it
is, so the convention is decided in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mct.types import Detections

__all__ = ["TrackerOutput"]


@dataclass(frozen=True)
class TrackerOutput:
    """The rows one frame writes, plus the tentative tracks' detections of that frame.

    Attributes:
        frame: the frame number (1-based).
        track_ids: ``(K,) int64`` confirmed tracks written this frame, ascending (creation order).
        det_indices: ``(K,) int64`` the detection each took this frame; ``-1`` = none (a
            coasted track, ``output: filtered`` only).
        xyxy: ``(K, 4) float64`` the box to write, pixels of the original frame.
        tentative: ``(track_id, det_index)`` of the detections taken by tentative tracks this
            frame, new tracks included (the reference reports none; a tracklet builder with
            ``include_tentative`` adds them once the track is confirmed).
    """

    frame: int
    track_ids: np.ndarray
    det_indices: np.ndarray
    xyxy: np.ndarray
    tentative: tuple[tuple[int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
        dets = np.asarray(self.det_indices, dtype=np.int64).reshape(-1)
        xyxy = np.asarray(self.xyxy, dtype=np.float64)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if len(dets) != len(ids) or xyxy.shape != (len(ids), 4):
            raise ValueError(
                f"TrackerOutput frame {self.frame}: track_ids {ids.shape}, det_indices {dets.shape} and "
                f"xyxy {xyxy.shape} must be (K,), (K,) and (K, 4)"
            )
        object.__setattr__(self, "track_ids", ids)
        object.__setattr__(self, "det_indices", dets)
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "tentative", tuple((int(t), int(d)) for t, d in self.tentative))

    def __len__(self) -> int:
        """Number of rows written."""
        return len(self.track_ids)

    @property
    def matches(self) -> list[tuple[int, int]]:
        """``(track_id, det_index)`` of the written tracks matched this frame (coasted rows left out)."""
        taken = self.det_indices >= 0
        return list(zip(self.track_ids[taken].tolist(), self.det_indices[taken].tolist()))

    @property
    def coasted(self) -> np.ndarray:
        """``(K,) bool``: True where the row is a coasted (predicted, unmatched) track."""
        return self.det_indices < 0

    @classmethod
    def from_matches(
        cls, dets: Detections, matches: Sequence[tuple[int, int]], tentative: Sequence[tuple[int, int]] = ()
    ) -> "TrackerOutput":
        """The ``matched`` convention's record: ``matches`` with their detections' boxes."""
        pairs = sorted((int(t), int(d)) for t, d in matches)
        det_idx = np.array([d for _, d in pairs], dtype=np.int64)
        bad = (det_idx < 0) | (det_idx >= len(dets))
        if bad.any():
            raise IndexError(f"frame {dets.frame}: detection index {int(det_idx[bad][0])} of {len(dets)}")
        return cls(
            int(dets.frame),
            np.array([t for t, _ in pairs], dtype=np.int64),
            det_idx,
            dets.xyxy[det_idx].astype(np.float64).reshape(-1, 4),
            tuple(sorted(tentative)),
        )
