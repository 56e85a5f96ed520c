"""Synthetic world pieces without writing files: cameras, homography, rendering, traffic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mct.config import ConfigError, load_config
from mct.data.synth.cameras import camera_from_spec
from mct.data.synth.config import CameraDefaults, CameraSpec, RoadConfig, SynthConfig, TrafficConfig
from mct.data.synth.render import Background, render_frame, sun_vector
from mct.data.synth.vehicles import Appearance, build_mesh, sample_appearance
from mct.data.synth.world import build_network, build_route, simulate
from mct.data.synth.writer import rle_from_crop, visible_box


def _camera(**kw):
    spec = CameraSpec(id="c001", position_m=(0.0, -10.0, 8.0), look_at_m=(0.0, 20.0), **kw)
    return camera_from_spec(spec, CameraDefaults(frame_size=(320, 200), hfov_deg=60.0, blur_sigma_px=0, noise_std=0))


def test_look_at_point_maps_to_principal_point():
    cam = _camera()
    H = cam.homography
    p = H @ np.array([0.0, 20.0, 1.0])
    # the ground point the camera looks at is the image centre (pixel-centre convention)
    assert p[:2] / p[2] == pytest.approx([159.5, 99.5], abs=1e-9)


def test_homography_matches_tilt_geometry():
    cam = _camera()
    f = 160.0 / math.tan(math.radians(30.0))
    # a ground point straight ahead at distance d: u = cx, v = cy + f * tan(depression - tilt)
    tilt = math.atan2(8.0, 30.0)
    for d in (15.0, 30.0, 60.0):
        p = cam.homography @ np.array([0.0, -10.0 + d, 1.0])
        v = 99.5 + f * math.tan(math.atan2(8.0, d) - tilt)
        assert p[0] / p[2] == pytest.approx(159.5, abs=1e-9)
        assert p[1] / p[2] == pytest.approx(v, abs=1e-6)
    # a point 3.5 m to the right (east) at the look-at distance lies right of the centre
    p = cam.homography @ np.array([3.5, 20.0, 1.0])
    assert p[0] / p[2] > 159.5 + 10


def test_homography_agrees_with_3d_projection_and_inverts():
    cam = _camera()
    ground = np.array([[-5.0, 5.0], [0.0, 12.0], [7.0, 40.0]])
    uv, depth = cam.project(np.column_stack([ground, np.zeros(3)]))
    hom = np.column_stack([ground, np.ones(3)]) @ cam.homography.T
    assert (depth > 0).all()
    assert hom[:, :2] / hom[:, 2:] == pytest.approx(uv, abs=1e-9)
    assert cam.ground_from_pixel(uv) == pytest.approx(ground, abs=1e-9)


def _one_vehicle_frame(appearance: Appearance, xy=(0.0, 20.0), heading=(1.0, 0.0)):
    cam = _camera()
    bg = Background(
        image=np.full((200, 320, 3), 90, np.uint8), roi=np.full((200, 320), 255, np.uint8),
        gain=np.ones(3, np.float32), static_depth=None,
    )
    mesh = build_mesh(appearance)
    # sun straight overhead: the shadow lies under the vehicle, inside its silhouette
    frame, ids, rendered = render_frame(
        cam, bg, [mesh], np.array([0]), np.array([xy]), np.array([heading]), sun_vector(0.0, 90.0)
    )
    return bg, frame, ids, rendered


@pytest.mark.parametrize("vtype", ["sedan", "suv", "van", "bus", "hatchback", "wagon", "pickup", "motorcycle"])
def test_box_is_tight_to_rendered_pixels(vtype):
    app = Appearance(vtype, "red", 4.6 if vtype != "bus" else 11.0, 1.8, 1.5 if vtype != "bus" else 3.1, stripe="yellow", roof_rack=vtype == "suv")
    bg, frame, ids, rendered = _one_vehicle_frame(app, heading=(math.cos(0.5), math.sin(0.5)))
    assert len(rendered) == 1
    (left, top, w, h), vis, mask = visible_box(ids, rendered[0])
    changed = np.any(frame != bg.image, axis=2)
    ys, xs = np.nonzero(changed)
    # every pixel the vehicle changed is inside its box, up to 1 px; the box edges touch it
    assert xs.min() >= left - 1 and xs.max() <= left + w and ys.min() >= top - 1 and ys.max() <= top + h
    assert abs(xs.min() - left) <= 1 and abs(xs.max() - (left + w - 1)) <= 1
    assert abs(ys.min() - top) <= 1 and abs(ys.max() - (top + h - 1)) <= 1
    # the mask is the id map inside the box, and every masked pixel was painted
    assert mask.shape == (h, w) and mask.any(axis=0).all() and mask.any(axis=1).all()
    assert changed[top : top + h, left : left + w][mask].mean() > 0.99
    assert vis == pytest.approx(1.0)


def test_nearer_vehicle_occludes_farther_one():
    cam = _camera()
    bg = Background(np.full((200, 320, 3), 90, np.uint8), np.full((200, 320), 255, np.uint8), np.ones(3, np.float32))
    app = Appearance("sedan", "white", 4.5, 1.8, 1.45)
    meshes = [build_mesh(app), build_mesh(app)]
    # vehicle 0 at 25 m, vehicle 1 at 18 m straight in front of it: 1 hides part of 0
    xy = np.array([[0.0, 25.0], [0.0, 18.0]])
    hd = np.array([[0.0, 1.0], [0.0, 1.0]])
    frame, ids, rendered = render_frame(cam, bg, meshes, np.array([0, 1]), xy, hd, sun_vector(135, 45))
    by_index = {rv.index: rv for rv in rendered}
    _, vis_far, _ = visible_box(ids, by_index[0])
    _, vis_near, _ = visible_box(ids, by_index[1])
    assert vis_near == pytest.approx(1.0)
    assert 0.0 < vis_far < 0.7


def test_rle_from_crop_matches_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(0)
    full = np.zeros((30, 40), np.uint8)
    crop = rng.random((7, 9)) > 0.4
    full[11:18, 5:14] = crop
    counts = rle_from_crop(crop, 5, 11, 30, 40)
    assert sum(counts) == 30 * 40
    rle = mask_utils.frPyObjects({"size": [30, 40], "counts": counts}, 30, 40)
    assert (mask_utils.decode(rle) == full).all()
    assert rle["counts"] == mask_utils.encode(np.asfortranarray(full))["counts"]


def test_rle_of_crop_touching_image_edges():
    mask_utils = pytest.importorskip("pycocotools.mask")
    full = np.zeros((6, 5), np.uint8)
    crop = np.ones((2, 3), bool)
    full[4:6, 2:5] = 1  # bottom-right corner
    rle = mask_utils.frPyObjects({"size": [6, 5], "counts": rle_from_crop(crop, 2, 4, 6, 5)}, 6, 5)
    assert (mask_utils.decode(rle) == full).all()


def test_route_turns_and_stops():
    net = build_network(RoadConfig())
    route = build_route(net, net.path("W", "S1"), 0, TrafficConfig())
    # W -> I0 -> I1 -> south: two signal stop lines, ends heading south
    assert [s.node for s in route.stops] == ["I0", "I1"]
    assert route.tangent[-1] == pytest.approx([0.0, -1.0], abs=1e-6)
    assert route.xy[-1][1] == pytest.approx(-RoadConfig().cross_street_length_m)
    side = build_route(net, net.path("R", "E"), 0, TrafficConfig())
    # side road -> stop sign at the T junction, then the signals of I2 and I3 eastbound
    assert [(s.node, s.rule) for s in side.stops] == [("T", "stop"), ("I2", "arterial"), ("I3", "arterial")]


def test_vehicles_keep_distance_and_stop_at_red():
    cfg = RoadConfig(intersections_x_m=(0.0, 150.0), side_road=None)
    net = build_network(cfg)
    world = simulate(net, TrafficConfig(spawn_rate_per_s=1.0, warmup_s=10.0), np.random.default_rng(3), 0.0, 60.0, 1)
    assert len(world.vehicles) > 30
    for t in np.arange(0.0, 60.0, 1.0):
        idx, xy, hd = world.states_at(float(t))
        lengths = np.array([world.vehicles[i].appearance.length_m for i in idx])
        d = xy[None, :, :] - xy[:, None, :]
        lateral = np.abs(d[..., 0] * hd[:, None, 1] - d[..., 1] * hd[:, None, 0])
        same_lane = (lateral < 1.0) & (hd @ hd.T > 0.99)
        np.fill_diagonal(same_lane, False)
        dist = np.linalg.norm(d, axis=2)
        # bumper to bumper gap stays positive between vehicles of one lane
        assert (dist[same_lane] > ((lengths[:, None] + lengths[None, :]) / 2)[same_lane]).all()
    # some vehicle stood still at some time (red lights)
    assert any((np.diff(v.s_hist) < 1e-3).any() for v in world.vehicles)


def test_lookalikes_are_common_and_differ_in_details():
    rng = np.random.default_rng(0)
    apps = [sample_appearance(rng, TrafficConfig()) for _ in range(200)]
    pairs = {}
    for a in apps:
        pairs.setdefault((a.vehicle_type, a.colour), []).append(a)
    shared = sum(len(v) for v in pairs.values() if len(v) > 1)
    assert shared / len(apps) > 0.5
    white_sedans = pairs[("sedan", "white")]
    assert len(white_sedans) >= 5
    assert len({(a.two_tone, a.stripe, a.roof_rack, a.headlights, a.taillights, a.glass) for a in white_sedans}) > 3


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras: [{id: c001, position_m: [0, 0, 5], look_at_m: [10, 0]}]\nroad: {lane_widht_m: 3}\n")
    with pytest.raises(ConfigError, match="road.lane_widht_m: unknown key"):
        load_config(bad, model=SynthConfig)
    bad.write_text("cameras: [{id: c001, position_m: [0, 0, 5], look_at_m: [10, 0]}]\ntraffic: {type_mix: {tank: 1}}\n")
    with pytest.raises(ConfigError, match="tank"):
        load_config(bad, model=SynthConfig)
    with pytest.raises(ConfigError, match="cameras"):
        load_config(None, model=SynthConfig)
