"""Typed configuration of the synthetic world (``configs/synth/*.yaml``).

Units: metres and seconds on the ground plane (x east, y north, z up), pixels in images,
angles in degrees. Every key has a default, so a preset only says what differs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mct.schema import StrictModel

__all__ = [
    "RoadConfig",
    "SideRoadConfig",
    "TrafficConfig",
    "CameraSpec",
    "CameraDefaults",
    "AutoCameras",
    "AnnotationConfig",
    "DetectorSimConfig",
    "SplitConfig",
    "SynthConfig",
    "VehicleLookConfig",
    "LightingConfig",
    "CameraRanges",
    "VEHICLE_TYPES",
    "COLOUR_NAMES",
    "PAINT_FINISHES",
    "LIGHTING_REGIMES",
]

#: body families; the first five are the demo world's, the others exist for randomised
#: and held-out looks (a preset gives them a weight in ``traffic.type_mix``)
VEHICLE_TYPES = ("sedan", "suv", "van", "truck", "bus", "hatchback", "pickup", "wagon", "motorcycle")
#: body colour names (their BGR values are ``vehicles.COLOURS``; named here so the config
#: needs no import of the renderer's modules)
COLOUR_NAMES = (
    "white", "black", "silver", "grey", "blue", "red", "darkgreen", "beige", "yellow", "orange", "brown", "navy",
)
#: paint finishes: solid (the demo look), metallic (a specular highlight), matte (flatter
#: shading), faded (bleached towards grey)
PAINT_FINISHES = ("solid", "metallic", "matte", "faded")
#: lighting regimes of a scenario (see ``render.LIGHTING``)
LIGHTING_REGIMES = ("day", "overcast", "dusk", "night")

Range = tuple[float, float]


def _check_range(name: str, r: Range | None, lo: float | None = None, hi: float | None = None) -> None:
    if r is None:
        return
    if r[0] > r[1]:
        raise ValueError(f"{name}: range {list(r)} has low > high")
    if (lo is not None and r[0] < lo) or (hi is not None and r[1] > hi):
        raise ValueError(f"{name}: range {list(r)} must lie within [{lo}, {hi}]")


def _check_mix(name: str, mix: dict[str, float], known: tuple[str, ...]) -> None:
    for key, w in mix.items():
        if key not in known:
            raise ValueError(f"{name}: unknown value {key!r} (known: {', '.join(known)})")
        if w < 0:
            raise ValueError(f"{name}.{key}: weight {w} must be >= 0")
    if not any(w > 0 for w in mix.values()):
        raise ValueError(f"{name}: needs at least one positive weight")


class SideRoadConfig(StrictModel):
    """A side road that joins the arterial at a T junction with a stop sign."""

    #: x (m) where it meets the arterial
    at_x_m: float = 240.0
    #: +1 leaves to the north, -1 to the south
    side: Literal[-1, 1] = -1
    #: length of the first straight piece and of the piece after the bend (m)
    length_m: tuple[float, float] = (60.0, 90.0)
    #: the bend between the two pieces (degrees, positive turns east)
    bend_deg: float = 35.0
    #: how long a vehicle waits at the stop line before it goes (s)
    stop_wait_s: float = Field(default=1.5, ge=0)


class RoadConfig(StrictModel):
    """The road network: an east-west arterial with signalised intersections."""

    #: x (m) of the intersections along the arterial (y = 0), west to east
    intersections_x_m: tuple[float, ...] = (0.0, 160.0, 320.0, 480.0)
    #: arterial length beyond the first and last intersection (m)
    arterial_extend_m: float = Field(default=150.0, gt=20)
    #: length of each cross street arm (north and south) from its intersection (m)
    cross_street_length_m: float = Field(default=120.0, gt=20)
    arterial_lanes_per_direction: int = Field(default=2, ge=1, le=3)
    cross_lanes_per_direction: int = Field(default=1, ge=1, le=3)
    lane_width_m: float = Field(default=3.5, gt=2)
    sidewalk_width_m: float = Field(default=3.0, ge=0)
    side_road: SideRoadConfig | None = Field(default_factory=SideRoadConfig)
    #: traffic-signal cycle (s); the arterial gets the first ``arterial_green_fraction``
    signal_cycle_s: float = Field(default=40.0, gt=5)
    arterial_green_fraction: float = Field(default=0.6, gt=0.1, lt=0.95)
    #: amber at the end of each green (s): vehicles stop if they comfortably can
    amber_s: float = Field(default=3.0, ge=0)
    #: all-red clearance between phases (s)
    all_red_s: float = Field(default=2.0, ge=0)
    #: signal offset between neighbouring intersections (s): a green wave for eastbound traffic
    signal_offset_s: float = 9.0
    #: signal offset of the westernmost intersection (s)
    first_signal_offset_s: float = 0.0
    #: static clutter (buildings, poles, trees, bins) per 100 m of road side
    clutter_per_100m: float = Field(default=6.0, ge=0)


class TrafficConfig(StrictModel):
    """How vehicles enter, where they go and how they drive."""

    #: mean arrivals per second over all entries (Poisson)
    spawn_rate_per_s: float = Field(default=1.0, gt=0)
    #: share of arrivals that enter at an arterial end (the rest at cross streets / side road)
    arterial_entry_fraction: float = Field(default=0.7, ge=0, le=1)
    #: share of arterial arrivals that stay on the arterial to the far end
    through_fraction: float = Field(default=0.65, ge=0, le=1)
    #: desired speed (m/s): mean and spread
    speed_mean_mps: float = Field(default=13.0, gt=1)
    speed_std_mps: float = Field(default=1.5, ge=0)
    #: turning speed limit (m/s)
    turn_speed_mps: float = Field(default=6.0, gt=0.5)
    max_accel_mps2: float = Field(default=2.0, gt=0)
    comfortable_decel_mps2: float = Field(default=3.0, gt=0)
    #: bumper-to-bumper gap kept when stopped (m)
    min_gap_m: float = Field(default=2.0, ge=0.5)
    #: desired time headway (s)
    time_headway_s: float = Field(default=1.2, ge=0)
    #: simulated time before the first camera starts, so roads are already busy (s)
    warmup_s: float = Field(default=40.0, ge=0)
    #: simulation step (s); frames are interpolated between steps
    step_s: float = Field(default=0.1, gt=0, le=0.5)
    #: relative frequency of vehicle types
    type_mix: dict[str, float] = Field(
        default_factory=lambda: {"sedan": 0.45, "suv": 0.27, "van": 0.12, "truck": 0.09, "bus": 0.07}
    )
    #: relative frequency of body colours (names in ``vehicles.COLOURS``)
    colour_mix: dict[str, float] = Field(
        default_factory=lambda: {
            "white": 0.26, "black": 0.17, "silver": 0.14, "grey": 0.12, "blue": 0.08, "red": 0.08,
            "darkgreen": 0.03, "beige": 0.03, "yellow": 0.03, "orange": 0.02, "brown": 0.02, "navy": 0.02,
        }
    )
    #: probability of each distinguishing detail
    two_tone_prob: float = Field(default=0.2, ge=0, le=1)
    stripe_prob: float = Field(default=0.2, ge=0, le=1)
    roof_rack_prob: float = Field(default=0.2, ge=0, le=1)
    roof_box_prob: float = Field(default=0.1, ge=0, le=1)
    hood_stripe_prob: float = Field(default=0.15, ge=0, le=1)

    @model_validator(mode="after")
    def _check_mixes(self) -> "TrafficConfig":
        for name in self.type_mix:
            if name not in VEHICLE_TYPES:
                raise ValueError(f"type_mix: unknown vehicle type {name!r} (known: {', '.join(VEHICLE_TYPES)})")
        for name in self.colour_mix:
            if name not in COLOUR_NAMES:
                raise ValueError(f"colour_mix: unknown colour {name!r} (known: {', '.join(COLOUR_NAMES)})")
        if not any(v > 0 for v in self.type_mix.values()) or not any(v > 0 for v in self.colour_mix.values()):
            raise ValueError("type_mix and colour_mix need at least one positive weight")
        return self


class CameraDefaults(StrictModel):
    """Per-camera settings that a camera spec may override."""

    frame_size: tuple[int, int] = (640, 360)
    fps: float = Field(default=10.0, gt=0)
    #: horizontal field of view (degrees)
    hfov_deg: float = Field(default=60.0, gt=10, lt=150)
    #: per-channel gain (B, G, R): the camera's colour cast
    colour_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    #: overall exposure factor
    brightness: float = Field(default=1.0, gt=0)
    #: Gaussian sensor noise, standard deviation in grey levels
    noise_std: float = Field(default=3.0, ge=0)
    #: Gaussian blur sigma (pixels), 0 = none
    blur_sigma_px: float = Field(default=0.6, ge=0)
    #: probability that a capture instant is skipped (the video then jumps in time)
    drop_frame_prob: float = Field(default=0.0, ge=0, lt=0.5)
    #: how far vehicles are annotated and the ROI reaches (m from the camera on the ground)
    max_range_m: float = Field(default=90.0, gt=5)
    #: exposure (motion) blur: length (pixels) of a line kernel at ``motion_blur_deg`` from
    #: the image x axis, applied to the whole frame after the Gaussian blur; 0 = none
    motion_blur_px: float = Field(default=0.0, ge=0, le=30)
    motion_blur_deg: float = 0.0
    #: each frame goes through a JPEG encode/decode at this quality (1-100) before the
    #: video is written, as an IP camera's MJPEG stream compresses it; 0 = not re-encoded
    jpeg_quality: int = Field(default=0, ge=0, le=100)


class CameraSpec(StrictModel):
    """One camera, placed on the ground plane. Unset fields come from ``camera_defaults``."""

    id: str
    #: camera centre (x, y, height) in metres
    position_m: tuple[float, float, float]
    #: the ground point (x, y) at the image centre
    look_at_m: tuple[float, float]
    #: start offset on the scenario clock (s), written to cam_timestamp
    time_offset_s: float = Field(default=0.0, ge=0)
    frame_size: tuple[int, int] | None = None
    fps: float | None = None
    hfov_deg: float | None = None
    colour_gain: tuple[float, float, float] | None = None
    brightness: float | None = None
    noise_std: float | None = None
    blur_sigma_px: float | None = None
    drop_frame_prob: float | None = None
    max_range_m: float | None = None
    motion_blur_px: float | None = None
    motion_blur_deg: float | None = None
    jpeg_quality: int | None = None


class AutoCameras(StrictModel):
    """Place cameras automatically at every intersection (for large presets)."""

    #: cameras per intersection (1-4), each on a different corner looking across it
    per_intersection: int = Field(default=2, ge=1, le=4)
    #: extra cameras mid-block between intersections (0 or 1 per block)
    mid_block: bool = True
    height_m: tuple[float, float] = (7.0, 11.0)
    max_time_offset_s: float = Field(default=3.0, ge=0)
    #: every n-th camera runs at 8 fps (0 = none), like c015 in CityFlowV2
    eight_fps_every: int = Field(default=7, ge=0)


class AnnotationConfig(StrictModel):
    """Which rendered vehicles become ground truth (the occlusion rule) and the mask output."""

    #: a vehicle whose visible pixels are below this fraction of its unoccluded silhouette
    #: (inside the frame) is not annotated: heavily occluded objects are left out, as
    #: annotators of CityFlow leave them out
    min_visible_fraction: float = Field(default=0.2, ge=0, le=1)
    #: boxes smaller than this are not annotated (pixels)
    min_box_height_px: int = Field(default=10, ge=1)
    min_box_width_px: int = Field(default=10, ge=1)
    #: as in CityFlowV2, gt.txt holds only vehicles seen by at least two cameras
    gt_only_multi_camera: bool = True
    #: write COCO instance masks (all visible vehicles, single- and multi-camera)
    coco_masks: bool = True
    #: masks for every n-th frame
    coco_frame_stride: int = Field(default=1, ge=1)
    #: also write the masked frames as JPEG next to the COCO file (else read them from vdo.avi)
    coco_write_frames: bool = False


class DetectorSimConfig(StrictModel):
    """A simulated detector: misses, false positives, box jitter, scores (det/det_sim.txt)."""

    #: base probability of missing a fully visible, large vehicle
    miss_rate: float = Field(default=0.05, ge=0, le=1)
    #: visibility below which misses become likely (linear ramp to 1 at 0 visibility)
    occlusion_miss_visible_fraction: float = Field(default=0.5, ge=0, le=1)
    #: box height (px) below which misses become likely (linear ramp)
    small_miss_height_px: float = Field(default=20.0, ge=0)
    #: mean false positives per frame (Poisson)
    false_positives_per_frame: float = Field(default=0.3, ge=0)
    #: box jitter: standard deviation of each edge as a fraction of box size
    jitter_frac: float = Field(default=0.04, ge=0)
    #: true-positive scores ~ Beta(a, b); false-positive scores ~ Beta(fa, fb)
    tp_score_beta: tuple[float, float] = (8.0, 1.5)
    fp_score_beta: tuple[float, float] = (2.0, 4.0)
    #: detections below this score are not written
    min_score: float = Field(default=0.1, ge=0, le=1)


class VehicleLookConfig(StrictModel):
    """Per-vehicle look beyond type, colour and details: finish, proportions, dirt.

    Drawn from a random stream of its own (seeded by the split), so the defaults, which
    draw nothing visible, leave every earlier preset's vehicles and images as they were.
    """

    #: relative frequency of paint finishes (:data:`PAINT_FINISHES`)
    paint_finish_mix: dict[str, float] = Field(default_factory=lambda: {"solid": 1.0})
    #: length, width and height are each scaled by a factor drawn uniformly from this range
    size_scale: Range = (1.0, 1.0)
    #: probability of road dirt on the lower body (a darker band) ...
    dirt_prob: float = Field(default=0.0, ge=0, le=1)
    #: ... whose strength (0 = clean, 1 = mud colour) is drawn from this range
    dirt_amount: Range = (0.3, 0.7)

    @model_validator(mode="after")
    def _check(self) -> "VehicleLookConfig":
        _check_mix("vehicle_look.paint_finish_mix", self.paint_finish_mix, PAINT_FINISHES)
        _check_range("vehicle_look.size_scale", self.size_scale, 0.5, 2.0)
        _check_range("vehicle_look.dirt_amount", self.dirt_amount, 0.0, 1.0)
        return self


class LightingConfig(StrictModel):
    """The light of a scenario, drawn once per split (its own random stream).

    The default is the demo world's: always ``day``, the sun fixed at
    ``SynthConfig.sun_azimuth_deg`` / ``sun_elevation_deg``, no fog.
    """

    #: relative frequency of lighting regimes (:data:`LIGHTING_REGIMES`): day (sun and
    #: shadows), overcast (flat light, faint shadows), dusk (low warm sun, long shadows,
    #: headlights on), night (no sun, dark scene, headlights and tail lights glowing)
    regime_mix: dict[str, float] = Field(default_factory=lambda: {"day": 1.0})
    #: sun azimuth / elevation ranges (degrees); ``None``: the fixed sun of ``SynthConfig``.
    #: Dusk draws its elevation from ``dusk_sun_elevation_deg`` instead.
    sun_azimuth_deg: Range | None = None
    sun_elevation_deg: Range | None = None
    dusk_sun_elevation_deg: Range = (3.0, 9.0)
    #: probability of fog in a scenario and its visibility range (m: distance at which the
    #: scene keeps 5% of its contrast, Koschmieder's definition)
    fog_prob: float = Field(default=0.0, ge=0, le=1)
    fog_visibility_m: Range = (120.0, 300.0)

    @model_validator(mode="after")
    def _check(self) -> "LightingConfig":
        _check_mix("lighting.regime_mix", self.regime_mix, LIGHTING_REGIMES)
        _check_range("lighting.sun_azimuth_deg", self.sun_azimuth_deg, -360.0, 360.0)
        _check_range("lighting.sun_elevation_deg", self.sun_elevation_deg, 1.0, 90.0)
        _check_range("lighting.dusk_sun_elevation_deg", self.dusk_sun_elevation_deg, 0.5, 20.0)
        _check_range("lighting.fog_visibility_m", self.fog_visibility_m, 10.0, 5000.0)
        return self


class CameraRanges(StrictModel):
    """Per-camera draws over every camera of the city (listed or automatic).

    ``None`` or an empty tuple keeps the camera's own value. Drawn from a random stream of
    the city seed, so the cameras stay the same across the splits of one city.
    """

    #: camera height (m), replacing the z of ``position_m``
    height_m: Range | None = None
    #: horizontal ground distance (m) from the camera to its look-at point, along the
    #: camera's own viewing direction: sets the tilt together with the height
    look_distance_m: Range | None = None
    hfov_deg: Range | None = None
    #: choices of (width, height) and of fps
    frame_sizes: tuple[tuple[int, int], ...] = ()
    fps: tuple[float, ...] = ()
    noise_std: Range | None = None
    blur_sigma_px: Range | None = None
    motion_blur_px: Range | None = None
    jpeg_quality: tuple[int, int] | None = None
    brightness: Range | None = None
    #: each channel gain drawn in [1 - spread, 1 + spread]; ``None``: the camera's own
    colour_gain_spread: float | None = Field(default=None, ge=0, lt=0.5)

    @model_validator(mode="after")
    def _check(self) -> "CameraRanges":
        _check_range("camera_ranges.height_m", self.height_m, 1.0, 60.0)
        _check_range("camera_ranges.look_distance_m", self.look_distance_m, 1.0, 500.0)
        _check_range("camera_ranges.hfov_deg", self.hfov_deg, 10.0, 150.0)
        _check_range("camera_ranges.noise_std", self.noise_std, 0.0, 50.0)
        _check_range("camera_ranges.blur_sigma_px", self.blur_sigma_px, 0.0, 10.0)
        _check_range("camera_ranges.motion_blur_px", self.motion_blur_px, 0.0, 30.0)
        _check_range("camera_ranges.jpeg_quality", self.jpeg_quality, 1, 100)
        _check_range("camera_ranges.brightness", self.brightness, 0.05, 3.0)
        for f in self.fps:
            if f <= 0:
                raise ValueError(f"camera_ranges.fps: {f} must be > 0")
        for size in self.frame_sizes:
            if min(size) < 16:
                raise ValueError(f"camera_ranges.frame_sizes: {list(size)} is too small")
        return self


class SplitConfig(StrictModel):
    """One split: its scenario name, seed, length and traffic density."""

    scenario: str
    seed: int
    duration_s: float = Field(gt=0)
    #: first vehicle id of this split; the splits' id ranges must not overlap
    first_vehicle_id: int = Field(ge=1)
    #: multiplies ``traffic.spawn_rate_per_s``
    traffic_scale: float = Field(default=1.0, gt=0)


def _default_splits() -> dict[str, SplitConfig]:
    return {
        "train": SplitConfig(scenario="S01", seed=1, duration_s=60.0, first_vehicle_id=1),
        "validation": SplitConfig(scenario="S02", seed=2, duration_s=40.0, first_vehicle_id=100001),
        "test": SplitConfig(scenario="S03", seed=3, duration_s=40.0, first_vehicle_id=200001),
    }


class SynthConfig(StrictModel):
    """The whole synthetic world: city (road + cameras, shared by all splits) and splits."""

    name: str = "synth"
    #: seed of the city: road clutter, camera noise pattern (splits have their own seeds)
    seed: int = 0
    road: RoadConfig = Field(default_factory=RoadConfig)
    traffic: TrafficConfig = Field(default_factory=TrafficConfig)
    camera_defaults: CameraDefaults = Field(default_factory=CameraDefaults)
    cameras: tuple[CameraSpec, ...] = ()
    auto_cameras: AutoCameras | None = None
    annotation: AnnotationConfig = Field(default_factory=AnnotationConfig)
    detector_sim: DetectorSimConfig = Field(default_factory=DetectorSimConfig)
    splits: dict[str, SplitConfig] = Field(default_factory=_default_splits)
    vehicle_look: VehicleLookConfig = Field(default_factory=VehicleLookConfig)
    lighting: LightingConfig = Field(default_factory=LightingConfig)
    camera_ranges: CameraRanges | None = None
    #: sun direction: azimuth and elevation (degrees)
    sun_azimuth_deg: float = 135.0
    sun_elevation_deg: float = Field(default=45.0, gt=0, le=90)
    #: fourcc of vdo.avi ('MJPG' or 'mp4v'; H.264 cannot be written here)
    video_codec: str = Field(default="MJPG", min_length=4, max_length=4)

    @model_validator(mode="after")
    def _check(self) -> "SynthConfig":
        if not self.cameras and self.auto_cameras is None:
            raise ValueError("cameras: give a list of cameras or auto_cameras")
        ids = [c.id for c in self.cameras]
        if len(set(ids)) != len(ids):
            raise ValueError(f"cameras: duplicate camera ids {sorted(i for i in set(ids) if ids.count(i) > 1)}")
        for name in self.splits:
            if name not in ("train", "validation", "test"):
                raise ValueError(f"splits: unknown split {name!r} (expected train, validation or test)")
        scen = [s.scenario for s in self.splits.values()]
        if len(set(scen)) != len(scen):
            raise ValueError(f"splits: scenario names must differ, got {scen}")
        return self
