"""Fitting travel-time windows from ground truth; `mct fit-topology`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from mct.config import load_topology
from mct.associate.table import TrackletTable
from mct.associate.topology import camera_visits, fit_topology, match_gaps, write_topology
from mct.cli import main
from mct.run.pipeline import save_assignment
from mct.track.tracklets import save_tracklets
from mct.types import Camera, GlobalAssignment, Tracklet
from tests.helpers import TinyCamera, write_aicity_tree


def test_camera_visits_split_on_long_gaps():
    cam = Camera("S01", "c001", fps=10.0, time_offset_s=2.0)
    frames = np.array([1, 2, 3, 500, 501, 10, 11])
    ids = np.array([1, 1, 1, 1, 1, 2, 2])
    # id 1: frames 1-3 (2.0-2.2 s) and 500-501 (51.9-52.0 s): two visits; id 2: one visit
    got = [(v, round(s, 2), round(e, 2)) for v, s, e in camera_visits(cam, frames, ids, split_gap_s=10)]
    assert got == [(1, 2.0, 2.2), (1, 51.9, 52.0), (2, 2.9, 3.0)]
    assert camera_visits(cam, np.zeros(0, np.int64), np.zeros(0, np.int64), 10) == []


def test_fit_windows_from_consecutive_visits():
    c1, c2, c3 = (Camera("S01", f"c00{i}") for i in (1, 2, 3))
    # vehicle 1: c001 frames 1-11 (0-1 s), c002 frames 101-111 (10-11 s) -> gap 9 s
    # vehicle 2: c001 frames 1-11, c002 frames 201-211 (20-21 s) -> gap 19 s; then c003 at 25 s
    obs = [
        (c1, np.r_[1:12, 1:12], np.r_[[1] * 11, [2] * 11]),
        (c2, np.r_[101:112, 201:212], np.r_[[1] * 11, [2] * 11]),
        (c3, np.r_[251:261], np.full(10, 2)),
    ]
    topo = fit_topology(obs, margin_s=1.0, margin_frac=0.1, fragment_windows=False, pairs="consecutive")
    t = {(x.src, x.dst): x for x in topo.scenarios["S01"].transitions}
    assert set(t) == {("c001", "c002"), ("c002", "c003")}
    # observed gaps 9 and 19 s: margin max(1, 0.1 * 10) = 1 s
    assert (t["c001", "c002"].min_gap_s, t["c001", "c002"].max_gap_s, t["c001", "c002"].count) == (8.0, 20.0, 2)
    # one gap of 4 s (21 -> 25 s): margin 1 s
    assert (t["c002", "c003"].min_gap_s, t["c002", "c003"].max_gap_s) == (3.0, 5.0)
    assert [(x.src, x.dst) for x in fit_topology(obs, min_count=2, fragment_windows=False).scenarios["S01"].transitions] == [("c001", "c002")]
    # pairs="all": vehicle 2 also gives c001 -> c003 directly, gap 25 - 1 = 24 s
    far = {(x.src, x.dst): x for x in fit_topology(obs, margin_s=1.0, fragment_windows=False).scenarios["S01"].transitions}
    assert set(far) == {("c001", "c002"), ("c002", "c003"), ("c001", "c003")}
    assert (far["c001", "c003"].min_gap_s, far["c001", "c003"].max_gap_s) == (23.0, 25.0)
    with pytest.raises(ValueError, match="pairs must be"):
        fit_topology(obs, pairs="some")
    assert set(fit_topology(obs, scenario_name="*").scenarios) == {"*"}
    assert fit_topology([]).scenarios == {}
    # fragment windows: every camera may link to itself across gaps up to split_gap_s
    frag = [(x.src, x.dst, x.min_gap_s, x.max_gap_s) for x in fit_topology(obs, split_gap_s=7).scenarios["S01"].transitions if x.src == x.dst]
    assert frag == [("c001", "c001", 0.0, 7.0), ("c002", "c002", 0.0, 7.0), ("c003", "c003", 0.0, 7.0)]


def test_written_topology_loads_back(tmp_path: Path):
    c1, c2 = Camera("S01", "c001"), Camera("S01", "c002")
    topo = fit_topology([(c1, np.arange(1, 5), np.ones(4)), (c2, np.arange(100, 105), np.ones(5))])
    path = write_topology(tmp_path / "topo.yaml", topo)
    assert load_topology(path) == topo


def test_cli_fit_topology(tmp_path: Path):
    # c001 at 10 fps from 0 s, c002 at 10 fps from 1.5 s: vehicle 1 leaves c001 at frame 2
    # (0.1 s) and enters c002 at its frame 31 (1.5 + 3.0 = 4.5 s): gap 4.4 s
    cams = (
        TinyCamera("c001", gt=((1, 1, 2, 2, 6, 5), (2, 1, 3, 2, 6, 5)), video=False),
        TinyCamera("c002", time_offset_s=1.5, num_frames=40, gt=((31, 1, 2, 2, 6, 5), (32, 1, 3, 2, 6, 5)), video=False),
    )
    root = write_aicity_tree(tmp_path / "data", cameras=cams)
    out = tmp_path / "topo.yaml"
    result = CliRunner().invoke(main, ["fit-topology", "--data", str(root), "--split", "train", "--out", str(out), "--margin-s", "1"])
    assert result.exit_code == 0, result.output
    assert "3 transitions" in result.output  # c001 -> c002 and two fragment windows
    (t,) = [x for x in load_topology(out).scenarios["S01"].transitions if x.src != x.dst]
    assert (t.src, t.dst) == ("c001", "c002")
    assert t.min_gap_s == pytest.approx(3.4) and t.max_gap_s == pytest.approx(5.4)


def test_fitted_windows_are_labelled():
    c1, c2 = Camera("S01", "c001"), Camera("S01", "c002")
    topo = fit_topology([(c1, np.arange(1, 5), np.ones(4)), (c2, np.arange(100, 105), np.ones(5))])
    assert {t.source for t in topo.scenarios["S01"].transitions} == {"labelled"}


def test_match_gaps_of_one_vehicle_in_three_cameras():
    # rows: vehicle 7 in c001 (0-5 s), c002 (9-12 s), c001 again... (20-22 s) and c003 (30-31 s);
    # vehicle 8 in c002 only (two fragments); row 5 has no global id
    table = TrackletTable.from_arrays(
        [("S01", "c001"), ("S01", "c002"), ("S01", "c003")],
        camera=np.array([0, 1, 0, 2, 1, 1, 2]),
        track_id=np.arange(7),
        start_s=np.array([0.0, 9.0, 20.0, 30.0, 40.0, 50.0, 60.0]),
        end_s=np.array([5.0, 12.0, 22.0, 31.0, 45.0, 55.0, 61.0]),
        features=np.ones((7, 1), np.float32),
    )
    s, a, b, gap = match_gaps(table, np.array([7, 7, 7, 7, 8, 8, -1]))
    got = sorted(zip(a.tolist(), b.tolist(), gap.tolist()))
    # every later visit in another camera, from the earlier one: c001->c002 9-5, c001->c003
    # 30-5 and 30-22, c002->c001 20-12, c002->c003 30-12; vehicle 8 stays in one camera
    assert got == [(0, 1, 4.0), (0, 2, 8.0), (0, 2, 25.0), (1, 0, 8.0), (1, 2, 18.0)]
    assert s.tolist() == [0] * 5
    with pytest.raises(ValueError, match="3 global ids for 7 rows"):
        match_gaps(table, np.array([1, 2, 3]))


def _tracklet(cam: str, tid: int, frames: range) -> Tracklet:
    n = len(frames)
    xyxy = np.tile(np.array([[2.0, 2.0, 6.0, 7.0]], np.float32), (n, 1))
    return Tracklet("S01", cam, tid, np.array(list(frames), np.int64), xyxy, np.full(n, 0.9, np.float32),
                    feature=np.array([1.0, 0.0], np.float32))


def test_cli_fit_topology_from_a_finished_run(tmp_path: Path):
    # a run folder with two cameras; vehicles 1-3 leave c001 at frame 3 (0.2 s) and enter
    # c002 (offset 1.5 s) at frame 11, 21, 31 (2.5, 3.5, 4.5 s): gaps 2.3, 3.3 and 4.3 s
    cams = (TinyCamera("c001", num_frames=40, video=False), TinyCamera("c002", time_offset_s=1.5, num_frames=40, video=False))
    root = write_aicity_tree(tmp_path / "data", cameras=cams)
    run = tmp_path / "run"
    (run / "association").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"dataset": {"root": str(root), "split": "train"}}))
    tracklets = [_tracklet("c001", k, range(1, 4)) for k in (1, 2, 3)]
    tracklets += [_tracklet("c002", k, range(1 + 10 * k, 4 + 10 * k)) for k in (1, 2, 3)]
    for cam in ("c001", "c002"):
        save_tracklets(run / "cameras" / f"S01_{cam}" / "tracklets.npz", [t for t in tracklets if t.camera_id == cam])
    save_assignment(run / "association" / "assignment.csv", GlobalAssignment(
        np.array(["S01"] * 6, object), np.array(["c001"] * 3 + ["c002"] * 3, object),
        np.array([1, 2, 3] * 2, np.int64), np.array([1, 2, 3] * 2, np.int64)))
    result = CliRunner().invoke(main, ["fit-topology", "--from-run", str(run)])
    assert result.exit_code == 0, result.output
    topo = load_topology(run / "association" / "links.yaml")
    t = {(x.src, x.dst): x for x in topo.scenarios["S01"].transitions}
    assert t["c001", "c002"].source == "learned" and t["c001", "c002"].count == 3
    # never narrower than the matched gaps' middle
    assert t["c001", "c002"].min_gap_s <= 2.4 and t["c001", "c002"].max_gap_s >= 4.2
    assert t["c002", "c001"].source == "prior"  # no vehicle went that way
    # one source only
    both = CliRunner().invoke(main, ["fit-topology", "--from-run", str(run), "--data", str(root)])
    assert both.exit_code != 0 and "exactly one of --data and --from-run" in both.output
    scen = CliRunner().invoke(main, ["fit-topology", "--from-run", str(run), "--as-scenario", "*"])
    assert scen.exit_code != 0 and "--scenario and --as-scenario go with --data" in scen.output
    no_out = CliRunner().invoke(main, ["fit-topology", "--data", str(root)])
    assert no_out.exit_code != 0 and "--out is required with --data" in no_out.output
