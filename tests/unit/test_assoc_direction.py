"""Ground-plane motion of tracklets: positions, headings, ground tracks (the direction and
co-location terms of the pair score read them; the terms themselves: test_assoc_score.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mct.associate.config import AssociationConfig
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


def test_ground_tracks_are_kept_only_with_the_colocation_term():
    cams = [camera("c001"), camera("c002", fps=5.0)]
    a = drive("c001", 1, [(100 + 10 * i, 50) for i in range(10)], first_frame=3)
    b = drive("c002", 1, [(100, 60)] * 4)
    off = TrackletTable.from_tracklets([a, b], cams, AssociationConfig(terms=("appearance", "direction")))
    assert off.ground is None  # no memory spent on tracks when the term is off
    on = TrackletTable.from_tracklets([a, b], cams, AssociationConfig())
    assert len(on.ground) == 2
    times, xy = on.ground.row(0)
    assert times.tolist() == pytest.approx([0.2 + 0.1 * i for i in range(10)])  # frame 3 at 10 fps
    assert np.allclose(xy, [[i, 0] for i in range(10)])
    times, xy = on.ground.row(1)
    assert times.tolist() == pytest.approx([0.0, 0.2, 0.4, 0.6]) and np.allclose(xy, [[0, 1]] * 4)
