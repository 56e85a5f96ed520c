"""Topology files, pair rules (windows, graph, zones, same-camera overlap) and the search plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mct.associate.config import AssociationConfig, CameraZones, ScenarioTopology, TopologyFile, Transition
from mct.associate.constraints import CONFLICT, LINK, NO_LINK, Constraints, load_topology, points_in_polygon, search_blocks
from mct.associate.table import TrackletTable
from mct.config import ConfigError

KEYS = [("S01", "c001"), ("S01", "c002"), ("S01", "c003"), ("S02", "c001")]


def table(rows: list[tuple[int, float, float]], entry=None, exit_=None) -> TrackletTable:
    """rows: (camera code into KEYS, start_s, end_s)."""
    cam, start, end = (np.array(c) for c in zip(*rows))
    feats = np.ones((len(rows), 4), np.float32) / 2
    return TrackletTable.from_arrays(KEYS, cam, np.arange(len(rows)), start, end, feats, entry, exit_)


def topo(*transitions: Transition, **kw) -> TopologyFile:
    return TopologyFile(scenarios={"S01": ScenarioTopology(transitions=list(transitions), **kw)})


CFG = AssociationConfig()


def test_same_camera_overlap_and_other_scenario_are_conflicts():
    t = table([(0, 0, 10), (0, 5, 15), (0, 20, 30), (3, 0, 10)])
    c = Constraints.build(t, None, CFG)
    st = c.status(t, np.array([0, 0, 0]), np.array([1, 2, 3]))
    # row 1 overlaps row 0 in c001; row 2 follows it; row 3 is in S02
    assert st.tolist() == [CONFLICT, LINK, CONFLICT]


def test_handover_overlap_of_one_camera_is_a_gap_of_zero_when_allowed():
    # row 0 holds c001 from 0 to 10 s; rows 1-3 start as it ends, row 4 ends as it starts;
    # row 5 lies inside it
    t = table([(0, 0, 10), (0, 9.8, 15), (0, 9.7, 15), (0, 10.0, 15), (0, -3, 0.2), (0, 2, 8)])
    self_rule = topo(Transition(src="c001", dst="c001", min_gap_s=0, max_gap_s=5))
    i, j = np.zeros(5, int), np.arange(1, 6)
    strict = Constraints.build(t, self_rule, CFG)
    assert strict.status(t, i, j).tolist() == [CONFLICT] * 5  # the reference: any overlap
    loose = Constraints.build(t, self_rule, AssociationConfig(same_camera_max_overlap_s=0.2))
    # shares 0.2 s (the bound, on a float clock), 0.3 s (too much), one instant, 0.2 s
    # before it (either order), and a tracklet inside the other (never a handover)
    assert loose.status(t, i, j).tolist() == [LINK, CONFLICT, LINK, LINK, CONFLICT]
    assert loose.status(t, j, i).tolist() == [LINK, CONFLICT, LINK, LINK, CONFLICT]
    # the gap counts as 0: a self-transition window that starts above 0 refuses it
    late = Constraints.build(t, topo(Transition(src="c001", dst="c001", min_gap_s=1, max_gap_s=5)),
                             AssociationConfig(same_camera_max_overlap_s=0.2))
    assert late.status(t, i[:1], j[:1]).tolist() == [NO_LINK]


@pytest.mark.parametrize("handover_s", [0.0, 0.2, 1.0])
def test_the_clustering_loop_and_status_agree_on_same_camera_conflicts(handover_s):
    rng = np.random.default_rng(3)
    start = np.round(rng.uniform(0, 10, 300), 1)
    t = table([(0, s, s + d) for s, d in zip(start, np.round(rng.uniform(0, 3, 300), 1))])
    c = Constraints.build(t, None, AssociationConfig(same_camera_max_overlap_s=handover_s))
    i, j = np.triu_indices(len(t), 1)
    vector = c.status(t, i, j) == CONFLICT
    scalar = [c.same_camera_conflict(t.start_s[x], t.end_s[x], t.start_s[y], t.end_s[y]) for x, y in zip(i, j)]
    assert vector.tolist() == scalar
    assert 0 < vector.sum() < len(i)


def test_window_is_directional_and_inclusive():
    # c001 -> c002 takes 10-20 s
    rule = Transition(src="c001", dst="c002", min_gap_s=10, max_gap_s=20)
    t = table([(0, 0, 5), (1, 15, 20), (1, 25, 30), (1, 26, 31), (1, -20, -10)])
    c = Constraints.build(t, topo(rule), CFG)
    st = c.status(t, np.zeros(4, int), np.array([1, 2, 3, 4]))
    # gap 10 (edge, in); 20 (edge, in); 21 (out); c002 before c001 (wrong direction)
    assert st.tolist() == [LINK, LINK, NO_LINK, NO_LINK]
    assert c.status(t, np.array([1]), np.array([0])).tolist() == [LINK]  # symmetric in arguments
    assert c.reach_s[0] == 20


def test_unlisted_pairs_forbid_or_allow():
    t = table([(0, 0, 5), (2, 30, 35)])
    listed_only = Constraints.build(t, topo(Transition(src="c001", dst="c002", min_gap_s=0, max_gap_s=60)), CFG)
    assert listed_only.status(t, np.array([0]), np.array([1])).tolist() == [NO_LINK]
    allow = Constraints.build(t, topo(unlisted="allow", max_unlisted_gap_s=100), CFG)
    assert allow.status(t, np.array([0]), np.array([1])).tolist() == [LINK]
    too_far = Constraints.build(t, topo(unlisted="allow", max_unlisted_gap_s=10), CFG)
    assert too_far.status(t, np.array([0]), np.array([1])).tolist() == [NO_LINK]


def test_same_camera_after_a_gap_needs_a_self_transition_when_there_is_a_topology():
    t = table([(0, 0, 5), (0, 8, 12)])
    none = Constraints.build(t, topo(Transition(src="c001", dst="c002", min_gap_s=0, max_gap_s=60)), CFG)
    assert none.status(t, np.array([0]), np.array([1])).tolist() == [NO_LINK]
    self_rule = Constraints.build(t, topo(Transition(src="c001", dst="c001", min_gap_s=0, max_gap_s=5)), CFG)
    assert self_rule.status(t, np.array([0]), np.array([1])).tolist() == [LINK]


def test_use_constraints_false_ignores_the_topology_but_not_overlap():
    t = table([(0, 0, 5), (1, 500, 505), (0, 3, 8)])
    c = Constraints.build(t, topo(Transition(src="c001", dst="c002", min_gap_s=0, max_gap_s=60)), AssociationConfig(use_constraints=False))
    assert c.status(t, np.array([0, 0]), np.array([1, 2])).tolist() == [LINK, CONFLICT]
    assert np.isinf(c.reach_s).all()


def test_max_time_gap_without_topology():
    t = table([(0, 0, 5), (1, 20, 25), (1, 200, 205)])
    c = Constraints.build(t, None, AssociationConfig(max_time_gap_s=60))
    assert c.status(t, np.array([0, 0]), np.array([1, 2])).tolist() == [LINK, NO_LINK]


def test_entry_and_exit_zones():
    square = [(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)]
    scen = ScenarioTopology(
        transitions=[Transition(src="c001", dst="c002", min_gap_s=0, max_gap_s=60, exit_zone="east", entry_zone="west")],
        cameras={"c001": CameraZones(zones={"east": square}), "c002": CameraZones(zones={"west": square})},
    )
    # row 0 leaves c001 inside "east"; row 1 enters c002 inside "west"; row 2 enters outside it
    entry = np.array([[0, 0], [50, 50], [500, 50]], np.float32)
    exit_ = np.array([[50, 50], [0, 0], [0, 0]], np.float32)
    t = table([(0, 0, 5), (1, 20, 25), (1, 30, 35)], entry, exit_)
    c = Constraints.build(t, TopologyFile(scenarios={"S01": scen}), CFG)
    assert c.status(t, np.array([0, 0]), np.array([1, 2])).tolist() == [LINK, NO_LINK]


def test_points_in_polygon():
    triangle = np.array([[0, 0], [10, 0], [0, 10]])
    pts = np.array([[1, 1], [6, 6], [-1, 2], [2, 7]])
    assert points_in_polygon(pts, triangle).tolist() == [True, False, False, True]


def test_topology_file_round_trip_and_errors(tmp_path: Path):
    good = tmp_path / "S01.yaml"
    good.write_text(
        "scenarios:\n  S01:\n    transitions:\n      - {src: c001, dst: c002, min_gap_s: -2, max_gap_s: 30}\n"
    )
    loaded = load_topology(good)
    assert loaded.scenarios["S01"].transitions[0].max_gap_s == 30
    (tmp_path / "S02.yaml").write_text("scenarios:\n  S02:\n    unlisted: allow\n")
    assert set(load_topology(tmp_path).scenarios) == {"S01", "S02"}  # a folder: one file per scenario
    (tmp_path / "dup.yaml").write_text("scenarios:\n  S01: {}\n")
    with pytest.raises(ValueError, match="scenarios.S01: already defined in"):
        load_topology(tmp_path)
    bad = tmp_path / "bad" / "t.yaml"
    bad.parent.mkdir()
    bad.write_text("scenarios:\n  S01:\n    transitions:\n      - {src: c001, dst: c002, min_gap_s: 5, max_gap: 30}\n")
    with pytest.raises(ConfigError, match=r"t.yaml: scenarios.S01.transitions.0.max_gap: unknown key"):
        load_topology(bad)
    bad.write_text("scenarios:\n  S01:\n    transitions:\n      - {src: c001, dst: c002, min_gap_s: 5, max_gap_s: 1}\n")
    with pytest.raises(ConfigError, match="max_gap_s 1.0 < min_gap_s 5.0"):
        load_topology(bad)
    bad.write_text("scenarios:\n  S01:\n    transitions:\n      - {src: c001, dst: c002, min_gap_s: 0, max_gap_s: 1, exit_zone: north}\n")
    with pytest.raises(ConfigError, match="camera c001 has no zone 'north'"):
        load_topology(bad)
    with pytest.raises(FileNotFoundError, match="topology file not found"):
        load_topology(tmp_path / "missing.yaml")


def test_search_blocks_cover_every_query_once_and_every_link():
    rng = np.random.default_rng(3)
    n = 300
    cam = rng.integers(0, 3, n)
    start = rng.uniform(0, 2000, n)
    end = start + rng.uniform(1, 30, n)
    end[0] = start[0] + 900  # one long tracklet
    t = TrackletTable.from_arrays(KEYS, cam, np.arange(n), start, end, np.ones((n, 4), np.float32) / 2)
    rules = topo(
        Transition(src="c001", dst="c002", min_gap_s=5, max_gap_s=40),
        Transition(src="c002", dst="c003", min_gap_s=-5, max_gap_s=90),
        Transition(src="c001", dst="c001", min_gap_s=0, max_gap_s=10),
    )
    c = Constraints.build(t, rules, CFG)
    blocks = search_blocks(t, c, slice_s=60)
    queries = np.concatenate([q for q, _ in blocks])
    assert np.sort(queries).tolist() == list(range(n))  # every row is a query exactly once
    base_of = {}
    for q, b in blocks:
        for row in q:
            base_of[int(row)] = set(b.tolist())
    i, j = np.triu_indices(n, 1)
    link = c.status(t, i, j) == LINK
    assert link.sum() > 20
    assert all(int(b) in base_of[int(a)] and int(a) in base_of[int(b)] for a, b in zip(i[link], j[link]))
    # c003 is not adjacent to c001: no c001 query searches c003
    for q, b in blocks:
        if cam[q[0]] == 0:
            assert not (cam[b] == 2).any()


def test_the_documented_example_topology_loads(tmp_path: Path):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "association.md").read_text()
    block = doc.split("## Topology file", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.yaml").write_text(block)
    scen = load_topology(tmp_path / "example.yaml").scenarios["S02"]
    assert len(scen.transitions) == 3 and set(scen.cameras) == {"c007", "c008"}
