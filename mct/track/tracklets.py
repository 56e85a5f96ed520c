"""Tracks -> tracklets (boxes, scores and one appearance feature), their store and MOT output.

:class:`TrackletBuilder` collects the tracker's per-frame output (a
:class:`~mct.track.output.TrackerOutput` with the frame's :class:`~mct.types.Detections`) and, in :meth:`~TrackletBuilder.finish`,
turns each track into a :class:`~mct.types.Tracklet` by :class:`~mct.track.config.TrackletConfig`:

1. **minimum length**: a track with fewer than ``min_length`` detected frames is dropped
   (coasted rows of ``output: filtered`` do not count);
2. **feature rule**: the tracklet feature is the weighted mean of the L2-normalised
   per-frame features of its *good* observations (matched rows only), L2-normalised again. Good = box area
   ``>= min_feature_area_px`` and occlusion ``<= max_feature_occlusion``, where the
   occlusion of a detection is the largest fraction of its box area covered by any other
   detection of the same frame (intersection over its own area). Weights are the detection
   scores (``feature_weight: score``), the scores times the square root of the box area
   (``score_sqrt_area``) or 1 (``uniform``). When no observation is good, all are used.
   No embeddings -> ``feature = None``;
3. **gap interpolation**: gaps of at most ``max_interpolation_gap`` missing frames are
   filled with linearly interpolated boxes (score 0, det index -1; with
   ``keep_frame_features`` their per-frame feature rows are zeros);
4. **box expansion** (output only, after the feature): each side ``s`` becomes
   ``min(expand_scale * s, s + expand_max_px)`` about the box centre, then boxes are
   clipped to the frame when ``clip_to_frame`` and the frame size is known.

Tracklet store (:func:`save_tracklets` / :func:`load_tracklets`): one ``.npz`` (no pickles),
written to a temporary file and renamed into place, holding concatenated arrays:

=================  ===================  ==============================================
key                shape, dtype         meaning
=================  ===================  ==============================================
``format``         () str               ``"mct-tracklets-1"``
``scenario``       (K,) str             per tracklet
``camera_id``      (K,) str             per tracklet
``track_id``       (K,) int64           per tracklet
``offsets``        (K+1,) int64         tracklet k owns rows ``offsets[k]:offsets[k+1]``
``frames``         (R,) int64           1-based frame numbers
``xyxy``           (R, 4) float32       boxes, pixels
``scores``         (R,) float32         detection scores (0 = interpolated or coasted)
``det_indices``    (R,) int64           detection index in its frame (-1 = interpolated/coasted/unknown)
``feature``        (K, D) float32       tracklet features (zero rows where ``has_feature`` is False)
``has_feature``    (K,) bool
``features``       (R, D') float32      per-frame features (D' = 0 when none are kept)
``has_features``   (K,) bool
=================  ===================  ==============================================
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from mct.atomic import atomic_path
from mct.track.config import TrackletConfig
from mct.track.matching import l2_normalise
from mct.track.output import TrackerOutput
from mct.types import Camera, Detections, Tracklet

__all__ = [
    "TrackletBuilder",
    "occlusion_fraction",
    "expand_xyxy",
    "interpolate_gaps",
    "tracklet_feature",
    "save_tracklets",
    "load_tracklets",
    "tracklets_to_mot_rows",
    "write_tracklets_mot",
    "STORE_FORMAT",
]

logger = logging.getLogger(__name__)

#: the ``format`` entry of a tracklet store written by this version.
STORE_FORMAT = "mct-tracklets-1"


# ---------------------------------------------------------------------------- helpers
def occlusion_fraction(xyxy: np.ndarray) -> np.ndarray:
    """``(N,) float64``: for each of ``xyxy (N, 4)`` the largest fraction of its area covered by another box."""
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    n = len(xyxy)
    if n < 2:
        return np.zeros(n)
    tl = np.maximum(xyxy[:, None, :2], xyxy[None, :, :2])
    br = np.minimum(xyxy[:, None, 2:], xyxy[None, :, 2:])
    wh = np.clip(br - tl, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    np.fill_diagonal(inter, 0.0)
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    frac = np.divide(inter, area[:, None], out=np.zeros_like(inter), where=area[:, None] > 0)
    return frac.max(axis=1)


def expand_xyxy(
    xyxy: np.ndarray, scale: float, max_px: float, frame_size: tuple[int, int] | None = None
) -> np.ndarray:
    """``(N, 4) float32`` boxes grown about their centre: side ``s -> min(scale * s, s + max_px)``.

    Clipped to ``[0, width] x [0, height]`` when ``frame_size = (width, height)`` is given.
    """
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    side = xyxy[:, 2:] - xyxy[:, :2]
    side = np.minimum(scale * side, side + max_px)
    out = np.concatenate([centre - side / 2, centre + side / 2], axis=1)
    if frame_size is not None:
        width, height = frame_size
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out.astype(np.float32)


def interpolate_gaps(
    frames: np.ndarray, xyxy: np.ndarray, max_gap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill gaps of at most ``max_gap`` missing frames by linear interpolation.

    Args:
        frames: ``(T,) int64`` strictly increasing.
        xyxy: ``(T, 4)`` boxes.
        max_gap: largest number of missing frames filled (0 = none).

    Returns:
        ``(frames, xyxy float32, observed)``: the filled sequence and ``(T',) bool``, True
        at the input rows.
    """
    frames = np.asarray(frames, dtype=np.int64)
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    step = np.diff(frames)
    fill = (step > 1) & (step - 1 <= max_gap)
    if max_gap <= 0 or not fill.any():
        return frames, xyxy.astype(np.float32), np.ones(len(frames), dtype=bool)
    out_frames = [frames[:1]]
    out_xyxy = [xyxy[:1]]
    observed = [np.ones(1, dtype=bool)]
    for k in range(len(step)):
        if fill[k]:
            new = np.arange(frames[k] + 1, frames[k + 1])
            t = ((new - frames[k]) / step[k])[:, None]
            out_frames.append(new)
            out_xyxy.append((1 - t) * xyxy[k] + t * xyxy[k + 1])
            observed.append(np.zeros(len(new), dtype=bool))
        out_frames.append(frames[k + 1 : k + 2])
        out_xyxy.append(xyxy[k + 1 : k + 2])
        observed.append(np.ones(1, dtype=bool))
    return np.concatenate(out_frames), np.concatenate(out_xyxy).astype(np.float32), np.concatenate(observed)


def tracklet_feature(
    features: np.ndarray, xyxy: np.ndarray, scores: np.ndarray, occlusion: np.ndarray, cfg: TrackletConfig
) -> np.ndarray:
    """``(D,) float32`` the tracklet feature of ``features (T, D)`` by the rule of the module docstring."""
    features = l2_normalise(features)
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    good = (area >= cfg.min_feature_area_px) & (occlusion <= cfg.max_feature_occlusion)
    if not good.any():
        good = np.ones(len(features), dtype=bool)
    if cfg.feature_weight == "uniform":
        weights = np.ones(int(good.sum()))
    else:
        weights = scores[good].astype(np.float64)
        if cfg.feature_weight == "score_sqrt_area":
            weights = weights * np.sqrt(np.maximum(area[good].astype(np.float64), 0.0))
    if not weights.sum() > 0:
        weights = np.ones(len(weights))
    mean = (weights[:, None] * features[good]).sum(axis=0) / weights.sum()
    return l2_normalise(mean[None])[0]


# ---------------------------------------------------------------------------- builder
class _Row(NamedTuple):
    """One written row of a track: ``xyxy`` the box written (the detection's or the Kalman
    state's, ``TrackerConfig.output``); ``det_xyxy`` the detection's box (None when coasted)."""

    frame: int
    xyxy: np.ndarray
    det_xyxy: np.ndarray | None
    score: float
    det_index: int
    occlusion: float
    feature: np.ndarray | None


class TrackletBuilder:
    """Collects one camera's tracker output, frame by frame, and makes tracklets.

    Args:
        cfg: the tracklet rules.
        camera: the camera (its scenario, id and frame size are used).
    """

    def __init__(self, cfg: TrackletConfig, camera: Camera):
        self.cfg = cfg
        self.camera = camera
        # track id -> its rows, in frame order
        self._obs: dict[int, list[_Row]] = {}
        # tentative tracks' observations so far (``include_tentative``): they die at their
        # first miss, so only the tracks hit in the last frame are kept
        self._pending: dict[int, list[_Row]] = {}
        self._last_frame: int | None = None

    def add(self, dets: Detections, output: TrackerOutput) -> None:
        """Record frame ``dets.frame``: the rows ``output`` writes (matched rows carry their
        detection's score, index and feature; coasted rows, ``det_index -1``, carry the box
        only, as interpolated ones), and with ``include_tentative`` the tentative tracks'
        detections (prepended to a track's rows when it is first written)."""
        frame = int(dets.frame)
        if output.frame != frame:
            raise ValueError(f"{self.camera.camera_id}: tracker output of frame {output.frame} added with frame {frame}")
        if self._last_frame is not None and frame <= self._last_frame:
            raise ValueError(f"{self.camera.camera_id}: frame {frame} added after frame {self._last_frame}")
        self._last_frame = frame
        keep_tentative = self.cfg.include_tentative
        tentative = output.tentative if keep_tentative else ()
        if not len(output) and not tentative:
            self._pending = {}  # tentative tracks die at their first miss
            return
        occlusion = occlusion_fraction(dets.xyxy)

        def observation(det: int, xyxy: np.ndarray) -> _Row:
            if not 0 <= det < len(dets):
                raise IndexError(f"{self.camera.camera_id} frame {frame}: detection index {det} of {len(dets)}")
            feature = None if dets.embeddings is None else dets.embeddings[det]
            return _Row(frame, xyxy, dets.xyxy[det], float(dets.scores[det]), int(det), float(occlusion[det]), feature)

        for track_id, det, xyxy in zip(output.track_ids.tolist(), output.det_indices.tolist(), output.xyxy):
            obs = self._obs.get(track_id)
            if obs is None:
                obs = self._obs[track_id] = self._pending.get(track_id, []) if keep_tentative else []
            if det < 0:
                obs.append(_Row(frame, xyxy, None, 0.0, -1, 0.0, None))
            else:
                obs.append(observation(det, xyxy))
        if keep_tentative:
            self._pending = {t: self._pending.get(t, []) + [observation(d, dets.xyxy[d])] for t, d in tentative}

    def finish(self) -> list[Tracklet]:
        """The tracklets, sorted by track id (see the module docstring for the rules)."""
        cfg = self.cfg
        out: list[Tracklet] = []
        dropped = 0
        for track_id in sorted(self._obs):
            rows = self._obs[track_id]
            detected = np.array([r.det_index >= 0 for r in rows], dtype=bool)
            if int(detected.sum()) < cfg.min_length:
                dropped += 1
                continue
            seen = [r for r in rows if r.det_index >= 0]
            frames = np.array([r.frame for r in rows], dtype=np.int64)
            xyxy = np.stack([r.xyxy for r in rows]).astype(np.float32)
            scores = np.array([r.score for r in rows], dtype=np.float32)
            det_indices = np.array([r.det_index for r in rows], dtype=np.int64)
            has_features = all(r.feature is not None for r in seen)
            per_frame = None
            feature = None
            if has_features:
                seen_features = np.stack([r.feature for r in seen]).astype(np.float32)
                # the feature rule looks at the detections' own boxes, whatever box is written
                feature = tracklet_feature(
                    seen_features,
                    np.stack([r.det_xyxy for r in seen]).astype(np.float32),
                    scores[detected],
                    np.array([r.occlusion for r in seen]),
                    cfg,
                )
                per_frame = np.zeros((len(rows), seen_features.shape[1]), dtype=np.float32)
                per_frame[detected] = seen_features

            frames_i, xyxy_i, observed = interpolate_gaps(frames, xyxy, cfg.max_interpolation_gap)
            scores_i = np.zeros(len(frames_i), dtype=np.float32)
            scores_i[observed] = scores
            det_i = np.full(len(frames_i), -1, dtype=np.int64)
            det_i[observed] = det_indices
            features_i = None
            if cfg.keep_frame_features and per_frame is not None:
                features_i = np.zeros((len(frames_i), per_frame.shape[1]), dtype=np.float32)
                features_i[observed] = per_frame
            if cfg.expand_scale != 1.0:
                xyxy_i = expand_xyxy(
                    xyxy_i,
                    cfg.expand_scale,
                    cfg.expand_max_px,
                    self.camera.frame_size if cfg.clip_to_frame else None,
                )
            out.append(
                Tracklet(
                    self.camera.scenario,
                    self.camera.camera_id,
                    track_id,
                    frames_i,
                    xyxy_i,
                    scores_i,
                    feature=feature,
                    features=features_i,
                    det_indices=det_i,
                )
            )
        logger.debug(
            "%s/%s: %d tracklets, %d with fewer than %d detected frames dropped",
            self.camera.scenario, self.camera.camera_id, len(out), dropped, cfg.min_length,
        )
        return out

    #: alias of :meth:`finish`.
    build = finish


# ---------------------------------------------------------------------------- store
def _feature_dim(name: str, arrays: Sequence[np.ndarray | None]) -> int:
    dims = {a.shape[-1] for a in arrays if a is not None}
    if len(dims) > 1:
        raise ValueError(f"save_tracklets: {name} of different dimensions {sorted(dims)}")
    return dims.pop() if dims else 0


def save_tracklets(path: str | Path, tracklets: Sequence[Tracklet]) -> Path:
    """Write ``tracklets`` to one ``.npz`` (format in the module docstring), atomically.

    The file is written next to ``path`` under a temporary name and renamed into place,
    so a reader never sees a half-written store. Returns ``path``.
    """
    path = Path(path)
    k = len(tracklets)
    lengths = np.array([len(t) for t in tracklets], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    d = _feature_dim("feature", [t.feature for t in tracklets])
    d_frame = _feature_dim("features", [t.features for t in tracklets])
    feature = np.zeros((k, d), dtype=np.float32)
    has_feature = np.array([t.feature is not None for t in tracklets], dtype=bool)
    for i, t in enumerate(tracklets):
        if t.feature is not None:
            feature[i] = t.feature
    has_features = np.array([t.features is not None for t in tracklets], dtype=bool)
    features = np.zeros((int(offsets[-1]), d_frame), dtype=np.float32)
    for i, t in enumerate(tracklets):
        if t.features is not None:
            features[offsets[i] : offsets[i + 1]] = t.features

    def cat(values: list[np.ndarray], shape: tuple[int, ...], dtype: type) -> np.ndarray:
        return np.concatenate(values).astype(dtype) if values else np.zeros(shape, dtype=dtype)

    arrays = {
        "format": np.array(STORE_FORMAT),
        "scenario": np.array([t.scenario for t in tracklets], dtype=str).reshape(k),
        "camera_id": np.array([t.camera_id for t in tracklets], dtype=str).reshape(k),
        "track_id": np.array([t.track_id for t in tracklets], dtype=np.int64),
        "offsets": offsets,
        "frames": cat([t.frames for t in tracklets], (0,), np.int64),
        "xyxy": cat([t.xyxy for t in tracklets], (0, 4), np.float32),
        "scores": cat([t.scores for t in tracklets], (0,), np.float32),
        "det_indices": cat(
            [t.det_indices if t.det_indices is not None else np.full(len(t), -1) for t in tracklets], (0,), np.int64
        ),
        "feature": feature,
        "has_feature": has_feature,
        "features": features,
        "has_features": has_features,
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


_STORE_KEYS = (
    "format", "scenario", "camera_id", "track_id", "offsets", "frames", "xyxy", "scores",
    "det_indices", "feature", "has_feature", "features", "has_features",
)


def load_tracklets(path: str | Path) -> list[Tracklet]:
    """Read a store written by :func:`save_tracklets`; a missing or malformed store raises ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: tracklet store not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz tracklet store: {exc}") from exc
    missing = [key for key in _STORE_KEYS if key not in arrays]
    if missing:
        raise ValueError(f"{path}: tracklet store lacks key {missing[0]!r}")
    if str(arrays["format"]) != STORE_FORMAT:
        raise ValueError(f"{path}: format {str(arrays['format'])!r}, expected {STORE_FORMAT!r}")
    offsets = arrays["offsets"]
    k = len(arrays["track_id"])
    if len(offsets) != k + 1 or offsets[-1] != len(arrays["frames"]):
        raise ValueError(f"{path}: offsets of length {len(offsets)} do not fit {k} tracklets of {len(arrays['frames'])} rows")
    out: list[Tracklet] = []
    for i in range(k):
        a, b = int(offsets[i]), int(offsets[i + 1])
        try:
            out.append(
                Tracklet(
                    str(arrays["scenario"][i]),
                    str(arrays["camera_id"][i]),
                    int(arrays["track_id"][i]),
                    arrays["frames"][a:b],
                    arrays["xyxy"][a:b],
                    arrays["scores"][a:b],
                    feature=arrays["feature"][i] if arrays["has_feature"][i] else None,
                    features=arrays["features"][a:b] if arrays["has_features"][i] else None,
                    det_indices=arrays["det_indices"][a:b],
                )
            )
        except ValueError as exc:
            raise ValueError(f"{path}: tracklet {i} (track id {int(arrays['track_id'][i])}): {exc}") from exc
    return out


# ---------------------------------------------------------------------------- MOT output
def tracklets_to_mot_rows(tracklets: Sequence[Tracklet]):  # -> mct.data.mot.MotRows
    """``MotRows`` (frame, local track id, tlwh, score) of one camera's tracklets, sorted by frame then id."""
    from mct.data.mot import MotRows

    if not tracklets:
        return MotRows.empty()
    frames = np.concatenate([t.frames for t in tracklets])
    ids = np.concatenate([np.full(len(t), t.track_id, dtype=np.int64) for t in tracklets])
    xyxy = np.concatenate([t.xyxy for t in tracklets])
    scores = np.concatenate([t.scores for t in tracklets])
    order = np.lexsort((ids, frames))
    return MotRows.from_xyxy(frames[order], ids[order], xyxy[order], scores[order])


def write_tracklets_mot(path: str | Path, tracklets: Sequence[Tracklet]) -> Path:
    """Write one camera's tracklets as a MOT txt file (``mct.data.mot.write_mot``)."""
    from mct.data.mot import write_mot

    return write_mot(path, tracklets_to_mot_rows(tracklets))
