"""Space-time constraints between tracklets, from a topology file (never hard-coded).

* One clock: every tracklet's start and end are seconds on its scenario's clock (camera time
  offset + (frame - 1) / fps, see :class:`mct.associate.table.TrackletTable`).
* Camera-pair travel-time windows and the allowed-transition graph: a pair of tracklets
  ``a`` (camera A) then ``b`` (camera B) may be linked directly when the topology lists a
  transition ``A -> B`` whose window holds the gap ``start_b - end_a`` (negative when the
  views overlap) and whose optional exit zone of A holds the bottom centre of ``a``'s last
  box and entry zone of B the bottom centre of ``b``'s first box.
* A global id never holds two tracklets of one camera that overlap in time, nor tracklets
  of two scenarios: those pairs are conflicts, which also forbid merging the clusters that
  hold them. With ``association.same_camera_max_overlap_s``, two tracklets of one camera
  that share at most that much time at their ends (a handover between two tracks) are
  consecutive fragments instead, with gap 0.

:meth:`Constraints.status` classifies pairs as :data:`LINK` (may be merged directly),
:data:`NO_LINK` (may not be the link that merges two clusters, but may end up in one global
id through other tracklets, e.g. two cameras that are not adjacent) or :data:`CONFLICT`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mct.associate.config import AssociationConfig, ScenarioTopology, TopologyFile
from mct.associate.table import TrackletTable

__all__ = ["LINK", "NO_LINK", "CONFLICT", "Constraints", "load_topology", "points_in_polygon", "search_blocks", "standing_still"]

log = logging.getLogger(__name__)

LINK, NO_LINK, CONFLICT = 1, 0, -1


def load_topology(path: str | Path) -> TopologyFile:
    """Read a topology file, or every ``*.yaml`` file of a folder (one per scenario, say).

    Raises :class:`mct.config.ConfigError` naming the file and key on a bad file, and
    ``ValueError`` when two files define the same scenario.
    """
    from mct.config import load_config

    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.yaml"))
        if not files:
            raise FileNotFoundError(f"{path}: topology folder holds no *.yaml file")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"{path}: topology file not found (association.topology)")
    merged: dict[str, ScenarioTopology] = {}
    origin: dict[str, Path] = {}
    for f in files:
        topo = load_config(f, model=TopologyFile)
        for name, scen in topo.scenarios.items():
            if name in merged:
                raise ValueError(f"{f}: scenarios.{name}: already defined in {origin[name]}")
            merged[name] = scen
            origin[name] = f
    return TopologyFile(scenarios=merged)


def points_in_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """``(N, 2)`` points, ``(P, 2)`` polygon vertices (pixels) -> ``(N,) bool`` inside (even-odd rule)."""
    xy = np.asarray(xy, np.float64)
    poly = np.asarray(polygon, np.float64)
    x, y = xy[:, 0:1], xy[:, 1:2]
    x1, y1 = poly[:, 0][None], poly[:, 1][None]
    x2, y2 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return np.logical_xor.reduce(crosses & (x < x_at), axis=1) if len(poly) else np.zeros(len(xy), bool)


@dataclass(frozen=True, eq=False)
class Constraints:
    """Pairwise rules for one :class:`TrackletTable`; see the module docstring.

    Attributes:
        reach_s: ``(S,) float64`` per scenario code, the largest gap (s) of any direct link
            (``inf`` = unlimited); the kNN search need not look further.
        n_cameras: number of camera codes ``C``.
        use_topology: False when ``use_constraints`` is off (appearance only).
        has_topology: ``(S,) bool``.
        unlisted_max_gap: ``(S,) float64`` gap up to which unlisted pairs link (-inf: never).
        free_max_gap: gap up to which pairs link in scenarios without a topology.
        rule_lo, rule_hi: ``(R, C * C) float64`` windows of up to R transitions per pair (NaN: none).
        rule_exit, rule_entry: ``(R, C * C) int32`` zone columns (-1: anywhere).
        listed: ``(C * C,) bool`` pair ``src * C + dst`` has a transition.
        exit_in_zone, entry_in_zone: ``(N, Z) bool`` last / first box in zone column z.
        adjacency: per camera code, the camera codes its tracklets may link with directly
            (the transition graph, both directions), or ``None`` where there is no graph
            (every camera of the scenario).
        camera_reach: ``(C,) float64`` largest gap (s) of a direct link of each camera.
        use_direction: apply the direction-of-travel rule (``association.use_direction``).
        min_direction_distance_m, min_overlap_heading_cos: its parameters.
        stationary: ``(N,) bool`` rows that stand still (``association.stationary_overlap``):
            when both tracklets of a time-overlapping pair do, a window with a negative
            lower bound (overlapping views) admits any overlap; ``None``: off.
        handover_s: ``association.same_camera_max_overlap_s`` (0: any overlap of two
            tracklets of one camera is a conflict).
    """

    reach_s: np.ndarray
    n_cameras: int
    use_topology: bool
    has_topology: np.ndarray
    unlisted_max_gap: np.ndarray
    free_max_gap: float
    rule_lo: np.ndarray
    rule_hi: np.ndarray
    rule_exit: np.ndarray
    rule_entry: np.ndarray
    listed: np.ndarray
    exit_in_zone: np.ndarray
    entry_in_zone: np.ndarray
    adjacency: tuple[np.ndarray | None, ...]
    camera_reach: np.ndarray
    use_direction: bool = False
    min_direction_distance_m: float = 10.0
    min_overlap_heading_cos: float = -1.0
    stationary: np.ndarray | None = None
    handover_s: float = 0.0

    @classmethod
    def build(cls, table: TrackletTable, topology: TopologyFile | None, cfg: AssociationConfig) -> "Constraints":
        """Rules for ``table`` from ``topology`` (``None``: no topology file)."""
        n_s, n_c, n = len(table.scenarios), len(table.camera_keys), len(table)
        free_max_gap = cfg.max_time_gap_s if cfg.max_time_gap_s > 0 else math.inf
        use_topology = cfg.use_constraints and topology is not None
        has_topology = np.zeros(n_s, bool)
        graph = np.zeros(n_s, bool)  # scenario links only along listed transitions
        unlisted_max_gap = np.full(n_s, -math.inf)
        reach = np.full(n_s, free_max_gap if cfg.use_constraints else math.inf)
        code = {key: i for i, key in enumerate(table.camera_keys)}
        rules: dict[int, list[tuple[float, float, int, int]]] = {}
        zone_cols: dict[tuple[int, str], int] = {}
        zone_polys: list[tuple[int, np.ndarray]] = []

        def zone_col(cam: int, name: str, scen: ScenarioTopology, cam_id: str) -> int:
            if not name:
                return -1
            if (cam, name) not in zone_cols:
                zone_cols[(cam, name)] = len(zone_polys)
                zone_polys.append((cam, np.asarray(scen.cameras[cam_id].zones[name], np.float64)))
            return zone_cols[(cam, name)]

        if use_topology:
            for s_code, s_name in enumerate(table.scenarios):
                scen = topology.scenarios.get(s_name, topology.scenarios.get("*"))
                if scen is None:
                    log.warning("topology has no scenario %s (nor '*'): only appearance and same-camera rules apply there", s_name)
                    continue
                has_topology[s_code] = True
                max_hi = 0.0
                for t in scen.transitions:
                    a, b = code.get((s_name, t.src)), code.get((s_name, t.dst))
                    max_hi = max(max_hi, t.max_gap_s)
                    if a is None or b is None:
                        continue
                    rules.setdefault(a * n_c + b, []).append(
                        (t.min_gap_s, t.max_gap_s, zone_col(a, t.exit_zone, scen, t.src), zone_col(b, t.entry_zone, scen, t.dst))
                    )
                if scen.unlisted == "allow":
                    unlisted_max_gap[s_code] = scen.max_unlisted_gap_s if scen.max_unlisted_gap_s > 0 else math.inf
                    max_hi = max(max_hi, unlisted_max_gap[s_code])
                else:
                    graph[s_code] = True
                reach[s_code] = max_hi
        n_rules = max((len(v) for v in rules.values()), default=0)
        rule_lo = np.full((n_rules, n_c * n_c), np.nan)
        rule_hi = np.full((n_rules, n_c * n_c), np.nan)
        rule_exit = np.full((n_rules, n_c * n_c), -1, np.int32)
        rule_entry = np.full((n_rules, n_c * n_c), -1, np.int32)
        listed = np.zeros(n_c * n_c, bool)
        for pair, rs in rules.items():
            listed[pair] = True
            for r, (lo, hi, ex, en) in enumerate(rs):
                rule_lo[r, pair], rule_hi[r, pair], rule_exit[r, pair], rule_entry[r, pair] = lo, hi, ex, en
        z = max(len(zone_polys), 1)
        exit_in_zone = np.zeros((n, z), bool)
        entry_in_zone = np.zeros((n, z), bool)
        for col, (cam, poly) in enumerate(zone_polys):
            rows = np.flatnonzero(table.camera == cam)
            exit_in_zone[rows, col] = points_in_polygon(table.exit_xy[rows], poly)
            entry_in_zone[rows, col] = points_in_polygon(table.entry_xy[rows], poly)
        cam_scen = np.array([table.scenarios.index(s) for s, _ in table.camera_keys], np.int64)
        adjacency: list[np.ndarray | None] = []
        camera_reach = reach[cam_scen].astype(np.float64) if n_c else np.zeros(0)
        for c in range(n_c):
            if not graph[cam_scen[c]]:
                adjacency.append(None)
                continue
            out_pairs = listed[c * n_c : (c + 1) * n_c]
            in_pairs = listed[c::n_c]
            adjacency.append(np.flatnonzero(out_pairs | in_pairs))
            if len(adjacency[-1]) == 0:
                log.warning(
                    "topology of %s lists no transition of camera %s: its tracklets cannot be linked to any other",
                    *table.camera_keys[c],
                )
            his = np.concatenate([rule_hi[:, c * n_c : (c + 1) * n_c].ravel(), rule_hi[:, c::n_c].ravel()])
            his = his[np.isfinite(his)]
            camera_reach[c] = max(0.0, float(his.max())) if len(his) else 0.0
        return cls(
            reach_s=reach,
            n_cameras=n_c,
            use_topology=use_topology,
            has_topology=has_topology,
            unlisted_max_gap=unlisted_max_gap,
            free_max_gap=free_max_gap if cfg.use_constraints else math.inf,
            rule_lo=rule_lo,
            rule_hi=rule_hi,
            rule_exit=rule_exit,
            rule_entry=rule_entry,
            listed=listed,
            exit_in_zone=exit_in_zone,
            entry_in_zone=entry_in_zone,
            adjacency=tuple(adjacency),
            camera_reach=camera_reach,
            use_direction=cfg.use_constraints and cfg.use_direction,
            min_direction_distance_m=cfg.min_direction_distance_m,
            min_overlap_heading_cos=math.cos(math.radians(cfg.max_overlap_heading_change_deg)),
            stationary=standing_still(table, cfg.min_moving_speed_mps, cfg.heading_window_s) if cfg.stationary_overlap else None,
            handover_s=cfg.same_camera_max_overlap_s,
        )

    def within_reach(self, table: TrackletTable, q: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``bool`` (broadcast of ``q``, ``j``): row ``j`` lies within the reach of row ``q``'s camera in time."""
        r = self.camera_reach[table.camera[q]]
        return (table.start_s[j] <= table.end_s[q] + r) & (table.end_s[j] >= table.start_s[q] - r)

    def _directed_ok(
        self, table: TrackletTable, a: np.ndarray, b: np.ndarray, still: np.ndarray, handover: np.ndarray | None = None
    ) -> np.ndarray:
        """``(E,) bool``: some transition camera(a) -> camera(b) admits a then b; ``still``
        ``(E,) bool`` marks pairs that stand still while seen at once (no lower bound in
        overlapping views); ``handover`` ``(E,) bool`` pairs whose gap counts as 0 (see
        ``handover_s``)."""
        pair = table.camera[a].astype(np.int64) * self.n_cameras + table.camera[b]
        gap = table.start_s[b] - table.end_s[a]
        if handover is not None:
            gap = np.where(handover, 0.0, gap)
        ok = np.zeros(len(a), bool)
        for r in range(len(self.rule_lo)):
            lo, hi = self.rule_lo[r, pair], self.rule_hi[r, pair]
            ex, en = self.rule_exit[r, pair], self.rule_entry[r, pair]
            hit = ((gap >= lo) | (still & (lo < 0))) & (gap <= hi)  # NaN (no rule) compares False
            hit &= (ex < 0) | self.exit_in_zone[a, np.maximum(ex, 0)]
            hit &= (en < 0) | self.entry_in_zone[b, np.maximum(en, 0)]
            ok |= hit
        return ok

    def direction_ok(self, table: TrackletTable, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``(E,) bool``: rows ``i[e], j[e]`` may be one vehicle by its direction of travel.

        The earlier tracklet (the one that ends first) is ``a``, the other ``b``. When their
        times overlap (two views of one place), their headings at entry or their headings
        at exit must agree within ``max_overlap_heading_change_deg``. Otherwise the step
        ``d`` from ``a``'s exit point to ``b``'s entry point, if longer than
        ``min_direction_distance_m``, must not point backwards from ``a``'s exit heading
        nor from ``b``'s entry heading (``heading . d >= 0``). Unknown positions or
        headings pass.
        """
        i = np.asarray(i, np.int64)
        j = np.asarray(j, np.int64)
        m = table.motion
        a = np.where(table.end_s[i] <= table.end_s[j], i, j)
        b = np.where(a == i, j, i)
        overlap = table.start_s[b] <= table.end_s[a]
        exit_a, head_in_a, head_out_a = m[a, 1], m[a, 2], m[a, 3]
        entry_b, head_in_b, head_out_b = m[b, 0], m[b, 2], m[b, 3]
        step = entry_b - exit_a
        with np.errstate(invalid="ignore"):
            far = np.hypot(step[:, 0], step[:, 1]) > self.min_direction_distance_m  # NaN -> False
            forward = (np.einsum("ij,ij->i", head_out_a, step) >= 0) & (np.einsum("ij,ij->i", head_in_b, step) >= 0)
        # overlapping views: agreeing headings at entry or at exit pass; so does having no
        # pair of known headings to compare (a zero heading is unknown)
        known_in = np.any(head_in_a != 0, axis=1) & np.any(head_in_b != 0, axis=1)
        known_out = np.any(head_out_a != 0, axis=1) & np.any(head_out_b != 0, axis=1)
        agree_in = known_in & (np.einsum("ij,ij->i", head_in_a, head_in_b) >= self.min_overlap_heading_cos)
        agree_out = known_out & (np.einsum("ij,ij->i", head_out_a, head_out_b) >= self.min_overlap_heading_cos)
        same_way = agree_in | agree_out | (~known_in & ~known_out)
        return np.where(overlap, same_way, ~far | forward)

    def handover(self, si: np.ndarray | float, ei: np.ndarray | float, sj: np.ndarray | float, ej: np.ndarray | float) -> np.ndarray:
        """``bool`` (broadcast of the inputs, seconds): two tracklets of one camera seen from
        ``si`` to ``ei`` and from ``sj`` to ``ej`` overlap in time as a handover: one starts
        and ends after the other and they share at most ``handover_s`` at the ends (then
        they are consecutive fragments, gap 0). Always False when ``handover_s`` is 0."""
        si, ei, sj, ej = np.broadcast_arrays(si, ei, sj, ej)
        if self.handover_s <= 0:
            return np.zeros(si.shape, bool)
        overlap = (si <= ej) & (sj <= ei)
        consecutive = ((sj >= si) & (ej >= ei)) | ((si >= sj) & (ei >= ej))
        shared = -np.maximum(sj - ei, si - ej)  # seconds both are seen
        return overlap & consecutive & (shared <= self.handover_s + 1e-6)  # float clock

    def same_camera_conflict(self, sx: float, ex: float, sy: float, ey: float) -> bool:
        """Whether two tracklets of one camera, seen from ``sx`` to ``ex`` and from ``sy`` to
        ``ey`` (seconds), conflict: they overlap in time, and not as a :meth:`handover` (the
        scalar form of the rule in :meth:`status`, for the clustering loop)."""
        return sx <= ey and sy <= ex and not bool(self.handover(sx, ex, sy, ey))

    def status(self, table: TrackletTable, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``(E,) int8`` :data:`LINK`, :data:`NO_LINK` or :data:`CONFLICT` for rows ``i[e], j[e]``."""
        i = np.asarray(i, np.int64)
        j = np.asarray(j, np.int64)
        si, ei, sj, ej = table.start_s[i], table.end_s[i], table.start_s[j], table.end_s[j]
        scen = table.scenario[i]
        same_camera = table.camera[i] == table.camera[j]
        same_camera_overlap = same_camera & (si <= ej) & (sj <= ei)
        gap = np.maximum(sj - ei, si - ej)  # time between the two, <= 0 when they overlap
        # consecutive fragments of one camera: gap 0, and no step for the direction rule
        handover = same_camera & self.handover(si, ei, sj, ej)
        if handover.any():
            same_camera_overlap &= ~handover
            gap = np.where(handover, 0.0, gap)
        conflict = (scen != table.scenario[j]) | same_camera_overlap
        if not self.use_topology:
            link = gap <= self.free_max_gap
        else:
            topo = self.has_topology[scen]
            link = ~topo & (gap <= self.free_max_gap)
            if topo.any():
                n_c = self.n_cameras
                ci, cj = table.camera[i].astype(np.int64), table.camera[j].astype(np.int64)
                unlisted = ~self.listed[ci * n_c + cj] & ~self.listed[cj * n_c + ci]
                # both standing still while seen at once (gap <= 0: the two overlap in time)
                still = np.zeros(len(i), bool) if self.stationary is None else (
                    self.stationary[i] & self.stationary[j] & (gap <= 0)
                )
                fragments = handover if handover.any() else None
                directed = self._directed_ok(table, i, j, still, fragments) | self._directed_ok(table, j, i, still, fragments)
                link |= topo & (directed | (unlisted & (gap <= self.unlisted_max_gap[scen])))
        if self.use_direction and len(i):
            link &= self.direction_ok(table, i, j) | handover
        out = np.where(link, LINK, NO_LINK).astype(np.int8)
        out[conflict] = CONFLICT
        return out


def standing_still(table: TrackletTable, max_speed_mps: float, min_duration_s: float) -> np.ndarray:
    """``(N,) bool``: rows whose average ground speed from the first to the last box
    (``table.motion`` entry and exit positions, metres) is below ``max_speed_mps``, over at
    least ``min_duration_s`` seconds. Unknown positions (no homography) are not standing still."""
    entry, exit_ = table.motion[:, 0], table.motion[:, 1]
    duration = table.end_s - table.start_s
    with np.errstate(invalid="ignore", divide="ignore"):
        speed = np.hypot(*(exit_ - entry).T) / duration
        return (duration >= min_duration_s) & (speed < max_speed_mps)  # NaN compares False


# ---------------------------------------------------------------------------- search plan
#: durations above this quantile are "long" tracklets, searched one by one, so that one
#: parked car does not widen every slice's base.
LONG_TRACKLET_QUANTILE = 0.999


def search_blocks(table: TrackletTable, constraints: Constraints, slice_s: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Plan the kNN search: ``(query_rows, base_rows)`` blocks covering every row once as a query.

    Queries are grouped by camera (where the scenario has a transition graph) and cut into
    time slices of ``slice_s`` seconds by start; each block's base holds the tracklets of the
    cameras adjacent in the graph whose interval may lie within the camera's reach in time.
    The base is a superset of what each query reaches (callers filter with
    :meth:`Constraints.within_reach`). Scenarios with unlimited reach, or ``slice_s == 0``,
    are one block each (all against all, through an approximate index if large).
    """
    blocks: list[tuple[np.ndarray, np.ndarray]] = []
    if len(table) == 0:
        return blocks
    start, end = table.start_s, table.end_s
    dur = end - start
    order = np.lexsort((start, table.camera))
    cam_sorted = table.camera[order]
    n_c = len(table.camera_keys)
    cam_lo = np.searchsorted(cam_sorted, np.arange(n_c), "left")
    cam_hi = np.searchsorted(cam_sorted, np.arange(n_c), "right")
    cam_maxdur = np.zeros(n_c)
    np.maximum.at(cam_maxdur, table.camera, dur)

    def channel(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        rows = rows[np.argsort(start[rows], kind="stable")]
        return rows, start[rows], float(dur[rows].max()) if len(rows) else 0.0

    for s_code in range(len(table.scenarios)):
        rows_s = np.flatnonzero(table.scenario == s_code)
        reach = float(constraints.reach_s[s_code])
        if len(rows_s) == 0:
            continue
        if not math.isfinite(reach) or slice_s <= 0:
            blocks.append((rows_s, rows_s))
            continue
        cams_s = np.unique(table.camera[rows_s])
        long_min_dur = max(float(np.quantile(dur[rows_s], LONG_TRACKLET_QUANTILE)), slice_s)
        if constraints.adjacency[cams_s[0]] is None:
            everything = channel(rows_s)
            groups = [(everything[0], [everything], reach)]
        else:
            groups = []
            for c in cams_s:
                chans = [(order[cam_lo[b] : cam_hi[b]], start[order[cam_lo[b] : cam_hi[b]]], float(cam_maxdur[b])) for b in constraints.adjacency[c]]
                groups.append((order[cam_lo[c] : cam_hi[c]], chans, float(constraints.camera_reach[c])))
        for q_sorted, chans, r in groups:
            if not chans or len(q_sorted) == 0:
                continue
            is_long = dur[q_sorted] > long_min_dur
            normal = q_sorted[~is_long]
            if len(normal):
                qs = start[normal]
                edges = np.searchsorted(qs, np.arange(qs[0], qs[-1] + slice_s, slice_s), "left")
                edges = np.unique(np.append(edges, len(normal)))
                for lo, hi in zip(edges[:-1], edges[1:]):
                    q = normal[lo:hi]
                    blocks.append((q, _base(chans, float(start[q[0]]), float(end[q].max()), r)))
            for q in q_sorted[is_long]:
                blocks.append((np.array([q]), _base(chans, float(start[q]), float(end[q]), r)))
    return blocks


def _base(chans: list[tuple[np.ndarray, np.ndarray, float]], t0: float, t1: float, reach: float) -> np.ndarray:
    """Rows of the channels whose interval may meet ``[t0 - reach, t1 + reach]``."""
    parts = []
    for rows, starts, maxdur in chans:
        lo = np.searchsorted(starts, t0 - reach - maxdur, "left")
        hi = np.searchsorted(starts, t1 + reach, "right")
        if hi > lo:
            parts.append(rows[lo:hi])
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)
