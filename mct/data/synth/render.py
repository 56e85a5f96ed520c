"""OpenCV rendering: a static background per camera, then vehicles as shaded 3D boxes.

Vehicles are drawn far to near (painter's algorithm, by distance from the camera to the
vehicle centre), each face a convex polygon filled without anti-aliasing, so that the
pixels a vehicle covers are exactly known: an id map (``uint16``, 0 = background, k + 1 =
k-th drawn vehicle) is filled with the same polygons as the colour image. Sensor effects
(blur, noise) are applied to the colour image afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mct.data.synth.cameras import PinholeCamera
from mct.data.synth.config import SynthConfig
from mct.data.synth.vehicles import Mesh
from mct.data.synth.world import RoadNetwork

__all__ = [
    "Background", "Lighting", "LIGHTING", "RenderedVehicle", "StaticBox", "draw_lighting", "make_background",
    "make_clutter", "make_noise_bank", "render_frame", "sensor_effects", "roi_mask", "sun_vector",
]

_SHIFT = 4  # sub-pixel bits for cv2 polygon filling
_SCALE = 1 << _SHIFT
_AMBIENT = 0.55

_ASPHALT = (72, 74, 76)
_SIDEWALK = (150, 152, 150)
_GRASS = (60, 110, 80)
_WHITE = (225, 225, 225)
_YELLOW = (40, 190, 220)
_FOG = (200, 200, 200)
#: colour of a lit headlight and of the road it lights (BGR)
_GLOW = (225, 240, 250)


def sun_vector(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector towards the sun; azimuth clockwise from north (y), degrees."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)])


@dataclass(frozen=True)
class Lighting:
    """The light of one scenario.

    ``ambient`` + ``sun_strength`` * max(0, n . sun) shades a face of normal n; shadows
    multiply the ground by ``shadow_factor``; ``scene_gain`` (B, G, R) dims and tints the
    whole scene (``None``: 1, the demo world's day); with ``lights_on`` head and tail lights
    glow (unshaded, not dimmed) and headlights throw a beam on the road; fog blends every
    pixel towards the fog colour by ``1 - exp(-3 d / visibility)`` at distance d.
    """

    regime: str
    sun: tuple[float, float, float]
    ambient: float = _AMBIENT
    sun_strength: float | None = None  # None: 1 - ambient
    shadow_factor: float = 0.6
    scene_gain: tuple[float, float, float] | None = None
    sky_top: tuple[int, int, int] = (200, 160, 120)
    sky_horizon: tuple[int, int, int] = (225, 215, 205)
    lights_on: bool = False
    fog_visibility_m: float | None = None

    @property
    def sun_array(self) -> np.ndarray:
        return np.asarray(self.sun, dtype=np.float64)

    @property
    def strength(self) -> float:
        return (1 - self.ambient) if self.sun_strength is None else self.sun_strength

    def fog_fraction(self, distance_m: np.ndarray) -> np.ndarray:
        """Fraction of fog colour at ``distance_m`` (any shape, metres; inf -> 1)."""
        if self.fog_visibility_m is None:
            return np.zeros_like(np.asarray(distance_m, dtype=np.float32))
        d = np.asarray(distance_m, dtype=np.float32)
        return (1.0 - np.exp(-3.0 * np.minimum(d, 1e6) / self.fog_visibility_m)).astype(np.float32)


#: the regimes (the sun direction and fog are drawn per scenario): ambient, sun strength,
#: shadow darkening, scene gain (B, G, R), sky colours, lights. Day is the demo world's.
LIGHTING: dict[str, dict] = {
    "day": {},
    # flat light from a bright cloud cover: faint shadows, a grey sky
    "overcast": {"ambient": 0.8, "sun_strength": 0.2, "shadow_factor": 0.88, "scene_gain": (0.92, 0.92, 0.9),
                 "sky_top": (185, 185, 182), "sky_horizon": (205, 205, 203)},
    # a low warm sun after sunset begins: dark and orange, long shadows, headlights on
    "dusk": {"ambient": 0.32, "sun_strength": 0.5, "shadow_factor": 0.55, "scene_gain": (0.5, 0.6, 0.8),
             "sky_top": (150, 110, 110), "sky_horizon": (120, 175, 235), "lights_on": True},
    # no sun: a dark scene under street lights, head and tail lights glowing
    "night": {"ambient": 0.3, "sun_strength": 0.0, "shadow_factor": 1.0, "scene_gain": (0.32, 0.3, 0.3),
              "sky_top": (45, 25, 20), "sky_horizon": (70, 60, 55), "lights_on": True},
}


def draw_lighting(cfg: SynthConfig, split: str) -> Lighting:
    """The lighting of ``split`` drawn from ``cfg.lighting`` (a stream of the split's seed).

    With the default config every split gets the demo world's day under the fixed sun.
    """
    lc = cfg.lighting
    rng = np.random.default_rng([cfg.splits[split].seed, 13])
    names = sorted(lc.regime_mix)
    w = np.array([max(lc.regime_mix[n], 0.0) for n in names], dtype=np.float64)
    u = rng.random(5)
    regime = names[int(np.searchsorted(np.cumsum(w / w.sum()), u[0], side="right").clip(0, len(names) - 1))]
    az, el = cfg.sun_azimuth_deg, cfg.sun_elevation_deg
    if lc.sun_azimuth_deg is not None:
        az = lc.sun_azimuth_deg[0] + (lc.sun_azimuth_deg[1] - lc.sun_azimuth_deg[0]) * float(u[1])
    if regime == "dusk":
        lo, hi = lc.dusk_sun_elevation_deg
        el = lo + (hi - lo) * float(u[2])
    elif lc.sun_elevation_deg is not None:
        el = lc.sun_elevation_deg[0] + (lc.sun_elevation_deg[1] - lc.sun_elevation_deg[0]) * float(u[2])
    fog = None
    if u[3] < lc.fog_prob:
        fog = float(lc.fog_visibility_m[0] + (lc.fog_visibility_m[1] - lc.fog_visibility_m[0]) * u[4])
    return Lighting(regime=regime, sun=tuple(float(v) for v in sun_vector(az, el)), fog_visibility_m=fog, **LIGHTING[regime])


@dataclass
class Background:
    """The static image of one camera (cast applied) and its ROI mask."""

    image: np.ndarray  # (H, W, 3) uint8 BGR
    roi: np.ndarray  # (H, W) uint8, 255 inside
    gain: np.ndarray  # (3,) float: colour gain * brightness, applied to vehicle colours
    #: (H, W) float32 distance (m) from the camera to the static object seen at each pixel,
    #: inf where only ground or sky is seen: a static object nearer than a vehicle hides it
    static_depth: np.ndarray | None = None
    #: (3,) the camera's own gain (cast * brightness) without the scene's light: what a
    #: glowing light is seen through
    camera_gain: np.ndarray | None = None


@dataclass
class RenderedVehicle:
    """Where one vehicle landed in a frame (before the annotation rule)."""

    index: int  # index into the world's vehicle list
    draw_id: int  # its value in the id map
    xyxy_hint: tuple[int, int, int, int]  # projected bounds clipped to the frame, pixels (x2, y2 exclusive)
    full_pixels: int  # pixels of its unoccluded silhouette inside the frame
    depth_m: float


def _map_frame(cam: PinholeCamera, max_px: int = 2000) -> tuple[np.ndarray, tuple[int, int], float]:
    """Ground region seen by ``cam`` as a raster: affine map->ground, size, metres per pixel."""
    fp = cam.footprint()
    pts = np.vstack([fp, cam.C[:2][None]])
    lo = pts.min(axis=0) - 10.0
    hi = pts.max(axis=0) + 10.0
    ext = hi - lo
    res = max(0.04, float(ext.max()) / max_px)
    mw, mh = int(math.ceil(ext[0] / res)), int(math.ceil(ext[1] / res))
    # map pixel (j, i) -> ground (x, y): x = lo.x + j * res, y = hi.y - i * res (north up)
    A = np.array([[res, 0.0, lo[0]], [0.0, -res, hi[1]], [0.0, 0.0, 1.0]])
    return A, (mw, mh), res


def _draw_roads(net: RoadNetwork, A: np.ndarray, size: tuple[int, int], res: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Top-down colour map and road mask (uint8) of the network in the raster ``A``."""
    mw, mh = size
    Ainv = np.linalg.inv(A)

    def px(xy: np.ndarray) -> np.ndarray:
        p = np.column_stack([xy, np.ones(len(xy))]) @ Ainv.T
        return np.round(p[:, :2] * _SCALE).astype(np.int64).clip(-2**26, 2**26).astype(np.int32)

    # low-frequency texture so the ground is not flat colour
    tex = rng.normal(0, 1, size=(max(2, mh // 40), max(2, mw // 40), 1)).astype(np.float32)
    tex = cv2.resize(tex, (mw, mh), interpolation=cv2.INTER_CUBIC)[..., None]
    img = np.clip(np.asarray(_GRASS, np.float32) * (1 + 0.12 * tex), 0, 255).astype(np.uint8)
    road = np.zeros((mh, mw), np.uint8)
    cfg = net.cfg

    def rect(a: np.ndarray, b: np.ndarray, half: float, extend: float) -> np.ndarray:
        d = (b - a) / np.linalg.norm(b - a)
        nrm = np.array([-d[1], d[0]])
        a2, b2 = a - d * extend, b + d * extend
        return np.array([a2 + nrm * half, b2 + nrm * half, b2 - nrm * half, a2 - nrm * half])

    for e in net.edges:
        a, b = net.nodes[e.a].xy, net.nodes[e.b].xy
        cv2.fillConvexPoly(img, px(rect(a, b, e.half_width_m + cfg.sidewalk_width_m, e.half_width_m + cfg.sidewalk_width_m)), _SIDEWALK, cv2.LINE_8, _SHIFT)
    for e in net.edges:
        a, b = net.nodes[e.a].xy, net.nodes[e.b].xy
        poly = px(rect(a, b, e.half_width_m, e.half_width_m))
        cv2.fillConvexPoly(img, poly, _ASPHALT, cv2.LINE_8, _SHIFT)
        cv2.fillConvexPoly(road, poly, 255, cv2.LINE_8, _SHIFT)
    # asphalt texture: a tiled noise patch added inside the road mask (saturating)
    tile = rng.normal(0, 4, size=(128, 128)).astype(np.float32)
    speck = np.tile(tile, (mh // 128 + 1, mw // 128 + 1))[:mh, :mw]
    pos = cv2.merge([np.clip(speck, 0, 255).astype(np.uint8)] * 3)
    neg = cv2.merge([np.clip(-speck, 0, 255).astype(np.uint8)] * 3)
    cv2.add(img, pos, dst=img, mask=road)
    cv2.subtract(img, neg, dst=img, mask=road)

    def line(p: np.ndarray, q: np.ndarray, width_m: float, colour, dash: float = 0.0) -> None:
        L = float(np.linalg.norm(q - p))
        if L < 0.1:
            return
        d = (q - p) / L
        pieces = [(0.0, L)] if dash <= 0 else [(s, min(s + dash, L)) for s in np.arange(0.0, L, 2.5 * dash)]
        for s0, s1 in pieces:
            cv2.fillConvexPoly(img, px(rect(p + d * s0, p + d * s1, width_m / 2, 0.0)), colour, cv2.LINE_8, _SHIFT)

    for e in net.edges:
        a, b = net.nodes[e.a].xy, net.nodes[e.b].xy
        d = (b - a) / np.linalg.norm(b - a)
        nrm = np.array([-d[1], d[0]])
        sa, sb = net.setback_m(e.a, e), net.setback_m(e.b, e)
        if net.nodes[e.a].kind == "tee" and e.road == "arterial":
            sa = 0.0
        if net.nodes[e.b].kind == "tee" and e.road == "arterial":
            sb = 0.0
        p, q = a + d * sa, b - d * sb
        if e.road == "arterial":
            line(p + nrm * 0.15, q + nrm * 0.15, 0.12, _YELLOW)
            line(p - nrm * 0.15, q - nrm * 0.15, 0.12, _YELLOW)
        else:
            line(p, q, 0.12, _WHITE, dash=3.0)
        for k in range(1, e.lanes):
            for sgn in (1, -1):
                off = nrm * sgn * k * e.lane_width_m
                line(p + off, q + off, 0.12, _WHITE, dash=3.0)
        for sgn in (1, -1):  # edge lines
            off = nrm * sgn * (e.half_width_m - 0.25)
            line(p + off, q + off, 0.12, _WHITE)
        # stop lines and zebra crossings at signalised ends (right-hand half of the road)
        for node, towards, s in ((e.b, d, sb), (e.a, -d, sa)):
            kind = net.nodes[node].kind
            if kind not in ("signal",) and not (kind == "tee" and e.road == "side"):
                continue
            c = net.nodes[node].xy - towards * s
            right = np.array([towards[1], -towards[0]])
            line(c + right * 0.2 - towards * 0.3, c + right * e.half_width_m - towards * 0.3, 0.45, _WHITE)
            if kind == "signal":
                z0 = c + towards * 0.6
                for k in np.arange(-e.half_width_m + 0.4, e.half_width_m - 0.4, 1.1):
                    line(z0 + nrm * k, z0 + nrm * k + towards * 3.0, 0.55, _WHITE)
    return img, road


@dataclass
class StaticBox:
    """A static 3D box of the scene (building, pole, tree part, bin): centre, size, yaw, colour."""

    xy: tuple[float, float]
    size: tuple[float, float, float]  # length, width, height (m)
    z0: float
    yaw: float
    colour: tuple[int, int, int]


def make_clutter(net: RoadNetwork, rng: np.random.Generator, per_100m: float) -> list[StaticBox]:
    """Buildings, poles, trees and bins beside every road (the same for every camera)."""
    out: list[StaticBox] = []
    cfg = net.cfg
    signals = [n.xy for n in net.nodes.values() if n.kind in ("signal", "tee")]
    for e in net.edges:
        a, b = net.nodes[e.a].xy, net.nodes[e.b].xy
        L = float(np.linalg.norm(b - a))
        d = (b - a) / L
        nrm = np.array([-d[1], d[0]])
        yaw = math.atan2(d[1], d[0])
        n = rng.poisson(per_100m * L / 100.0 * 2)
        for _ in range(int(n)):
            s = rng.uniform(0, L)
            side = 1 if rng.random() < 0.5 else -1
            base = a + d * s
            near_junction = min(float(np.linalg.norm(base - p)) for p in signals) if signals else 1e9
            kind = rng.choice(["building", "pole", "tree", "bin", "building"])
            edge_off = e.half_width_m + cfg.sidewalk_width_m
            if kind == "building":
                if near_junction < 25:
                    continue
                depth = rng.uniform(8, 16)
                off = edge_off + rng.uniform(4, 10) + depth / 2
                grey = int(rng.integers(90, 200))
                tint = rng.integers(-25, 25, size=3)
                col = tuple(int(np.clip(grey + t, 0, 255)) for t in tint)
                out.append(StaticBox(tuple(base + nrm * side * off), (rng.uniform(10, 25), depth, rng.uniform(6, 22)), 0.0, yaw, col))
            elif kind == "pole":
                off = e.half_width_m + 0.5
                out.append(StaticBox(tuple(base + nrm * side * off), (0.25, 0.25, rng.uniform(5, 8)), 0.0, yaw, (90, 95, 100)))
            elif kind == "tree":
                if near_junction < 15:
                    continue
                off = edge_off + rng.uniform(1, 4)
                p = tuple(base + nrm * side * off)
                h = rng.uniform(2.0, 3.0)
                out.append(StaticBox(p, (0.4, 0.4, h), 0.0, yaw, (40, 60, 80)))
                g = int(rng.integers(70, 130))
                out.append(StaticBox(p, (3.0, 3.0, rng.uniform(2.5, 4.0)), h, yaw + 0.4, (40, g, 35)))
            else:
                off = e.half_width_m + cfg.sidewalk_width_m * rng.uniform(0.3, 0.9)
                col = tuple(int(c) for c in rng.integers(30, 220, size=3))
                out.append(StaticBox(tuple(base + nrm * side * off), (0.8, 0.8, 1.1), 0.0, yaw, col))
    return out


def _box_corners(box: StaticBox) -> np.ndarray:
    L, W, H = box.size
    c, s = math.cos(box.yaw), math.sin(box.yaw)
    pts = []
    for ix in (-L / 2, L / 2):
        for iy in (-W / 2, W / 2):
            for iz in (box.z0, box.z0 + H):
                pts.append((box.xy[0] + c * ix - s * iy, box.xy[1] + s * ix + c * iy, iz))
    return np.asarray(pts)


_BOX_FACES = (((4, 6, 7, 5), (1, 0, 0)), ((2, 0, 1, 3), (-1, 0, 0)), ((6, 2, 3, 7), (0, 1, 0)),
              ((0, 4, 5, 1), (0, -1, 0)), ((1, 5, 7, 3), (0, 0, 1)))


def make_background(
    cam: PinholeCamera, net: RoadNetwork, clutter: list[StaticBox], sun: np.ndarray, seed: int,
    lighting: Lighting | None = None,
) -> Background:
    """Render the static scene of ``cam``: ground, markings, clutter, sky; colour cast applied.

    ``lighting`` (default: the demo world's day under ``sun``) shades the clutter, colours
    the sky, dims and tints the scene and adds fog.
    """
    w, h = cam.frame_size
    ambient = _AMBIENT if lighting is None else lighting.ambient
    strength = (1 - _AMBIENT) if lighting is None else lighting.strength
    rng = np.random.default_rng(seed)
    A, size, res = _map_frame(cam)
    top, road = _draw_roads(net, A, size, res, rng)
    Hm = cam.homography @ A
    img = cv2.warpPerspective(top, Hm, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=_GRASS)
    # sky where the pixel ray misses the ground (or hits it very far away)
    # world direction of every pixel's ray; where it points down it meets the ground at
    # horizontal distance C_z * |r_xy| / -r_z
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    M = (np.linalg.inv(cam.K).T @ cam.R).astype(np.float32)
    rays = u[..., None] * M[0] + v[..., None] * M[1] + M[2]  # (H, W, 3)
    down = rays[..., 2] < -1e-6
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(down, float(cam.C[2]) * np.hypot(rays[..., 0], rays[..., 1]) / -rays[..., 2], np.inf)
    rays /= np.linalg.norm(rays, axis=2, keepdims=True)
    sky = ~np.isfinite(dist) | (dist > 600.0)
    if sky.any():
        ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        top_c, hor_c = np.array([200, 160, 120], np.float32), np.array([225, 215, 205], np.float32)
        if lighting is not None:
            top_c, hor_c = np.array(lighting.sky_top, np.float32), np.array(lighting.sky_horizon, np.float32)
        sky_img = (top_c * (1 - ramp) + hor_c * ramp).astype(np.uint8)
        img = np.where(sky[..., None], np.broadcast_to(sky_img, img.shape), img)
        # haze near the horizon
    haze = np.clip((np.minimum(dist, 600.0) - 150.0) / 450.0, 0, 1).astype(np.float32)[..., None]
    img = (img.astype(np.float32) * (1 - 0.5 * haze) + 215.0 * 0.5 * haze).astype(np.uint8)
    # static clutter, far to near
    boxes = []
    for box in clutter:
        corners = _box_corners(box)
        uv, z = cam.project(corners)
        if z.min() < 0.5 or float(np.linalg.norm(np.asarray(box.xy) - cam.C[:2])) > 400:
            continue
        if uv[:, 0].max() < 0 or uv[:, 0].min() > w or uv[:, 1].max() < 0 or uv[:, 1].min() > h:
            continue
        boxes.append((float(np.linalg.norm(corners.mean(0) - cam.C)), box, corners, uv))
    boxes.sort(key=lambda t: -t[0])
    static_depth = np.full((h, w), np.inf, np.float32)
    for _, box, corners, uv in boxes:
        c, s = math.cos(box.yaw), math.sin(box.yaw)
        for idx, n in _BOX_FACES:
            nw = np.array([c * n[0] - s * n[1], s * n[0] + c * n[1], n[2]], dtype=np.float64)
            centre = corners[list(idx)].mean(0)
            if nw @ (cam.C - centre) <= 0:
                continue
            shade = ambient + strength * max(0.0, float(nw @ sun))
            col = tuple(float(min(255.0, ch * shade)) for ch in box.colour)
            poly = _fix(uv[list(idx)])
            cv2.fillConvexPoly(img, poly, col, cv2.LINE_8, _SHIFT)
            # per-pixel distance to the face plane along each pixel's ray
            x0 = int(np.clip(np.floor(uv[list(idx), 0].min()), 0, w))
            x1 = int(np.clip(np.ceil(uv[list(idx), 0].max()) + 2, 0, w))
            y0 = int(np.clip(np.floor(uv[list(idx), 1].min()), 0, h))
            y1 = int(np.clip(np.ceil(uv[list(idx), 1].max()) + 2, 0, h))
            if x1 <= x0 or y1 <= y0:
                continue
            m = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillConvexPoly(m, poly - np.array([x0, y0], np.int32) * _SCALE, 1, cv2.LINE_8, _SHIFT)
            r = rays[y0:y1, x0:x1]
            den = r @ nw
            depth = float(nw @ (centre - cam.C)) / np.where(np.abs(den) < 1e-9, -1e-9, den)
            depth = np.where(depth > 0, depth, np.inf).astype(np.float32)
            sd = static_depth[y0:y1, x0:x1]
            sd[m > 0] = depth[m > 0]
    if lighting is not None and lighting.fog_visibility_m is not None:
        f = lighting.fog_fraction(np.minimum(static_depth, dist))[..., None]
        img = (img.astype(np.float32) * (1 - f) + np.float32(_FOG) * f).astype(np.uint8)
    camera_gain = np.asarray(cam.colour_gain, np.float32) * cam.brightness
    gain = camera_gain
    if lighting is not None and lighting.scene_gain is not None:
        gain = camera_gain * np.asarray(lighting.scene_gain, np.float32)
    img = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    roi = roi_mask(cam, net, road, A, dist)
    return Background(img, roi, gain, static_depth, camera_gain)


def roi_mask(cam: PinholeCamera, net: RoadNetwork, road_map: np.ndarray, A: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """255 where vehicles on the road within ``max_range_m`` can appear (road raised 0-4 m)."""
    w, h = cam.frame_size
    # keep only road within range on the map
    acc = np.zeros((h, w), np.uint8)
    for z in (0.0, 1.0, 2.0, 3.0, 4.0):
        H = cam.homography_at(z) @ A
        acc |= cv2.warpPerspective(road_map, H, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    near = (dist <= cam.max_range_m).astype(np.uint8) * 255
    # the raised road may reach above the in-range ground by a vehicle's height, not more
    acc = cv2.bitwise_and(acc, _above_rows(near))
    acc = cv2.morphologyEx(acc, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    return cv2.dilate(acc, np.ones((7, 7), np.uint8))


def _above_rows(near: np.ndarray) -> np.ndarray:
    """Pixels up to 4 m of vehicle height above the in-range ground (approximated by 12% of rows)."""
    h = near.shape[0]
    k = max(1, int(0.12 * h))
    kernel = np.zeros((2 * k + 1, 1), np.uint8)
    kernel[k:] = 1  # extend upwards only
    return cv2.dilate(near, kernel)


def _fix(uv: np.ndarray) -> np.ndarray:
    return np.round(np.clip(uv, -1e5, 1e5) * _SCALE).astype(np.int32)


def render_frame(
    cam: PinholeCamera,
    background: Background,
    meshes: list[Mesh],
    indices: np.ndarray,
    xy: np.ndarray,
    heading: np.ndarray,
    sun: np.ndarray,
    lighting: Lighting | None = None,
) -> tuple[np.ndarray, np.ndarray, list[RenderedVehicle]]:
    """Draw the vehicles ``indices`` at ground positions ``xy`` (K, 2) m, ``heading`` (K, 2).

    ``lighting`` (default: the demo world's day under ``sun``) sets the shading, shadows,
    glowing lights, headlight beams and fog. Returns ``(frame (H, W, 3) uint8 BGR, id map
    (H, W) uint16, rendered vehicles)``; the frame has no sensor noise or blur yet.
    """
    w, h = cam.frame_size
    ambient = _AMBIENT if lighting is None else lighting.ambient
    strength = (1 - _AMBIENT) if lighting is None else lighting.strength
    shadow_factor = 0.6 if lighting is None else lighting.shadow_factor
    frame = background.image.copy()
    ids = np.zeros((h, w), np.uint16)
    if len(indices) == 0:
        return frame, ids, []
    dist = np.linalg.norm(xy - cam.C[:2], axis=1)
    todo = []
    for k in np.flatnonzero(dist < cam.max_range_m * 1.8 + 15):
        mesh = meshes[indices[k]]
        c, s = heading[k]
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        pw = mesh.points @ rot.T + np.array([xy[k, 0], xy[k, 1], 0.0])
        uv, z = cam.project(pw)
        if z.min() < 0.5:
            continue
        x0, y0 = uv.min(axis=0)
        x1, y1 = uv.max(axis=0)
        if x1 < 0 or y1 < 0 or x0 > w - 1 or y0 > h - 1:
            continue
        todo.append((float(np.linalg.norm(pw.mean(axis=0) - cam.C)), k, rot, pw, uv))
    todo.sort(key=lambda t: -t[0])
    # shadows first: they lie on the ground under every vehicle
    shadow_dir = -sun[:2] / max(sun[2], 0.2)
    for _, k, rot, pw, uv in todo:
        mesh = meshes[indices[k]]
        foot = pw[mesh.points[:, 2] < 1e-6][:, :2]
        if len(foot) == 0:
            continue
        height = float(mesh.points[:, 2].max())
        pts = np.vstack([foot, foot + shadow_dir * height * 0.6])
        guv, gz = cam.project(np.column_stack([pts, np.zeros(len(pts))]))
        if gz.min() < 0.5:
            continue
        hull = cv2.convexHull(_fix(guv))
        bx, by, bw, bh = cv2.boundingRect(hull)
        bx0, by0 = max(bx >> _SHIFT, 0), max(by >> _SHIFT, 0)
        bx1, by1 = min(((bx + bw) >> _SHIFT) + 2, w), min(((by + bh) >> _SHIFT) + 2, h)
        if bx1 <= bx0 or by1 <= by0:
            continue
        m = np.zeros((by1 - by0, bx1 - bx0), np.uint8)
        cv2.fillConvexPoly(m, hull - np.array([bx0, by0], np.int32) * _SCALE, 1, cv2.LINE_8, _SHIFT)
        roi = frame[by0:by1, bx0:bx1]
        roi[m > 0] = (roi[m > 0] * shadow_factor).astype(np.uint8)
    if lighting is not None and lighting.lights_on:
        for _, k, rot, pw, uv in todo:
            _headlight_beam(frame, cam, meshes[indices[k]], rot, xy[k])
    rendered: list[RenderedVehicle] = []
    gain = background.gain.astype(np.float64)
    glow = None
    if lighting is not None and lighting.lights_on:
        glow = (background.camera_gain if background.camera_gain is not None else background.gain).astype(np.float64)
    fog_colour = np.asarray(_FOG, np.float64) * gain
    for draw, (depth, k, rot, pw, uv) in enumerate(todo, start=1):
        mesh = meshes[indices[k]]
        arr = mesh.arrays()
        fix = _fix(uv)
        normals = arr.normals @ rot.T
        centres = pw[arr.points].mean(axis=1)
        facing = np.einsum("ij,ij->i", normals, cam.C - centres) > 0
        visible = np.where(arr.is_face, facing, facing[arr.host])
        if lighting is None:
            shade = _AMBIENT + (1 - _AMBIENT) * np.maximum(0.0, normals @ sun)
            colours = np.minimum(255.0, arr.colours * shade[:, None] * gain).tolist()
        else:
            colours = _shaded_colours(arr, mesh, normals, centres, cam, lighting, ambient, strength, gain, glow, fog_colour, depth)
        part_pw = mesh.part_centres @ rot.T + np.array([xy[k, 0], xy[k, 1], 0.0])
        order = np.argsort(-np.linalg.norm(part_pw - cam.C, axis=1))
        x0 = int(max(math.floor(uv[:, 0].min()), 0))
        y0 = int(max(math.floor(uv[:, 1].min()), 0))
        x1 = int(min(math.ceil(uv[:, 0].max()) + 2, w))
        y1 = int(min(math.ceil(uv[:, 1].max()) + 2, h))
        solo = np.zeros((y1 - y0, x1 - x0), np.uint8)
        off = np.array([x0, y0], np.int32) * _SCALE
        quads = fix[arr.points]  # (Q, 4, 2)
        for part in order:
            for pi in arr.by_part[part]:
                if not visible[pi]:
                    continue
                q = quads[pi]
                cv2.fillConvexPoly(frame, q, colours[pi], cv2.LINE_8, _SHIFT)
                if arr.is_face[pi]:
                    cv2.fillConvexPoly(ids, q, draw, cv2.LINE_8, _SHIFT)
                    cv2.fillConvexPoly(solo, q - off, 1, cv2.LINE_8, _SHIFT)
        if background.static_depth is not None and x1 > x0 and y1 > y0:
            sd = background.static_depth[y0:y1, x0:x1]
            if float(sd.min()) < depth:
                idc = ids[y0:y1, x0:x1]
                hidden = (idc == draw) & (sd < depth)
                if hidden.any():
                    frame[y0:y1, x0:x1][hidden] = background.image[y0:y1, x0:x1][hidden]
                    idc[hidden] = 0
        rendered.append(RenderedVehicle(int(indices[k]), draw, (x0, y0, x1, y1), int(np.count_nonzero(solo)), depth))
    return frame, ids, rendered


def _shaded_colours(
    arr, mesh: Mesh, normals: np.ndarray, centres: np.ndarray, cam: PinholeCamera, lighting: Lighting,
    ambient: float, strength: float, gain: np.ndarray, glow: np.ndarray | None, fog_colour: np.ndarray, depth: float,
) -> list:
    """BGR colour of each polygon of one vehicle under ``lighting`` (Q lists of 3 floats)."""
    sun = lighting.sun_array
    shade = ambient + strength * np.maximum(0.0, normals @ sun)
    if mesh.matte:
        # a matte paint scatters light evenly: half-way to the shade of a 60-degree face
        shade = 0.5 * shade + 0.5 * (ambient + 0.5 * strength)
    col = arr.colours * shade[:, None]
    if mesh.specular > 0 and strength > 0:
        view = cam.C - centres
        view /= np.linalg.norm(view, axis=1, keepdims=True)
        half = view + sun
        half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-9)
        # Blinn-Phong highlight of the body faces (a low exponent, 8: a broad metallic sheen
        # over a flat face rather than a point)
        spec = mesh.specular * strength * np.maximum(0.0, np.einsum("ij,ij->i", normals, half)) ** 8
        col = col + 255.0 * np.where(arr.is_face, spec, 0.0)[:, None]
    col = col * gain
    if glow is not None and arr.is_light.any():
        col[arr.is_light] = arr.colours[arr.is_light] * 1.1 * glow
    if lighting.fog_visibility_m is not None:
        f = float(lighting.fog_fraction(np.array(depth)))
        col = col * (1 - f) + fog_colour * f
    return np.minimum(255.0, col).tolist()


def _headlight_beam(frame: np.ndarray, cam: PinholeCamera, mesh: Mesh, rot: np.ndarray, xy: np.ndarray) -> None:
    """Brighten the road lit by a vehicle's headlights: a 9 m trapezoid ahead of it (in place)."""
    h, w = frame.shape[:2]
    front = float(mesh.points[:, 0].max())
    half = float(mesh.points[:, 1].max())
    local = np.array([[front, -half], [front + 9.0, -half - 1.5], [front + 9.0, half + 1.5], [front, half]])
    ground = local @ rot[:2, :2].T + xy[None, :2]
    uv, z = cam.project(np.column_stack([ground, np.zeros(4)]))
    if z.min() < 0.5:
        return
    poly = _fix(uv)
    x0 = int(np.clip(np.floor(uv[:, 0].min()), 0, w))
    x1 = int(np.clip(np.ceil(uv[:, 0].max()) + 2, 0, w))
    y0 = int(np.clip(np.floor(uv[:, 1].min()), 0, h))
    y1 = int(np.clip(np.ceil(uv[:, 1].max()) + 2, 0, h))
    if x1 <= x0 or y1 <= y0:
        return
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(m, poly - np.array([x0, y0], np.int32) * _SCALE, 1, cv2.LINE_8, _SHIFT)
    roi = frame[y0:y1, x0:x1]
    lit = roi[m > 0].astype(np.float32)
    roi[m > 0] = np.clip(lit * 0.6 + np.float32(_GLOW) * 0.4, 0, 255).astype(np.uint8)


def _motion_kernel(length_px: float, angle_deg: float) -> np.ndarray:
    """A normalised line kernel of ``length_px`` pixels at ``angle_deg`` (exposure blur)."""
    n = int(math.ceil(length_px)) | 1
    k = np.zeros((n, n), np.float32)
    c = (n - 1) / 2
    dx, dy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    half = (length_px - 1) / 2
    p0 = (int(round(c - dx * half)), int(round(c - dy * half)))
    p1 = (int(round(c + dx * half)), int(round(c + dy * half)))
    cv2.line(k, p0, p1, 1.0, 1)
    return k / k.sum()


def sensor_effects(frame: np.ndarray, cam: PinholeCamera, noise_bank: list[tuple[np.ndarray, np.ndarray]], pick: int) -> np.ndarray:
    """Blur, motion blur, sensor noise (precomputed bank, ``pick`` chooses one), then a JPEG
    round trip at ``cam.jpeg_quality``; returns a new frame."""
    out = cv2.GaussianBlur(frame, (0, 0), cam.blur_sigma_px) if cam.blur_sigma_px > 0 else frame.copy()
    if cam.motion_blur_px >= 2:
        out = cv2.filter2D(out, -1, _motion_kernel(cam.motion_blur_px, cam.motion_blur_deg))
    if noise_bank:
        pos, neg = noise_bank[pick % len(noise_bank)]
        out = cv2.subtract(cv2.add(out, pos), neg)
    if cam.jpeg_quality > 0:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(cam.jpeg_quality)])
        if not ok:
            raise RuntimeError(f"camera {cam.camera_id}: JPEG encoding at quality {cam.jpeg_quality} failed")
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def make_noise_bank(cam: PinholeCamera, rng: np.random.Generator, n: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` pairs of (positive, negative) uint8 noise images of std ``cam.noise_std``."""
    if cam.noise_std <= 0:
        return []
    w, h = cam.frame_size
    out = []
    for _ in range(n):
        z = rng.normal(0, cam.noise_std, size=(h, w, 3)).astype(np.float32)
        out.append((np.clip(z, 0, 255).astype(np.uint8), np.clip(-z, 0, 255).astype(np.uint8)))
    return out
