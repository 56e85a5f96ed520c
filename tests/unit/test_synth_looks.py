"""Looks of the synthetic world: the randomised training ranges, the held-out look outside
them, and the demo look kept as it was (issue 23)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from mct.config import ConfigError, load_config
from mct.data.synth.cameras import camera_from_spec, make_cameras
from mct.data.synth.config import (
    CameraDefaults,
    CameraSpec,
    LightingConfig,
    SynthConfig,
    VehicleLookConfig,
)
from mct.data.synth.render import Background, Lighting, draw_lighting, render_frame, sensor_effects
from mct.data.synth.vehicles import _SIZES, Appearance, apply_look, build_mesh, sample_appearance
from mct.data.synth.writer import generate

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "synth"


@pytest.fixture(scope="module")
def random_cfg() -> SynthConfig:
    return load_config(CONFIGS / "random.yaml", model=SynthConfig)


@pytest.fixture(scope="module")
def heldout_cfg() -> SynthConfig:
    return load_config(CONFIGS / "heldout.yaml", model=SynthConfig)


def _hfov_deg(cam) -> float:
    return math.degrees(2 * math.atan(cam.frame_size[0] / 2 / cam.K[0, 0]))


def _positive(mix: dict[str, float]) -> set[str]:
    return {k for k, w in mix.items() if w > 0}


# ---------------------------------------------------------------- the randomised world


def test_random_cameras_draw_within_their_ranges_and_repeat_by_seed(random_cfg):
    r = random_cfg.camera_ranges
    cams = make_cameras(random_cfg)
    assert len(cams) == 11  # 2 per intersection x 4 + 3 mid-block
    for cam in cams:
        assert r.height_m[0] <= cam.C[2] <= r.height_m[1]
        assert r.hfov_deg[0] - 1e-6 <= _hfov_deg(cam) <= r.hfov_deg[1] + 1e-6
        assert tuple(cam.frame_size) in {tuple(s) for s in r.frame_sizes}
        assert cam.fps in r.fps
        assert r.noise_std[0] <= cam.noise_std <= r.noise_std[1]
        assert r.blur_sigma_px[0] <= cam.blur_sigma_px <= r.blur_sigma_px[1]
        assert r.motion_blur_px[0] <= cam.motion_blur_px <= r.motion_blur_px[1]
        assert r.jpeg_quality[0] <= cam.jpeg_quality <= r.jpeg_quality[1]
        assert r.brightness[0] <= cam.brightness <= r.brightness[1]
        assert all(abs(g - 1) <= r.colour_gain_spread + 1e-9 for g in cam.colour_gain)
        # the tilt: the look-at point lies at a drawn ground distance from the camera
        look = cam.ground_from_pixel(np.array([[(cam.frame_size[0] - 1) / 2, (cam.frame_size[1] - 1) / 2]]))[0]
        assert r.look_distance_m[0] - 0.01 <= np.linalg.norm(look - cam.C[:2]) <= r.look_distance_m[1] + 0.01
    # the same seed gives the same cameras; another city seed other ones
    again = make_cameras(random_cfg)
    assert all(np.array_equal(a.K, b.K) and np.array_equal(a.C, b.C) and a.fps == b.fps for a, b in zip(cams, again))
    other = make_cameras(random_cfg.model_copy(update={"seed": 1}))
    assert any(not np.array_equal(a.C, b.C) for a, b in zip(cams, other))
    # the spread is real: several frame sizes, frame rates and heights among 11 cameras
    assert len({c.frame_size for c in cams}) >= 2 and len({c.fps for c in cams}) >= 2


def test_random_lighting_draws_its_regimes_sun_and_fog(random_cfg):
    lc = random_cfg.lighting
    seen = set()
    fogged = 0
    for seed in range(60):
        cfg = random_cfg.model_copy(update={"splits": {"train": random_cfg.splits["train"].model_copy(update={"seed": seed})}})
        light = draw_lighting(cfg, "train")
        assert light == draw_lighting(cfg, "train")  # deterministic by the split seed
        seen.add(light.regime)
        elevation = math.degrees(math.asin(light.sun[2]))
        assert lc.sun_elevation_deg[0] - 1e-6 <= elevation <= lc.sun_elevation_deg[1] + 1e-6
        if light.fog_visibility_m is not None:
            fogged += 1
            assert lc.fog_visibility_m[0] <= light.fog_visibility_m <= lc.fog_visibility_m[1]
    assert seen == _positive(lc.regime_mix)
    # fog_prob 0.2 over 60 scenarios: between 3 and 24 fogged (binomial, far tails)
    assert 3 <= fogged <= 24


def test_random_vehicle_looks_draw_within_their_ranges(random_cfg):
    rng, look_rng = np.random.default_rng(0), np.random.default_rng(1)
    look = random_cfg.vehicle_look
    apps = [apply_look(sample_appearance(rng, random_cfg.traffic), look_rng, look) for _ in range(400)]
    assert {a.vehicle_type for a in apps} == _positive(random_cfg.traffic.type_mix)
    assert {a.finish for a in apps} == _positive(look.paint_finish_mix)
    lo, hi = look.size_scale
    for a in apps:
        (l0, l1), _, _ = _SIZES[a.vehicle_type]
        assert l0 * lo - 1e-9 <= a.length_m <= l1 * hi + 1e-9
        assert a.dirt == 0 or look.dirt_amount[0] <= a.dirt <= look.dirt_amount[1]
    dirty = np.mean([a.dirt > 0 for a in apps])
    assert 0.2 < dirty < 0.4  # dirt_prob 0.3
    # the look's own stream: the same seeds give the same vehicles
    rng, look_rng = np.random.default_rng(0), np.random.default_rng(1)
    assert apps[:50] == [apply_look(sample_appearance(rng, random_cfg.traffic), look_rng, look) for _ in range(50)]


# ---------------------------------------------------------------- the held-out look


def test_heldout_values_lie_outside_the_training_ranges(random_cfg, heldout_cfg):
    r, h = random_cfg, heldout_cfg
    # body families never drawn for training make up a real share of the held-out traffic
    new_families = _positive(h.traffic.type_mix) - _positive(r.traffic.type_mix)
    assert new_families >= {"wagon", "motorcycle"}
    share = sum(h.traffic.type_mix[k] for k in new_families) / sum(h.traffic.type_mix.values())
    assert share >= 0.3
    # a paint finish and a lighting regime never drawn for training; other proportions
    assert _positive(h.vehicle_look.paint_finish_mix) - _positive(r.vehicle_look.paint_finish_mix)
    assert not _positive(h.lighting.regime_mix) & _positive(r.lighting.regime_mix)
    assert h.vehicle_look.size_scale[0] > r.vehicle_look.size_scale[1]
    # camera placements, lenses, frame sizes and rates never drawn for training
    cams = make_cameras(h)
    rr = r.camera_ranges
    for cam in cams:
        assert not rr.height_m[0] <= cam.C[2] <= rr.height_m[1], cam.camera_id
        assert not rr.hfov_deg[0] <= _hfov_deg(cam) <= rr.hfov_deg[1], cam.camera_id
        assert tuple(cam.frame_size) not in {tuple(s) for s in rr.frame_sizes}, cam.camera_id
        assert cam.fps not in rr.fps and cam.fps < min(rr.fps), cam.camera_id
    assert {c.frame_size for c in cams} == {(800, 600), (1024, 576)}
    assert h.video_codec != r.video_codec
    # its own road layout, and only evaluation splits: nothing is trained on it
    assert h.road.intersections_x_m != r.road.intersections_x_m
    assert set(h.splits) == {"validation", "test"}


def test_presets_of_the_demo_look_draw_nothing_new():
    for name in ("demo.yaml", "tiny.yaml", "benchmark.yaml"):
        cfg = load_config(CONFIGS / name, model=SynthConfig)
        assert cfg.lighting == LightingConfig() and cfg.vehicle_look == VehicleLookConfig(), name
        assert cfg.camera_ranges is None, name


# Golden digest of the tiny preset's validation text files (gt, det_sim, synth_boxes,
# cam_timestamp/framenum, evaluation file, synth/S02.json) as written before the looks of
# issue 23 existed: the demo look must stay byte-identical (the shipped models and every
# accuracy table depend on it). Change it only with a change that is meant to alter the
# demo world, and say so in the commit.
_TINY_VALIDATION_SHA256 = "5d636b27d8b764f1b7df3d056e8457bb0f056ccdb6a8c470059f023884140233"


def test_demo_look_writes_the_same_text_files_as_before(tmp_path):
    cfg = load_config(CONFIGS / "tiny.yaml", model=SynthConfig)
    generate(cfg, tmp_path, ["validation"], progress=False)
    h = hashlib.sha256()
    for p in sorted(tmp_path.rglob("*")):
        if p.is_file() and p.suffix in (".txt", ".json"):
            h.update(str(p.relative_to(tmp_path)).encode())
            h.update(p.read_bytes())
    assert h.hexdigest() == _TINY_VALIDATION_SHA256


# ---------------------------------------------------------------- rendering stories


def _scene(appearance: Appearance, lighting=None, faces_only: bool = False):
    spec = CameraSpec(id="c001", position_m=(0.0, -10.0, 8.0), look_at_m=(0.0, 20.0))
    cam = camera_from_spec(spec, CameraDefaults(frame_size=(320, 200), hfov_deg=60.0, blur_sigma_px=0, noise_std=0))
    bg = Background(np.full((200, 320, 3), 90, np.uint8), np.full((200, 320), 255, np.uint8), np.ones(3, np.float32))
    if lighting is not None:
        gain = np.asarray(lighting.scene_gain or (1.0, 1.0, 1.0), np.float32)
        bg = Background((bg.image * gain).astype(np.uint8), bg.roi, gain, None, np.ones(3, np.float32))
    mesh = build_mesh(appearance)
    if faces_only:  # the painted boxes alone, without windows, lights and wheels
        mesh.polygons = [poly for poly in mesh.polygons if poly.face]
    # the vehicle drives towards the camera: its front (headlights) faces it
    return cam, bg, render_frame(cam, bg, [mesh], np.array([0]), np.array([[0.0, 20.0]]),
                                 np.array([[0.0, -1.0]]), np.array([0.0, 0.0, 1.0]), lighting)


def test_headlights_glow_at_dusk_and_not_by_day():
    cfg = load_config(CONFIGS / "heldout.yaml", model=SynthConfig)
    dusk = draw_lighting(cfg, "validation")
    assert dusk.regime == "dusk" and dusk.lights_on
    app = Appearance("sedan", "black", 4.6, 1.8, 1.45, headlights="white")
    _, _, (day_frame, _, _) = _scene(app)
    _, bg, (dusk_frame, ids, rendered) = _scene(app, dusk)
    # the brightest pixel of the vehicle: a headlight. By day it is shaded like the body;
    # at dusk it glows near white while the black body is darker than by day
    on_car = ids == rendered[0].draw_id
    assert dusk_frame[on_car].max() >= 240
    assert dusk_frame[on_car].mean() < day_frame[on_car].mean()
    # the beam lights the road in front of the vehicle (nearer the camera: lower rows)
    below = slice(int(np.flatnonzero(on_car.any(axis=1)).max()) + 2, 200)
    road = dusk_frame[below][~on_car[below]].astype(int)
    assert road.max() > int(bg.image.max()) + 50


def test_metallic_paint_shows_a_highlight_matte_does_not():
    # a low sun behind the vehicle, opposite the camera: the roof mirrors it towards the camera
    light = Lighting(regime="day", sun=(0.0, 0.966, 0.259))
    means = {}
    for finish in ("solid", "metallic", "matte"):
        app = Appearance("suv", "grey", 4.7, 1.9, 1.7, finish=finish)
        _, _, (frame, ids, rendered) = _scene(app, light, faces_only=True)
        means[finish] = frame[ids == rendered[0].draw_id].astype(float)
    # metallic adds a sheen, so the vehicle is brighter on average
    assert means["metallic"].mean() > means["solid"].mean()
    # matte flattens the shading: less spread between the painted faces than solid
    assert means["matte"].std() < means["solid"].std()


def test_motion_blur_and_jpeg_change_the_frame_only_when_set():
    spec = CameraSpec(id="c001", position_m=(0.0, -10.0, 8.0), look_at_m=(0.0, 20.0))
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[:, 32:] = 255  # a vertical edge
    plain = camera_from_spec(spec, CameraDefaults(frame_size=(64, 64), blur_sigma_px=0, noise_std=0))
    assert np.array_equal(sensor_effects(frame, plain, [], 0), frame)
    # a horizontal 7-px exposure blur smears the edge over about 7 columns
    blurred = camera_from_spec(spec.model_copy(update={"motion_blur_px": 7.0}), CameraDefaults(frame_size=(64, 64), blur_sigma_px=0, noise_std=0))
    row = sensor_effects(frame, blurred, [], 0)[32, :, 0]
    assert 5 <= np.count_nonzero((row > 10) & (row < 245)) <= 8
    # JPEG at quality 20 alters a noisy frame; the same quality gives the same frame
    noisy = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    jpeg = camera_from_spec(spec.model_copy(update={"jpeg_quality": 20}), CameraDefaults(frame_size=(64, 64), blur_sigma_px=0, noise_std=0))
    out = sensor_effects(noisy, jpeg, [], 0)
    assert not np.array_equal(out, noisy) and np.array_equal(out, sensor_effects(noisy, jpeg, [], 0))


def test_look_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras: [{id: c001, position_m: [0, 0, 6], look_at_m: [10, 0]}]\nlighting: {regime_mix: {sunset: 1}}\n")
    with pytest.raises(ConfigError, match="regime_mix.*sunset"):
        load_config(bad, model=SynthConfig)
    bad.write_text("cameras: [{id: c001, position_m: [0, 0, 6], look_at_m: [10, 0]}]\nvehicle_look: {size_scale: [1.2, 1.0]}\n")
    with pytest.raises(ConfigError, match="size_scale"):
        load_config(bad, model=SynthConfig)
