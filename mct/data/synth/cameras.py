"""Pinhole cameras over the ground plane and the ground-to-image homography.

World frame: x east, y north, z up, metres. Camera frame (OpenCV): x right, y down, z
forward. A camera is its centre ``C``, a rotation ``R`` (world -> camera) built from the
point it looks at, and intrinsics ``K`` from the horizontal field of view; no distortion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mct.data.synth.config import AutoCameras, CameraDefaults, CameraRanges, CameraSpec, RoadConfig, SynthConfig

__all__ = ["PinholeCamera", "make_cameras", "randomise_specs"]


@dataclass(frozen=True)
class PinholeCamera:
    """One synthetic camera with its rendering settings.

    Attributes:
        camera_id: e.g. ``"c001"``.
        K: (3, 3) float64 intrinsics, pixels.
        R: (3, 3) float64 rotation world -> camera.
        C: (3,) float64 camera centre, metres.
        frame_size: ``(width, height)`` pixels.
    """

    camera_id: str
    K: np.ndarray
    R: np.ndarray
    C: np.ndarray
    frame_size: tuple[int, int]
    fps: float
    time_offset_s: float
    colour_gain: tuple[float, float, float]
    brightness: float
    noise_std: float
    blur_sigma_px: float
    drop_frame_prob: float
    max_range_m: float
    #: exposure blur (line kernel length in pixels, its angle) and JPEG re-encoding quality
    motion_blur_px: float = 0.0
    motion_blur_deg: float = 0.0
    jpeg_quality: int = 0

    @property
    def t(self) -> np.ndarray:
        return -self.R @ self.C

    def to_camera(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3) world points, metres -> (N, 3) camera-frame points, metres."""
        return (np.asarray(xyz, dtype=np.float64) - self.C) @ self.R.T

    def project(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) world points -> ``(uv (N, 2) float64 pixels, depth (N,) metres)``.

        Pixel coordinates follow OpenCV: the centre of the top-left pixel is (0, 0).
        Points behind the camera get depth <= 0 and meaningless ``uv``.
        """
        pc = self.to_camera(xyz)
        z = pc[:, 2]
        zs = np.where(np.abs(z) < 1e-9, 1e-9, z)
        uv = (pc[:, :2] / zs[:, None]) @ self.K[:2, :2].T + self.K[:2, 2]
        return uv, z

    def homography_at(self, height_m: float = 0.0) -> np.ndarray:
        """(3, 3) float64 mapping ground points ``(x, y, 1)`` at height ``z`` to image pixels."""
        H = self.K @ np.column_stack([self.R[:, 0], self.R[:, 1], self.R[:, 2] * height_m + self.t])
        return H / H[2, 2]

    @property
    def homography(self) -> np.ndarray:
        """(3, 3) float64 ground plane (metres) -> image pixels; ``H[2, 2] == 1``."""
        return self.homography_at(0.0)

    def ground_from_pixel(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2) pixels -> (N, 2) ground points (metres); NaN where the ray misses the ground."""
        uv = np.asarray(uv, dtype=np.float64)
        rays = np.column_stack([uv, np.ones(len(uv))]) @ np.linalg.inv(self.K).T @ self.R  # world dirs
        lam = -self.C[2] / np.where(rays[:, 2] < -1e-9, rays[:, 2], np.nan)
        return self.C[:2] + lam[:, None] * rays[:, :2]

    def footprint(self, n: int = 16) -> np.ndarray:
        """(M, 2) ground polygon (metres) of the frame area within ``max_range_m``."""
        w, h = self.frame_size
        edge = np.concatenate([
            np.column_stack([np.linspace(0, w, n), np.zeros(n)]),
            np.column_stack([np.full(n, w), np.linspace(0, h, n)]),
            np.column_stack([np.linspace(w, 0, n), np.full(n, h)]),
            np.column_stack([np.zeros(n), np.linspace(h, 0, n)]),
        ])
        g = self.ground_from_pixel(edge)
        d = g - self.C[:2]
        r = np.linalg.norm(d, axis=1)
        # rays above the horizon: clamp to the range along their direction
        rays = np.column_stack([edge, np.ones(len(edge))]) @ np.linalg.inv(self.K).T @ self.R
        flat = rays[:, :2] / np.maximum(np.linalg.norm(rays[:, :2], axis=1, keepdims=True), 1e-9)
        far = ~np.isfinite(r) | (r > self.max_range_m)
        g[far] = self.C[:2] + flat[far] * self.max_range_m
        return g

    def as_dict(self) -> dict:
        out = {
            "camera_id": self.camera_id, "K": self.K.round(6).tolist(), "R": self.R.round(9).tolist(),
            "C": self.C.round(6).tolist(), "frame_size": list(self.frame_size), "fps": self.fps,
            "time_offset_s": self.time_offset_s,
        }
        # sensor keys only when set, so the demo world's metadata stays byte-identical
        if self.motion_blur_px > 0:
            out["motion_blur_px"], out["motion_blur_deg"] = self.motion_blur_px, self.motion_blur_deg
        if self.jpeg_quality > 0:
            out["jpeg_quality"] = self.jpeg_quality
        return out


def _look_at(C: np.ndarray, target: np.ndarray) -> np.ndarray:
    f = target - C
    f /= np.linalg.norm(f)
    up = np.array([0.0, 0.0, 1.0])
    r = np.cross(f, up)
    if np.linalg.norm(r) < 1e-6:
        raise ValueError("camera looks straight down; tilt it towards a ground point")
    r /= np.linalg.norm(r)
    d = np.cross(f, r)
    return np.vstack([r, d, f])


def camera_from_spec(spec: CameraSpec, defaults: CameraDefaults) -> PinholeCamera:
    def get(name: str):
        value = getattr(spec, name)
        return getattr(defaults, name) if value is None else value

    w, h = get("frame_size")
    hfov = math.radians(get("hfov_deg"))
    f = (w / 2) / math.tan(hfov / 2)
    K = np.array([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])
    C = np.asarray(spec.position_m, dtype=np.float64)
    if C[2] <= 0.5:
        raise ValueError(f"camera {spec.id}: position_m height {C[2]} must be > 0.5 m")
    R = _look_at(C, np.array([spec.look_at_m[0], spec.look_at_m[1], 0.0]))
    return PinholeCamera(
        camera_id=spec.id, K=K, R=R, C=C, frame_size=(int(w), int(h)), fps=float(get("fps")),
        time_offset_s=float(spec.time_offset_s), colour_gain=tuple(get("colour_gain")),
        brightness=float(get("brightness")), noise_std=float(get("noise_std")),
        blur_sigma_px=float(get("blur_sigma_px")), drop_frame_prob=float(get("drop_frame_prob")),
        max_range_m=float(get("max_range_m")), motion_blur_px=float(get("motion_blur_px")),
        motion_blur_deg=float(get("motion_blur_deg")), jpeg_quality=int(get("jpeg_quality")),
    )


def randomise_specs(specs: list[CameraSpec], ranges: CameraRanges, rng: np.random.Generator) -> list[CameraSpec]:
    """Each camera with its height, tilt, field of view, frame, fps and sensor drawn from
    ``ranges`` (a value a range leaves unset stays the camera's own). Every camera draws the
    same count of numbers whatever is set, so one range does not shift the others."""
    out = []
    for spec in specs:
        u = rng.random(12)
        upd: dict = {}

        def pick(r, k):
            return None if r is None else float(r[0] + (r[1] - r[0]) * u[k])

        x, y, z = spec.position_m
        height = pick(ranges.height_m, 0)
        if height is not None:
            z = height
        dist = pick(ranges.look_distance_m, 1)
        look = spec.look_at_m
        if dist is not None:
            d = np.array([look[0] - x, look[1] - y])
            d = d / max(float(np.linalg.norm(d)), 1e-9)
            look = (round(float(x + d[0] * dist), 3), round(float(y + d[1] * dist), 3))
        upd["position_m"] = (x, y, round(z, 3))
        upd["look_at_m"] = look
        if ranges.hfov_deg is not None:
            upd["hfov_deg"] = round(pick(ranges.hfov_deg, 2), 2)
        if ranges.frame_sizes:
            upd["frame_size"] = tuple(ranges.frame_sizes[int(u[3] * len(ranges.frame_sizes)) % len(ranges.frame_sizes)])
        if ranges.fps:
            upd["fps"] = float(ranges.fps[int(u[4] * len(ranges.fps)) % len(ranges.fps)])
        for k, name in ((5, "noise_std"), (6, "blur_sigma_px"), (7, "motion_blur_px"), (8, "brightness")):
            value = pick(getattr(ranges, name), k)
            if value is not None:
                upd[name] = round(value, 3)
        if ranges.motion_blur_px is not None:
            upd["motion_blur_deg"] = round(float(u[9] * 180.0), 1)
        if ranges.jpeg_quality is not None:
            lo, hi = ranges.jpeg_quality
            upd["jpeg_quality"] = int(lo + min(int(u[10] * (hi - lo + 1)), hi - lo))
        if ranges.colour_gain_spread is not None:
            g = rng.uniform(1 - ranges.colour_gain_spread, 1 + ranges.colour_gain_spread, size=3)
            upd["colour_gain"] = tuple(round(float(v), 3) for v in g)
        else:
            rng.random(3)
        out.append(spec.model_copy(update=upd))
    return out


def _auto_specs(auto: AutoCameras, road: RoadConfig, rng: np.random.Generator) -> list[CameraSpec]:
    """Cameras on intersection corners looking across them, plus mid-block ones."""
    specs: list[CameraSpec] = []
    xs = sorted(road.intersections_x_m)
    corners = [(-1, -1), (1, 1), (-1, 1), (1, -1)]
    half = road.arterial_lanes_per_direction * road.lane_width_m + road.sidewalk_width_m + 2.0
    for x in xs:
        for k in range(auto.per_intersection):
            sx, sy = corners[k]
            pos = (x + sx * (half + 14.0), sy * (half + 2.0), float(rng.uniform(*auto.height_m)))
            look = (x - sx * 12.0, -sy * 2.0)
            specs.append(CameraSpec(id="", position_m=pos, look_at_m=look))
    if auto.mid_block:
        for x0, x1 in zip(xs[:-1], xs[1:]):
            xm = (x0 + x1) / 2
            side = 1 if len(specs) % 2 else -1
            pos = (xm - 10.0, side * (half + 1.0), float(rng.uniform(*auto.height_m)))
            specs.append(CameraSpec(id="", position_m=pos, look_at_m=(xm + 25.0, 0.0)))
    out = []
    for i, s in enumerate(specs):
        fps = 8.0 if auto.eight_fps_every and (i + 1) % auto.eight_fps_every == 0 else None
        offset = round(float(rng.uniform(0, auto.max_time_offset_s)), 3) if i else 0.0
        gain = tuple(round(float(g), 3) for g in rng.uniform(0.88, 1.12, size=3))
        out.append(s.model_copy(update={"id": f"c{i + 1:03d}", "fps": fps, "time_offset_s": offset, "colour_gain": gain}))
    return out


def make_cameras(cfg: SynthConfig) -> list[PinholeCamera]:
    """The cameras of the city (shared by every split), in id order."""
    specs = list(cfg.cameras)
    if cfg.auto_cameras is not None:
        rng = np.random.default_rng([cfg.seed, 7])
        auto = _auto_specs(cfg.auto_cameras, cfg.road, rng)
        taken = {s.id for s in specs}
        n = len(specs)
        for s in auto:
            n += 1
            while f"c{n:03d}" in taken:
                n += 1
            specs.append(s.model_copy(update={"id": f"c{n:03d}"}))
    if cfg.camera_ranges is not None:
        # a stream of its own: the automatic placement above draws as it always did
        specs = sorted(specs, key=lambda s: s.id)
        specs = randomise_specs(specs, cfg.camera_ranges, np.random.default_rng([cfg.seed, 8]))
    cams = [camera_from_spec(s, cfg.camera_defaults) for s in specs]
    return sorted(cams, key=lambda c: c.camera_id)
