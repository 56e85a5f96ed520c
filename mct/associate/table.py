"""Tracklets as columns: what association needs of each tracklet, in arrays.

Association works on a :class:`TrackletTable` rather than on ``Tracklet`` objects so that a
million tracklets cost a few arrays, not a million Python objects. :meth:`from_tracklets`
builds one from the pipeline's tracklets and cameras; benchmarks build one directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mct.associate.config import AssociationConfig
from mct.associate.motion import GroundMotion, GroundTracks
from mct.types import Camera, GlobalAssignment, Tracklet

__all__ = ["TrackletTable", "tracklet_feature"]

log = logging.getLogger(__name__)


def _unknown_motion(n: int) -> np.ndarray:
    out = np.zeros((n, 4, 2))
    out[:, :2] = np.nan
    return out


def tracklet_feature(t: Tracklet) -> np.ndarray:
    """The appearance feature of a tracklet: ``feature``, else the mean of ``features``;
    ``(D,) float32``, L2-normalised. Raises ``ValueError`` naming the tracklet if it has neither."""
    if t.feature is not None:
        f = t.feature
    elif t.features is not None and len(t.features):
        f = t.features.mean(axis=0)
    else:
        raise ValueError(f"tracklet {t.key}: has no appearance feature (neither feature nor features)")
    norm = float(np.linalg.norm(f))
    if not np.isfinite(norm) or norm == 0:
        raise ValueError(f"tracklet {t.key}: appearance feature has norm {norm}")
    return (f / norm).astype(np.float32)


@dataclass(frozen=True, eq=False)
class TrackletTable:
    """N tracklets of any number of scenarios and cameras, one row each.

    Attributes:
        camera_keys: ``(scenario, camera_id)`` of each camera code.
        camera: ``(N,) int32`` camera code (index into ``camera_keys``).
        scenario: ``(N,) int32`` scenario code (index into ``scenarios``).
        scenarios: scenario names.
        track_id: ``(N,) int64`` local track ids.
        start_s, end_s: ``(N,) float64`` first and last frame time, seconds on the scenario
            clock (camera time offset + (frame - 1) / fps).
        features: ``(N, D) float32`` L2-normalised appearance features.
        entry_xy, exit_xy: ``(N, 2) float32`` bottom centre of the first / last box, pixels.
        source: ``(N,) int64`` position of each row in the tracklet sequence it came from.
        motion: ``(N, 4, 2) float64`` ground-plane entry and exit positions (metres, NaN when
            unknown) and unit headings at entry and exit (zero when unknown), see
            :mod:`mct.associate.motion`; all unknown without the direction and co-location
            terms (``association.terms``).
        ground: the ground track of every row (:class:`~mct.associate.motion.GroundTracks`)
            with the co-location term, else ``None``.
    """

    camera_keys: tuple[tuple[str, str], ...]
    camera: np.ndarray
    scenarios: tuple[str, ...]
    scenario: np.ndarray
    track_id: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    features: np.ndarray
    entry_xy: np.ndarray
    exit_xy: np.ndarray
    source: np.ndarray
    motion: np.ndarray
    ground: GroundTracks | None = None

    def __post_init__(self) -> None:
        n = len(self.camera)
        for name in ("scenario", "track_id", "start_s", "end_s", "source"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"TrackletTable.{name}: expected {n} rows, got {len(getattr(self, name))}")
        for name in ("features", "entry_xy", "exit_xy"):
            if getattr(self, name).ndim != 2 or len(getattr(self, name)) != n:
                raise ValueError(f"TrackletTable.{name}: expected ({n}, *), got {getattr(self, name).shape}")
        if self.motion.shape != (n, 4, 2):
            raise ValueError(f"TrackletTable.motion: expected ({n}, 4, 2), got {self.motion.shape}")
        if self.ground is not None and len(self.ground) != n:
            raise ValueError(f"TrackletTable.ground: expected {n} rows, got {len(self.ground)}")
        if n and np.any(self.end_s < self.start_s):
            raise ValueError("TrackletTable: end_s before start_s")

    def __len__(self) -> int:
        return len(self.camera)

    def assignment(self, global_ids: np.ndarray) -> GlobalAssignment:
        """The :class:`GlobalAssignment` giving row ``r`` the global id ``global_ids[r]``."""
        return GlobalAssignment(
            scenarios=np.array([self.camera_keys[c][0] for c in self.camera], dtype=object),
            camera_ids=np.array([self.camera_keys[c][1] for c in self.camera], dtype=object),
            track_ids=self.track_id,
            global_ids=np.asarray(global_ids),
        )

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    @classmethod
    def from_arrays(
        cls,
        camera_keys: Sequence[tuple[str, str]],
        camera: np.ndarray,
        track_id: np.ndarray,
        start_s: np.ndarray,
        end_s: np.ndarray,
        features: np.ndarray,
        entry_xy: np.ndarray | None = None,
        exit_xy: np.ndarray | None = None,
        motion: np.ndarray | None = None,
        ground: GroundTracks | None = None,
    ) -> "TrackletTable":
        """A table from columns; scenario codes follow from ``camera_keys``. ``features``
        must already be L2-normalised ``float32`` (it is used as is, without a copy);
        ``motion`` is ``(N, 4, 2)`` as the attribute (``None``: all unknown); ``ground``
        the rows' ground tracks (``None``: none)."""
        camera_keys = tuple((str(s), str(c)) for s, c in camera_keys)
        scenarios = tuple(sorted({s for s, _ in camera_keys}))
        cam_scen = np.array([scenarios.index(s) for s, _ in camera_keys], np.int32)
        camera = np.asarray(camera, np.int32)
        n = len(camera)
        if n and (camera.min() < 0 or camera.max() >= len(camera_keys)):
            raise ValueError(f"TrackletTable: camera codes must be in 0..{len(camera_keys) - 1}")
        zeros = np.zeros((n, 2), np.float32)
        return cls(
            camera_keys=camera_keys,
            camera=camera,
            scenarios=scenarios,
            scenario=cam_scen[camera] if n else np.zeros(0, np.int32),
            track_id=np.asarray(track_id, np.int64),
            start_s=np.asarray(start_s, np.float64),
            end_s=np.asarray(end_s, np.float64),
            features=features,
            entry_xy=zeros if entry_xy is None else np.asarray(entry_xy, np.float32),
            exit_xy=zeros if exit_xy is None else np.asarray(exit_xy, np.float32),
            source=np.arange(n, dtype=np.int64),
            motion=_unknown_motion(n) if motion is None else np.asarray(motion, np.float64),
            ground=ground,
        )

    @classmethod
    def from_tracklets(cls, tracklets: Sequence[Tracklet], cameras: Sequence[Camera], cfg: AssociationConfig) -> "TrackletTable":
        """Rows for the tracklets that pass ``cfg.min_tracklet_frames`` and
        ``cfg.min_tracklet_mean_score``, timed with their camera's offset and fps.

        Raises ``ValueError`` naming the tracklet when its camera is not in ``cameras``, it
        has no feature, or features differ in dim; and on a duplicate tracklet key.
        """
        cam_by_key = {c.key: c for c in cameras}
        keys: list[tuple[str, str]] = []
        code_of: dict[tuple[str, str], int] = {}
        rows: list[int] = []
        cams: list[int] = []
        tids: list[int] = []
        starts: list[float] = []
        ends: list[float] = []
        feats: list[np.ndarray] = []
        entry: list[np.ndarray] = []
        exit_: list[np.ndarray] = []
        seen: set[tuple[str, str, int]] = set()
        dropped = 0
        needs_ground = "direction" in cfg.terms or "colocation" in cfg.terms
        ground = GroundMotion(units=cfg.world_units) if needs_ground else None
        motion: list[np.ndarray] = []
        tracks: list[tuple[np.ndarray, np.ndarray]] = []
        for pos, t in enumerate(tracklets):
            if t.key in seen:
                raise ValueError(f"tracklet {t.key}: appears twice in the input")
            seen.add(t.key)
            cam = cam_by_key.get((t.scenario, t.camera_id))
            if cam is None:
                raise ValueError(f"tracklet {t.key}: camera ({t.scenario}, {t.camera_id}) is not among the cameras given")
            if len(t) < cfg.min_tracklet_frames or len(t) == 0 or float(t.scores.mean()) < cfg.min_tracklet_mean_score:
                dropped += 1
                continue
            f = tracklet_feature(t)
            if feats and len(f) != len(feats[0]):
                raise ValueError(f"tracklet {t.key}: feature dim {len(f)}, other tracklets have {len(feats[0])}")
            if cam.key not in code_of:
                code_of[cam.key] = len(keys)
                keys.append(cam.key)
            times = cam.frame_time(np.array([t.frames[0], t.frames[-1]]))
            rows.append(pos)
            cams.append(code_of[cam.key])
            tids.append(t.track_id)
            starts.append(float(times[0]))
            ends.append(float(times[1]))
            feats.append(f)
            first, last = t.xyxy[0], t.xyxy[-1]
            entry.append(np.array([(first[0] + first[2]) / 2, first[3]], np.float32))
            exit_.append(np.array([(last[0] + last[2]) / 2, last[3]], np.float32))
            if ground is not None:
                motion.append(ground(t, cam))
                if "colocation" in cfg.terms:
                    tracks.append((cam.frame_time(t.frames), ground.track(t, cam)))
        if dropped:
            log.info("association: %d of %d tracklets below min_tracklet_frames/min_tracklet_mean_score get no global id", dropped, len(tracklets))
        dim = len(feats[0]) if feats else 0
        table = cls.from_arrays(
            keys,
            np.array(cams, np.int32),
            np.array(tids, np.int64),
            np.array(starts, np.float64),
            np.array(ends, np.float64),
            np.stack(feats) if feats else np.zeros((0, dim), np.float32),
            np.stack(entry) if entry else None,
            np.stack(exit_) if exit_ else None,
            np.stack(motion) if motion else None,
            GroundTracks.from_rows(tracks) if "colocation" in cfg.terms else None,
        )
        if ground is not None:
            no_homography = sorted({f"{s}/{c}" for s, c in keys if cam_by_key[(s, c)].homography is None})
            if no_homography:
                log.warning("association: no homography for %s: no direction or co-location evidence there", ", ".join(no_homography))
        object.__setattr__(table, "source", np.array(rows, np.int64))
        return table
