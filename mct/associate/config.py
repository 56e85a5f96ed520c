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


class AssociationConfig(StrictModel):
    """FAISS kNN candidates + space-time constraints + constrained agglomerative clustering."""

    #: neighbours retrieved per tracklet; candidate pairs come only from these lists.
    k: int = Field(default=10, gt=0)
    #: cosine-similarity threshold for merging two tracklets (or two clusters) into one global id.
    min_similarity: float = Field(default=0.5, ge=-1.0, le=1.0)

    # ---- index
    #: "auto": exact inner product while a searched set has at most ``max_exact_size`` vectors,
    #: "ivf" above it; or force one of "flat", "ivf", "ivfpq", "hnsw".
    index: Literal["auto", "flat", "ivf", "ivfpq", "hnsw"] = "auto"
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
    #: only against tracklets within reach (the topology's largest travel time); 0 = one index
    #: per scenario. Only used when a reach is known (topology or ``max_time_gap_s``).
    time_slice_s: float = Field(default=60.0, ge=0.0)
    #: queries per search call (memory bound for the (batch, k) result arrays).
    batch_size: int = Field(default=16_384, gt=0)

    # ---- constraints
    #: topology file, or a folder of ``*.yaml`` topology files (see docs/association.md); "" = none.
    topology: str = ""
    #: False: appearance only (ablation): no travel-time windows, transition graph or zones.
    #: Two time-overlapping tracklets of one camera are never merged in either case.
    use_constraints: bool = True
    #: scenarios without a topology: largest gap (s) between two tracklets that may be one
    #: vehicle; 0 = unlimited.
    max_time_gap_s: float = Field(default=0.0, ge=0.0)

    # ---- direction of travel (beyond the reference; needs the cameras' homographies)
    #: a link must be consistent with the way the vehicle drives on the ground plane: the
    #: step from the earlier tracklet's exit point to the later one's entry point (when
    #: longer than ``min_direction_distance_m``) must not point against the heading of either;
    #: two tracklets seen at the same time (overlapping views) must not head more than
    #: ``max_overlap_heading_change_deg`` apart. Unknown headings (no homography, a
    #: stationary vehicle) never block a link. See mct/associate/motion.py.
    use_direction: bool = False
    min_direction_distance_m: float = Field(default=10.0, ge=0.0)
    max_overlap_heading_change_deg: float = Field(default=110.0, ge=0.0, le=180.0)
    #: time over which a tracklet's heading at its entry and exit is measured (s).
    heading_window_s: float = Field(default=1.0, gt=0.0)
    #: slower than this (m/s) over the heading window: no heading (waiting at a light).
    min_moving_speed_mps: float = Field(default=1.5, ge=0.0)
    #: ground units of the homographies: "auto" (GPS degrees when they look like it, as in
    #: CityFlowV2, else metres), "metres" or "degrees".
    world_units: Literal["auto", "metres", "degrees"] = "auto"
    #: overlapping views (beyond the reference; needs homographies): a camera pair whose
    #: topology admits a negative gap sees one place at once, and a vehicle standing there
    #: (parked, queued, gridlocked) stays in both views for as long as it stands, while a
    #: fitted window's lower bound only measures how long moving traffic did. With this on,
    #: two tracklets of such a pair that overlap in time and both stand still (average
    #: ground speed from first to last box below ``min_moving_speed_mps``, over at least
    #: ``heading_window_s``) pass the window's lower bound; its upper bound, zones and the
    #: direction rule still apply. Off: the fitted window as is.
    stationary_overlap: bool = False
    #: co-location in overlapping views (beyond the reference; needs homographies; 0 = off):
    #: two tracklets of different cameras seen at the same time for at least
    #: ``colocation_min_overlap_s`` whose ground tracks (box bottom centres through the
    #: homographies) stay within this median distance, metres, stand at one place at once.
    #: Such candidate pairs are visited first and merged at ``colocation_min_similarity``
    #: instead of ``min_similarity``; every other rule still applies.
    colocation_max_m: float = Field(default=0.0, ge=0.0)
    #: shortest time two tracklets must be seen together for the co-location cue, seconds.
    colocation_min_overlap_s: float = Field(default=2.0, gt=0.0)
    #: the appearance threshold of co-located pairs and of the centroid linkage of their
    #: merges (cosine, or the re-ranked similarity when ``rerank`` is on).
    colocation_min_similarity: float = Field(default=0.3, ge=-1.0, le=1.0)

    #: handover between two tracks of one camera (beyond the reference; 0 = off): two
    #: tracklets of one camera that share at most this much time (seconds) at their ends,
    #: one starting and ending after the other, are taken as consecutive fragments of one
    #: vehicle (a tracker that starts a new track on it while the old one still holds it
    #: for a frame or two: the new track's first, tentative boxes overlap the old track's
    #: last) rather than two vehicles: no conflict, and their gap counts as 0. Off: any
    #: time overlap of two tracklets of one camera is a conflict.
    same_camera_max_overlap_s: float = Field(default=0.0, ge=0.0)

    # ---- re-ranking
    #: k-reciprocal re-ranking (Zhong et al. 2017) over the candidate lists.
    rerank: bool = False
    #: weight of the original similarity in the re-ranked one (lambda of the paper: 0.3).
    rerank_lambda: float = Field(default=0.3, ge=0.0, le=1.0)
    #: with re-ranking on, candidate pairs need this re-ranked similarity (its scale differs
    #: from cosine); the cluster centroids still need ``min_similarity``.
    rerank_min_similarity: float = Field(default=0.3, ge=-1.0, le=1.0)

    # ---- clustering
    #: mutual-best pairs first (beyond the reference; off = null): a candidate pair that is
    #: the most similar of each tracklet's pairs into the other's camera is merged first, at
    #: this lower threshold (cosine, or the re-ranked similarity when ``rerank`` is on; the
    #: centroid linkage of those merges uses it too); the other pairs follow at
    #: ``min_similarity``.
    mutual_min_similarity: float | None = Field(default=None, ge=-1.0, le=1.0)
    #: largest number of tracklets in one global id (bounds the cost of constraint checks).
    max_cluster_size: int = Field(default=200, gt=1)
    #: a merge needs every pair of tracklets across the two clusters to be LINK under the
    #: pair rules (complete linkage on space-time), not only free of CONFLICT. Needs a
    #: topology with windows for every camera pair one vehicle can visit (``mct
    #: fit-topology`` with its default ``--pairs all``); with an adjacent-cameras-only graph
    #: it would keep a vehicle out of two non-adjacent cameras.
    all_pairs_link: bool = False

    # ---- which tracklets take part
    #: shorter tracklets (frames) get no global id.
    min_tracklet_frames: int = Field(default=1, ge=1)
    #: tracklets whose mean detection score is lower get no global id.
    min_tracklet_mean_score: float = Field(default=0.0, ge=0.0, le=1.0)


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


class TopologyFile(StrictModel):
    """A topology file: ``scenarios: {S02: ScenarioTopology, ...}``; the key ``"*"`` applies to
    every scenario that has no entry of its own (e.g. a topology fitted on camera ids only)."""

    scenarios: dict[str, ScenarioTopology] = Field(default_factory=dict)
