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

from mct.associate.config import AssociationConfig, ScoreFit, TopologyFile
from mct.associate.links import CameraLinks
from mct.associate.table import TrackletTable
from mct.types import Camera, GlobalAssignment, Tracklet, camera_number, xyxy_to_tlwh

if TYPE_CHECKING:
    from mct.associate.links import LinkArrays
    from mct.associate.score import AppearanceModel, ColocationModel, DirectionModel
    from mct.data.submission import SubmissionRows

__all__ = ["associate", "associate_table", "write_submission_rows", "SUBMISSION_COLUMNS", "UNKNOWN_REACH_S"]

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
        """Add the time since :meth:`start` to step ``name`` (a step run in rounds sums up)."""
        self.out[name] = self.out.get(name, 0.0) + time.perf_counter() - self.t0
        self.out[f"{name}_cpu"] = self.out.get(f"{name}_cpu", 0.0) + time.process_time() - self.c0


#: a confident match (taught to the links and term models): posterior log-odds at least
#: this (about 50 : 1), mutual best between its two cameras, and this far above the
#: second-best pair of either tracklet into the other's camera.
CONFIDENT_LOG_ODDS = 4.0
CONFIDENT_MARGIN = 2.0
#: cross-camera pairs whose space-time terms alone say at most minus this log-likelihood
#: ratio (odds of 1 : 55 or longer) are known different vehicles for the appearance
#: calibration, once there are MIN_CROSS_NEGATIVES of them. A gap far outside a link's
#: window alone scores log 0.01 = -4.6 (the links' outlier floor), so look-alikes met at
#: the wrong time are among them: the negatives that matter.
SPACE_TIME_NEGATIVE = 4.0
MIN_CROSS_NEGATIVES = 50
#: rows filtered at a time after the kNN search (bounds the temporaries).
ROW_CHUNK = 100_000
#: without a known link, the kNN search reaches this far in time (seconds).
UNKNOWN_REACH_S = 600.0


def associate_table(
    table: TrackletTable,
    cfg: AssociationConfig,
    links: "CameraLinks | None" = None,
    labelled: "CameraLinks | None" = None,
    timings: dict[str, float] | None = None,
    progress: bool = True,
    details: dict | None = None,
    score: ScoreFit | None = None,
) -> np.ndarray:
    """Cluster the rows of ``table`` into vehicles.

    Args:
        links: the prior camera links (``None``: nothing known of any camera pair).
        labelled: labelled links (a topology file, ``mct fit-topology``); per camera pair
            they win over the prior and over what the self-training learns.
        score: what labelled tracks taught the pair score (a topology file's ``score``
            section): term weights (else 1 each) and a fixed appearance calibration (else
            the run fits its own each round).
        timings: if given, filled with wall-clock seconds per step (``pca``, ``knn``,
            ``calibrate``, ``pairs``, ``cluster``, ``learn``; the last three summed over
            rounds) and the process's CPU seconds (``<step>_cpu``).
        details: if given, filled with ``knn_idx`` ``(N, k + 1) int64`` (each row's kNN
            rows, -1 pads), ``links`` (the :class:`CameraLinks` of the last round),
            ``model`` (the :class:`~mct.associate.score.PairModel`), ``pairs`` ``(a, b,
            scores)`` and ``rounds`` (one dict per round).

    Returns:
        ``(N,) int64`` labels ``0..M-1`` (one per vehicle), numbered by first row.
    """
    from mct.associate.clustering import candidate_pairs, constrained_agglomerative, mutual_best, second_best_margin
    from mct.associate.constraints import camera_adjacency, camera_reach, same_camera_concurrent, search_blocks, within_reach
    from mct.associate.index import blocked_knn, fit_pca
    from mct.associate.score import (
        TERMS, AppearanceModel, ColocationModel, DirectionModel, LinkTable, PairModel, colocation_distance,
        direction_cosines, pair_cosines, pair_log_lr, score_pairs, terms_mask,
    )

    timings = {} if timings is None else timings
    details = {} if details is None else details
    clock = _StepClock(timings)
    n = len(table)
    if links is None:
        links = CameraLinks(links={}, cfg=cfg.links, camera_keys=table.camera_keys)
    prior = links
    current = prior if labelled is None else prior.overridden_by(labelled)
    details["links"] = current
    if n == 0:
        return np.zeros(0, np.int64)
    terms = terms_mask(cfg.terms).astype(np.float64)
    if score is not None and score.weights is not None:
        terms *= np.array([getattr(score.weights, t) for t in TERMS])
    fixed_appearance = None
    if score is not None and score.appearance is not None:
        c = score.appearance
        fixed_appearance = AppearanceModel(c.neg_mean, c.neg_std, c.pos_mean, c.pos_std, c.prior, "labels")
    clock.start()
    feats = table.features
    if cfg.index.pca_dim and cfg.index.pca_dim < table.dim:
        feats = fit_pca(feats, cfg.index.pca_dim, cfg.index.pca_sample).apply(feats)
    clock.stop("pca")

    clock.start()
    arrays = current.compile(table)
    reach = camera_reach(table, arrays, UNKNOWN_REACH_S)
    blocks = search_blocks(table, reach, camera_adjacency(table, arrays), cfg.index.time_slice_s)
    depth = 2 * (cfg.k + 1)  # block bases hold a little more than each query reaches: search deeper, drop, trim
    sims, idx = blocked_knn(feats, blocks, depth, cfg.index, len(blocks), progress)
    del blocks  # the plan (each block's query rows), needed by nothing after the search
    neg_parts: list[np.ndarray] = []
    out_s = np.empty((n, cfg.k), np.float32)
    out_i = np.empty((n, cfg.k), np.int64)
    for lo in range(0, n, ROW_CHUNK):  # in chunks: a few (chunk, depth) temporaries at a time
        hi = min(n, lo + ROW_CHUNK)
        s_c, i_c = sims[lo:hi], idx[lo:hi]
        rows = np.arange(lo, hi)[:, None]
        ok = (i_c >= 0) & (i_c != rows) & within_reach(table, reach, rows, np.maximum(i_c, 0))
        negative = ok & same_camera_concurrent(table, np.broadcast_to(rows, i_c.shape), np.maximum(i_c, 0), cfg.same_camera_max_overlap_s)
        neg_parts.append(s_c[negative])
        s_c = np.where(ok & ~negative, s_c, -np.inf).astype(np.float32)
        order = np.argsort(-s_c, axis=1, kind="stable")[:, : cfg.k]
        out_s[lo:hi] = np.take_along_axis(s_c, order, 1)
        out_i[lo:hi] = np.where(np.isfinite(out_s[lo:hi]), np.take_along_axis(i_c, order, 1), -1)
    neg_cos = np.concatenate(neg_parts) if neg_parts else np.zeros(0, np.float32)
    del sims, idx
    sims, idx = out_s, out_i
    clock.stop("knn")
    details["knn_idx"], details["knn_sims"] = idx, sims

    clock.start()
    # the appearance neighbours: the calibration's sample (its mixture weight is the prior
    # share of true pairs among them)
    ka, kb = candidate_pairs(idx)
    kcos = pair_cosines(table.features, ka, kb)
    kcross = table.camera[ka] != table.camera[kb]
    direction, colocation = DirectionModel(), ColocationModel()
    kdist = colocation_distance(table, ka, kb) if terms[3] else np.full(len(ka), np.nan)
    together = np.isfinite(kdist)
    if together.sum() >= 20:  # the different-vehicles disc: where pairs seen at once stand apart
        colocation = ColocationModel(colocation.sigma_m, max(float(np.quantile(kdist[together], 0.95)), 6 * colocation.sigma_m))
    if not terms[0]:
        appearance = AppearanceModel()
    elif fixed_appearance is not None:
        appearance = fixed_appearance
    else:
        appearance = _appearance(table, terms, kcos, kcross, ka, kb, kdist, neg_cos, direction, colocation, arrays, cfg)
    clock.stop("calibrate")

    rounds: list[dict] = []
    labels = np.zeros(n, np.int64)
    for r in range(cfg.self_training_rounds + 1):
        t0 = time.perf_counter()
        model = PairModel(appearance, direction, colocation, LinkTable.from_arrays(arrays),
                          terms, cfg.same_camera_max_overlap_s)
        clock.start()
        a, b, distance = _candidates(table, model, arrays, ka, kb, kdist, terms, cfg.min_log_lr)
        cross = table.camera[a] != table.camera[b]
        scores = score_pairs(table, model, a, b, distance)
        clock.stop("pairs")
        clock.start()
        new = constrained_agglomerative(table, model, a, b, scores, cfg.min_log_lr, cfg.max_cluster_size)
        clock.stop("cluster")
        changed = int((new != labels).sum()) if r else n
        labels = new
        info = {"round": r, "global_ids": int(labels.max()) + 1, "changed": changed}
        if r == cfg.self_training_rounds or (r and changed == 0):
            info["seconds"] = round(time.perf_counter() - t0, 3)
            rounds.append(info)
            break
        # confident matches teach the links and the term models
        clock.start()
        ranked = np.where(np.isnan(scores), -np.inf, scores)  # NaN: no direct link
        conf = (
            cross & (labels[a] == labels[b]) & (ranked + model.prior_log_odds >= CONFIDENT_LOG_ODDS)
            & mutual_best(table, a, b, ranked) & (second_best_margin(table, a, b, ranked) >= CONFIDENT_MARGIN)
        )
        ca, cb = a[conf], b[conf]
        first = (table.start_s[ca] < table.start_s[cb]) | ((table.start_s[ca] == table.start_s[cb]) & (table.end_s[ca] <= table.end_s[cb]))
        src, dst = np.where(first, ca, cb), np.where(first, cb, ca)
        gap = table.start_s[dst] - table.end_s[src]
        learned = prior.learned(table.scenario[src].astype(np.int64), table.camera[src].astype(np.int64),
                                table.camera[dst].astype(np.int64), gap, None, table)
        current = learned if labelled is None else learned.overridden_by(labelled)
        arrays = current.compile(table)
        if terms[2]:
            direction = DirectionModel().fit(direction_cosines(table, ca, cb))
        if terms[3]:
            colocation = colocation.fit(distance[conf])
        if terms[0] and fixed_appearance is None:
            appearance = _appearance(table, terms, kcos, kcross, ka, kb, kdist, neg_cos, direction, colocation, arrays, cfg)
        clock.stop("learn")
        info.update(confident=int(conf.sum()), kappa=round(direction.kappa, 3), colocation_sigma_m=round(colocation.sigma_m, 3),
                    seconds=round(time.perf_counter() - t0, 3))
        rounds.append(info)
        log.info("self-training round %d: %d global ids, %d confident matches; direction kappa %.2f, co-location sigma %.1f m",
                 r, info["global_ids"], info["confident"], direction.kappa, colocation.sigma_m)
    details.update(links=current, model=model, pairs=(a, b, scores), rounds=rounds)
    log.info("association: %d tracklets -> %d global ids (%d candidate pairs, %d rounds)", n, int(labels.max()) + 1, len(a), len(rounds))
    return labels


#: space-time candidates kept per tracklet and linked camera pair (as the earlier tracklet
#: and as the later one): the best by the full pair score among the tracklets whose gap
#: falls in the link's window.
SPACE_TIME_BEST = 2
#: window mates per tracklet and camera ranked first by the space-time evidence alone (no
#: features read), then scored in full (same IDF1 as scoring all on the five runs of
#: docs/association.md).
SPACE_TIME_PRESELECT = 4


def _candidates(
    table: TrackletTable, model: "PairModel", arrays: "LinkArrays", ka: np.ndarray, kb: np.ndarray,
    kdist: np.ndarray, terms: np.ndarray, floor: float = -np.inf,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidate pairs of a round: the appearance neighbours ``(ka, kb)`` (co-location
    distances ``kdist``) and, where the links know a window, the :data:`SPACE_TIME_BEST` best
    pairs by the full score of each tracklet into each linked camera pair among those whose gap
    falls in the window (:func:`~mct.associate.clustering.best_linked_in_time`): a weak re-ID
    model ranks a vehicle's next view behind look-alikes of other times, and the kNN alone
    would never offer it. Only space-time pairs scoring above ``floor`` (the merge cut) are
    added: the clustering visits no pair below the cut, and scores the linkage of a pair it
    has no candidate for itself (without co-location), so the others cost memory and time
    for little (same ids on the five runs of docs/association.md and at 100k; they were
    2.4x the kNN pairs on the scale benchmark).
    Returns ``(a, b, distance)``, sorted by ``(a, b)`` with ``a < b``."""
    from mct.associate.clustering import best_linked_in_time
    from mct.associate.score import colocation_distance

    sa, sb = best_linked_in_time(table, arrays, model, SPACE_TIME_BEST, SPACE_TIME_PRESELECT, floor)
    if len(sa) == 0:
        return ka, kb, kdist
    sdist = colocation_distance(table, sa, sb) if terms[3] else np.full(len(sa), np.nan)
    n = max(len(table), 1)
    code = np.concatenate([ka * n + kb, np.minimum(sa, sb) * n + np.maximum(sa, sb)])
    dist = np.concatenate([kdist, sdist])
    code, first = np.unique(code, return_index=True)
    return code // n, code % n, dist[first]


def _appearance(
    table: TrackletTable, terms: np.ndarray, cos: np.ndarray, cross: np.ndarray, a: np.ndarray, b: np.ndarray,
    distance: np.ndarray, within_camera_cos: np.ndarray, direction: "DirectionModel", colocation: "ColocationModel",
    arrays: "LinkArrays", cfg: AssociationConfig,
) -> "AppearanceModel":
    """The appearance calibration: EM on the cross-camera candidates ``cos[cross]`` with the
    different-vehicles component fitted on known negatives: cross-camera candidate pairs
    that the space-time terms alone rule out (log-likelihood ratio <= -SPACE_TIME_NEGATIVE:
    chosen without looking at appearance, and seen from two cameras as true candidates
    are), else, when there are fewer than MIN_CROSS_NEGATIVES of them, pairs of one camera
    seen at once (``within_camera_cos``; one view makes two vehicles look more alike, so the
    calibration is then more cautious)."""
    from mct.associate.score import AppearanceModel, LinkTable, PairModel, score_pairs

    if terms[1:].any():
        space_time = terms.copy()
        space_time[0] = False
        probe = PairModel(AppearanceModel(), direction, colocation, LinkTable.from_arrays(arrays), space_time, cfg.same_camera_max_overlap_s)
        ruled_out = cross & (score_pairs(table, probe, a, b, distance) <= -SPACE_TIME_NEGATIVE)
        if ruled_out.sum() >= MIN_CROSS_NEGATIVES:
            return AppearanceModel.fit_scene(cos[ruled_out], cos[cross])
    return AppearanceModel.fit_scene(within_camera_cos, cos[cross])


def associate(
    tracklets: Sequence[Tracklet],
    cameras: Sequence[Camera],
    cfg: AssociationConfig,
    topology: TopologyFile | None = None,
    details: dict | None = None,
) -> GlobalAssignment:
    """Give the tracklets of all cameras global ids.

    Args:
        tracklets: every camera's tracklets; keys ``(scenario, camera_id, track_id)`` unique.
        cameras: the cameras they come from (fps and time offset put them on one clock;
            calibration gives the prior camera links).
        cfg: the association config.
        topology: the labelled links of ``cfg.topology``, read by the caller
            (:func:`mct.config.load_topology`); ``None`` when there are none. Raises
            ``ValueError`` when ``cfg.topology`` names a file and none is given.
        details: see :func:`associate_table`; ``details["links"]`` holds the links used and
            ``details["table"]`` the :class:`TrackletTable` (``table.source``: each row's tracklet).

    Returns:
        A :class:`GlobalAssignment` holding the tracklets that pass
        ``cfg.min_tracklet_frames`` / ``cfg.min_tracklet_mean_score`` (the others have no
        global id), with global ids ``1..M``.
    """
    if cfg.topology and topology is None:
        raise ValueError(f"association.topology: {cfg.topology!r} is set but no topology was given (read it with mct.config.load_topology)")
    table = TrackletTable.from_tracklets(tracklets, cameras, cfg)
    prior = CameraLinks.from_geometry(cameras, table, cfg.links, cfg.world_units)
    labelled = CameraLinks.from_topology(topology, cameras, cfg.links) if topology is not None else None
    if details is not None:
        details["table"] = table
    labels = associate_table(table, cfg, prior, labelled, details=details, score=topology.score if topology is not None else None)
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
