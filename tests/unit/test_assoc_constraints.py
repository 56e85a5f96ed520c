"""The hard rules (only the impossible), the kNN search plan, and reading topology files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mct.associate.config import ScenarioTopology, TopologyFile, Transition
from mct.associate.constraints import (
    EDGE_WIDTHS, camera_adjacency, camera_reach, handover, linked_in_time, same_camera_concurrent, search_blocks, within_reach,
)
from mct.associate.links import CameraLinks
from mct.associate.table import TrackletTable
from mct.config import ConfigError, load_topology
from mct.types import Camera

KEYS = [("S01", "c001"), ("S01", "c002"), ("S01", "c003"), ("S02", "c001")]


def table(rows: list[tuple[int, float, float]]) -> TrackletTable:
    """rows: (camera code into KEYS, start_s, end_s)."""
    cam, start, end = (np.array(c) for c in zip(*rows))
    feats = np.ones((len(rows), 4), np.float32) / 2
    return TrackletTable.from_arrays(KEYS, cam, np.arange(len(rows)), start, end, feats)


def topo(*transitions: Transition, **kw) -> TopologyFile:
    return TopologyFile(scenarios={"S01": ScenarioTopology(transitions=list(transitions), **kw)})


def test_one_camera_at_once_is_two_vehicles_unless_a_short_handover():
    # c001: row 0 at 0-10 s; row 1 at 5-15 s (overlap 5 s); row 2 at 9.5-20 s (a 0.5 s
    # handover after row 0); row 3 at 20-30 s (after row 0); row 4 in S02 at 0-10 s
    t = table([(0, 0, 10), (0, 5, 15), (0, 9.5, 20), (0, 20, 30), (3, 0, 10)])
    i, j = np.array([0, 0, 0, 0]), np.array([1, 2, 3, 4])
    assert same_camera_concurrent(t, i, j, 0.0).tolist() == [True, True, False, False]
    assert same_camera_concurrent(t, i, j, 1.0).tolist() == [True, False, False, False]
    # a handover: one starts and ends after the other, sharing at most handover_s
    assert handover(0.0, 10.0, 9.5, 20.0, 1.0) and not handover(0.0, 10.0, 9.5, 20.0, 0.2)
    assert not handover(0.0, 10.0, 2.0, 8.0, 10.0)  # one inside the other: two vehicles
    assert not handover(0.0, 10.0, 9.5, 20.0, 0.0)  # 0: off


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


def test_search_plan_covers_every_query_once_and_every_plausible_pair():
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
    cams = [Camera(s, c) for s, c in KEYS]
    arrays = CameraLinks.from_topology(rules, cams).compile(t)
    reach = camera_reach(t, arrays, 600.0)
    adjacency = camera_adjacency(t, arrays)
    # c001 reaches 40 s + 3 edge widths; c003 is linked to c002 only; unlisted pairs forbidden
    assert 40 < reach[0] < 60 and reach[2] > 90
    # (a camera always searches itself: fragments, and the known negatives of the calibration)
    assert adjacency[0].tolist() == [0, 1] and adjacency[2].tolist() == [1, 2]
    blocks = search_blocks(t, reach, adjacency, slice_s=60)
    queries = np.concatenate([q for q, _ in blocks])
    assert np.sort(queries).tolist() == list(range(n))  # every row is a query exactly once
    base_of = {}
    for q, b in blocks:
        for row in q:
            base_of[int(row)] = set(b.tolist())
    i, j = np.triu_indices(n, 1)
    adjacent = np.array([cam[y] in adjacency[cam[x]] for x, y in zip(i, j)])
    plausible = adjacent & within_reach(t, reach, i, j)
    assert plausible.sum() > 20
    assert all(int(b) in base_of[int(a)] for a, b in zip(i[plausible], j[plausible]))
    # c003 is not adjacent to c001: no c001 query searches c003
    for q, b in blocks:
        if cam[q[0]] == 0:
            assert not (cam[b] == 2).any()
    # the plan holds no base: each is gathered when its block is visited (all bases at once
    # were 0.32 GB at 1M tracklets), the same by index as by iteration
    import gc
    import weakref

    first = weakref.ref(next(iter(blocks))[1])
    gc.collect()
    assert first() is None
    assert len(blocks) == sum(1 for _ in blocks)
    assert all(np.array_equal(blocks[i][1], b) and blocks[i][0] is q for i, (q, b) in enumerate(blocks))
    # no topology and no calibration: every camera of the scenario, the wide reach
    unknown = CameraLinks(links={}, camera_keys=t.camera_keys).compile(t)
    assert camera_reach(t, unknown, 600.0)[:3].tolist() == [600.0] * 3
    assert camera_adjacency(t, unknown)[0].tolist() == [0, 1, 2]


def test_the_documented_example_topology_loads(tmp_path: Path):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "association.md").read_text()
    block = next(b.split("```", 1)[0] for b in doc.split("```yaml\n")[1:] if "c007" in b.split("```", 1)[0])
    (tmp_path / "example.yaml").write_text(block)
    scen = load_topology(tmp_path / "example.yaml").scenarios["S02"]
    assert len(scen.transitions) == 3 and set(scen.cameras) == {"c007", "c008"}


def random_linked_table(seed: int, n: int, span_s: float, *transitions: Transition):
    """``n`` tracklets at random over three cameras and ``span_s`` seconds, and the links."""
    rng = np.random.default_rng(seed)
    cam = rng.integers(0, 3, n)
    start = rng.uniform(0, span_s, n)
    end = start + rng.uniform(1, 20, n)
    t = TrackletTable.from_arrays(KEYS, cam, np.arange(n), start, end, np.ones((n, 4), np.float32) / 2)
    return t, CameraLinks.from_topology(topo(*transitions), [Camera(s, c) for s, c in KEYS]).compile(t), rng


def test_linked_in_time_finds_every_pair_in_a_window_and_nothing_else():
    n = 400
    t, arrays, _ = random_linked_table(
        5, n, 1500,
        Transition(src="c001", dst="c002", min_gap_s=5, max_gap_s=40),
        Transition(src="c002", dst="c003", min_gap_s=-5, max_gap_s=90),
    )
    cam, start, end = t.camera, t.start_s, t.end_s
    a, b = linked_in_time(t, arrays)
    got = set(zip(a.tolist(), b.tolist()))
    # brute force: a starts first, the cameras are linked a -> b, the gap within the soft window
    lo = np.maximum(arrays.lo - EDGE_WIDTHS * arrays.spread_s, arrays.min_gap_s)
    hi = arrays.hi + EDGE_WIDTHS * arrays.spread_s
    want = set()
    for x in range(n):
        for y in range(n):
            if x == y or cam[x] == cam[y] or not arrays.known[0, cam[x], cam[y]] or arrays.min_gap_s[0, cam[x], cam[y]] == np.inf:
                continue
            first = start[x] < start[y] or (start[x] == start[y] and end[x] <= end[y])
            gap = start[y] - end[x]
            if first and lo[0, cam[x], cam[y]] <= gap <= hi[0, cam[x], cam[y]]:
                want.add((x, y))
    assert len(want) > 50 and got == want
    # the unlisted pairs (c001 -> c003, any reverse direction) give nothing
    assert not ((cam[a] == 0) & (cam[b] == 2)).any() and not ((cam[a] == 1) & (cam[b] == 0)).any()
    # no known link: no pairs
    unknown = CameraLinks(links={}, camera_keys=t.camera_keys).compile(t)
    assert len(linked_in_time(t, unknown)[0]) == 0


def scored_linked_table(seed: int, n: int):
    """A random linked table with what every term reads (features of a few look-alike
    groups, headings, ground tracks, overlapping views) and its full pair model."""
    from mct.associate.motion import GroundTracks
    from mct.associate.score import AppearanceModel, ColocationModel, DirectionModel, LinkTable, PairModel

    t, arrays, rng = random_linked_table(
        seed, n, 900,
        Transition(src="c001", dst="c002", min_gap_s=5, max_gap_s=60),
        Transition(src="c002", dst="c001", min_gap_s=5, max_gap_s=60),
        Transition(src="c002", dst="c003", min_gap_s=-15, max_gap_s=90),
    )
    feats = rng.normal(size=(6, 8))[rng.integers(0, 6, n)] + 0.3 * rng.normal(size=(n, 8))
    feats = (feats / np.linalg.norm(feats, axis=1, keepdims=True)).astype(np.float32)
    feats[::7] = feats[0]  # exact ties in appearance too
    motion = np.full((n, 4, 2), np.nan)
    motion[:, :2] = rng.uniform(0, 200, (n, 2, 2))
    heading = rng.normal(size=(n, 2, 2))
    motion[:, 2:] = heading / np.linalg.norm(heading, axis=2, keepdims=True)
    motion[::3, 2:] = 0.0  # unknown headings: ties in the space-time score
    rows = []
    for r in range(n):
        times = np.arange(t.start_s[r], t.end_s[r], 0.5)
        rows.append((times, rng.uniform(0, 30, 2) + np.cumsum(rng.normal(size=(len(times), 2)), axis=0)))
    cam, start, end = t.camera.copy(), t.start_s.copy(), t.end_s.copy()
    for r in range(1, n, 10):  # exact twins: pairs of equal score, whatever the terms
        cam[r], start[r], end[r], feats[r], motion[r], rows[r] = cam[r - 1], start[r - 1], end[r - 1], feats[r - 1], motion[r - 1], rows[r - 1]
    t = TrackletTable.from_arrays(KEYS, cam, np.arange(n), start, end, feats, motion=motion, ground=GroundTracks.from_rows(rows))
    model = PairModel(AppearanceModel(0.0, 0.3, 1.2, 0.3, 0.2, "labels"), DirectionModel(), ColocationModel(),
                      LinkTable.from_arrays(arrays), np.ones(4, bool), 1.0)
    return t, arrays, model


def test_the_best_window_mates_of_the_compiled_pass_are_those_of_ranking_every_pair():
    from dataclasses import replace

    from mct.associate.clustering import best_per_camera
    from mct.associate.constraints import linked_in_time_blocks, linked_windows
    from mct.associate.score import best_in_windows, colocation_distance, score_pairs

    t, arrays, model = scored_linked_table(3, 300)
    st_model = replace(model, terms=np.array([False, True, True, True]))
    blocks = list(linked_in_time_blocks(t, arrays))
    windows = list(linked_windows(t, arrays))
    assert len(blocks) == len(windows) == 3
    colocated = 0
    for (a, b), (rows_c, rows_d, first, last) in zip(blocks, windows):
        s_st, s_full = score_pairs(t, st_model, a, b), score_pairs(t, model, a, b)
        assert len(s_st) - len(np.unique(s_st)) > 0 and len(s_full) - len(np.unique(s_full)) > 0  # ties
        # one score, no preselection: the m best of each tracklet into the other camera
        for m, scoring, s in ((4, st_model, s_st), (2, model, s_full)):
            keep = best_per_camera(t, a, b, s, m)
            got_a, got_b = best_in_windows(t, scoring, rows_c, rows_d, first, last, m)
            np.testing.assert_array_equal(got_a, a[keep])  # the same pairs, in the same order
            np.testing.assert_array_equal(got_b, b[keep])
            assert 0 < keep.sum() < len(a)
        # the 4 best by the space-time terms, then the 2 best of those by the full score
        pre = best_per_camera(t, a, b, s_st, 4)
        keep = best_per_camera(t, a, b, np.where(pre, s_full, -np.inf), 2)
        got_a, got_b = best_in_windows(t, model, rows_c, rows_d, first, last, 2, 4)
        np.testing.assert_array_equal(got_a, a[keep])
        np.testing.assert_array_equal(got_b, b[keep])
        assert (keep != best_per_camera(t, a, b, s_full, 2)).any()  # the preselection mattered
        # a floor (the merge cut): pairs at or below it are never kept, nor take a place
        floor = float(np.median(s_full[pre]))
        keep_f = best_per_camera(t, a, b, np.where(pre & (s_full > floor), s_full, -np.inf), 2)
        got_a, got_b = best_in_windows(t, model, rows_c, rows_d, first, last, 2, 4, floor)
        np.testing.assert_array_equal(got_a, a[keep_f])
        np.testing.assert_array_equal(got_b, b[keep_f])
        assert 0 < keep_f.sum() < keep.sum()
        colocated += int(np.isfinite(colocation_distance(t, a, b)).sum())
        assert len(best_in_windows(t, model, rows_c, rows_d, first, last, 0)[0]) == 0  # none asked, none given
        # a table without ground tracks: co-location says nothing, the rest the same
        bare = replace(t, ground=None)
        keep = best_per_camera(bare, a, b, score_pairs(bare, model, a, b), 2)
        got_a, got_b = best_in_windows(bare, model, rows_c, rows_d, first, last, 2)
        np.testing.assert_array_equal(got_a, a[keep])
        np.testing.assert_array_equal(got_b, b[keep])
    assert colocated > 0  # the co-location term took part


def test_the_space_time_candidates_are_each_camera_pairs_best_once_each():
    from mct.associate.clustering import best_linked_in_time, best_per_camera
    from mct.associate.constraints import linked_in_time_blocks
    from mct.associate.score import score_pairs

    t, arrays, model = scored_linked_table(11, 300)
    want = set()
    for a, b in linked_in_time_blocks(t, arrays):  # every pair, one camera pair at a time
        keep = best_per_camera(t, a, b, score_pairs(t, model, a, b), 2)
        want |= {(min(x, y), max(x, y)) for x, y in zip(a[keep].tolist(), b[keep].tolist())}
    # a preselection wider than any window: the full score's 2 best of each block
    got_a, got_b = best_linked_in_time(t, arrays, model, 2, 1000)
    assert 50 < len(got_a) < len(linked_in_time(t, arrays)[0])  # the selection is not trivial
    assert len(set(zip(got_a.tolist(), got_b.tolist()))) == len(got_a)  # once each
    assert {(min(x, y), max(x, y)) for x, y in zip(got_a.tolist(), got_b.tolist())} == want
    # the one seen first comes first
    first = (t.start_s[got_a] < t.start_s[got_b]) | ((t.start_s[got_a] == t.start_s[got_b]) & (t.end_s[got_a] <= t.end_s[got_b]))
    assert first.all()
    # the space-time preselection narrows each block before the full score
    narrow_a, _ = best_linked_in_time(t, arrays, model, 2, 4)
    assert 0 < len(narrow_a)


def test_pairs_scored_on_threads_are_scored_as_on_one(monkeypatch):
    import mct.associate.score as score
    from mct.associate.constraints import linked_in_time

    t, arrays, model = scored_linked_table(5, 300)
    a, b = linked_in_time(t, arrays)
    one = score.pair_log_lr(t, model, a, b)
    monkeypatch.setattr(score, "PARALLEL_MIN_PAIRS", 10)
    monkeypatch.setattr(score, "compute_threads", lambda: 3)
    np.testing.assert_array_equal(score.pair_log_lr(t, model, a, b), one)
    assert len(a) > 30 and np.isfinite(one).any()
