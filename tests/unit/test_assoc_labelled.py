"""Term weights and the appearance calibration fitted on labelled tracks; the topology file's
``score`` section; `mct fit-topology --from-run RUN --labels`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from mct.associate import associate
from mct.associate.config import AppearanceCalibration, AssociationConfig, ScoreFit, TermWeights, TopologyFile
from mct.associate.labelled import fit_score, fit_term_weights, truth_ids
from mct.associate.score import TERMS, AppearanceModel, ColocationModel, DirectionModel, LinkTable, PairModel, score_pairs, term_breakdown
from mct.associate.links import CameraLinks
from mct.associate.table import TrackletTable
from mct.associate.topology import write_topology
from mct.cli import main
from mct.config import ConfigError, load_topology
from mct.data.mot import read_mot
from mct.run.pipeline import save_assignment
from mct.track.tracklets import save_tracklets
from mct.types import Camera, GlobalAssignment, Tracklet
from tests.helpers import TinyCamera, write_aicity_tree


def test_weights_recover_how_much_each_term_is_worth():
    # labels drawn from sigmoid(-1 + 1.0 app + 0.5 travel + 2.0 direction + 0 colocation):
    # travel time over-confident (its ratio counts half), direction under-confident, and a
    # co-location column that is noise
    rng = np.random.default_rng(0)
    n = 20_000
    x = rng.normal(0, 2, size=(n, 4))
    true_w = np.array([1.0, 0.5, 2.0, 0.0])
    same = rng.random(n) < 1 / (1 + np.exp(-(-1.0 + x @ true_w)))
    w, b = fit_term_weights(x, same)
    assert w == pytest.approx(true_w, abs=0.08)
    assert b == pytest.approx(-1.0, abs=0.08)
    # impossible pairs (-inf) and pairs without a direct link (NaN) are left out, whatever their label
    bad = np.full((500, 4), np.nan)
    bad[:250, 1] = -np.inf
    bad[250:, 0] = 3.0
    w2, _ = fit_term_weights(np.r_[x, bad], np.r_[same, np.ones(500, bool)])
    assert w2 == pytest.approx(w)


def test_weights_are_never_negative_and_a_silent_term_keeps_weight_one():
    rng = np.random.default_rng(1)
    n = 5_000
    x = np.zeros((n, 4))
    x[:, 0] = rng.normal(0, 2, n)
    x[:, 2] = rng.normal(0, 2, n)
    same = rng.random(n) < 1 / (1 + np.exp(-(x[:, 0] - 0.7 * x[:, 2])))  # direction points the wrong way
    w, _ = fit_term_weights(x, same)
    assert w[2] == 0.0  # bounded at 0: a ratio never counts against its own evidence
    assert w[1] == pytest.approx(1.0) and w[3] == pytest.approx(1.0)  # all zeros: the shrinkage keeps 1
    assert w[0] > 0.5  # (below 1: the evidence the clamped term leaves out blurs the labels)


def test_too_few_labelled_pairs_is_an_error_naming_the_counts():
    x = np.ones((30, 4))
    with pytest.raises(ValueError, match="at least 20 labelled pairs of each kind, got 5 same and 25 different"):
        fit_term_weights(x, np.arange(30) < 5)


def test_the_score_is_the_weighted_sum_of_the_terms():
    # two cameras joined by a 20-40 s link, ground tracks in metres so that every term speaks
    h = np.array([[10.0, 0, 100], [0, 10.0, 50], [0, 0, 1]])
    cams = [Camera("S01", "c001", homography=h), Camera("S01", "c002", homography=h)]
    rng = np.random.default_rng(3)
    tracklets = []
    for k in range(12):
        f = rng.normal(size=8).astype(np.float32)
        for c, cam in enumerate(("c001", "c002")):
            first = 1 + 40 * k + c * 300
            xs = np.linspace(100, 400, 30) + 5 * k
            xyxy = np.c_[xs - 10, np.full(30, 140.0), xs + 10, np.full(30, 150.0)].astype(np.float32)
            tracklets.append(Tracklet("S01", cam, k, np.arange(first, first + 30), xyxy, np.ones(30, np.float32), feature=f + 0.1 * c))
    cfg = AssociationConfig()
    table = TrackletTable.from_tracklets(tracklets, cams, cfg)
    links = LinkTable.from_arrays(CameraLinks.from_geometry(cams, table, cfg.links).compile(table))
    a, b = np.triu_indices(len(table), 1)
    app = AppearanceModel(0.2, 0.3, 1.5, 0.3, 0.5, "labels")
    w = np.array([0.5, 1.5, 0.25, 2.0])
    weighted = score_pairs(table, PairModel(app, DirectionModel(2.0), ColocationModel(), links, w), a, b)
    terms = term_breakdown(table, PairModel(app, DirectionModel(2.0), ColocationModel(), links), a, b)
    expected = sum(wt * terms[t] for wt, t in zip(w, TERMS))
    ok = np.isfinite(expected)
    assert ok.sum() > 50 and all(np.abs(terms[t][ok]).max() > 0 for t in TERMS[:3])
    assert weighted[ok] == pytest.approx(expected[ok])
    assert np.array_equal(np.isfinite(weighted), ok)


def _city(seed: int = 7) -> tuple[list[Tracklet], np.ndarray]:
    """30 vehicles drive c001 -> c002 -> c003 (20-50 s a hop), half with a look-alike twin;
    each vehicle's box at its own place in the frame."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(15, 32))
    centres = np.concatenate([centres, centres + 0.25 * rng.normal(size=(15, 32))])
    tracklets, truth = [], []
    for v in range(30):
        t0 = int(rng.integers(1, 3000))
        for c, cam in enumerate(("c001", "c002", "c003")):
            first = t0 + c * int(rng.integers(200, 500))
            f = centres[v] + 0.3 * rng.normal(size=32)
            frames = np.arange(first, first + 41)
            xyxy = np.tile([100.0 * v, 200.0, 100.0 * v + 80, 260.0], (41, 1)).astype(np.float32)
            tracklets.append(Tracklet("S01", cam, v, frames, xyxy, np.full(41, 0.9, np.float32),
                                      feature=(f / np.linalg.norm(f)).astype(np.float32)))
            truth.append(v)
    return tracklets, np.array(truth)


CAMS3 = [Camera("S01", f"c00{i}") for i in (1, 2, 3)]


def test_a_score_fitted_on_a_scenes_labels_is_used_by_the_run():
    tracklets, truth = _city()
    cfg = AssociationConfig()
    details: dict = {}
    associate(tracklets, CAMS3, cfg, details=details)
    table = details["table"]
    a, b, _ = details["pairs"]
    fit = fit_score(table, details["model"], a, b, truth[table.source], fitted_on="the story")
    assert fit.appearance.pos_mean > fit.appearance.neg_mean and fit.fitted_on == "the story"
    assert all(getattr(fit.weights, t) >= 0 for t in TERMS)
    # given back through a topology file, the weights and the calibration are the run's
    used: dict = {}
    associate(tracklets, CAMS3, cfg, TopologyFile(score=fit), details=used)
    m = used["model"]
    assert m.terms.tolist() == pytest.approx([getattr(fit.weights, t) for t in TERMS])
    assert (m.appearance.source, m.appearance.pos_mean) == ("labels", fit.appearance.pos_mean)
    # weights alone: the run fits its own appearance calibration
    own: dict = {}
    associate(tracklets, CAMS3, cfg, TopologyFile(score=ScoreFit(weights=fit.weights)), details=own)
    assert own["model"].appearance.source == "scene"


def test_the_score_section_round_trips_and_bad_values_name_the_key(tmp_path: Path):
    fit = ScoreFit(weights=TermWeights(appearance=0.8, travel_time=0.4),
                   appearance=AppearanceCalibration(neg_mean=0.2, neg_std=0.3, pos_mean=1.1, pos_std=0.3, prior=0.2),
                   fitted_on="runs/x")
    path = write_topology(tmp_path / "t.yaml", TopologyFile(score=fit))
    assert load_topology(path).score == fit
    path.write_text("scenarios: {}\nscore:\n  weights: {appearance: 1.0, speed: 2.0}\n")
    with pytest.raises(ConfigError, match="score.weights.speed"):
        load_topology(path)
    path.write_text("score:\n  weights: {direction: -1.0}\n")
    with pytest.raises(ConfigError, match="score.weights.direction"):
        load_topology(path)
    # a folder: one score section at most
    folder = tmp_path / "topo"
    folder.mkdir()
    for name in ("a.yaml", "b.yaml"):
        (folder / name).write_text("score:\n  weights: {direction: 0.5}\n")
    with pytest.raises(ValueError, match="score: already defined in"):
        load_topology(folder)


def test_tracklets_take_the_gt_id_they_overlap_most(tmp_path: Path):
    gt_file = tmp_path / "gt.txt"
    # id 4 at x 0-10 in frames 1-2, then x 20-30; id 9 at x 50-60, then x 1-11 in frame 3
    gt_file.write_text("1,4,0,0,10,10,1,-1,-1,-1\n2,4,0,0,10,10,1,-1,-1,-1\n3,4,20,0,10,10,1,-1,-1,-1\n"
                       "1,9,50,0,10,10,1,-1,-1,-1\n2,9,50,0,10,10,1,-1,-1,-1\n3,9,1,0,10,10,1,-1,-1,-1\n")
    gt = read_mot(gt_file, "gt")
    box = np.array([[0, 0, 10, 10]] * 3, np.float32)
    on_4 = Tracklet("S01", "c001", 1, np.array([1, 2, 3]), box, np.ones(3, np.float32))
    false = Tracklet("S01", "c001", 2, np.array([1, 2]), np.array([[200, 200, 210, 210]] * 2, np.float32), np.ones(2, np.float32))
    assert truth_ids([on_4, false], gt).tolist() == [4, -1]  # 2 frames on id 4, 1 on id 9


def _labelled_run(tmp_path: Path, gt_cameras: tuple[str, ...] = ("c001", "c002", "c003")) -> Path:
    tracklets, truth = _city()
    cams = []
    for cam in ("c001", "c002", "c003"):
        rows = [(int(f), int(v), int(box[0]), 200, 80, 60) for t, v in zip(tracklets, truth) if t.camera_id == cam
                for f, box in zip(t.frames, t.xyxy)]
        cams.append(TinyCamera(cam, num_frames=5000, video=False, gt=rows if cam in gt_cameras else (), dets=()))
    root = write_aicity_tree(tmp_path / "data", cameras=cams)
    run = tmp_path / "run"
    (run / "association").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"dataset": {"root": str(root), "split": "train"}}))
    for cam in ("c001", "c002", "c003"):
        save_tracklets(run / "cameras" / f"S01_{cam}" / "tracklets.npz", [t for t in tracklets if t.camera_id == cam])
    n = len(tracklets)
    save_assignment(run / "association" / "assignment.csv", GlobalAssignment(
        np.array(["S01"] * n, object), np.array([t.camera_id for t in tracklets], object),
        np.array([t.track_id for t in tracklets], np.int64), truth + 1))
    return run


def test_cli_fit_topology_labels_writes_the_score_section(tmp_path: Path):
    run = _labelled_run(tmp_path)
    out = tmp_path / "fitted.yaml"
    result = CliRunner().invoke(main, ["fit-topology", "--from-run", str(run), "--labels", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "term weights: appearance" in result.output
    topo = load_topology(out)
    assert topo.score is not None and topo.score.weights is not None and topo.score.appearance is not None
    assert topo.score.appearance.pos_mean > topo.score.appearance.neg_mean
    assert str(run) in topo.score.fitted_on
    assert {x.src for x in topo.scenarios["S01"].transitions} == {"c001", "c002", "c003"}  # and the run's links
    # --labels needs a run
    bad = CliRunner().invoke(main, ["fit-topology", "--data", str(tmp_path / "data"), "--out", str(out), "--labels"])
    assert bad.exit_code != 0 and "--labels goes with --from-run" in bad.output


def test_cli_fit_topology_labels_names_a_camera_without_ground_truth(tmp_path: Path):
    run = _labelled_run(tmp_path, gt_cameras=("c001", "c002"))
    result = CliRunner().invoke(main, ["fit-topology", "--from-run", str(run), "--labels"])
    assert result.exit_code != 0
    assert "no gt/gt.txt for camera(s) S01/c003" in result.output
