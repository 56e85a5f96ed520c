"""Cross-camera association: FAISS kNN candidates, space-time constraints, clustering.

``associate(tracklets, cameras, cfg)`` gives every tracklet that passes the length and
quality filters a global id; :func:`write_submission_rows` turns the result into the rows
of the AI City submission file. See ``docs/association.md``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Sequence

import numpy as np

from mct.associate.config import AssociationConfig, TopologyFile
from mct.associate.table import TrackletTable
from mct.types import Camera, GlobalAssignment, Tracklet, camera_number, xyxy_to_tlwh

if TYPE_CHECKING:
    from mct.data.submission import SubmissionRows

__all__ = ["associate", "associate_table", "write_submission_rows", "SUBMISSION_COLUMNS"]

log = logging.getLogger(__name__)

#: the 9 integer columns of the AI City MTMC submission file.
SUBMISSION_COLUMNS = ("camera_id", "obj_id", "frame_id", "xmin", "ymin", "width", "height", "xworld", "yworld")


class _StepClock:
    """Wall-clock and CPU seconds of consecutive steps, written into a dict."""

    def __init__(self, out: dict[str, float]) -> None:
        self.out = out
        self.t0 = self.c0 = 0.0

    def start(self) -> None:
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def stop(self, name: str) -> None:
        self.out[name] = time.perf_counter() - self.t0
        self.out[f"{name}_cpu"] = time.process_time() - self.c0


def associate_table(
    table: TrackletTable,
    cfg: AssociationConfig,
    topology: TopologyFile | None = None,
    timings: dict[str, float] | None = None,
    progress: bool = True,
    details: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Cluster the rows of ``table`` into vehicles.

    Args:
        topology: the topology (``None``: none; ``cfg.topology`` is not read here).
        timings: if given, filled with wall-clock seconds per step (``pca``, ``knn``,
            ``rerank``, ``pairs``, ``cluster``) and the process's CPU seconds (``<step>_cpu``).
        details: if given, filled with ``knn_idx`` ``(N, k + 1) int64`` (each row's kNN
            rows, itself usually first, -1 pads) and ``knn_sims``, for measuring recall.

    Returns:
        ``(N,) int64`` labels ``0..M-1`` (one per vehicle), numbered by first row.
    """
    from mct.associate.clustering import candidate_pairs, constrained_agglomerative, k_reciprocal_rerank, order_pairs
    from mct.associate.constraints import Constraints, search_blocks
    from mct.associate.index import blocked_knn, fit_pca
    from mct.associate.motion import overlap_distance

    timings = {} if timings is None else timings
    clock = _StepClock(timings)
    n = len(table)
    if n == 0:
        return np.zeros(0, np.int64)
    clock.start()
    constraints = Constraints.build(table, topology, cfg)
    feats = table.features
    if cfg.pca_dim and cfg.pca_dim < table.dim:
        feats = fit_pca(feats, cfg.pca_dim, cfg.pca_sample).apply(feats)
    clock.stop("pca")

    clock.start()
    k = cfg.k + 1  # a tracklet may find itself
    blocks = search_blocks(table, constraints, cfg.time_slice_s)
    # block bases hold a little more than each query reaches: search deeper, drop, trim
    sims, idx = blocked_knn(feats, blocks, 2 * k, cfg, len(blocks), progress)
    ok = (idx >= 0) & constraints.within_reach(table, np.arange(n)[:, None], np.maximum(idx, 0))
    sims = np.where(ok, sims, -np.inf).astype(np.float32)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    sims = np.take_along_axis(sims, order, 1)
    idx = np.where(np.isfinite(sims), np.take_along_axis(idx, order, 1), -1)
    clock.stop("knn")
    if details is not None:
        details["knn_idx"], details["knn_sims"] = idx, sims

    clock.start()
    if cfg.rerank:
        sims = k_reciprocal_rerank(idx, sims, cfg.rerank_lambda)
    clock.stop("rerank")

    clock.start()
    pair_min = cfg.rerank_min_similarity if cfg.rerank else cfg.min_similarity
    mutual_min = cfg.mutual_min_similarity
    coloc_min = cfg.colocation_min_similarity if cfg.colocation_max_m > 0 and table.ground is not None else None
    lowest = min(v for v in (pair_min, mutual_min, coloc_min) if v is not None)
    a, b, s = candidate_pairs(table, constraints, idx, sims, lowest)
    colocated = None
    if coloc_min is not None:
        dist = overlap_distance(table.ground, a, b, cfg.colocation_min_overlap_s)
        colocated = dist <= cfg.colocation_max_m  # NaN (not seen together): False
    # centroid linkage: co-located and mutual-best pairs at their own thresholds, the others
    # at min_similarity (the cosine one, also when the pairs were re-ranked)
    a, b, thresholds = order_pairs(table, a, b, s, pair_min, mutual_min, colocated, coloc_min, cfg.min_similarity)
    clock.stop("pairs")

    clock.start()
    labels = constrained_agglomerative(
        table, constraints, feats, a, b, thresholds, cfg.max_cluster_size, progress, cfg.all_pairs_link
    )
    clock.stop("cluster")
    log.info("association: %d tracklets -> %d global ids (%d candidate pairs)", n, int(labels.max()) + 1, len(a))
    return labels


def associate(
    tracklets: Sequence[Tracklet],
    cameras: Sequence[Camera],
    cfg: AssociationConfig,
    topology: TopologyFile | None = None,
) -> GlobalAssignment:
    """Give the tracklets of all cameras global ids.

    Args:
        tracklets: every camera's tracklets; keys ``(scenario, camera_id, track_id)`` unique.
        cameras: the cameras they come from (fps and time offset put them on one clock).
        cfg: the association config; ``cfg.topology`` names the topology file(s) unless
            ``topology`` is given.

    Returns:
        A :class:`GlobalAssignment` holding the tracklets that pass
        ``cfg.min_tracklet_frames`` / ``cfg.min_tracklet_mean_score`` (the others have no
        global id), with global ids ``1..M``.
    """
    from mct.associate.constraints import load_topology

    if topology is None and cfg.topology and cfg.use_constraints:
        topology = load_topology(cfg.topology)
    table = TrackletTable.from_tracklets(tracklets, cameras, cfg)
    labels = associate_table(table, cfg, topology)
    return table.assignment(labels + 1)


def write_submission_rows(tracklets: Sequence[Tracklet], assignment: GlobalAssignment) -> "SubmissionRows":
    """The AI City submission rows of the tracklets that have a global id, for
    :func:`mct.data.submission.write_submission`.

    Returns:
        :class:`~mct.data.submission.SubmissionRows` of the 9 integer columns
        ``camera_id obj_id frame_id xmin ymin width height xworld yworld``, camera id as an
        integer (``c006`` -> 6), boxes rounded to whole pixels (width and height at least 1),
        world columns -1; sorted by camera, frame, id. Where two tracklets of one global id
        hold a box in the same frame of one camera (fragments that overlap at a handover,
        ``association.same_camera_max_overlap_s``), only the box of the higher detection
        score is written (an interpolated box scores 0; ties: the earlier tracklet).
    """
    from mct.data.submission import SubmissionRows

    parts: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for t in tracklets:
        gid = assignment.global_id(t.scenario, t.camera_id, t.track_id)
        if gid is None or len(t) == 0:
            continue
        rows = np.empty((len(t), 9), np.int64)
        rows[:, 0] = camera_number(t.camera_id)
        rows[:, 1] = gid
        rows[:, 2] = t.frames
        xyxy = np.rint(t.xyxy.astype(np.float64)).astype(np.int64)
        rows[:, 3:7] = xyxy_to_tlwh(xyxy)
        rows[:, 5:7] = np.maximum(rows[:, 5:7], 1)
        rows[:, 7:9] = -1
        parts.append(rows)
        scores.append(np.asarray(t.scores, np.float64))
    if not parts:
        return SubmissionRows.empty()
    out, score = np.concatenate(parts), np.concatenate(scores)
    # by camera, frame, id, then best score first (stable: the earlier tracklet wins ties)
    out = out[np.lexsort((-score, out[:, 1], out[:, 2], out[:, 0]))]
    first = np.ones(len(out), bool)
    first[1:] = np.any(out[1:, :3] != out[:-1, :3], axis=1)
    return SubmissionRows.from_array(out[first])
