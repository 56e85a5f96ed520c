"""Fitting travel-time windows from ground truth; `mct fit-topology`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mct.associate.constraints import load_topology
from mct.associate.topology import camera_visits, fit_topology, write_topology
from mct.cli import main
from mct.types import Camera
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
