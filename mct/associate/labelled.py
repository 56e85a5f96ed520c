"""What labelled tracks teach the pair score (``mct fit-topology --from-run RUN --labels``).

A run whose cameras have ground truth gives each tracklet the vehicle it follows
(:func:`truth_ids`); its candidate pairs are then labelled same / different, and two things
are fitted on them:

* **term weights** (:func:`fit_term_weights`): a logistic regression of the labels on the
  four terms' log-likelihood ratios. Weight 1 is each term's ratio as it is; a term that is
  over-confident on this kind of scene gets less, one that is under-confident more. The
  weights are bounded below by 0 (a ratio of the right sign never counts against its own
  evidence) and shrunk towards 1 (a term the labels say little about keeps its ratio).
  Why not fit them without labels: the run's own confident matches are chosen by the very
  score whose weights would be fitted (the travel-time term picked them, so its weight would
  only grow), and its known negatives (pairs ruled out by space and time) likewise.
* **the appearance calibration** from labelled pairs (:meth:`AppearanceModel.fit_labelled`),
  for a scene of the same look; on another look the run fits its own (leave it out of the file).

Hand-written code, not scikit-learn: a bounded, shrunk four-weight regression is a few
lines on :func:`scipy.optimize.minimize`, and scikit-learn is not a dependency.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from mct.associate.config import AppearanceCalibration, ScoreFit, TermWeights
from mct.associate.score import TERMS, AppearanceModel, PairModel, pair_cosines, term_breakdown
from mct.types import Tracklet

__all__ = ["truth_ids", "run_truth_ids", "fit_term_weights", "fit_score"]

log = logging.getLogger(__name__)

#: fewer labelled pairs of either kind than this: too few to fit weights.
MIN_PAIRS = 20
#: strength of the pull of each weight towards 1 (as this many pairs' worth of evidence).
SHRINK = 1.0


def truth_ids(tracklets: Sequence[Tracklet], gt: object, min_iou: float = 0.5) -> np.ndarray:
    """``(T,) int64``: for each tracklet of one camera, the ground-truth id whose box it
    overlaps at IoU >= ``min_iou`` in the most frames (-1: none; a false track).

    Args:
        tracklets: the camera's tracklets.
        gt: the camera's ground truth (:class:`mct.data.mot.MotRows`, ``read_mot(..., "gt")``).
    """
    from mct.track.matching import iou_xyxy

    gt_xyxy = gt.xyxy  # type: ignore[attr-defined]
    out = np.full(len(tracklets), -1, np.int64)
    for t, trk in enumerate(tracklets):
        votes: dict[int, int] = {}
        for f, box in zip(trk.frames.tolist(), trk.xyxy):
            rows = gt.rows_in_frame(f)  # type: ignore[attr-defined]
            if len(rows) == 0:
                continue
            iou = iou_xyxy(box[None], gt_xyxy[rows])[0]
            k = int(np.argmax(iou))
            if iou[k] >= min_iou:
                gid = int(gt.id[rows[k]])  # type: ignore[attr-defined]
                votes[gid] = votes.get(gid, 0) + 1
        if votes:
            out[t] = max(votes, key=votes.__getitem__)
    return out


def run_truth_ids(tracklets: Sequence[Tracklet], dataset: object) -> np.ndarray:
    """``(T,) int64``: :func:`truth_ids` for tracklets of any cameras of ``dataset``
    (:class:`mct.data.aicity.AicDataset`), in the order given.

    Raises:
        ValueError: a camera with tracklets has no ``gt/gt.txt`` (names the cameras).
    """
    out = np.full(len(tracklets), -1, np.int64)
    by_camera: dict[tuple[str, str], list[int]] = {}
    for i, t in enumerate(tracklets):
        by_camera.setdefault((t.scenario, t.camera_id), []).append(i)
    missing = []
    for cam in dataset.cameras:  # type: ignore[attr-defined]
        rows = by_camera.get(cam.key)
        if not rows:
            continue
        gt = dataset.read_gt(cam)  # type: ignore[attr-defined]
        if gt is None:
            missing.append("/".join(cam.key))
            continue
        out[rows] = truth_ids([tracklets[i] for i in rows], gt)
    if missing:
        raise ValueError(f"no gt/gt.txt for camera(s) {', '.join(missing)}")
    return out


def fit_term_weights(llr: np.ndarray, same: np.ndarray, shrink: float = SHRINK) -> tuple[np.ndarray, float]:
    """Weights of the terms from labelled pairs.

    Args:
        llr: ``(P, 4)`` each term's log-likelihood ratio per pair (0 where it says nothing);
            rows with a non-finite value (impossible pairs, no direct link) are left out.
        same: ``(P,) bool`` the pair is one vehicle.
        shrink: pull of each weight towards 1, as that many pairs' worth of evidence.

    Returns:
        ``((4,) weights >= 0, intercept)``: ``P(same) = sigmoid(intercept + llr @ weights)``;
        the intercept is the prior log-odds of the pairs given.

    Raises:
        ValueError: fewer than :data:`MIN_PAIRS` usable pairs of either kind.
    """
    llr = np.asarray(llr, np.float64)
    same = np.asarray(same, bool)
    ok = np.isfinite(llr).all(axis=1)
    x, y = llr[ok], same[ok].astype(np.float64)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos < MIN_PAIRS or n_neg < MIN_PAIRS:
        raise ValueError(f"term weights: need at least {MIN_PAIRS} labelled pairs of each kind, got {n_pos} same and {n_neg} different")
    sign = 2.0 * y - 1.0
    k = x.shape[1]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:k], theta[k]
        margin = sign * (x @ w + b)
        p_wrong = expit(-margin)  # d(-log sigmoid(m))/dm = -sigmoid(-m)
        g = -(sign * p_wrong)
        value = -float(log_expit(margin).sum()) + 0.5 * shrink * float(((w - 1.0) ** 2).sum())
        grad = np.concatenate([x.T @ g + shrink * (w - 1.0), [g.sum()]])
        return value, grad

    prior = np.log(n_pos / n_neg)
    res = minimize(loss, np.concatenate([np.ones(k), [prior]]), jac=True, method="L-BFGS-B",
                   bounds=[(0.0, None)] * k + [(None, None)])
    if not res.success:
        log.warning("term weights: the optimiser stopped early (%s)", res.message)
    return res.x[:k], float(res.x[k])


def fit_score(
    table: object, model: PairModel, a: np.ndarray, b: np.ndarray, labels: np.ndarray, fitted_on: str = "",
) -> ScoreFit:
    """The ``score`` section of a topology file from a labelled run.

    Args:
        table: the run's :class:`~mct.associate.table.TrackletTable`.
        model: its pair model (the last self-training round's term models and links).
        a, b: ``(P,)`` its candidate pairs (rows of ``table``).
        labels: ``(N,) int64`` each row's ground-truth id (-1: none; such a tracklet is one
            vehicle with no other).
        fitted_on: where (written into the file).

    Returns:
        The appearance calibration fitted on the labelled cross-camera pairs, and the term
        weights fitted on all labelled pairs with that calibration.
    """
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    same = (labels[a] == labels[b]) & (labels[a] >= 0)
    cross = table.camera[a] != table.camera[b]  # type: ignore[attr-defined]
    cos = pair_cosines(table.features, a, b)  # type: ignore[attr-defined]
    prior = float(same[cross].mean()) if cross.any() else 0.5
    appearance = AppearanceModel.fit_labelled(cos[cross & same], cos[cross & ~same], min(max(prior, 1e-4), 1 - 1e-4))
    labelled = PairModel(appearance, model.direction, model.colocation, model.links, np.ones(4), model.handover_s)
    terms = term_breakdown(table, labelled, a, b)
    llr = np.stack([terms[t] for t in TERMS], axis=1)  # NaN: no direct link; -inf: impossible (both left out)
    weights, intercept = fit_term_weights(llr, same)
    log.info("term weights from %d labelled pairs (%d same): %s; intercept %.2f", len(a), int(same.sum()),
             ", ".join(f"{t} {w:.2f}" for t, w in zip(TERMS, weights)), intercept)
    return ScoreFit(
        weights=TermWeights(**{t: round(float(w), 4) for t, w in zip(TERMS, weights)}),
        appearance=AppearanceCalibration(neg_mean=round(appearance.neg_mean, 5), neg_std=round(appearance.neg_std, 5),
                                         pos_mean=round(appearance.pos_mean, 5), pos_std=round(appearance.pos_std, 5),
                                         prior=round(appearance.prior, 5)),
        fitted_on=fitted_on,
    )
