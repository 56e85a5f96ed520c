"""Fit camera-pair travel-time windows from training ground truth (``mct fit-topology``).

Ground-truth ids are one vehicle across all cameras of a scenario (AI City ``gt/gt.txt``).
For each vehicle, its *visits* (a run of frames in one camera without a gap longer than
``split_gap_s``) are put on the scenario clock and sorted by start; each pair of visits
``a -> b`` (``b`` later; all such pairs, or only consecutive ones) is one observed
transition with gap ``start_b - end_a`` (negative where two views overlap). For each camera pair seen at least ``min_count``
times the window is ``[min gap - margin, max gap + margin]`` with
``margin = max(margin_s, margin_frac * (max gap - min gap))``. Every camera also gets a
self-transition ``[0, split_gap_s]`` for the fragments of one visit. Pairs never observed
are not listed, so the written topology forbids them (``unlisted: forbid``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from mct.associate.config import LinksConfig, ScenarioTopology, TopologyFile, Transition
from mct.types import Camera, GlobalAssignment, Tracklet

if TYPE_CHECKING:
    from mct.associate.links import CameraLinks
    from mct.associate.table import TrackletTable

__all__ = ["camera_visits", "fit_topology", "links_from_assignment", "match_gaps", "write_topology"]

log = logging.getLogger(__name__)


def camera_visits(camera: Camera, frames: np.ndarray, ids: np.ndarray, split_gap_s: float) -> list[tuple[int, float, float]]:
    """``(vehicle id, start_s, end_s)`` of each visit of each vehicle to ``camera``.

    Args:
        frames: ``(N,) int64`` 1-based frame numbers of the ground-truth boxes.
        ids: ``(N,) int64`` their vehicle ids.
        split_gap_s: a gap longer than this (seconds) between two boxes of one id starts a new visit.
    """
    out: list[tuple[int, float, float]] = []
    if len(frames) == 0:
        return out
    order = np.lexsort((frames, ids))
    ids, times = ids[order], camera.frame_time(frames[order])
    new = np.ones(len(ids), bool)
    new[1:] = (ids[1:] != ids[:-1]) | (np.diff(times) > split_gap_s)
    starts = np.flatnonzero(new)
    stops = np.append(starts[1:], len(ids)) - 1
    for a, b in zip(starts, stops):
        out.append((int(ids[a]), float(times[a]), float(times[b])))
    return out


def fit_topology(
    observations: Iterable[tuple[Camera, np.ndarray, np.ndarray]],
    margin_s: float = 5.0,
    margin_frac: float = 0.1,
    min_count: int = 1,
    split_gap_s: float = 10.0,
    scenario_name: str | None = None,
    fragment_windows: bool = True,
    pairs: str = "all",
) -> TopologyFile:
    """Travel-time windows from ground truth.

    Args:
        observations: ``(camera, frames, ids)`` per camera: the ground-truth boxes' 1-based
            frame numbers and vehicle ids, ``(N,) int64`` each.
        margin_s, margin_frac: widen each observed window by ``max(margin_s, margin_frac * width)``
            on both sides (seconds).
        min_count: camera pairs seen fewer times are left out (forbidden).
        split_gap_s: see :func:`camera_visits`.
        scenario_name: write all scenarios' transitions under this one name (e.g. ``"*"``,
            for validation scenarios that reuse the training cameras); ``None`` keeps each
            scenario apart.
        fragment_windows: also give every camera a self-transition ``[0, split_gap_s]``
            (``count`` 0): gaps that short are inside one visit by definition, so a tracker
            that loses a car for a moment leaves fragments that may be linked.
        pairs: ``"consecutive"``: only consecutive visits are transitions (the camera
            graph of adjacent views); ``"all"``: every later visit of a vehicle is one too,
            so cameras two or more hops apart get their own observed window and a vehicle
            missed by the camera in between can still be linked.

    Returns:
        The topology, transitions sorted by ``(src, dst)``.
    """
    visits: dict[tuple[str, int], list[tuple[float, float, str]]] = defaultdict(list)
    cameras_seen: dict[str, set[str]] = defaultdict(set)
    for cam, frames, ids in observations:
        cameras_seen[cam.scenario if scenario_name is None else scenario_name].add(cam.camera_id)
        for vid, start, end in camera_visits(cam, np.asarray(frames, np.int64), np.asarray(ids, np.int64), split_gap_s):
            visits[(cam.scenario, vid)].append((start, end, cam.camera_id))
    gaps: dict[str, dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    for (scenario, _), vs in visits.items():
        vs.sort()
        name = scenario if scenario_name is None else scenario_name
        if pairs == "consecutive":
            later = [(a, b) for a, b in zip(vs[:-1], vs[1:])]
        elif pairs == "all":
            later = [(vs[i], vs[j]) for i in range(len(vs)) for j in range(i + 1, len(vs))]
        else:
            raise ValueError(f"fit_topology: pairs must be 'consecutive' or 'all', got {pairs!r}")
        for (_, end_a, cam_a), (start_b, _, cam_b) in later:
            if cam_a == cam_b and pairs == "all" and (start_b - end_a) <= split_gap_s:
                continue
            gaps[name][(cam_a, cam_b)].append(start_b - end_a)
    scenarios: dict[str, ScenarioTopology] = {}
    for name in sorted(set(gaps) | (set(cameras_seen) if fragment_windows else set())):
        transitions = []
        if fragment_windows:
            transitions += [
                Transition(src=c, dst=c, min_gap_s=0.0, max_gap_s=split_gap_s, source="labelled") for c in sorted(cameras_seen[name])
            ]
        for (src, dst), g in sorted(gaps[name].items()):
            if len(g) < min_count:
                continue
            lo, hi = min(g), max(g)
            margin = max(margin_s, margin_frac * (hi - lo))
            transitions.append(
                Transition(src=src, dst=dst, min_gap_s=round(lo - margin, 3), max_gap_s=round(hi + margin, 3), count=len(g),
                           source="labelled")
            )
        transitions.sort(key=lambda t: (t.src, t.dst, t.count))
        scenarios[name] = ScenarioTopology(transitions=transitions)
        log.info("topology %s: %d transitions fitted on %d observed ones", name, len(transitions), sum(len(g) for g in gaps[name].values()))
    return TopologyFile(scenarios=scenarios)


def match_gaps(table: TrackletTable, global_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of rows of one global id seen by two different cameras, as a transition
    from the one that starts first: ``(s, a, b, gap_s)``, ``(P,)`` each (scenario code,
    src and dst camera codes of ``table``; gap ``start_s[later] - end_s[earlier]``, seconds).

    Args:
        global_ids: ``(N,)`` the global id of each row (negative: none).
    """
    gid = np.asarray(global_ids, np.int64)
    if len(gid) != len(table):
        raise ValueError(f"match_gaps: {len(gid)} global ids for {len(table)} rows")
    rows = np.flatnonzero(gid >= 0)
    rows = rows[np.lexsort((table.start_s[rows], gid[rows]))]
    bounds = np.flatnonzero(np.diff(gid[rows])) + 1
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for group in np.split(rows, bounds):
        if len(group) < 2:
            continue
        i, j = np.triu_indices(len(group), 1)
        parts.append((group[i], group[j]))
    if not parts:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, np.zeros(0)
    first = np.concatenate([p[0] for p in parts])
    later = np.concatenate([p[1] for p in parts])
    cross = table.camera[first] != table.camera[later]
    first, later = first[cross], later[cross]
    gap = table.start_s[later] - table.end_s[first]
    return table.scenario[first].astype(np.int64), table.camera[first].astype(np.int64), table.camera[later].astype(np.int64), gap


def links_from_assignment(
    tracklets: Sequence[Tracklet],
    cameras: Sequence[Camera],
    assignment: GlobalAssignment,
    cfg: LinksConfig | None = None,
    topology: TopologyFile | None = None,
) -> "CameraLinks":
    """Camera links of a finished run: prior links from the cameras' geometry and the
    tracklets' entry and exit regions, overridden by ``topology`` where it has links (the
    run's topology file), learned from the run's own cross-camera matches (every pair of
    tracklets of one global id in two cameras, see :func:`match_gaps`). Tracklets without
    a global id only shape the entry and exit regions."""
    from mct.associate.config import AssociationConfig
    from mct.associate.links import CameraLinks
    from mct.associate.table import TrackletTable

    table = TrackletTable.from_tracklets(tracklets, cameras, AssociationConfig())
    found = (assignment.global_id(*table.camera_keys[c], t) for c, t in zip(table.camera.tolist(), table.track_id.tolist()))
    gid = np.array([-1 if g is None else g for g in found], np.int64)
    s, a, b, gap = match_gaps(table, gid)
    links = CameraLinks.for_run(cameras, table, cfg, topology)
    log.info("links from the run: %d cross-camera matches in %d global ids", len(gap), len(np.unique(gid[gid >= 0])))
    return links.learned(s, a, b, gap, table=table)


def write_topology(path: str | Path, topology: TopologyFile) -> Path:
    """Write ``topology`` as YAML (the format :func:`mct.config.load_topology` reads)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# mct topology file: camera-pair travel-time windows (see docs/association.md)\n"
    body = yaml.safe_dump(topology.model_dump(mode="json", exclude_defaults=True), sort_keys=False, default_flow_style=None)
    path.write_text(header + body)
    return path
