"""Vehicle appearance: type, size, colour and details, and the 3D mesh they make.

A vehicle is a few axis-aligned boxes in its own frame (x forward, y left, z up, origin
at the centre of its footprint on the ground) plus flat decorations (windows, stripes,
lights, wheels, logos) lying on the faces of those boxes. Look-alikes (same type and
colour) differ only in details, as in real traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from mct.data.synth.config import COLOUR_NAMES, TrafficConfig, VehicleLookConfig

__all__ = [
    "COLOURS", "Appearance", "Mesh", "MeshArrays", "Polygon", "sample_appearance", "apply_look", "build_mesh",
    "COCO_CATEGORY", "FINISH_SPECULAR",
]

#: body colours, BGR 0-255
COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (235, 235, 232),
    "black": (28, 28, 30),
    "silver": (190, 188, 185),
    "grey": (110, 110, 112),
    "blue": (160, 70, 30),
    "red": (35, 30, 185),
    "darkgreen": (40, 85, 35),
    "beige": (160, 200, 215),
    "yellow": (30, 200, 235),
    "orange": (20, 120, 235),
    "brown": (30, 60, 100),
    "navy": (80, 30, 20),
}

if tuple(COLOURS) != COLOUR_NAMES:  # one list of names, two places: keep them equal
    raise ImportError(f"vehicles.COLOURS {tuple(COLOURS)} and config.COLOUR_NAMES {COLOUR_NAMES} differ")

#: accent colours for two-tone roofs, stripes and logos
ACCENTS: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 25),
    "white": (240, 240, 240),
    "red": (30, 30, 200),
    "blue": (190, 90, 20),
    "yellow": (20, 210, 240),
    "green": (50, 160, 40),
    "orange": (20, 130, 240),
}

#: COCO category ids (as in the COCO dataset) of each vehicle type
COCO_CATEGORY = {
    "sedan": 3, "suv": 3, "van": 3, "truck": 8, "bus": 6,
    "hatchback": 3, "wagon": 3, "pickup": 8, "motorcycle": 4,
}

# (length, width, height) ranges in metres, typical of each type
_SIZES = {
    "sedan": ((4.3, 4.9), (1.72, 1.85), (1.38, 1.50)),
    "suv": ((4.5, 5.0), (1.82, 2.0), (1.65, 1.85)),
    "van": ((4.9, 5.6), (1.95, 2.05), (1.95, 2.5)),
    "truck": ((6.5, 8.5), (2.3, 2.5), (2.9, 3.5)),
    "bus": ((10.5, 12.5), (2.5, 2.55), (3.0, 3.3)),
    "hatchback": ((3.7, 4.2), (1.68, 1.80), (1.42, 1.55)),
    "wagon": ((4.6, 5.0), (1.78, 1.88), (1.45, 1.58)),
    "pickup": ((5.1, 5.9), (1.85, 2.05), (1.75, 1.95)),
    # the rider included in the height; the width is the handlebar
    "motorcycle": ((1.9, 2.3), (0.7, 0.9), (1.35, 1.6)),
}

#: specular strength of each paint finish (a highlight where the surface mirrors the sun)
FINISH_SPECULAR = {"solid": 0.0, "metallic": 0.35, "matte": 0.0, "faded": 0.0}
#: mud colour of road dirt, BGR
_MUD = (55, 72, 88)

_HEADLIGHTS = {"white": (235, 245, 250), "warm": (150, 220, 250), "blue": (250, 225, 200)}
_TAILLIGHTS = {"red": (30, 30, 200), "dark": (40, 30, 110), "amber": (30, 140, 230)}
_GLASS = {"dark": (45, 40, 38), "blue": (95, 75, 60), "green": (70, 85, 60)}


@dataclass(frozen=True)
class Appearance:
    """What a vehicle looks like; all sizes in metres, colours BGR."""

    vehicle_type: str
    colour: str
    length_m: float
    width_m: float
    height_m: float
    two_tone: str | None = None
    stripe: str | None = None
    roof_rack: bool = False
    headlights: str = "white"
    taillights: str = "red"
    glass: str = "dark"
    logo: str | None = None
    #: a stripe along the bonnet and roof centre (seen from elevated cameras), accent name
    hood_stripe: str | None = None
    #: a closed cargo box on the roof (sedans, SUVs)
    roof_box: bool = False
    #: bumper colour: "body", "black" or "grey"
    bumper: str = "body"
    #: sedan/SUV cabin: where it starts and ends, as fractions of the length from the front / back
    cabin_front_frac: float = 0.33
    cabin_back_frac: float = 0.15
    #: paint finish (``PAINT_FINISHES``) and road dirt on the lower body (0 = clean)
    finish: str = "solid"
    dirt: float = 0.0

    def as_dict(self) -> dict:
        # the look keys are written only when they differ from the demo look, so the
        # demo world's metadata files stay byte-identical
        extra = {}
        if self.finish != "solid":
            extra["finish"] = self.finish
        if self.dirt > 0:
            extra["dirt"] = round(self.dirt, 3)
        return {**extra, 
            "type": self.vehicle_type, "colour": self.colour, "length_m": round(self.length_m, 3),
            "width_m": round(self.width_m, 3), "height_m": round(self.height_m, 3), "two_tone": self.two_tone,
            "stripe": self.stripe, "roof_rack": self.roof_rack, "headlights": self.headlights,
            "taillights": self.taillights, "glass": self.glass, "logo": self.logo,
            "hood_stripe": self.hood_stripe, "roof_box": self.roof_box, "bumper": self.bumper,
            "cabin_front_frac": round(self.cabin_front_frac, 3), "cabin_back_frac": round(self.cabin_back_frac, 3),
        }


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = sorted(weights)
    p = np.array([max(weights[n], 0.0) for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def sample_appearance(rng: np.random.Generator, cfg: TrafficConfig) -> Appearance:
    """Draw one vehicle's appearance from the configured mixes."""
    vtype = _pick(rng, cfg.type_mix)
    colour = _pick(rng, cfg.colour_mix)
    if vtype == "bus" and rng.random() < 0.5:
        colour = "yellow" if rng.random() < 0.3 else "white"
    (l0, l1), (w0, w1), (h0, h1) = _SIZES[vtype]
    accents = sorted(a for a in ACCENTS if a != colour)
    two_tone = accents[int(rng.integers(len(accents)))] if rng.random() < cfg.two_tone_prob else None
    stripe = accents[int(rng.integers(len(accents)))] if rng.random() < cfg.stripe_prob else None
    rack = bool(rng.random() < cfg.roof_rack_prob) and vtype in ("sedan", "suv", "van", "hatchback", "wagon")
    logo = accents[int(rng.integers(len(accents)))] if vtype in ("truck", "van", "bus") and rng.random() < 0.5 else None
    hood = accents[int(rng.integers(len(accents)))] if rng.random() < cfg.hood_stripe_prob and vtype != "truck" else None
    roof_box = bool(rng.random() < cfg.roof_box_prob) and vtype in ("sedan", "suv", "wagon") and not rack
    bumper = ("body", "black", "grey")[int(rng.integers(3))]
    if vtype == "sedan":
        cab_f, cab_b = float(rng.uniform(0.28, 0.40)), float(rng.uniform(0.12, 0.26))
    elif vtype in ("hatchback", "wagon"):
        cab_f, cab_b = float(rng.uniform(0.26, 0.36)), float(rng.uniform(0.02, 0.06))
    elif vtype == "pickup":
        # cab front after the bonnet, cab back where the open bed starts
        cab_f, cab_b = float(rng.uniform(0.22, 0.28)), float(rng.uniform(0.38, 0.46))
    else:
        cab_f, cab_b = float(rng.uniform(0.24, 0.33)), float(rng.uniform(0.03, 0.10))
    return Appearance(
        vehicle_type=vtype,
        colour=colour,
        length_m=float(rng.uniform(l0, l1)),
        width_m=float(rng.uniform(w0, w1)),
        height_m=float(rng.uniform(h0, h1)),
        two_tone=two_tone,
        stripe=stripe,
        roof_rack=rack,
        headlights=sorted(_HEADLIGHTS)[int(rng.integers(len(_HEADLIGHTS)))],
        taillights=sorted(_TAILLIGHTS)[int(rng.integers(len(_TAILLIGHTS)))],
        glass=sorted(_GLASS)[int(rng.integers(len(_GLASS)))],
        logo=logo,
        hood_stripe=hood,
        roof_box=roof_box,
        bumper=bumper,
        cabin_front_frac=cab_f,
        cabin_back_frac=cab_b,
    )


def apply_look(app: Appearance, rng: np.random.Generator, look: VehicleLookConfig) -> Appearance:
    """``app`` with a paint finish, proportions and dirt drawn from ``look`` (``rng`` is the
    look's own stream: the demo look draws the same numbers whatever it is given)."""
    finish = _pick(rng, look.paint_finish_mix)
    lo, hi = look.size_scale
    scale = rng.uniform(lo, hi, size=3) if hi > lo else np.full(3, lo)
    dirt = float(rng.uniform(*look.dirt_amount)) if rng.random() < look.dirt_prob else 0.0
    if finish == "solid" and dirt == 0.0 and lo == hi == 1.0:
        return app
    return replace(
        app, finish=finish, dirt=dirt, length_m=app.length_m * float(scale[0]),
        width_m=app.width_m * float(scale[1]), height_m=app.height_m * float(scale[2]),
    )


def _body_colour(app: Appearance) -> tuple[float, float, float]:
    """The paint colour (BGR) after its finish: a faded paint is bleached towards grey."""
    c = COLOURS[app.colour]
    if app.finish == "faded":
        grey = sum(c) / 3.0
        # half-way to its own grey, then a little lighter: sun-bleached lacquer
        return tuple(float(min(255.0, 0.5 * ch + 0.5 * grey + 25.0)) for ch in c)
    return c


@dataclass(frozen=True)
class Polygon:
    """A planar convex quad of the mesh: 4 point indices, outward normal, colour, its part.

    ``face`` is True for a face of a box (part of the silhouette); decorations are
    False and are drawn right after their host face when that face is visible.
    """

    points: tuple[int, int, int, int]
    normal: tuple[float, float, float]
    colour: tuple[int, int, int]
    part: int
    face: bool
    host: int = -1  # index of the host face polygon for decorations
    #: a head or tail light: it glows (is not shaded) when the scene's lights are on
    light: bool = False


@dataclass(frozen=True)
class MeshArrays:
    """The polygons of a mesh as arrays (Q polygons), for vectorised per-frame work."""

    points: np.ndarray  # (Q, 4) int64 point indices
    normals: np.ndarray  # (Q, 3) float64, vehicle frame
    colours: np.ndarray  # (Q, 3) float64 BGR
    is_face: np.ndarray  # (Q,) bool
    host: np.ndarray  # (Q,) int64: the host face of a decoration, itself for a face
    is_light: np.ndarray  # (Q,) bool: head and tail lights
    by_part: tuple[tuple[int, ...], ...]  # polygon indices of each part, in drawing order


@dataclass
class Mesh:
    """Points (P, 3) float64 in the vehicle frame (metres) and the polygons over them."""

    points: np.ndarray
    polygons: list[Polygon] = field(default_factory=list)
    part_centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    #: specular strength of the body faces (``FINISH_SPECULAR``) and whether the paint is matte
    specular: float = 0.0
    matte: bool = False
    _arrays: MeshArrays | None = None

    def arrays(self) -> MeshArrays:
        """The polygons as arrays (computed once)."""
        if self._arrays is None:
            polys = self.polygons
            n_parts = len(self.part_centres)
            self._arrays = MeshArrays(
                points=np.array([p.points for p in polys], dtype=np.int64).reshape(-1, 4),
                normals=np.array([p.normal for p in polys], dtype=np.float64).reshape(-1, 3),
                colours=np.array([p.colour for p in polys], dtype=np.float64).reshape(-1, 3),
                is_face=np.array([p.face for p in polys], dtype=bool),
                host=np.array([i if p.face else p.host for i, p in enumerate(polys)], dtype=np.int64),
                is_light=np.array([p.light for p in polys], dtype=bool),
                by_part=tuple(tuple(i for i, p in enumerate(polys) if p.part == part) for part in range(n_parts)),
            )
        return self._arrays


# the 5 drawable faces of a box (bottom never seen): corner order (x, y, z) bits, normal
# corners indexed as i = 4*ix + 2*iy + iz for (x0/x1, y0/y1, z0/z1)
_FACES = {
    "front": ((4, 6, 7, 5), (1.0, 0.0, 0.0)),
    "back": ((2, 0, 1, 3), (-1.0, 0.0, 0.0)),
    "left": ((6, 2, 3, 7), (0.0, 1.0, 0.0)),
    "right": ((0, 4, 5, 1), (0.0, -1.0, 0.0)),
    "top": ((1, 5, 7, 3), (0.0, 0.0, 1.0)),
}


class _Builder:
    def __init__(self) -> None:
        self.points: list[tuple[float, float, float]] = []
        self.polygons: list[Polygon] = []
        self.centres: list[tuple[float, float, float]] = []
        # (part, face name) -> (polygon index, 4 corner coordinates)
        self.faces: dict[tuple[int, str], tuple[int, np.ndarray]] = {}

    def box(self, x0, x1, y0, y1, z0, z1, colour, top_colour=None) -> int:
        part = len(self.centres)
        self.centres.append(((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2))
        base = len(self.points)
        corners = []
        for ix in (x0, x1):
            for iy in (y0, y1):
                for iz in (z0, z1):
                    self.points.append((ix, iy, iz))
                    corners.append((ix, iy, iz))
        corners_a = np.asarray(corners, dtype=np.float64)
        for name, (idx, normal) in _FACES.items():
            col = top_colour if (name == "top" and top_colour is not None) else colour
            self.faces[(part, name)] = (len(self.polygons), corners_a[list(idx)])
            self.polygons.append(Polygon(tuple(base + i for i in idx), normal, col, part, True))
        return part

    def deco(self, part: int, face: str, u0: float, u1: float, v0: float, v1: float, colour, light: bool = False) -> None:
        """A quad on a face, in face coordinates: u along the first edge, v along the last."""
        host, c = self.faces[(part, face)]
        a, b, d = c[0], c[1], c[3]
        eu, ev = b - a, d - a
        normal = self.polygons[host].normal
        # lift decorations off the face by 1 mm so they are never coplanar-ambiguous
        lift = 0.001 * np.asarray(normal)
        base = len(self.points)
        for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1)):
            p = a + u * eu + v * ev + lift
            self.points.append((float(p[0]), float(p[1]), float(p[2])))
        self.polygons.append(Polygon((base, base + 1, base + 2, base + 3), normal, colour, part, False, host, light))

    def mesh(self) -> Mesh:
        return Mesh(np.asarray(self.points, dtype=np.float64), self.polygons, np.asarray(self.centres))


def _dirt(b: _Builder, part: int, app: Appearance, body_col, v1: float) -> None:
    """Road dirt: a band over the lowest ``v1`` of the four sides of ``part``."""
    if app.dirt <= 0:
        return
    c = tuple(float((1 - app.dirt) * bc + app.dirt * m) for bc, m in zip(body_col, _MUD))
    for face in ("front", "back", "left", "right"):
        b.deco(part, face, 0.0, 1.0, 0.0, v1, c)


def _lights(b: _Builder, part: int, app: Appearance, v0: float, v1: float) -> None:
    head = _HEADLIGHTS[app.headlights]
    tail = _TAILLIGHTS[app.taillights]
    # front face u runs from the right side (-y) to the left (+y); back face the other way
    for u0, u1 in ((0.06, 0.24), (0.76, 0.94)):
        b.deco(part, "front", u0, u1, v0, v1, head, light=True)
        b.deco(part, "back", u0, u1, v0, v1, tail, light=True)


def _bumpers(b: _Builder, part: int, app: Appearance, v1: float) -> None:
    """Black or grey bumpers (the lowest ``v1`` of the front and back faces of ``part``)."""
    if app.bumper == "body":
        return
    colour = (25, 25, 27) if app.bumper == "black" else (120, 120, 122)
    b.deco(part, "front", 0.0, 1.0, 0.0, v1, colour)
    b.deco(part, "back", 0.0, 1.0, 0.0, v1, colour)


def _wheels(b: _Builder, part: int, px0: float, px1: float, positions: tuple[float, ...], height: float) -> None:
    """Dark tyres on both side faces of ``part`` (x range px0..px1) at vehicle x ``positions``."""
    tyre = (22, 22, 24)
    r = 0.34
    length = px1 - px0
    for x in positions:
        # the left face's u runs from front (x1) to back (x0); the right face's from back to front
        u_left = (px1 - x) / length
        u_right = (x - px0) / length
        du = r / length
        dv = min(2 * r / height, 0.9)
        b.deco(part, "left", u_left - du, u_left + du, 0.0, dv, tyre)
        b.deco(part, "right", u_right - du, u_right + du, 0.0, dv, tyre)


def build_mesh(app: Appearance) -> Mesh:
    """The 3D mesh of a vehicle with appearance ``app`` (vehicle frame, metres)."""
    L, W, H = app.length_m, app.width_m, app.height_m
    body_col = _body_colour(app)
    accent = ACCENTS[app.two_tone] if app.two_tone else body_col
    glass = _GLASS[app.glass]
    b = _Builder()
    x0, x1, y0, y1 = -L / 2, L / 2, -W / 2, W / 2
    if app.vehicle_type == "motorcycle":
        _motorcycle(b, app, body_col, accent)
    elif app.vehicle_type == "pickup":
        _pickup(b, app, body_col, accent, glass)
    elif app.vehicle_type in ("sedan", "suv", "hatchback", "wagon"):
        zb = H * (0.58 if app.vehicle_type == "suv" else 0.55)
        body = b.box(x0, x1, y0, y1, 0.0, zb, body_col)
        _dirt(b, body, app, body_col, 0.35)
        cab_front = x1 - L * app.cabin_front_frac
        cab_back = x0 + L * app.cabin_back_frac
        inset = 0.08 * W
        cab = b.box(cab_back, cab_front, y0 + inset, y1 - inset, zb, H, body_col, top_colour=accent)
        _lights(b, body, app, 0.55, 0.8)
        _wheels(b, body, x0, x1, (x0 + 0.2 * L, x1 - 0.2 * L), zb)
        for face in ("left", "right"):
            b.deco(cab, face, 0.08, 0.92, 0.15, 0.85, glass)
        b.deco(cab, "front", 0.06, 0.94, 0.12, 0.9, glass)
        b.deco(cab, "back", 0.08, 0.92, 0.2, 0.85, glass)
        if app.stripe:
            for face in ("left", "right"):
                b.deco(body, face, 0.02, 0.98, 0.62, 0.78, ACCENTS[app.stripe])
        if app.roof_rack:
            rl, rw = (cab_front - cab_back) * 0.8, (W - 2 * inset) * 0.85
            cx = (cab_front + cab_back) / 2
            b.box(cx - rl / 2, cx + rl / 2, -rw / 2, rw / 2, H, H + 0.12, (35, 35, 38))
        if app.roof_box:
            rl, rw = (cab_front - cab_back) * 0.75, (W - 2 * inset) * 0.6
            cx = (cab_front + cab_back) / 2 - 0.1
            b.box(cx - rl / 2, cx + rl / 2, -rw / 2, rw / 2, H, H + 0.35, (30, 30, 32) if app.colour != "black" else (200, 200, 200))
        if app.hood_stripe:
            # along the bonnet (front part of the body top) and the boot; u runs back -> front
            c = ACCENTS[app.hood_stripe]
            front_u = (cab_front - x0) / L
            back_u = (cab_back - x0) / L
            b.deco(body, "top", front_u, 1.0, 0.4, 0.6, c)
            if back_u > 0.05:
                b.deco(body, "top", 0.0, back_u, 0.4, 0.6, c)
            b.deco(cab, "top", 0.0, 1.0, 0.4, 0.6, c)
        _bumpers(b, body, app, 0.3)
    elif app.vehicle_type == "van":
        body = b.box(x0, x1, y0, y1, 0.0, H, body_col, top_colour=accent)
        _dirt(b, body, app, body_col, 0.18)
        _lights(b, body, app, 0.3, 0.42)
        _wheels(b, body, x0, x1, (x0 + 0.18 * L, x1 - 0.16 * L), H)
        b.deco(body, "front", 0.06, 0.94, 0.55, 0.9, glass)
        b.deco(body, "back", 0.1, 0.9, 0.55, 0.85, glass)
        b.deco(body, "left", 0.02, 0.3, 0.55, 0.85, glass)
        b.deco(body, "right", 0.7, 0.98, 0.55, 0.85, glass)
        if app.stripe:
            for face in ("left", "right"):
                b.deco(body, face, 0.02, 0.98, 0.42, 0.5, ACCENTS[app.stripe])
        if app.logo:
            b.deco(body, "left", 0.4, 0.75, 0.2, 0.45, ACCENTS[app.logo])
            b.deco(body, "right", 0.25, 0.6, 0.2, 0.45, ACCENTS[app.logo])
        if app.roof_rack:
            b.box(x0 + 0.15 * L, x1 - 0.3 * L, -0.4 * W, 0.4 * W, H, H + 0.12, (35, 35, 38))
        if app.hood_stripe:
            b.deco(body, "top", 0.0, 1.0, 0.35, 0.65, ACCENTS[app.hood_stripe])
        _bumpers(b, body, app, 0.12)
    elif app.vehicle_type == "truck":
        cab_len = 2.2
        cab_h = min(2.7, H - 0.2)
        cab = b.box(x1 - cab_len, x1, y0 + 0.05, y1 - 0.05, 0.0, cab_h, body_col, top_colour=accent)
        box_col = (225, 225, 225) if app.colour not in ("white", "silver") else (150, 150, 150)
        cargo = b.box(x0, x1 - cab_len - 0.15, y0, y1, 0.35, H, box_col)
        b.deco(cab, "front", 0.08, 0.92, 0.55, 0.9, glass)
        b.deco(cab, "front", 0.05, 0.2, 0.15, 0.3, _HEADLIGHTS[app.headlights], light=True)
        b.deco(cab, "front", 0.8, 0.95, 0.15, 0.3, _HEADLIGHTS[app.headlights], light=True)
        b.deco(cab, "left", 0.05, 0.5, 0.55, 0.85, glass)
        b.deco(cab, "right", 0.5, 0.95, 0.55, 0.85, glass)
        b.deco(cargo, "back", 0.05, 0.2, 0.02, 0.1, _TAILLIGHTS[app.taillights], light=True)
        b.deco(cargo, "back", 0.8, 0.95, 0.02, 0.1, _TAILLIGHTS[app.taillights], light=True)
        if app.logo:
            for face in ("left", "right"):
                b.deco(cargo, face, 0.2, 0.8, 0.3, 0.75, ACCENTS[app.logo])
        if app.stripe:
            for face in ("left", "right"):
                b.deco(cargo, face, 0.0, 1.0, 0.08, 0.16, ACCENTS[app.stripe])
        _wheels(b, cargo, x0, x1 - cab_len - 0.15, (x0 + 1.0, x0 + 2.0), H - 0.35)
    else:  # bus
        body = b.box(x0, x1, y0, y1, 0.0, H, body_col, top_colour=accent if app.two_tone else (200, 200, 200))
        _dirt(b, body, app, body_col, 0.12)
        _lights(b, body, app, 0.1, 0.2)
        b.deco(body, "front", 0.05, 0.95, 0.45, 0.92, glass)
        b.deco(body, "back", 0.15, 0.85, 0.6, 0.9, glass)
        for face in ("left", "right"):
            b.deco(body, face, 0.03, 0.97, 0.5, 0.85, glass)
            if app.stripe:
                b.deco(body, face, 0.0, 1.0, 0.3, 0.4, ACCENTS[app.stripe])
        _wheels(b, body, x0, x1, (x0 + 0.2 * L, x1 - 0.18 * L), H)
        if app.hood_stripe:
            b.deco(body, "top", 0.0, 1.0, 0.3, 0.7, ACCENTS[app.hood_stripe])
        # destination sign above the windscreen: one more cue between look-alike buses
        b.deco(body, "front", 0.2, 0.8, 0.93, 0.98, ACCENTS[app.logo] if app.logo else (30, 160, 230))
    mesh = b.mesh()
    mesh.specular = FINISH_SPECULAR.get(app.finish, 0.0)
    mesh.matte = app.finish == "matte"
    return mesh


def _pickup(b: _Builder, app: Appearance, body_col, accent, glass) -> None:
    """A pickup: a low body the whole length, a cab, and an open bed (dark floor) behind it."""
    L, W, H = app.length_m, app.width_m, app.height_m
    x0, x1, y0, y1 = -L / 2, L / 2, -W / 2, W / 2
    zb = H * 0.55
    body = b.box(x0, x1, y0, y1, 0.0, zb, body_col)
    _dirt(b, body, app, body_col, 0.35)
    cab_front = x1 - L * app.cabin_front_frac
    cab_back = x0 + L * app.cabin_back_frac
    inset = 0.05 * W
    cab = b.box(cab_back, cab_front, y0 + inset, y1 - inset, zb, H, body_col, top_colour=accent)
    _lights(b, body, app, 0.55, 0.8)
    _wheels(b, body, x0, x1, (x0 + 0.18 * L, x1 - 0.17 * L), zb)
    for face in ("left", "right"):
        b.deco(cab, face, 0.1, 0.9, 0.15, 0.85, glass)
    b.deco(cab, "front", 0.06, 0.94, 0.12, 0.9, glass)
    b.deco(cab, "back", 0.15, 0.85, 0.35, 0.85, glass)
    # the bed: the top of the body behind the cab, seen from above as a dark liner
    bed_u = (cab_back - x0) / L
    b.deco(body, "top", 0.03, bed_u - 0.02, 0.08, 0.92, (45, 45, 48))
    if app.stripe:
        for face in ("left", "right"):
            b.deco(body, face, 0.02, 0.98, 0.62, 0.78, ACCENTS[app.stripe])
    if app.hood_stripe:
        b.deco(body, "top", (cab_front - x0) / L, 1.0, 0.4, 0.6, ACCENTS[app.hood_stripe])
    _bumpers(b, body, app, 0.3)


def _motorcycle(b: _Builder, app: Appearance, body_col, accent) -> None:
    """A motorcycle with its rider: two tyres, a narrow body, a torso and a helmet."""
    L, W, H = app.length_m, app.width_m, app.height_m
    x0, x1 = -L / 2, L / 2
    tyre = (22, 22, 24)
    r = 0.32
    for xc in (x0 + r, x1 - r):
        b.box(xc - r, xc + r, -0.06, 0.06, 0.0, 2 * r, tyre)
    body = b.box(x0 + 0.35, x1 - 0.3, -0.2, 0.2, 0.35, 0.85, body_col, top_colour=accent)
    _lights(b, body, app, 0.55, 0.85)
    if app.stripe:
        for face in ("left", "right"):
            b.deco(body, face, 0.05, 0.95, 0.55, 0.7, ACCENTS[app.stripe])
    # handlebar across the full width, the rider's torso and helmet above the seat
    b.box(x1 - 0.6, x1 - 0.5, -W / 2, W / 2, 0.95, 1.02, (35, 35, 38))
    jacket = ACCENTS[app.two_tone] if app.two_tone else (40, 40, 45)
    torso_top = max(1.1, H - 0.25)
    b.box(-0.3, 0.1, -0.22, 0.22, 0.85, torso_top, jacket)
    helmet = ACCENTS[app.logo] if app.logo else (230, 230, 230)
    b.box(-0.2, 0.05, -0.13, 0.13, torso_top, H, helmet)
