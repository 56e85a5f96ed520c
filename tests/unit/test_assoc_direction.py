"""Ground-plane motion of tracklets and the direction-of-travel rule (association.use_direction)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mct.associate.config import AssociationConfig
from mct.associate.constraints import LINK, NO_LINK, Constraints
from mct.associate.motion import METRES_PER_DEGREE, GroundMotion, ground_points
from mct.associate.table import TrackletTable
from mct.types import Camera, Tracklet

# ground (x, y) metres -> pixels: u = 10 x + 100, v = 10 y + 50 (10 px per metre)
H_METRES = np.array([[10.0, 0, 100], [0, 10.0, 50], [0, 0, 1]])


def camera(cid: str, homography=H_METRES, fps: float = 10.0) -> Camera:
    return Camera("S01", cid, fps=fps, frame_size=(1000, 600), homography=homography)


def drive(cid: str, tid: int, foot_xy_px: list[tuple[float, float]], first_frame: int = 1) -> Tracklet:
    """A tracklet whose boxes (20 x 10 px) stand on the given bottom-centre pixels, one per frame."""
    foot = np.asarray(foot_xy_px, np.float32)
    xyxy = np.c_[foot[:, 0] - 10, foot[:, 1] - 10, foot[:, 0] + 10, foot[:, 1]].astype(np.float32)
    n = len(foot)
    f = np.ones(4, np.float32) / 2
    return Tracklet("S01", cid, tid, np.arange(first_frame, first_frame + n), xyxy, np.ones(n, np.float32), feature=f)


def test_ground_points_invert_the_homography_and_give_nan_beyond_the_horizon():
    assert np.allclose(ground_points(H_METRES, np.array([[100.0, 50.0], [120.0, 80.0]])), [[0, 0], [2, 3]])
    # ground (x, y) -> pixels (x / y, 1 / y): the horizon is the image row v = 0
    horizon = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])
    out = ground_points(horizon, np.array([[5.0, 0.0], [4.0, 0.5]]))
    assert np.isnan(out[0]).all() and np.allclose(out[1], [8, 2])


def test_motion_positions_headings_and_stationary_vehicles():
    cam = camera("c001")
    # 20 frames at 10 fps moving +x at 1 px/frame = 0.1 m/frame = 1 m/s ... too slow for 1.5 m/s
    slow = drive("c001", 1, [(100 + i, 50) for i in range(20)])
    # 5 px/frame = 5 m/s east, then it stops for its last 12 frames
    stops = drive("c001", 2, [(100 + 5 * min(i, 8), 50) for i in range(20)])
    m = GroundMotion(heading_window_s=1.0, min_moving_speed_mps=1.5, units="metres")
    out = m(slow, cam)
    assert np.allclose(out[0], [0, 0]) and np.allclose(out[1], [1.9, 0])  # entry and exit, metres
    assert np.all(out[2:] == 0)  # 1 m/s: no heading
    out = m(stops, cam)
    assert np.allclose(out[2], [1, 0])  # heading east at entry
    assert np.all(out[3] == 0)  # stationary at exit: unknown
    # one-box tracklet: positions known, headings unknown
    single = m(drive("c001", 3, [(150, 60)]), cam)
    assert np.allclose(single[:2], [[5, 1], [5, 1]]) and np.all(single[2:] == 0)
    # no homography: everything unknown
    none = m(slow, Camera("S01", "c009", fps=10.0))
    assert np.isnan(none[:2]).all() and np.all(none[2:] == 0)


def test_gps_degree_homographies_are_scaled_to_metres():
    # 1e-5 degree per pixel: the whole view spans 0.01 degree, so "auto" takes it as degrees
    deg = np.linalg.inv(np.array([[1e-5, 0, -90.7], [0, 1e-5, 42.5], [0, 0, 1]]))
    cam = camera("c001", deg)
    car = drive("c001", 1, [(100 + 10 * i, 300) for i in range(11)])  # 10 px/frame = 1e-4 deg/frame
    out = GroundMotion(units="auto")(car, cam)
    step = out[1] - out[0]
    assert step == pytest.approx([100 * 1e-5 * METRES_PER_DEGREE, 0], rel=1e-6)  # 111 m in 1 s
    assert np.allclose(out[3], [1, 0])
    assert GroundMotion(units="metres").scale(cam) == 1.0
    assert GroundMotion(units="auto").scale(camera("c002")) == 1.0  # a metre homography stays metres


def table_of(tracklets: list[Tracklet], cameras: list[Camera], **cfg) -> tuple[TrackletTable, Constraints]:
    acfg = AssociationConfig(use_direction=True, **cfg)
    t = TrackletTable.from_tracklets(tracklets, cameras, acfg)
    return t, Constraints.build(t, None, acfg)


def test_a_link_must_move_the_vehicle_forward():
    # c002 looks at the road 100 m further east (same pixel layout, ground x shifted by 100 m)
    h_east = H_METRES @ np.array([[1.0, 0, -100], [0, 1, 0], [0, 0, 1]])
    c1, c2 = camera("c001"), camera("c002", h_east)
    east_1 = drive("c001", 1, [(100 + 10 * i, 50) for i in range(20)])  # 0 -> 19 m, eastbound
    west_1 = drive("c001", 2, [(290 - 10 * i, 100) for i in range(20)])  # 19 -> 0 m, westbound
    east_2 = drive("c002", 3, [(100 + 10 * i, 50) for i in range(20)], first_frame=150)  # 100 -> 119 m, later
    west_2 = drive("c002", 4, [(290 - 10 * i, 100) for i in range(20)], first_frame=150)  # westbound in c002, later
    t, c = table_of([east_1, west_1, east_2, west_2], [c1, c2])
    i, j = np.array([0, 1, 0, 1]), np.array([2, 2, 3, 3])
    # eastbound in c001 then eastbound further east: forward. Westbound in c001 then appearing
    # further east later: backwards. A westbound car seen in c002 (east) and later... here it is
    # the c001 tracklet that ends first, so c002's westbound car would have to drive east to it.
    assert c.direction_ok(t, i, j).tolist() == [True, False, False, False]
    assert c.status(t, i, j).tolist() == [LINK, NO_LINK, NO_LINK, NO_LINK]
    off = Constraints.build(t, None, AssociationConfig(use_direction=False))
    assert off.status(t, i, j).tolist() == [LINK] * 4
    # not applied when the constraints are off (the appearance-only ablation)
    assert Constraints.build(t, None, AssociationConfig(use_direction=True, use_constraints=False)).use_direction is False


def test_short_steps_unknown_headings_and_missing_homographies_pass():
    c1 = camera("c001")
    east = drive("c001", 1, [(100 + 10 * i, 50) for i in range(20)])  # ends at 19 m
    # re-appears 5 m behind its exit point (less than min_direction_distance_m = 10)
    back_a_bit = drive("c001", 2, [(240 + 10 * i, 50) for i in range(10)], first_frame=40)
    # parked (no heading) 19 m behind the eastbound one's exit point, 3 m to the side
    parked = drive("c001", 3, [(100, 80)] * 10, first_frame=60)
    t, c = table_of([east, back_a_bit, parked], [c1])
    assert c.direction_ok(t, np.array([0, 0]), np.array([1, 2])).tolist() == [True, False]
    # the parked one has no heading, but the eastbound one does: 19 m -> 0 m is backwards for it;
    # a camera without a homography: positions unknown, nothing to judge
    no_h = Camera("S01", "c009", fps=10.0)
    far = drive("c009", 4, [(100 + 10 * i, 50) for i in range(20)], first_frame=100)
    t, c = table_of([east, far], [c1, no_h])
    assert c.direction_ok(t, np.array([0]), np.array([1])).tolist() == [True]  # unknown position


def test_overlapping_views_need_agreeing_headings():
    c1, c2 = camera("c001"), camera("c002")
    east = drive("c001", 1, [(100 + 10 * i, 50) for i in range(30)])
    east_too = drive("c002", 2, [(150 + 10 * i, 60) for i in range(30)], first_frame=5)
    west = drive("c002", 3, [(500 - 10 * i, 60) for i in range(30)], first_frame=5)
    turning = drive("c002", 4, [(150, 60 + 10 * i) for i in range(30)], first_frame=5)  # heads +y: 90 degrees
    t, c = table_of([east, east_too, west, turning], [c1, c2])
    ok = c.direction_ok(t, np.array([0, 0, 0]), np.array([1, 2, 3]))
    assert ok.tolist() == [True, False, True]  # a 90-degree turn is within 110 degrees
    t, strict = table_of([east, east_too, west, turning], [c1, c2], max_overlap_heading_change_deg=45)
    assert strict.direction_ok(t, np.array([0, 0, 0]), np.array([1, 2, 3])).tolist() == [True, False, False]


def test_vehicles_standing_in_overlapping_views_pass_the_window_lower_bound():
    from mct.associate.config import ScenarioTopology, TopologyFile, Transition
    from mct.associate.constraints import standing_still

    # c001 and c002 overlap: moving traffic was seen in both for at most 5 s (gap >= -5)
    topo = TopologyFile(scenarios={"S01": ScenarioTopology(transitions=[
        Transition(src="c001", dst="c002", min_gap_s=-5.0, max_gap_s=3.0),
        Transition(src="c002", dst="c003", min_gap_s=2.0, max_gap_s=20.0),
    ])})
    c1, c2, c3 = camera("c001"), camera("c002"), camera("c003")
    # frames 1-300 (30 s): a car queued in both views, creeping 2 m in c001 (0.07 m/s)
    queued_1 = drive("c001", 1, [(300 + 20 * i / 299, 200) for i in range(300)])
    queued_2 = drive("c002", 2, [(400, 220)] * 300)
    # frames 1-300: a car that drives 60 m in c002 (2 m/s, faster than 1.5 m/s)
    driving_2 = drive("c002", 3, [(100 + 2 * i, 300) for i in range(300)])
    # c003 sees nothing of c001/c002 at once (no negative window): a parked car there
    parked_3 = drive("c003", 4, [(400, 220)] * 300)
    # a one-frame "tracklet": too short to say it stands still (under heading_window_s)
    blip_2 = drive("c002", 5, [(400, 220)])
    tracklets, cams = [queued_1, queued_2, driving_2, parked_3, blip_2], [c1, c2, c3]

    cfg = dict(use_direction=False, topology="")
    acfg = AssociationConfig(stationary_overlap=True, **cfg)
    t = TrackletTable.from_tracklets(tracklets, cams, acfg)
    assert standing_still(t, 1.5, 1.0).tolist() == [True, True, False, True, False]
    i, j = np.array([0, 0, 1, 0]), np.array([1, 2, 3, 4])
    on = Constraints.build(t, topo, acfg).status(t, i, j)
    # queued in both views for 30 s (gap -30 < -5): LINK with the rule; the driving car is
    # held to the fitted window; c002 -> c003 has no negative window to relax; a blip is
    # too short to be judged standing
    assert on.tolist() == [LINK, NO_LINK, NO_LINK, NO_LINK]
    off_cfg = AssociationConfig(stationary_overlap=False, **cfg)
    t_off = TrackletTable.from_tracklets(tracklets, cams, off_cfg)
    assert Constraints.build(t_off, topo, off_cfg).status(t_off, i, j).tolist() == [NO_LINK] * 4
    # the upper bound still holds: the c002 car standing from frame 400 on starts 7 s after
    # the c001 one ends (window max 3 s), so it is no overlap and no link
    late_2 = drive("c002", 6, [(400, 220)] * 100, first_frame=371)
    t2 = TrackletTable.from_tracklets([queued_1, late_2], cams, acfg)
    assert Constraints.build(t2, topo, acfg).status(t2, np.array([0]), np.array([1])).tolist() == [NO_LINK]


def test_overlap_distance_measures_tracks_while_both_are_seen():
    from mct.associate.motion import GroundTracks, overlap_distance

    cams = [camera("c001"), camera("c002"), Camera("S01", "c003", fps=10.0)]
    m = GroundMotion(units="metres")
    # 40 frames at 10 fps: east at 10 m/s on y = 0; c002 sees the same road 3 m to the side
    # at half the frame rate (every other frame); c002 also sees a car 1 s later, overlapping
    # 1.5 s; c003 has no homography
    a = drive("c001", 1, [(100 + 10 * i, 50) for i in range(40)])
    b = drive("c002", 2, [(100 + 10 * i, 80) for i in range(0, 40, 2)])
    b = replace(b, frames=np.arange(1, 41, 2))
    late = drive("c002", 3, [(100 + 10 * i, 50) for i in range(25, 50)], first_frame=26)
    blind = drive("c003", 4, [(100 + 10 * i, 50) for i in range(40)])
    rows = [(cam.frame_time(t.frames), m.track(t, cam)) for t, cam in zip([a, b, late, blind], [cams[0], cams[1], cams[1], cams[2]])]
    tracks = GroundTracks.from_rows(rows)
    assert len(tracks) == 4 and tracks.row(1)[0].tolist() == pytest.approx([0.2 * i for i in range(20)])
    d = overlap_distance(tracks, np.array([0, 1, 0, 0, 0]), np.array([1, 0, 2, 2, 3]), 2.0)
    assert d[:2] == pytest.approx([3.0, 3.0])  # b interpolated at a's times and back
    assert np.isnan(d[2])  # frames 26-40: seen together 1.4 s < 2 s
    assert overlap_distance(tracks, np.array([0]), np.array([2]), 1.0) == pytest.approx([0.0])
    assert np.isnan(d[4])  # no ground position without a homography
    assert overlap_distance(tracks, np.zeros(0, int), np.zeros(0, int), 2.0).shape == (0,)
    # a row without points (never seen) is never together with anything
    with_empty = GroundTracks.from_rows(rows[:1] + [(np.zeros(0), np.zeros((0, 2)))])
    assert np.isnan(overlap_distance(with_empty, np.array([0, 1]), np.array([1, 0]), 0.0)).all()


def test_colocated_tracklets_merge_at_their_own_threshold():
    from mct.associate import associate

    def feature(deg: float) -> np.ndarray:
        return np.array([np.cos(np.radians(deg)), np.sin(np.radians(deg)), 0, 0], np.float32)

    cams = [camera("c001"), camera("c002"), camera("c003")]
    road = [(100 + 10 * i, 50) for i in range(40)]  # east at 10 m/s, frames 1-40
    a = replace(drive("c001", 1, road), feature=feature(0))
    # c002 sees it 3 m to the side (the box bottom is another point of the car), looking
    # unlike c001's view: cosine 0.35, under min_similarity
    b = replace(drive("c002", 1, [(u, v + 30) for u, v in road]), feature=feature(69.5))
    # c003 at the same time sees another car 20 m away, as alike to a as b is
    c = replace(drive("c003", 1, [(u, v + 200) for u, v in road]), feature=feature(-69.5))
    base = dict(min_similarity=0.5, use_direction=False, topology="")
    off = associate([a, b, c], cams, AssociationConfig(**base))
    on = associate([a, b, c], cams, AssociationConfig(colocation_max_m=5.0, colocation_min_similarity=0.3, **base))
    ids = lambda g: [g.global_id("S01", cid, 1) for cid in ("c001", "c002", "c003")]  # noqa: E731
    assert len(set(ids(off))) == 3
    g_on = ids(on)
    assert g_on[0] == g_on[1] and g_on[2] != g_on[0]
    # co-located but below colocation_min_similarity: apart
    low = associate([a, b, c], cams, AssociationConfig(colocation_max_m=5.0, colocation_min_similarity=0.4, **base))
    assert len(set(ids(low))) == 3
    # seen together for less than colocation_min_overlap_s: apart
    short = associate([a, b, c], cams, AssociationConfig(colocation_max_m=5.0, colocation_min_overlap_s=5.0, **base))
    assert len(set(ids(short))) == 3


def test_ground_tracks_are_kept_only_with_colocation_on():
    cams = [camera("c001"), camera("c002", fps=5.0)]
    a = drive("c001", 1, [(100 + 10 * i, 50) for i in range(10)], first_frame=3)
    b = drive("c002", 1, [(100, 60)] * 4)
    off = TrackletTable.from_tracklets([a, b], cams, AssociationConfig(use_direction=True, topology=""))
    assert off.ground is None  # no memory spent on tracks when the cue is off
    on = TrackletTable.from_tracklets([a, b], cams, AssociationConfig(colocation_max_m=5.0, topology=""))
    assert len(on.ground) == 2
    times, xy = on.ground.row(0)
    assert times.tolist() == pytest.approx([0.2 + 0.1 * i for i in range(10)])  # frame 3 at 10 fps
    assert np.allclose(xy, [[i, 0] for i in range(10)])
    times, xy = on.ground.row(1)
    assert times.tolist() == pytest.approx([0.0, 0.2, 0.4, 0.6]) and np.allclose(xy, [[0, 1]] * 4)
