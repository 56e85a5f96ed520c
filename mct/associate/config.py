"""Cross-camera association configuration and the topology file schema (owned by ``mct.associate``).

Two models live here:

* :class:`AssociationConfig` — the ``association:`` section of a run config.
* :class:`TopologyFile` — the schema of a topology file (camera-pair travel-time windows,
  the allowed-transition graph, entry/exit zones), read with :func:`mct.config.load_config`
  so that a mistyped key names the file and the dotted key. The format is documented in
  ``docs/association.md``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mct.schema import StrictModel


class IndexConfig(StrictModel):
    """How the kNN candidates are searched (``association.index``; see mct/associate/index.py)."""

    #: "auto": exact inner product while a searched set has at most ``max_exact_size`` vectors,
    #: "ivf" above it; or force one of "flat", "ivf", "ivfpq", "hnsw".
    kind: Literal["auto", "flat", "ivf", "ivfpq", "hnsw"] = "auto"
    #: largest searched set (vectors) for which "auto" uses exact search.
    max_exact_size: int = Field(default=50_000, gt=0)
    #: IVF lists; 0 = about 4 * sqrt(n) of the indexed set.
    ivf_nlist: int = Field(default=0, ge=0)
    ivf_nprobe: int = Field(default=32, gt=0)
    #: PQ sub-quantisers for "ivfpq" (must divide the feature dim), 8 bits each.
    pq_m: int = Field(default=16, gt=0)
    hnsw_m: int = Field(default=32, gt=0)
    hnsw_ef_search: int = Field(default=64, gt=0)
    hnsw_ef_construction: int = Field(default=40, gt=0)
    #: project features to this many dims with PCA (fitted on a sample) before indexing; 0 = off.
    pca_dim: int = Field(default=0, ge=0)
    #: vectors used to fit the PCA.
    pca_sample: int = Field(default=50_000, gt=0)
    #: split each scenario's timeline into slices of this many seconds and search each slice
    #: only against tracklets within reach (the links' longest plausible gap); 0 = one
    #: index per scenario.
    time_slice_s: float = Field(default=60.0, ge=0.0)
    #: queries per search call (memory bound for the (batch, k) result arrays).
    batch_size: int = Field(default=16_384, gt=0)


#: keys of the association section before issue 19, and what replaced each (docs/association.md).
REMOVED_KEYS: dict[str, str] = {
    "min_similarity": "min_log_lr (one threshold on the pair model's log-odds; appearance is a calibrated term)",
    "use_constraints": "terms (e.g. terms: [appearance] for appearance only); the hard rules always apply",
    "max_time_gap_s": "the camera links (prior from calibration, learned, or association.topology)",
    "use_direction": "terms: the direction term (a fitted von Mises log-likelihood ratio)",
    "min_direction_distance_m": "a constant of the direction term (steps under 10 m give no direction)",
    "max_overlap_heading_change_deg": "the direction term's fitted concentration",
    "heading_window_s": "a constant of the ground tracks (1 s)",
    "min_moving_speed_mps": "a constant of the ground tracks (1.5 m/s)",
    "stationary_overlap": "the travel-time and co-location terms (a vehicle standing in two views is co-located)",
    "colocation_max_m": "terms: the co-location term (distance model fitted on the run)",
    "colocation_min_overlap_s": "a constant of the co-location term (2 s seen together)",
    "colocation_min_similarity": "min_log_lr (co-location adds to the one score)",
    "rerank": "nothing (k-reciprocal re-ranking removed; the calibrated pair score replaces it)",
    "rerank_lambda": "nothing (k-reciprocal re-ranking removed)",
    "rerank_min_similarity": "nothing (k-reciprocal re-ranking removed)",
    "mutual_min_similarity": "min_log_lr (mutual-best pairs are now the self-training's confident matches)",
    "all_pairs_link": "average linkage of the pair scores: every pair of two clusters is scored, an impossible one refuses the merge",
    "max_exact_size": "index.max_exact_size",
    "ivf_nlist": "index.ivf_nlist",
    "ivf_nprobe": "index.ivf_nprobe",
    "pq_m": "index.pq_m",
    "hnsw_m": "index.hnsw_m",
    "hnsw_ef_search": "index.hnsw_ef_search",
    "hnsw_ef_construction": "index.hnsw_ef_construction",
    "pca_dim": "index.pca_dim",
    "pca_sample": "index.pca_sample",
    "time_slice_s": "index.time_slice_s",
    "batch_size": "index.batch_size",
}


class AssociationConfig(StrictModel):
    """The pair model (evidence summed as log-likelihood ratios), camera links, and
    constrained clustering; see docs/association.md."""

    #: neighbours retrieved per tracklet; candidate pairs come only from these lists.
    k: int = Field(default=10, gt=0)
    #: merge two clusters while the log-likelihood ratio of the merge (appearance of the mean
    #: features + average space-time evidence of their pairs) is at least this: 0 = the
    #: evidence favours one vehicle. No prior is added: the candidates' share of true pairs
    #: falls as ``k`` rises, and a search setting must not decide merges.
    min_log_lr: float = 0.0
    #: evidence terms of the pair score (ablation: leave some out).
    terms: tuple[Literal["appearance", "travel_time", "direction", "colocation"], ...] = (
        "appearance", "travel_time", "direction", "colocation",
    )
    #: labelled camera links: a topology file or a folder of them (``mct fit-topology``, or
    #: written by hand); per camera pair they take precedence over links from calibration
    #: and links learned from the run. "" = none (links from calibration and the run).
    topology: str = ""
    #: self-training rounds: associate, refit the links and term models from the confident
    #: matches, associate again; stops early when the assignment no longer changes.
    #: 0 = the prior links only.
    self_training_rounds: int = Field(default=3, ge=0)
    #: two tracklets of one camera that share at most this long (seconds) at their ends are
    #: consecutive fragments (a tracker handover), not two vehicles seen at once.
    same_camera_max_overlap_s: float = Field(default=1.0, ge=0.0)
    #: ground units of the homographies: "auto" (GPS degrees when they look like it, as in
    #: CityFlowV2, else metres), "metres" or "degrees".
    world_units: Literal["auto", "metres", "degrees"] = "auto"
    #: largest number of tracklets in one global id (bounds the cost of a merge).
    max_cluster_size: int = Field(default=200, gt=1)
    #: shorter tracklets (frames) get no global id.
    min_tracklet_frames: int = Field(default=1, ge=1)
    #: tracklets whose mean detection score is lower get no global id.
    min_tracklet_mean_score: float = Field(default=0.0, ge=0.0, le=1.0)
    #: physical bounds of the camera links from calibration (speed range, standing time).
    links: "LinksConfig" = Field(default_factory=lambda: LinksConfig())
    #: the kNN search (not a model setting).
    index: IndexConfig = Field(default_factory=IndexConfig)

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: object) -> object:
        if isinstance(data, dict):
            if isinstance(data.get("index"), str):
                raise ValueError(f"association.index is a section now: write index: {{kind: {data['index']}}}")
            for key in data:
                if key in REMOVED_KEYS:
                    raise ValueError(f"association.{key} was removed (issue 19); replaced by: {REMOVED_KEYS[key]}")
        return data


# ---------------------------------------------------------------------------- camera links
class LinksConfig(StrictModel):
    """Physical bounds behind the camera links built from geometry (``association.links``;
    see :mod:`mct.associate.links`, which re-exports this class).

    A prior travel-time window from camera A to camera B is
    ``[d_near / max_speed_mps, d_far / min_speed_mps + stop_time_s]`` where ``d_near`` and
    ``d_far`` are ground distances (metres) from A's exit region to B's entry region.
    """

    #: slowest moving traffic, m/s (urban crawl; ~7 km/h).
    min_speed_mps: float = Field(default=2.0, gt=0.0)
    #: fastest plausible traffic, m/s (90 km/h). 1.5 times this is the hard bound: a gap
    #: shorter than the nearest distance at that speed is impossible.
    max_speed_mps: float = Field(default=25.0, gt=0.0)
    #: time a vehicle may stand at signals between two cameras, s (about one signal cycle).
    stop_time_s: float = Field(default=60.0, ge=0.0)
    #: when a link is learned from the run's confident matches, n of them count as
    #: n^2 / (n + prior_count): few matches leave a wide, soft window within the prior's.
    prior_count: float = Field(default=10.0, ge=0.0)
    #: gap window of two fragments of one visit to one camera (src == dst), s.
    fragment_gap_s: float = Field(default=10.0, ge=0.0)

    @model_validator(mode="after")
    def _speeds_ordered(self) -> "LinksConfig":
        if self.max_speed_mps < self.min_speed_mps:
            raise ValueError(f"max_speed_mps {self.max_speed_mps} < min_speed_mps {self.min_speed_mps}")
        return self


# ---------------------------------------------------------------------------- topology file
class Transition(StrictModel):
    """A vehicle may go from camera ``src`` to camera ``dst``.

    The gap is ``start of the tracklet in dst - end of the tracklet in src`` on the scenario
    clock, seconds; negative when the two views overlap.
    """

    src: str
    dst: str
    min_gap_s: float
    max_gap_s: float
    #: zone of ``src`` where the vehicle leaves (bottom centre of its last box); "" = anywhere.
    exit_zone: str = ""
    #: zone of ``dst`` where the vehicle enters (bottom centre of its first box); "" = anywhere.
    entry_zone: str = ""
    #: how many transitions (ground truth, or confident matches of a run) the window was
    #: fitted on (informational).
    count: int = Field(default=0, ge=0)
    #: softness of the window's edges, seconds (Gaussian); ``None``: 1 s or 10% of the width.
    spread_s: float | None = Field(default=None, gt=0.0)
    #: hard bound: a gap below this is impossible (faster than any vehicle); ``None``: none.
    hard_min_gap_s: float | None = None
    #: the two views overlap on the ground; ``None``: when ``min_gap_s < 0``.
    overlap: bool | None = None
    #: where the window came from: ``file`` (written by hand), ``labelled`` (``mct
    #: fit-topology`` on ground truth), ``learned`` (a run's confident matches), ``prior``
    #: (geometry). Informational: a topology file given to a run wins over its own links.
    source: Literal["file", "labelled", "learned", "prior"] = "file"

    @model_validator(mode="after")
    def _window_ordered(self) -> "Transition":
        if self.max_gap_s < self.min_gap_s:
            raise ValueError(f"{self.src}->{self.dst}: max_gap_s {self.max_gap_s} < min_gap_s {self.min_gap_s}")
        if self.hard_min_gap_s is not None and self.hard_min_gap_s > self.max_gap_s:
            raise ValueError(f"{self.src}->{self.dst}: hard_min_gap_s {self.hard_min_gap_s} > max_gap_s {self.max_gap_s}")
        return self


class CameraZones(StrictModel):
    """Named polygons in pixels of one camera: ``name: [[x, y], [x, y], [x, y], ...]``."""

    zones: dict[str, list[tuple[float, float]]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _polygons(self) -> "CameraZones":
        for name, poly in self.zones.items():
            if len(poly) < 3:
                raise ValueError(f"zone {name!r}: a polygon needs at least 3 points, got {len(poly)}")
        return self


class ScenarioTopology(StrictModel):
    """The allowed-transition graph of one scenario."""

    transitions: list[Transition] = Field(default_factory=list)
    cameras: dict[str, CameraZones] = Field(default_factory=dict)
    #: camera pairs not listed in ``transitions``: "forbid" (no direct link) or "allow"
    #: (a direct link at any gap within ``max_unlisted_gap_s``).
    unlisted: Literal["forbid", "allow"] = "forbid"
    max_unlisted_gap_s: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _zones_exist(self) -> "ScenarioTopology":
        for i, t in enumerate(self.transitions):
            for cam, zone, key in ((t.src, t.exit_zone, "exit_zone"), (t.dst, t.entry_zone, "entry_zone")):
                if zone and zone not in self.cameras.get(cam, CameraZones()).zones:
                    raise ValueError(f"transitions[{i}].{key}: camera {cam} has no zone {zone!r}")
        return self


class TermWeights(StrictModel):
    """How much each evidence term counts in the pair score (a term's log-likelihood ratio
    times its weight). 1 each: the terms' own ratios added, as fitted per run."""

    appearance: float = Field(default=1.0, ge=0.0)
    travel_time: float = Field(default=1.0, ge=0.0)
    direction: float = Field(default=1.0, ge=0.0)
    colocation: float = Field(default=1.0, ge=0.0)


class AppearanceCalibration(StrictModel):
    """A fixed appearance calibration (two normals on ``atanh(cosine)``), fitted on labelled
    pairs; a run given one uses it instead of fitting its own."""

    neg_mean: float
    neg_std: float = Field(gt=0.0)
    pos_mean: float
    pos_std: float = Field(gt=0.0)
    prior: float = Field(default=0.5, gt=0.0, lt=1.0)


class ScoreFit(StrictModel):
    """The ``score`` section of a topology file: what labelled tracks taught the pair score
    (``mct fit-topology --from-run RUN --labels``). Both parts are optional."""

    #: the terms' weights (logistic regression of the labels on the terms' log-likelihood ratios).
    weights: TermWeights | None = None
    #: the appearance calibration from labelled pairs (leave it out on a scene of another
    #: look: the run then fits its own).
    appearance: AppearanceCalibration | None = None
    #: where it was fitted (informational).
    fitted_on: str = ""


class TopologyFile(StrictModel):
    """A topology file: ``scenarios: {S02: ScenarioTopology, ...}``; the key ``"*"`` applies to
    every scenario that has no entry of its own (e.g. a topology fitted on camera ids only).
    An optional ``score`` section carries term weights and an appearance calibration fitted
    on labelled tracks (:class:`ScoreFit`)."""

    scenarios: dict[str, ScenarioTopology] = Field(default_factory=dict)
    score: ScoreFit | None = None
