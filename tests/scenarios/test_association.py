"""Cross-camera association stories: hand-built tracklets on a known clock.

All cameras run at 10 fps with time offset 0 unless a story says otherwise, so frame f is
at (f - 1) / 10 seconds. Features are unit vectors; "look-alike" vehicles have features
as close to a vehicle's other views as its own are. Scenes this small are too small to fit the
appearance calibration, so the generic one applies (even odds at cosine 0.52).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mct.associate import associate, write_submission_rows
from mct.associate.config import AssociationConfig, ScenarioTopology, TopologyFile, Transition
from mct.data.submission import read_submission, write_submission
from mct.evaluate.mtmc import evaluate_mtmc
from mct.types import Camera, GlobalAssignment, Tracklet

CAMS = [Camera("S01", f"c00{i}") for i in (1, 2, 3)]


def unit(*values: float, dim: int = 8) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    v[: len(values)] = values
    return v / np.linalg.norm(v)


def tracklet(cam: str, tid: int, first: int, last: int, feature: np.ndarray, scenario: str = "S01", x: float = 100.0) -> Tracklet:
    frames = np.arange(first, last + 1)
    xyxy = np.tile([x, 200.0, x + 80.0, 260.0], (len(frames), 1))
    return Tracklet(scenario, cam, tid, frames, xyxy, np.full(len(frames), 0.9), feature=feature)


def chain_topology(window: tuple[float, float] = (10.0, 60.0)) -> TopologyFile:
    """c001 -> c002 -> c003, each hop 10-60 s."""
    lo, hi = window
    return TopologyFile(
        scenarios={
            "S01": ScenarioTopology(
                transitions=[
                    Transition(src="c001", dst="c002", min_gap_s=lo, max_gap_s=hi),
                    Transition(src="c002", dst="c003", min_gap_s=lo, max_gap_s=hi),
                ]
            )
        }
    )


@pytest.mark.parametrize("with_topology", [True, False])
def test_vehicle_seen_by_three_cameras_becomes_one_global_id(with_topology):
    car, other = unit(1, 0.2), unit(0, 1)
    tracklets = [
        tracklet("c001", 7, 1, 50, car + 0.05 * unit(0, 0, 1)),  # 0.0-4.9 s in c001
        tracklet("c002", 3, 300, 350, car + 0.05 * unit(0, 0, 0, 1)),  # 29.9-34.9 s: 25 s later in c002
        tracklet("c003", 9, 700, 760, car),  # 69.9-75.9 s: 35 s later in c003
        tracklet("c002", 4, 300, 350, other),  # another vehicle in c002 at the same time
    ]
    topo = chain_topology() if with_topology else None
    result = associate(tracklets, CAMS, AssociationConfig(), topology=topo)
    ids = [result.global_id("S01", c, t) for c, t in (("c001", 7), ("c002", 3), ("c003", 9), ("c002", 4))]
    assert ids[0] == ids[1] == ids[2]
    assert ids[3] != ids[0]
    assert sorted(set(result.global_ids.tolist())) == [1, 2]


def test_look_alikes_are_kept_apart_by_the_travel_time_window():
    # car A and its look-alike are equally like A's first view (cosine 0.6 each): only
    # travel time can tell which c002 tracklet is car A
    car, seen_again, twin = unit(1, 0, 0), unit(0.6, 0.8, 0), unit(0.6, -0.8, 0)
    tracklets = [
        tracklet("c001", 1, 1, 50, car),  # car A in c001 at 0-4.9 s
        tracklet("c002", 2, 3000, 3050, twin),  # look-alike in c002 at 300 s: 295 s after A left c001
        tracklet("c002", 1, 300, 350, seen_again),  # car A in c002 25 s later: inside the 10-60 s window
    ]
    cfg = AssociationConfig()
    with_time = associate(tracklets, CAMS, cfg, topology=chain_topology())
    assert with_time.global_id("S01", "c001", 1) == with_time.global_id("S01", "c002", 1)
    assert with_time.global_id("S01", "c002", 2) != with_time.global_id("S01", "c001", 1)
    # swap the times of the two c002 views: car A now goes with the other one (time decides)
    swapped = [tracklets[0], tracklet("c002", 2, 300, 350, twin), tracklet("c002", 1, 3000, 3050, seen_again)]
    by_time = associate(swapped, CAMS, cfg, topology=chain_topology())
    assert by_time.global_id("S01", "c001", 1) == by_time.global_id("S01", "c002", 2)
    assert by_time.global_id("S01", "c002", 1) != by_time.global_id("S01", "c001", 1)


def test_two_tracklets_of_one_camera_at_the_same_time_are_never_merged():
    car = unit(1, 0.3)
    tracklets = [
        tracklet("c001", 1, 1, 40, car, x=100),  # c001 frames 1-40
        tracklet("c001", 2, 20, 60, car, x=600),  # c001 frames 20-60, identical feature, overlaps 20-40
        tracklet("c002", 5, 400, 450, car),  # c002 much later: could glue both together
    ]
    for terms in (AssociationConfig().terms, ("appearance",)):
        cfg = AssociationConfig(terms=terms)
        result = associate(tracklets, CAMS, cfg)
        assert result.global_id("S01", "c001", 1) != result.global_id("S01", "c001", 2)


def test_camera_offsets_and_fps_put_tracklets_on_one_clock():
    # the two views are alike (cosine 0.6) but not enough to merge against the travel time
    cams = [Camera("S01", "c001", fps=10.0), Camera("S01", "c002", fps=8.0, time_offset_s=100.0)]
    tracklets = [
        tracklet("c001", 1, 1, 11, unit(1, 0)),  # c001: 0-1 s
        tracklet("c002", 1, 1, 9, unit(0.6, 0.8)),  # c002 frame 1 is at 100 s on the scenario clock: gap 99 s
    ]
    topo = TopologyFile(
        scenarios={"S01": ScenarioTopology(transitions=[Transition(src="c001", dst="c002", min_gap_s=90, max_gap_s=110)])}
    )
    linked = associate(tracklets, cams, AssociationConfig(), topology=topo)
    assert linked.global_id("S01", "c001", 1) == linked.global_id("S01", "c002", 1)
    # without the offset the gap would be -1 s: outside the window
    cams_no_offset = [cams[0], Camera("S01", "c002", fps=8.0)]
    apart = associate(tracklets, cams_no_offset, AssociationConfig(), topology=topo)
    assert apart.global_id("S01", "c001", 1) != apart.global_id("S01", "c002", 1)


def test_scenarios_never_share_a_global_id():
    car = unit(1)
    cams = [Camera("S01", "c001"), Camera("S02", "c001")]
    tracklets = [tracklet("c001", 1, 1, 20, car, scenario="S01"), tracklet("c001", 1, 100, 120, car, scenario="S02")]
    result = associate(tracklets, cams, AssociationConfig())
    assert result.global_id("S01", "c001", 1) != result.global_id("S02", "c001", 1)


def test_short_or_weak_tracklets_get_no_global_id():
    car = unit(1)
    weak = Tracklet("S01", "c002", 2, np.arange(1, 11), np.tile([0, 0, 10, 10], (10, 1)), np.full(10, 0.1), feature=car)
    tracklets = [tracklet("c001", 1, 1, 2, car), tracklet("c001", 3, 100, 150, car), weak]
    result = associate(tracklets, CAMS, AssociationConfig(min_tracklet_frames=3, min_tracklet_mean_score=0.5))
    assert result.global_id("S01", "c001", 1) is None  # 2 frames < 3
    assert result.global_id("S01", "c002", 2) is None  # mean score 0.1 < 0.5
    assert result.global_id("S01", "c001", 3) == 1


def test_empty_input():
    result = associate([], CAMS, AssociationConfig())
    assert len(result) == 0
    assert len(write_submission_rows([], result)) == 0


def test_unknown_camera_and_missing_feature_are_errors():
    with pytest.raises(ValueError, match=r"camera \(S01, c009\) is not among the cameras"):
        associate([tracklet("c009", 1, 1, 5, unit(1))], CAMS, AssociationConfig())
    no_feature = Tracklet("S01", "c001", 4, np.arange(1, 4), np.zeros((3, 4)), np.ones(3))
    with pytest.raises(ValueError, match=r"\('S01', 'c001', 4\): has no appearance feature"):
        associate([no_feature], CAMS, AssociationConfig())


def test_golden_synthetic_city_on_a_fixed_seed():
    """30 vehicles drive c001 -> c002 -> c003; 10 look-alike pairs; a fixed seed."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(15, 32))
    centres = np.concatenate([centres, centres + 0.25 * rng.normal(size=(15, 32))])  # vehicles 15-29 look like 0-14
    tracklets, truth = [], []
    for v in range(30):
        t0 = int(rng.integers(1, 3000))
        for c, cam in enumerate(("c001", "c002", "c003")):
            first = t0 + c * int(rng.integers(200, 500))  # 20-50 s per hop
            f = centres[v] + 0.3 * rng.normal(size=32)
            tracklets.append(tracklet(cam, v, first, first + 40, (f / np.linalg.norm(f)).astype(np.float32)))
            truth.append(v)
    result = associate(tracklets, CAMS, AssociationConfig(), topology=chain_topology((15.0, 55.0)))
    labels = np.array([result.global_id(t.scenario, t.camera_id, t.track_id) for t in tracklets])
    pure = sum(len(set(np.array(truth)[labels == g])) == 1 for g in np.unique(labels))
    assert (len(np.unique(labels)), pure) == (GOLDEN_IDS, GOLDEN_PURE)


#: measured on the pair model of issue 19 (seed 7) with the cut on the likelihood ratio (no
#: candidate prior): 25 ids for 30 vehicles, 21 of them pure (26 and 23 with the prior, whose
#: caution suits this world of twins; the runs of docs/association.md gain without it)
#: (issue 10's rules with min_similarity 0.6 chosen for this world: 36 and 35). Half the
#: vehicles here have a twin as alike as their own views (noise 0.25 vs 0.3), and a scene
#: of 90 tracklets fits its appearance calibration on 47 known-different pairs, which hold
#: no twins: the same-vehicle component takes the twins in. A change here means
#: association behaves differently: check it is for the better.
GOLDEN_IDS, GOLDEN_PURE = 25, 21


def test_submission_round_trips_through_the_evaluator(tmp_path: Path):
    car_a, car_b = unit(1, 0.1), unit(0.1, 1)
    tracklets = [
        tracklet("c001", 1, 1, 20, car_a, x=100),  # car A in c001
        tracklet("c002", 1, 300, 320, car_a, x=100),  # car A in c002, 30 s later
        tracklet("c001", 2, 5, 25, car_b, x=500),  # car B in c001
        tracklet("c002", 2, 310, 330, car_b, x=500),  # car B in c002
    ]
    assignment = associate(tracklets, CAMS, AssociationConfig(), topology=chain_topology())
    rows = write_submission_rows(tracklets, assignment)
    pred = write_submission(tmp_path / "track1.txt", rows)
    back = read_submission(pred)
    assert back.to_array().tolist() == rows.to_array().tolist()
    assert set(back.camera.tolist()) == {1, 2} and len(back) == 20 + 21 * 3
    # ground truth: the same boxes with the true ids 11 (A) and 12 (B)
    gt_arr = rows.to_array().astype(np.int64)
    gt_arr[:, 1] = np.where(gt_arr[:, 3] == 100, 11, 12)
    gt = write_submission(tmp_path / "gt.txt", gt_arr)
    result = evaluate_mtmc(gt, pred)
    assert result.idf1 == pytest.approx(1.0)
    # swapping car B's ids in one camera must cost IDF1: the test can fail
    bad = rows.to_array().astype(np.int64)
    swap = (bad[:, 0] == 2) & (bad[:, 3] == 500)
    bad[swap, 1] = bad[:, 1].max() + 1
    worse = evaluate_mtmc(gt, write_submission(tmp_path / "bad.txt", bad))
    assert worse.idf1 < 0.9


def test_handover_fragments_of_one_camera_join_one_id_and_write_one_box_per_frame():
    # Story: car A crosses c001 (frames 1-40); its track is lost and a new one starts on it
    # at frame 38, so the two fragments share frames 38-40 (0.2 s). It then enters c002.
    car = unit(1, 0.1)
    first, second = tracklet("c001", 1, 1, 40, car, x=100), tracklet("c001", 2, 38, 80, car, x=104)
    second.scores[:3] = 0.5  # the new track's first (tentative) boxes score lower
    later = tracklet("c002", 5, 400, 440, car)
    tracklets = [first, second, later]
    topo = chain_topology()
    topo.scenarios["S01"].transitions.append(Transition(src="c001", dst="c001", min_gap_s=0, max_gap_s=10))

    def ids(cfg: AssociationConfig) -> tuple[list[int | None], GlobalAssignment]:
        result = associate(tracklets, CAMS, cfg, topology=topo)
        return [result.global_id(t.scenario, t.camera_id, t.track_id) for t in tracklets], result

    (strict, _), (loose, result) = ids(AssociationConfig(same_camera_max_overlap_s=0)), ids(
        AssociationConfig(same_camera_max_overlap_s=0.3)
    )
    assert strict[0] != strict[1]  # the reference: overlapping tracklets of one camera are two vehicles
    assert len(set(loose)) == 1  # both fragments and the c002 view: one vehicle
    assert len(set(ids(AssociationConfig(same_camera_max_overlap_s=0.1))[0])) > 1  # 0.2 s > 0.1
    rows = write_submission_rows(tracklets, result).to_array()
    c001 = rows[rows[:, 0] == 1]
    assert c001[:, 2].tolist() == list(range(1, 81))  # one box per frame
    shared = c001[(c001[:, 2] >= 38) & (c001[:, 2] <= 40)]
    assert shared[:, 3].tolist() == [100, 100, 100]  # the higher-scoring box (the old track's)


@pytest.mark.parametrize("space_time_candidates", [True, False])
def test_a_view_that_ranks_behind_look_alikes_is_still_found_through_the_link(monkeypatch, space_time_candidates):
    # A weak re-ID model: car A's view in c002 (cosine 0.6 to A) ranks behind A's look-alikes
    # in c001 (0.9), and A ranks behind the c002 view's own look-alikes (0.9): with k = 2
    # neighbours neither is in the other's list. The link c001 -> c002 (10-60 s) vouches for
    # the pair. (Which look-alike joins which is left to the model: with no calibration a
    # cosine of 0.9 in one camera reads as the same vehicle.)
    import mct.associate as assoc

    if not space_time_candidates:
        monkeypatch.setattr(assoc, "SPACE_TIME_BEST", 0)
    e = np.eye(8, dtype=np.float32)
    car = e[0]
    view = 0.6 * e[0] + 0.8 * e[1]
    side = np.sqrt(1 - 0.9**2)
    tracklets = [
        tracklet("c001", 1, 1, 50, car),  # car A, 0-4.9 s
        tracklet("c001", 2, 151, 200, 0.9 * car + side * e[2]),  # A's look-alikes in c001, side by side at 15-20 s
        tracklet("c001", 3, 151, 200, 0.9 * car + side * e[3]),
        tracklet("c002", 1, 300, 350, view),  # car A in c002: 25 s after it left c001
        tracklet("c002", 2, 400, 450, 0.9 * view + side * e[4]),  # the view's look-alikes, side by side at 40-45 s
        tracklet("c002", 3, 400, 450, 0.9 * view + side * e[5]),
    ]
    result = associate(tracklets, CAMS, AssociationConfig(k=2), topology=chain_topology())
    same = result.global_id("S01", "c001", 1) == result.global_id("S01", "c002", 1)
    assert same == space_time_candidates
