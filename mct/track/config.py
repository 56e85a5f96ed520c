"""Tracker configuration (owned by ``mct.track``); defaults are the Deep SORT reference values.

Every constant of the reference implementation (Wojke et al. 2017, nwojke/deep_sort) is a
field here with the reference value as its default; the options beyond the reference are
off by default and documented in ``docs/tracking.md``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mct.schema import StrictModel

__all__ = ["TrackerConfig", "TrackletConfig", "CHI2_95_4DOF", "TRACKER_PRESETS"]

#: 95% quantile of the chi-square distribution with 4 degrees of freedom (the measurement
#: ``x, y, a, h`` has 4 dimensions); the reference's ``chi2inv95[4]``.
CHI2_95_4DOF = 9.4877

#: named trackers beyond the reference: ``mode: <name>`` sets these options (any option
#: given explicitly beside it wins). Chosen on the MOT15 development sequences
#: (``benchmarks/bench_mot15.py``) and checked on the synthetic world (docs/tracking.md).
#: the options of ``mode: mct`` (measured on MOT15, 8 sequences, SORT's detections, no
#: appearance; docs/tracking.md): the BYTE split and the new-track threshold cut false
#: tracks, OCR re-finds stopped objects, a 2 s buffer (in seconds: the sequences run at
#: 7-30 fps), OC-SORT's direction term at OC-SORT's weight (0.2: IDF1 +0.1, HOTA +0.2 on
#: MOT15 against 0 and 0.4; no change on the tiny synthetic world); the reference
#: application's output (Kalman box, one coasted frame: MOT15 IDF1 50.5 / MOTA 40.0 / IDSW
#: 262 against 49.9 / 39.1 / 303 matched; mean per-camera IDF1 of the tiny synthetic world
#: 0.593 against 0.544, better on both looks).
_MCT_OPTIONS: dict[str, Any] = {
    "byte_min_high_score": 0.7,
    "min_new_track_score": 0.95,
    "oc_recovery": True,
    "max_age_s": 2.0,
    "oc_direction_weight": 0.2,
    "output": "filtered",
}

TRACKER_PRESETS: dict[str, dict[str, Any]] = {
    # appearance, when the detections carry embeddings, as the reference (gallery cascade)
    "mct": dict(_MCT_OPTIONS),
    # the same options with appearance off (never uses embeddings): ahead of SORT on MOT15
    # where the reference life cycle without appearance was behind it (docs/tracking.md)
    "motion_only": dict(_MCT_OPTIONS),
}


class TrackerConfig(StrictModel):
    """Deep SORT (Wojke et al. 2017), reference defaults."""

    #: appearance gate: a (track, detection) pair whose smallest cosine distance to the
    #: track's gallery exceeds this is impossible (0.2 in the paper's setting).
    max_cosine_distance: float = Field(default=0.2, ge=0.0, le=2.0)
    #: gallery size: each confirmed track keeps its last ``nn_budget`` features.
    nn_budget: int = Field(default=100, gt=0)
    #: IoU stage: pairs with ``1 - IoU`` above this are impossible.
    max_iou_distance: float = Field(default=0.7, ge=0.0, le=1.0)
    #: a confirmed track is deleted when frames since its last match exceed this; also the
    #: depth of the matching cascade.
    max_age: int = Field(default=30, gt=0)
    #: consecutive hits that confirm a tentative track.
    n_init: int = Field(default=3, gt=0)
    #: squared-Mahalanobis gate of the motion model (reference: 95% chi-square, 4 dof).
    gating_threshold: float = Field(default=CHI2_95_4DOF, gt=0.0)
    #: Kalman noise: position std = ``std_weight_position * h``, velocity std =
    #: ``std_weight_velocity * h`` (h = box height, pixels); reference 1/20 and 1/160.
    std_weight_position: float = Field(default=1.0 / 20.0, gt=0.0)
    std_weight_velocity: float = Field(default=1.0 / 160.0, gt=0.0)

    # ---- options beyond the reference (off by default) ----
    #: ``deep_sort``: the reference (appearance cascade, then IoU). ``motion_only``: no
    #: embeddings used: the cascade uses ``1 - IoU`` of the predicted box, gated by the
    #: Mahalanobis gate, instead of the appearance cost; a preset (``TRACKER_PRESETS``):
    #: ``mct``'s options, which it takes unless given explicitly. ``mct``: the preset's
    #: options, appearance when the detections carry embeddings.
    mode: Literal["deep_sort", "motion_only", "mct"] = "deep_sort"
    #: lambda of the paper's combined cost ``lambda * d_mahalanobis + (1 - lambda) * d_cosine``
    #: in the cascade (both gates still apply). 0 is the reference (the paper's setting).
    motion_weight: float = Field(default=0.0, ge=0.0, le=1.0)
    #: when set, ``max_age`` is derived per camera as ``max(1, round(max_age_s * fps))``
    #: (cameras differ in fps); ``None`` uses ``max_age`` frames.
    max_age_s: float | None = Field(default=None, gt=0.0)

    # ---- options from the trackers after Deep SORT (docs/tracking.md; all off by default) ----
    #: BYTE (ByteTrack): detections scoring below this only extend tracks matched in the
    #: previous frame, in a second IoU stage after the main association, and never start a
    #: track. ``None`` = off (every detection is a "high" one).
    byte_min_high_score: float | None = Field(default=None, ge=0.0, le=1.0)
    #: BYTE's second stage: pairs with ``1 - IoU`` above this are impossible (ByteTrack: 0.5).
    byte_max_iou_distance: float = Field(default=0.5, ge=0.0, le=1.0)
    #: detections scoring below this are dropped before tracking (BYTE's low threshold).
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    #: an unmatched detection starts a track only when it scores at least this (ByteTrack's
    #: ``new_track_thresh``); 0 = every unmatched (high) detection does, as the reference.
    min_new_track_score: float = Field(default=0.0, ge=0.0, le=1.0)
    #: OC-SORT's observation-centric re-update (ORU): a track re-found after coasting is
    #: rewound to its last observation and re-filtered along a straight virtual path of
    #: observations to the new one, so coasting does not leave it a drifted velocity.
    oc_reupdate: bool = False
    #: OC-SORT's observation-centric momentum (OCM): weight of the direction term in the
    #: motion cost (``cost = 1 - IoU - w * score * (pi/2 - angle) / pi``, angle between the
    #: track's observed direction and the direction to the candidate; OC-SORT: 0.2). 0 = off.
    oc_direction_weight: float = Field(default=0.0, ge=0.0)
    #: OCM: the track's direction is measured between its last observation and the one this
    #: many observations before it (OC-SORT's ``delta_t``: 3).
    oc_direction_span: int = Field(default=3, ge=1)
    #: OC-SORT's observation-centric recovery (OCR): after the main association, the still
    #: unmatched confirmed tracks' *last observed* boxes against the unmatched detections
    #: by IoU (gate ``max_iou_distance``).
    oc_recovery: bool = False
    #: EMA track features (StrongSORT): one feature per track, ``e = a e + (1 - a) f``; the
    #: appearance cost is the cosine distance to it instead of the gallery's nearest. ``None`` = off.
    ema_alpha: float | None = Field(default=None, ge=0.0, lt=1.0)
    #: NSA Kalman (StrongSORT): measurement noise std scaled by ``1 - score``.
    nsa: bool = False
    #: ``True`` (reference): the matching cascade by age. ``False``: confirmed tracks of all
    #: ages in one assignment on the same cost (StrongSORT's "no cascade").
    matching_cascade: bool = True
    #: ``fused`` (with ``matching_cascade: false`` or ``mode: mct``): the main cost is
    #: ``appearance_weight * cosine + (1 - appearance_weight) * (1 - IoU)`` where detections
    #: carry embeddings (gated by the motion gate and ``max_cosine_distance``), ``1 - IoU``
    #: without; ``reference``: the mode's own cost (appearance, or IoU in motion_only).
    cost: Literal["reference", "fused"] = "reference"
    #: weight of the appearance distance in the fused cost.
    appearance_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    #: the Kalman state: ``xyah`` (reference: centre, aspect, height) or ``xywh`` (BoT-SORT:
    #: centre, width, height, each noise scaled by its own size).
    filter_state: Literal["xyah", "xywh"] = "xyah"
    #: what each frame writes (``mct.track.output.TrackerOutput``): ``matched`` (ours): the
    #: confirmed tracks matched in the frame, with the matched detection's box. ``filtered``
    #: (the reference ``deep_sort_app``'s convention): every confirmed track with
    #: ``time_since_update <= 1`` (matched, or its first coasted frame after a miss), with
    #: its Kalman state box.
    output: Literal["matched", "filtered"] = "matched"

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """``mode: <preset>`` fills the preset's options (``TRACKER_PRESETS``); keys given explicitly win."""
        if isinstance(data, dict) and data.get("mode") in TRACKER_PRESETS:
            return {**TRACKER_PRESETS[data["mode"]], **data}
        return data

    @property
    def uses_options(self) -> bool:
        """True when any association option beyond the reference is on."""
        return (
            self.byte_min_high_score is not None or self.min_score > 0 or self.min_new_track_score > 0
            or self.oc_direction_weight > 0
            or self.oc_recovery or not self.matching_cascade or self.cost != "reference"
        )

    def max_age_frames(self, fps: float) -> int:
        """The effective ``max_age`` in frames for a camera running at ``fps``."""
        if self.max_age_s is None:
            return self.max_age
        if not fps > 0:
            raise ValueError(f"tracker.max_age_s: camera fps must be > 0, got {fps}")
        return max(1, int(round(self.max_age_s * fps)))


class TrackletConfig(StrictModel):
    """How tracks become tracklets (see ``mct.track.tracklets``)."""

    #: tracklets with fewer detected (not interpolated) frames are dropped.
    min_length: int = Field(default=1, ge=1)
    #: gaps of at most this many missing frames inside a track are filled by linear
    #: interpolation of the boxes (score 0, det index -1); 0 = off.
    max_interpolation_gap: int = Field(default=0, ge=0)
    #: a confirmed track's tentative frames (its first ``n_init - 1`` hits, which the
    #: reference Deep SORT never reports) become part of its tracklet once it is confirmed;
    #: tracks that die tentative still give nothing. Beyond the reference; off = as the
    #: reference reports.
    include_tentative: bool = False
    #: output box expansion about the box centre, per side length s:
    #: ``s' = min(expand_scale * s, s + expand_max_px)``; ``expand_scale = 1`` is off
    #: (one AI City winner used 1.2 and 40 px). Applied after the feature is computed.
    expand_scale: float = Field(default=1.0, ge=1.0)
    expand_max_px: float = Field(default=40.0, ge=0.0)
    #: clip output boxes to the frame when the frame size is known.
    clip_to_frame: bool = True
    #: feature rule: observations with box area >= this (square pixels) ...
    min_feature_area_px: float = Field(default=750.0, ge=0.0)
    #: ... and at most this fraction of their area covered by another detection of the
    #: same frame ("unoccluded") ...
    max_feature_occlusion: float = Field(default=0.3, ge=0.0, le=1.0)
    #: ... are averaged, weighted by ``score`` (detection confidence), ``score_sqrt_area``
    #: (score times the square root of the box area: a crop twice as wide, with twice the
    #: detail, counts twice) or ``uniform``; when no observation qualifies, all
    #: observations of the track are used.
    feature_weight: Literal["score", "score_sqrt_area", "uniform"] = "score"
    #: keep every per-frame feature in ``Tracklet.features`` (memory: T x D floats).
    keep_frame_features: bool = False


