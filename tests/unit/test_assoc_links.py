"""Camera links (mct/associate/links.py): prior windows from geometry, learned and file links.

The world of these stories: a straight road along the ground x axis; each camera looks
straight down on a 64 m x 36 m stretch of it (640 x 360 pixels, 10 pixels per metre), so
its homography is affine and simple to reason about. Vehicles drive along +x at y = 18 m.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

from mct.associate.config import LinksConfig, ScenarioTopology, TopologyFile, Transition
from mct.config import load_topology
from mct.associate.links import (
    OUTLIER_RATE,
    SOURCE_FILE,
    SOURCE_LEARNED,
    SOURCE_PRIOR,
    CameraLinks,
    Link,
)
from mct.associate.motion import METRES_PER_DEGREE
from mct.associate.table import TrackletTable
from mct.associate.topology import write_topology
from mct.types import Camera

PX_PER_M = 10.0
W, H = 640, 360


def down_camera(cam_id: str, x0: float, scenario: str = "S01", roi: np.ndarray | None = None) -> Camera:
    """A camera whose image column u sees ground x = x0 + u / 10 and row v sees y = v / 10."""
    homography = np.array([[PX_PER_M, 0, -PX_PER_M * x0], [0, PX_PER_M, 0], [0, 0, 1]], np.float64)
    return Camera(scenario=scenario, camera_id=cam_id, fps=10.0, frame_size=(W, H), homography=homography, roi_mask=roi)


def road_table(cameras: list[Camera], per_camera: int = 10) -> TrackletTable:
    """``per_camera`` tracklets per camera entering at its left edge and leaving at its right."""
    keys = [c.key for c in cameras]
    cams = np.repeat(np.arange(len(cameras)), per_camera)
    n = len(cams)
    rng = np.random.default_rng(0)
    lane_v = 180 + rng.uniform(-20, 20, n)
    entry = np.c_[np.full(n, 2.0), lane_v]
    exit_ = np.c_[np.full(n, W - 2.0), lane_v]
    starts = np.arange(n, dtype=np.float64) * 30
    feats = np.ones((n, 1), np.float32)
    return TrackletTable.from_arrays(keys, cams, np.arange(n), starts, starts + 5, feats, entry, exit_)


@pytest.fixture
def road_300m() -> tuple[list[Camera], TrackletTable]:
    """Camera c001 sees x in [0, 64] m, c002 sees x in [364, 428] m: 300 m of road between them."""
    cams = [down_camera("c001", 0.0), down_camera("c002", 364.0)]
    return cams, road_table(cams)


def lr(arrays, table: TrackletTable, src: str, dst: str, gaps: list[float]) -> np.ndarray:
    code = {c: i for i, (_, c) in enumerate(table.camera_keys)}
    n = len(gaps)
    return arrays.gap_log_lr(np.zeros(n), np.full(n, code[src]), np.full(n, code[dst]), np.array(gaps, np.float64))


# ---------------------------------------------------------------------------- prior links
def test_prior_window_from_the_speed_range_holds_the_true_travel_time(road_300m) -> None:
    cams, table = road_300m
    links = CameraLinks.from_geometry(cams, table, LinksConfig())
    lk = links.link("S01", "c001", "c002")
    # exit of c001 at x = 63.8 m, entry of c002 at x = 364.2 m: 300.4 m
    assert lk.distance_m == pytest.approx(300.4, abs=0.5)
    # fastest plausible: 300 m at 25 m/s = 12 s; slowest: 300 m at 2 m/s + 60 s standing
    assert lk.lo_s == pytest.approx(300.4 / 25.0, abs=0.1)
    assert lk.hi_s == pytest.approx(300.4 / 2.0 + 60.0, abs=1.0)
    # a car at 15 m/s takes 20 s: inside the window
    assert lk.lo_s < 20.0 < lk.hi_s
    # hard bound: (300 - 10 m slack) at 1.5 x 25 m/s, minus 2 s of clock slack
    assert lk.min_gap_s == pytest.approx((300.4 - 10.0) / 37.5 - 2.0, abs=0.1)
    assert not lk.overlap and lk.source == SOURCE_PRIOR
    # the way back is as far
    assert links.link("S01", "c002", "c001").lo_s > 10.0
    # one camera with itself: fragments of one visit
    frag = links.link("S01", "c001", "c001")
    assert (frag.lo_s, frag.hi_s) == (0.0, 10.0)


def test_gap_evidence_of_a_prior_link(road_300m) -> None:
    cams, table = road_300m
    arrays = CameraLinks.from_geometry(cams, table).compile(table)
    # 20 s: plausible; 5 s: 300 m at 60 m/s, impossible; 1000 s: far outside the window
    inside, impossible, late = lr(arrays, table, "c001", "c002", [20.0, 5.0, 1000.0])
    assert inside > 0.0
    assert impossible == -math.inf
    assert late == pytest.approx(math.log(OUTLIER_RATE), abs=0.01)  # only the outlier floor is left
    assert arrays.known[0, 0, 1] and arrays.known[0, 1, 0]


def test_overlapping_views_are_found_from_the_footprints() -> None:
    # c002 sees x in [40, 104]: 24 m x 36 m of ground shared with c001; c003 is 300 m on
    cams = [down_camera("c001", 0.0), down_camera("c002", 40.0), down_camera("c003", 404.0)]
    table = road_table(cams)
    links = CameraLinks.from_geometry(cams, table)
    for src, dst in (("c001", "c002"), ("c002", "c001")):
        lk = links.link("S01", src, dst)
        assert lk.overlap
        assert lk.min_gap_s == -math.inf  # seen at once: negative gaps are no speed violation
        # window from -(extent of the shared ground at 2 m/s + 60 s) on
        assert lk.lo_s < -60.0
    assert not links.link("S01", "c002", "c003").overlap
    arrays = links.compile(table)
    assert arrays.overlap[0, 0, 1] and not arrays.overlap[0, 1, 2]
    # a vehicle in both views at once (gap -3 s) is plausible
    assert lr(arrays, table, "c001", "c002", [-3.0])[0] > 0.0


def test_ground_seen_only_in_rows_too_far_to_track_is_no_overlap() -> None:
    # c001 (at x = 0, pitched down 3 degrees) sees the road up to the horizon, c002 too from
    # x = 400 m; c001's top rows see c002's ground, but at more than 2 m per pixel, where its
    # tracklets never are (they enter at row 350 and leave at row 250, under 30 m ahead)
    cams = [Camera(scenario="S01", camera_id=c, fps=10.0, frame_size=(W, H), homography=perspective_homography(x, 3.0))
            for c, x in (("c001", 0.0), ("c002", 400.0))]
    table = TrackletTable.from_arrays([c.key for c in cams], np.repeat([0, 1], 6), np.arange(12), np.arange(12.0) * 20,
                                      np.arange(12.0) * 20 + 5, np.ones((12, 1), np.float32),
                                      np.tile([[320.0, 350.0]], (12, 1)), np.tile([[320.0, 250.0]], (12, 1)))
    links = CameraLinks.from_geometry(cams, table)
    assert links.footprints[("S01", "c001")][:, 0].max() < 400.0
    assert not links.link("S01", "c001", "c002").overlap
    assert links.link("S01", "c001", "c002").min_gap_s > 0.0


def test_a_roi_limits_the_footprint() -> None:
    # the same two overlapping cameras, but c002's ROI keeps only its right half (x >= 72 m):
    # nothing of it is on c001's ground any more
    roi = np.zeros((H, W), bool)
    roi[:, W // 2 :] = True
    cams = [down_camera("c001", 0.0), down_camera("c002", 40.0, roi=roi)]
    links = CameraLinks.from_geometry(cams, road_table(cams))
    assert not links.link("S01", "c001", "c002").overlap


def test_gps_degree_homographies_are_measured_in_metres() -> None:
    # CityFlowV2 style: ground (latitude, longitude) in degrees at 42.5 N; c002 is 300 m east
    # of c001's right edge, where a degree of longitude is only 111,320 cos(42.5) m
    lat0, lon0 = 42.5, -90.7
    m_lat, m_lon = METRES_PER_DEGREE, METRES_PER_DEGREE * math.cos(math.radians(lat0))

    def gps_camera(cam_id: str, east_m: float) -> Camera:
        # u along longitude (east), v along latitude (north), 10 pixels per metre
        h = np.array([[0, PX_PER_M * m_lon, -PX_PER_M * m_lon * (lon0 + east_m / m_lon)],
                      [PX_PER_M * m_lat, 0, -PX_PER_M * m_lat * lat0], [0, 0, 1]], np.float64)
        return Camera(scenario="S01", camera_id=cam_id, fps=10.0, frame_size=(W, H), homography=h)

    cams = [gps_camera("c001", 0.0), gps_camera("c002", 364.0)]
    links = CameraLinks.from_geometry(cams, road_table(cams))
    assert links.link("S01", "c001", "c002").distance_m == pytest.approx(300.4, abs=1.0)


def perspective_homography(x_cam: float, pitch_deg: float = 15.0) -> np.ndarray:
    """Ground (x, y) metres -> pixels of a 640x360 camera 6.5 m above (x_cam, 18), looking
    along +x and pitched down: the top of its image sees the sky."""
    k = np.array([[800.0, 0, 320], [0, 800, 180], [0, 0, 1]])
    p = math.radians(pitch_deg)
    forward = np.array([math.cos(p), 0.0, -math.sin(p)])
    right = np.array([0.0, -1.0, 0.0])
    rot = np.stack([right, np.cross(forward, right), forward])
    centre = np.array([x_cam, 18.0, 6.5])
    return k @ np.c_[rot[:, 0], rot[:, 1], -rot @ centre]


def test_perspective_cameras_in_metres_and_in_degrees_agree() -> None:
    # two tilted cameras 300 m apart along the road, once in metres and once with the same
    # homographies taking (latitude, longitude) at 42.5 N
    lat0, lon0 = 42.5, -90.7
    m_lat, m_lon = METRES_PER_DEGREE, METRES_PER_DEGREE * math.cos(math.radians(lat0))
    degrees_to_metres = np.array([[m_lat, 0, -m_lat * lat0], [0, m_lon, -m_lon * lon0], [0, 0, 1]])
    found = []
    for to_metres in (np.eye(3), degrees_to_metres):
        cams = [Camera(scenario="S01", camera_id=c, fps=10.0, frame_size=(W, H), homography=perspective_homography(x) @ to_metres)
                for c, x in (("c001", 0.0), ("c002", 300.0))]
        # tracklets enter at the image bottom and leave 2/3 up the image, along the road
        table = TrackletTable.from_arrays([c.key for c in cams], np.repeat([0, 1], 6), np.arange(12), np.arange(12.0) * 20,
                                          np.arange(12.0) * 20 + 5, np.ones((12, 1), np.float32),
                                          np.tile([[320.0, 350.0]], (12, 1)), np.tile([[320.0, 200.0]], (12, 1)))
        links = CameraLinks.from_geometry(cams, table)
        found.append(links.link("S01", "c001", "c002"))
    # a homography is defined up to scale: one stored times 1e15 is the same camera
    scaled = [Camera(scenario="S01", camera_id=c, fps=10.0, frame_size=(W, H), homography=perspective_homography(x) * 1e15)
            for c, x in (("c001", 0.0), ("c002", 300.0))]
    assert CameraLinks.from_geometry(scaled, table).link("S01", "c001", "c002").distance_m == pytest.approx(found[1].distance_m, rel=1e-6)
    metres, degrees = found
    assert not metres.overlap
    assert degrees.distance_m == pytest.approx(metres.distance_m, rel=1e-3)
    assert (degrees.lo_s, degrees.hi_s) == pytest.approx((metres.lo_s, metres.hi_s), rel=1e-3)
    # image row 350 sees the road 12.8 m ahead of the camera, row 200 22.0 m: c001's exit at
    # x = 22.0 m, c002's entry at 300 + 12.8 m; at 15 m/s that is 19.4 s, inside the window
    assert metres.distance_m == pytest.approx(312.8 - 22.0, abs=0.2)
    assert metres.lo_s < metres.distance_m / 15.0 < metres.hi_s


def test_a_camera_without_calibration_falls_back(road_300m, caplog: pytest.LogCaptureFixture) -> None:
    cams, _ = road_300m
    cams = cams + [Camera(scenario="S01", camera_id="c009", fps=10.0, frame_size=(W, H))]
    table = road_table(cams)
    with caplog.at_level(logging.WARNING, logger="mct.associate.links"):
        links = CameraLinks.from_geometry(cams, table)
    assert "S01/c009" in caplog.text
    assert links.unknown == (("S01", "c009"),)
    arrays = links.compile(table)
    assert not arrays.known[0, 2].any() and not arrays.known[0, :, 2].any()
    # nothing known: the travel time is no evidence either way
    assert lr(arrays, table, "c001", "c009", [20.0, 5000.0]).tolist() == [0.0, 0.0]
    assert arrays.known[0, 0, 1]


def test_a_singular_homography_names_the_camera(road_300m) -> None:
    cams, table = road_300m
    flat = Camera(scenario="S01", camera_id="c002", fps=10.0, frame_size=(W, H), homography=np.ones((3, 3)))
    with pytest.raises(ValueError, match="camera S01/c002: the homography is singular"):
        CameraLinks.from_geometry([cams[0], flat], table)


def test_a_roi_beyond_the_horizon_names_the_camera(road_300m) -> None:
    # a tilted camera whose horizon is the image row v = 100 (pixels -> ground divides by
    # v - 100); its ROI covers only rows above it, which see nothing of the ground
    to_ground = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 1.0, -100.0]])
    roi = np.zeros((H, W), bool)
    roi[:90] = True
    sky = Camera(scenario="S01", camera_id="c002", fps=10.0, frame_size=(W, H), homography=np.linalg.inv(to_ground), roi_mask=roi)
    cams, table = road_300m
    with pytest.raises(ValueError, match="camera S01/c002: the homography maps its ROI .* behind the horizon"):
        CameraLinks.from_geometry([cams[0], sky], table)


# ---------------------------------------------------------------------------- learned links
def test_travel_time_learned_with_no_labels_tightens_around_the_truth(road_300m) -> None:
    cams, table = road_300m
    prior = CameraLinks.from_geometry(cams, table)
    # 40 confident matches from the run's first pass: cars at about 15 m/s, 20 +- 2 s
    rng = np.random.default_rng(1)
    gaps = rng.normal(20.0, 2.0, 40)
    n = len(gaps)
    learned = prior.learned(np.zeros(n), np.zeros(n), np.ones(n), gaps)
    p, lk = prior.link("S01", "c001", "c002"), learned.link("S01", "c001", "c002")
    assert lk.source == SOURCE_LEARNED and lk.count == 40
    assert lk.lo_s < 20.0 < lk.hi_s
    assert lk.lo_s > p.lo_s and lk.hi_s < p.hi_s
    assert lk.hi_s - lk.lo_s < (p.hi_s - p.lo_s) / 3  # 198 s -> about 45 s
    # never narrower than the data: the middle 95% of the matched gaps stay inside
    assert lk.lo_s <= np.quantile(gaps, 0.025) and lk.hi_s >= np.quantile(gaps, 0.975)
    assert lk.min_gap_s == p.min_gap_s
    # the evidence of a 20 s gap grows, that of a 150 s gap turns against
    before, after = prior.compile(table), learned.compile(table)
    assert lr(after, table, "c001", "c002", [20.0])[0] > lr(before, table, "c001", "c002", [20.0])[0]
    assert lr(after, table, "c001", "c002", [150.0])[0] < 0.0 < lr(before, table, "c001", "c002", [150.0])[0]
    # the way back saw no match: still the prior
    assert learned.link("S01", "c002", "c001") == prior.link("S01", "c002", "c001")


def test_more_matches_move_further_from_the_prior(road_300m) -> None:
    cams, table = road_300m
    prior = CameraLinks.from_geometry(cams, table)
    widths = []
    for n in (5, 20, 200):
        gaps = np.linspace(18.0, 22.0, n)
        lk = prior.learned(np.zeros(n), np.zeros(n), np.ones(n), gaps).link("S01", "c001", "c002")
        widths.append(lk.hi_s - lk.lo_s)
    assert widths[0] > widths[1] > widths[2]


def test_learning_ignores_impossible_and_too_few_matches(road_300m) -> None:
    cams, table = road_300m
    prior = CameraLinks.from_geometry(cams, table)
    # one match only: the prior stays
    one = prior.learned(np.zeros(1), np.zeros(1), np.ones(1), np.array([20.0]))
    assert one.link("S01", "c001", "c002") == prior.link("S01", "c001", "c002")
    # wrong matches below the hard bound (2 s for 300 m) do not pull the window down
    gaps = np.r_[np.full(10, 20.0), np.full(5, 2.0)]
    n = len(gaps)
    lk = prior.learned(np.zeros(n), np.zeros(n), np.ones(n), gaps).link("S01", "c001", "c002")
    assert lk.count == 10 and lk.lo_s >= prior.link("S01", "c001", "c002").lo_s - 1e-9


def test_a_camera_without_calibration_learns_from_the_run(road_300m) -> None:
    cams, _ = road_300m
    cams = cams + [Camera(scenario="S01", camera_id="c009", fps=10.0, frame_size=(W, H))]
    table = road_table(cams)
    links = CameraLinks.from_geometry(cams, table)
    gaps = np.linspace(30.0, 40.0, 20)
    learned = links.learned(np.zeros(20), np.full(20, 1), np.full(20, 2), gaps)
    lk = learned.link("S01", "c002", "c009")
    assert lk.source == SOURCE_LEARNED and lk.lo_s <= 30.25 and lk.hi_s >= 39.75
    assert learned.compile(table).known[0, 1, 2]


# ---------------------------------------------------------------------------- files
def test_a_topology_file_wins_over_the_prior_per_pair(road_300m) -> None:
    cams, table = road_300m
    prior = CameraLinks.from_geometry(cams, table)
    topo = TopologyFile(scenarios={"*": ScenarioTopology(
        transitions=[Transition(src="c001", dst="c002", min_gap_s=18.0, max_gap_s=25.0)], unlisted="allow")})
    links = prior.overridden_by(CameraLinks.from_topology(topo, cams))
    assert links.links == CameraLinks.for_run(cams, table, topology=topo).links  # the same in one call
    lk = links.link("S01", "c001", "c002")
    assert (lk.lo_s, lk.hi_s, lk.source) == (18.0, 25.0, SOURCE_FILE)
    # pairs the file does not list keep their prior (unlisted: allow)
    assert links.link("S01", "c002", "c001") == prior.link("S01", "c002", "c001")
    # and a later learning pass does not relearn what the file says
    relearned = links.learned(np.zeros(10), np.zeros(10), np.ones(10), np.full(10, 40.0))
    assert relearned.link("S01", "c001", "c002") == lk


def test_unlisted_forbid_rules_out_unlisted_pairs(road_300m) -> None:
    cams, table = road_300m
    topo = TopologyFile(scenarios={"S01": ScenarioTopology(
        transitions=[Transition(src="c001", dst="c002", min_gap_s=18.0, max_gap_s=25.0, source="labelled")])})
    links = CameraLinks.from_geometry(cams, table).overridden_by(CameraLinks.from_topology(topo, cams))
    arrays = links.compile(table)
    assert lr(arrays, table, "c002", "c001", [20.0])[0] == -math.inf  # not listed: no direct link
    assert lr(arrays, table, "c001", "c002", [20.0])[0] > 0.0


def test_a_topology_naming_an_unknown_camera_is_an_error(road_300m) -> None:
    cams, _ = road_300m
    topo = TopologyFile(scenarios={"S01": ScenarioTopology(
        transitions=[Transition(src="c001", dst="c077", min_gap_s=0.0, max_gap_s=5.0)])})
    with pytest.raises(ValueError, match=r"scenarios.S01: unknown camera\(s\) transitions\[0\].dst: c077"):
        CameraLinks.from_topology(topo, cams)


def test_the_shipped_demo_topology_loads_as_labelled_links(road_300m) -> None:
    cams = [down_camera(f"c00{i}", 100.0 * i, "S02") for i in range(1, 6)]
    topo = load_topology(Path(__file__).resolve().parents[2] / "configs" / "topology" / "demo.yaml")
    links = CameraLinks.from_topology(topo, cams)
    lk = links.link("S02", "c001", "c002")
    assert (lk.lo_s, lk.hi_s, lk.count) == (-0.76, 28.74, 39)
    assert lk.overlap  # a negative lower bound


def test_links_round_trip_through_a_topology_file(road_300m, tmp_path: Path) -> None:
    cams, table = road_300m
    links = CameraLinks.from_geometry(cams, table)
    n = 30
    links = links.learned(np.zeros(n), np.zeros(n), np.ones(n), np.linspace(17.0, 23.0, n))
    path = write_topology(tmp_path / "links.yaml", links.to_topology())
    back = CameraLinks.from_topology(load_topology(path), cams)
    for pair, lk in links.links["S01"].items():
        got = back.link("S01", *pair)
        assert got.source == lk.source and got.count == lk.count and got.overlap == lk.overlap
        for name in ("lo_s", "hi_s", "spread_s", "min_gap_s"):
            assert getattr(got, name) == pytest.approx(getattr(lk, name), abs=1e-3), name
    text = path.read_text()
    assert "source: learned" in text and "source: prior" in text


def test_forbidden_link_has_no_direct_gap() -> None:
    lk = Link(0.0, 0.0, 1.0, math.inf)
    assert lk.forbidden


def test_the_gap_horizon_is_the_links_reach_or_the_span(road_300m) -> None:
    cams, table = road_300m
    # tracklets start every 30 s for 20 tracklets: the span is 19 * 30 + 5 = 575 s
    links = CameraLinks.from_geometry(cams, table)
    lk = links.link("S01", "c002", "c001")  # the widest window of the two
    reach = max(abs(lk.lo_s), abs(lk.hi_s)) + 3 * lk.spread_s
    assert reach < 575.0
    assert links.compile(table).horizon_s[0] == pytest.approx(reach)
    # a camera without calibration may be searched over the whole span
    with_unknown = cams + [Camera(scenario="S01", camera_id="c009", fps=10.0, frame_size=(W, H))]
    table3 = road_table(with_unknown)
    assert CameraLinks.from_geometry(with_unknown, table3).compile(table3).horizon_s[0] == pytest.approx(29 * 30 + 5)
    # a caller that knows its candidate horizon gives it
    assert links.compile(table, horizon_s=np.array([100.0])).horizon_s.tolist() == [100.0]


def test_the_documented_topology_example_gives_file_links(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "association.md").read_text()
    section = doc.split("## Camera links and the topology file", 1)[1]
    block = section.split("### Topology file", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.yaml").write_text(block)
    cams = [down_camera(f"c00{i}", 100.0 * i, "S02") for i in range(6, 10)]
    links = CameraLinks.from_topology(load_topology(tmp_path / "example.yaml"), cams)
    full = links.link("S02", "c007", "c008")
    assert (full.lo_s, full.hi_s, full.spread_s, full.min_gap_s, full.overlap) == (8.0, 60.0, 3.0, 4.0, False)
    assert (full.exit_zone, full.entry_zone) == ("east", "west")
    short = links.link("S02", "c006", "c007")
    assert short.overlap and short.min_gap_s == -math.inf and short.spread_s == pytest.approx(3.7)
    # unlisted: allow, max_unlisted_gap_s 0: the file says nothing of the other pairs
    assert links.link("S02", "c008", "c009") is None


def test_each_learning_pass_starts_again_from_the_prior(road_300m) -> None:
    cams, table = road_300m
    prior = CameraLinks.from_geometry(cams, table)
    first = prior.learned(np.zeros(20), np.zeros(20), np.ones(20), np.linspace(18.0, 22.0, 20))
    # the second pass finds the same 20 matches: the same window, not one shrunk twice
    again = first.learned(np.zeros(20), np.zeros(20), np.ones(20), np.linspace(18.0, 22.0, 20))
    assert again.link("S01", "c001", "c002") == first.link("S01", "c001", "c002")
    # the second pass finds no match for the pair any more: back to the prior
    none = first.learned(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
    assert none.link("S01", "c001", "c002") == prior.link("S01", "c001", "c002")
    # a file given before learning stays the base of every pass
    topo = TopologyFile(scenarios={"S01": ScenarioTopology(
        transitions=[Transition(src="c002", dst="c001", min_gap_s=10.0, max_gap_s=30.0)], unlisted="allow")})
    with_file = prior.overridden_by(CameraLinks.from_topology(topo, cams))
    learned = with_file.learned(np.zeros(20), np.zeros(20), np.ones(20), np.linspace(18.0, 22.0, 20))
    assert learned.learned(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0)).link("S01", "c002", "c001").source == SOURCE_FILE


def test_no_tracklets_uses_the_footprints(road_300m) -> None:
    cams, _ = road_300m
    empty = TrackletTable.from_arrays([c.key for c in cams], np.zeros(0, np.int32), np.zeros(0), np.zeros(0), np.zeros(0),
                                      np.zeros((0, 1), np.float32))
    for table in (empty, None):
        lk = CameraLinks.from_geometry(cams, table).link("S01", "c001", "c002")
        # footprint to footprint: c001 ends at x = 64 m, c002 begins at x = 364 m; the near
        # distance is the 10% quantile over c001's ground (its last 6.4 m): 306.4 m
        assert lk.distance_m == pytest.approx(306.4, abs=0.5)
        assert lk.lo_s < 20.0 < lk.hi_s
    assert len(CameraLinks.from_geometry(cams, empty).compile(empty).lo) == 1
    # and no matches learn nothing
    prior = CameraLinks.from_geometry(cams, empty)
    none = prior.learned(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), table=road_300m[1])
    assert none.links == prior.links


def test_a_run_s_links_given_back_as_a_file_are_not_relearned(road_300m, tmp_path: Path) -> None:
    cams, table = road_300m
    n = 30
    learned = CameraLinks.from_geometry(cams, table).learned(np.zeros(n), np.zeros(n), np.ones(n), np.linspace(17.0, 23.0, n))
    path = write_topology(tmp_path / "links.yaml", learned.to_topology())
    # the user keeps the file (perhaps edited) and gives it to the next run
    given = CameraLinks.from_geometry(cams, table).overridden_by(CameraLinks.from_topology(load_topology(path), cams))
    lk = given.link("S01", "c001", "c002")
    assert lk.fixed and lk.source == SOURCE_LEARNED  # its recorded source, for information
    again = given.learned(np.zeros(n), np.zeros(n), np.ones(n), np.full(n, 60.0))
    assert again.link("S01", "c001", "c002") == lk


def test_travel_time_evidence_against_the_horizon(road_300m) -> None:
    cams, table = road_300m
    far = TopologyFile(scenarios={"S01": ScenarioTopology(
        transitions=[Transition(src="c001", dst="c002", min_gap_s=100.0, max_gap_s=200.0, spread_s=5.0)], unlisted="allow")})
    links = CameraLinks.for_run(cams, table, topology=far)
    # a 40 s recording: every gap it can hold lies before the window; the pairs it holds
    # are outliers if one vehicle at all, so the gap says nothing (not an inflated tail)
    arrays = links.compile(table, horizon_s=np.array([40.0]))
    assert lr(arrays, table, "c001", "c002", [10.0, 39.0]) == pytest.approx([0.0, 0.0], abs=0.01)
    # a 400 s recording: inside the window, 0.99 / 100 s + 0.01 / 800 s against 1 / 800 s
    arrays = links.compile(table, horizon_s=np.array([400.0]))
    inside, before = lr(arrays, table, "c001", "c002", [150.0, 10.0])
    assert inside == pytest.approx(math.log(0.99 / 100.0 * 800.0 + 0.01), abs=1e-3)
    assert before == pytest.approx(math.log(OUTLIER_RATE), abs=1e-3)
    # a window of 160 s in a 40 s recording: given that both tracklets were seen, the trip
    # took 0-40 s, about 1 / 40 s against 1 / 80 s for different vehicles (log 2 = 0.69,
    # a little less for the outliers); a negative gap is outside the window
    wide = TopologyFile(scenarios={"S01": ScenarioTopology(
        transitions=[Transition(src="c001", dst="c002", min_gap_s=0.0, max_gap_s=160.0, spread_s=1.0)], unlisted="allow")})
    arrays = CameraLinks.for_run(cams, table, topology=wide).compile(table, horizon_s=np.array([40.0]))
    inside, before = lr(arrays, table, "c001", "c002", [20.0, -20.0])
    assert inside == pytest.approx(0.67, abs=0.01) and before < -3.0


def test_a_file_about_some_cameras_does_not_cut_off_the_others(caplog: pytest.LogCaptureFixture) -> None:
    # three cameras on the road; the file (unlisted: forbid) speaks of c001 and c002 only
    cams = [down_camera("c001", 0.0), down_camera("c002", 364.0), down_camera("c003", 728.0)]
    table = road_table(cams)
    topo = TopologyFile(scenarios={"S01": ScenarioTopology(
        transitions=[Transition(src="c001", dst="c002", min_gap_s=18.0, max_gap_s=25.0)])})
    with caplog.at_level(logging.WARNING, logger="mct.associate.links"):
        links = CameraLinks.for_run(cams, table, topology=topo)
    assert "says nothing of camera(s) c003" in caplog.text
    assert links.link("S01", "c002", "c001").forbidden  # named, not listed: forbidden
    # c003 keeps its prior links with both
    assert links.link("S01", "c002", "c003").source == SOURCE_PRIOR
    assert links.link("S01", "c003", "c001").source == SOURCE_PRIOR


def test_a_topology_file_with_an_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    from mct.config import ConfigError

    path = tmp_path / "topo.yaml"
    path.write_text("scenarios:\n  S01:\n    transitions:\n    - {src: c001, dst: c002, min_gap_s: 1, max_gap_s: 5, speed: 3}\n")
    with pytest.raises(ConfigError, match=r"topo.yaml: scenarios.S01.transitions.0.speed: unknown key"):
        load_topology(path)
    path.write_text("scenarios:\n  S01:\n    transitions:\n    - {src: c001, dst: c002, min_gap_s: 1, max_gap_s: 5, source: guessed}\n")
    with pytest.raises(ConfigError, match=r"scenarios.S01.transitions.0.source"):
        load_topology(path)


def test_how_far_a_window_reaches_beyond_its_matches() -> None:
    from mct.associate.links import _endpoint_excess

    # 2 draws over 10 s, room of 100 s: the end may well be far (median 10 s: 1/(1+e/10) = 1/2)
    few = _endpoint_excess(10.0, 100.0, 2.0, (0.5, 0.9))
    assert few[0] == pytest.approx(10.0 * (1 / (1 - 0.5 * (1 - 1 / 11.0)) - 1), rel=1e-6)
    assert few[1] > few[0] > 5.0
    # 50 draws: the end is close to the farthest draw (median 10 (2^(1/49) - 1) = 0.14 s)
    many = _endpoint_excess(10.0, 100.0, 50.0, (0.5, 0.9))
    assert many[0] == pytest.approx(10.0 * (2 ** (1 / 49) - 1), rel=1e-3)
    assert many[1] < 1.0
    # no room beyond the data: nothing; one draw: log-uniform over the room, within it
    assert _endpoint_excess(10.0, 0.0, 5.0, (0.5,)) == (0.0,)
    one = _endpoint_excess(10.0, 100.0, 1.0, (0.5, 1.0))
    assert one[0] == pytest.approx(10.0 * (math.sqrt(11.0) - 1)) and one[1] == pytest.approx(100.0)


def test_the_hard_bound_comes_from_the_views_not_only_from_the_tracklets() -> None:
    # c001's detector finds vehicles only in the left quarter of its view (x < 16 m); c002
    # begins at x = 100 m, 36 m past c001's right edge: a vehicle can cover that 36 m
    cams = [down_camera("c001", 0.0), down_camera("c002", 100.0)]
    n = 10
    rows = np.r_[np.zeros(n), np.ones(n)].astype(int)
    entry = np.c_[np.full(2 * n, 2.0), np.full(2 * n, 180.0)]
    exit_ = np.c_[np.where(rows == 0, 150.0, W - 2.0), np.full(2 * n, 180.0)]
    table = TrackletTable.from_arrays([c.key for c in cams], rows, np.arange(2 * n), np.arange(2 * n) * 30.0,
                                      np.arange(2 * n) * 30.0 + 5, np.ones((2 * n, 1), np.float32), entry, exit_)
    lk = CameraLinks.from_geometry(cams, table).link("S01", "c001", "c002")
    # regions: 15 m -> 100 m = 85 m; views: 64 m -> 100 m = 36 m; at 37.5 m/s 36 m less the
    # 10 m slack take 0.7 s (not 2 s for 85 m): a fast car leaving c001's view is allowed
    assert lk.distance_m == pytest.approx(85.0, abs=0.5)
    assert lk.min_gap_s == pytest.approx((36.0 - 10.0) / 37.5 - 2.0, abs=0.1)
