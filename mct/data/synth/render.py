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
from mct.data.synth.vehicles import Mesh
from mct.data.synth.world import RoadNetwork

__all__ = [
    "Background", "RenderedVehicle", "StaticBox", "make_background", "make_clutter", "make_noise_bank",
    "render_frame", "sensor_effects", "roi_mask", "sun_vector",
]

_SHIFT = 4  # sub-pixel bits for cv2 polygon filling
_SCALE = 1 << _SHIFT
_AMBIENT = 0.55

_ASPHALT = (72, 74, 76)
_SIDEWALK = (150, 152, 150)
_GRASS = (60, 110, 80)
_WHITE = (225, 225, 225)
_YELLOW = (40, 190, 220)


def sun_vector(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector towards the sun; azimuth clockwise from north (y), degrees."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)])


@dataclass
class Background:
    """The static image of one camera (cast applied) and its ROI mask."""

    image: np.ndarray  # (H, W, 3) uint8 BGR
    roi: np.ndarray  # (H, W) uint8, 255 inside
    gain: np.ndarray  # (3,) float: colour gain * brightness, applied to vehicle colours
    #: (H, W) float32 distance (m) from the camera to the static object seen at each pixel,
    #: inf where only ground or sky is seen: a static object nearer than a vehicle hides it
    static_depth: np.ndarray | None = None


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
    cam: PinholeCamera, net: RoadNetwork, clutter: list[StaticBox], sun: np.ndarray, seed: int
) -> Background:
    """Render the static scene of ``cam``: ground, markings, clutter, sky; colour cast applied."""
    w, h = cam.frame_size
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
            shade = _AMBIENT + (1 - _AMBIENT) * max(0.0, float(nw @ sun))
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
    gain = np.asarray(cam.colour_gain, np.float32) * cam.brightness
    img = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    roi = roi_mask(cam, net, road, A, dist)
    return Background(img, roi, gain, static_depth)


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
) -> tuple[np.ndarray, np.ndarray, list[RenderedVehicle]]:
    """Draw the vehicles ``indices`` at ground positions ``xy`` (K, 2) m, ``heading`` (K, 2).

    Returns ``(frame (H, W, 3) uint8 BGR, id map (H, W) uint16, rendered vehicles)``; the
    frame has no sensor noise or blur yet.
    """
    w, h = cam.frame_size
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
        roi[m > 0] = (roi[m > 0] * 0.6).astype(np.uint8)
    rendered: list[RenderedVehicle] = []
    gain = background.gain.astype(np.float64)
    for draw, (depth, k, rot, pw, uv) in enumerate(todo, start=1):
        mesh = meshes[indices[k]]
        arr = mesh.arrays()
        fix = _fix(uv)
        normals = arr.normals @ rot.T
        centres = pw[arr.points].mean(axis=1)
        facing = np.einsum("ij,ij->i", normals, cam.C - centres) > 0
        visible = np.where(arr.is_face, facing, facing[arr.host])
        shade = _AMBIENT + (1 - _AMBIENT) * np.maximum(0.0, normals @ sun)
        colours = np.minimum(255.0, arr.colours * shade[:, None] * gain).tolist()
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


def sensor_effects(frame: np.ndarray, cam: PinholeCamera, noise_bank: list[tuple[np.ndarray, np.ndarray]], pick: int) -> np.ndarray:
    """Blur then add sensor noise (precomputed bank, ``pick`` chooses one); returns a new frame."""
    out = cv2.GaussianBlur(frame, (0, 0), cam.blur_sigma_px) if cam.blur_sigma_px > 0 else frame.copy()
    if noise_bank:
        pos, neg = noise_bank[pick % len(noise_bank)]
        out = cv2.subtract(cv2.add(out, pos), neg)
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
