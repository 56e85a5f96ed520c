"""The ground-plane road network (metres) and the vehicles that drive on it.

The network is a tree: an east-west arterial (y = 0) with signalised intersections, a cross
street at each, and a side road joining at a T junction with a stop sign. A vehicle follows
one route (a dense polyline along its lane, with rounded turns) from an entry to an exit
end; its motion is simulated with the Intelligent Driver Model (Treiber et al. 2000)
against the vehicle ahead, red lights and stop lines, at ``traffic.step_s`` steps. Only arc
length ``s(t)`` is stored per vehicle; positions are looked up on the route.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from mct.data.synth.config import RoadConfig, TrafficConfig, VehicleLookConfig
from mct.data.synth.vehicles import Appearance, apply_look, sample_appearance

__all__ = ["RoadNetwork", "Route", "Vehicle", "World", "build_network", "simulate"]

log = logging.getLogger(__name__)

_SAMPLE_M = 0.5  # route polyline spacing (m)


@dataclass
class Node:
    name: str
    xy: np.ndarray  # (2,) metres
    kind: str  # "signal", "tee", "bend", "end"
    signal_offset_s: float = 0.0


@dataclass
class Edge:
    a: str
    b: str
    road: str  # "arterial", "cross", "side"
    lanes: int  # per direction
    lane_width_m: float

    @property
    def half_width_m(self) -> float:
        return self.lanes * self.lane_width_m


@dataclass
class RoadNetwork:
    """Nodes and undirected edges of the (tree-shaped) road graph, in metres."""

    nodes: dict[str, Node]
    edges: list[Edge]
    cfg: RoadConfig

    def neighbours(self, name: str) -> list[tuple[str, Edge]]:
        out = []
        for e in self.edges:
            if e.a == name:
                out.append((e.b, e))
            elif e.b == name:
                out.append((e.a, e))
        return out

    def edge(self, a: str, b: str) -> Edge:
        for e in self.edges:
            if {e.a, e.b} == {a, b}:
                return e
        raise KeyError(f"no road between {a} and {b}")

    def ends(self) -> list[str]:
        return [n for n, node in self.nodes.items() if node.kind == "end"]

    def path(self, start: str, goal: str) -> list[str]:
        """The node sequence from ``start`` to ``goal`` (unique: the network is a tree)."""
        prev: dict[str, str | None] = {start: None}
        queue = [start]
        while queue:
            cur = queue.pop(0)
            if cur == goal:
                break
            for nb, _ in self.neighbours(cur):
                if nb not in prev:
                    prev[nb] = cur
                    queue.append(nb)
        if goal not in prev:
            raise ValueError(f"no path from {start} to {goal}")
        out = [goal]
        while prev[out[-1]] is not None:
            out.append(prev[out[-1]])  # type: ignore[arg-type]
        return out[::-1]

    def setback_m(self, node: str, edge: Edge) -> float:
        """How far before ``node`` the lane of ``edge`` stops being straight (m)."""
        kind = self.nodes[node].kind
        if kind == "end":
            return 0.0
        if kind == "bend":
            return 4.0
        others = [e for _, e in self.neighbours(node) if e is not edge]
        if kind == "tee" and edge.road == "arterial":
            # the arterial runs straight through a T junction; only turns need room
            return max(e.half_width_m for e in others) + 1.0
        return max(e.half_width_m for e in others) + self.cfg.sidewalk_width_m * 0.5 + 1.0


def build_network(cfg: RoadConfig) -> RoadNetwork:
    """The arterial, its cross streets and the side road, as :class:`RoadNetwork`."""
    xs = sorted(cfg.intersections_x_m)
    if len(xs) < 1:
        raise ValueError("road.intersections_x_m: need at least one intersection")
    nodes: dict[str, Node] = {}
    arterial: list[tuple[float, str]] = []
    for i, x in enumerate(xs):
        name = f"I{i}"
        nodes[name] = Node(name, np.array([x, 0.0]), "signal", signal_offset_s=cfg.first_signal_offset_s + i * cfg.signal_offset_s)
        arterial.append((x, name))
        for side, tag in ((1, "N"), (-1, "S")):
            end = f"{tag}{i}"
            nodes[end] = Node(end, np.array([x, side * cfg.cross_street_length_m]), "end")
    west, east = xs[0] - cfg.arterial_extend_m, xs[-1] + cfg.arterial_extend_m
    nodes["W"] = Node("W", np.array([west, 0.0]), "end")
    nodes["E"] = Node("E", np.array([east, 0.0]), "end")
    arterial += [(west, "W"), (east, "E")]
    edges: list[Edge] = []
    sr = cfg.side_road
    if sr is not None:
        if not (west + 20 < sr.at_x_m < east - 20) or any(abs(sr.at_x_m - x) < 30 for x in xs):
            raise ValueError(f"road.side_road.at_x_m: {sr.at_x_m} must be on the arterial, >= 30 m from intersections")
        nodes["T"] = Node("T", np.array([sr.at_x_m, 0.0]), "tee")
        arterial.append((sr.at_x_m, "T"))
        k = np.array([sr.at_x_m, sr.side * sr.length_m[0]])
        nodes["K"] = Node("K", k, "bend")
        ang = math.radians(sr.bend_deg)
        d = np.array([math.sin(ang), sr.side * math.cos(ang)])
        nodes["R"] = Node("R", k + d * sr.length_m[1], "end")
        edges += [
            Edge("T", "K", "side", 1, cfg.lane_width_m),
            Edge("K", "R", "side", 1, cfg.lane_width_m),
        ]
    arterial.sort()
    for (_, a), (_, b) in zip(arterial[:-1], arterial[1:]):
        edges.append(Edge(a, b, "arterial", cfg.arterial_lanes_per_direction, cfg.lane_width_m))
    for i in range(len(xs)):
        for tag in ("N", "S"):
            edges.append(Edge(f"I{i}", f"{tag}{i}", "cross", cfg.cross_lanes_per_direction, cfg.lane_width_m))
    return RoadNetwork(nodes, edges, cfg)


@dataclass
class Stop:
    """A stop line on a route: arc length (m), the node, and what governs it."""

    s_m: float
    node: str
    rule: str  # "arterial" / "cross" (signal groups), "stop" (stop sign) or "yield"
    #: travel directions (unit vectors) of the traffic this vehicle must give way to here:
    #: oncoming traffic for a left turn, the arterial for the side road
    yield_to: tuple[tuple[float, float], ...] = ()


@dataclass
class Route:
    """A dense lane-centre polyline: points (P, 2) m, tangents (P, 2), arc length (P,), speed limit (P,)."""

    nodes: list[str]
    xy: np.ndarray
    tangent: np.ndarray
    s: np.ndarray
    speed_limit: np.ndarray
    stops: list[Stop]

    @property
    def length_m(self) -> float:
        return float(self.s[-1])


def _turn(d_in: np.ndarray, d_out: np.ndarray) -> str:
    cross = d_in[0] * d_out[1] - d_in[1] * d_out[0]
    if abs(cross) < 0.3:
        return "straight"
    return "left" if cross > 0 else "right"


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _line_intersection(p: np.ndarray, d: np.ndarray, q: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    den = d[0] * e[1] - d[1] * e[0]
    if abs(den) < 1e-6:
        return None
    t = ((q[0] - p[0]) * e[1] - (q[1] - p[1]) * e[0]) / den
    return p + t * d


def build_route(net: RoadNetwork, nodes: list[str], lane_pref: int, traffic: TrafficConfig) -> Route:
    """The lane-centre polyline of the path ``nodes``; ``lane_pref`` 0 = innermost lane."""
    dirs, lanes, segs = [], [], []
    for a, b in zip(nodes[:-1], nodes[1:]):
        pa, pb = net.nodes[a].xy, net.nodes[b].xy
        d = (pb - pa) / np.linalg.norm(pb - pa)
        dirs.append(d)
    turns = [_turn(dirs[i], dirs[i + 1]) for i in range(len(dirs) - 1)] + ["straight"]
    for i, (a, b) in enumerate(zip(nodes[:-1], nodes[1:])):
        e = net.edge(a, b)
        # the lane is chosen for the next turn on the route, however far: no lane changes
        # between turns (a lane change inside an intersection would cut across traffic)
        turn_next = next((t for t in turns[i:] if t != "straight"), "straight")
        if turn_next == "right":
            lane = e.lanes - 1
        elif turn_next == "left":
            lane = 0
        else:
            lane = min(lane_pref, e.lanes - 1)
        lanes.append(lane)
        d = dirs[i]
        right = np.array([d[1], -d[0]])
        off = right * (lane + 0.5) * e.lane_width_m
        pa, pb = net.nodes[a].xy, net.nodes[b].xy
        start = pa + off + d * net.setback_m(a, e)
        end = pb + off - d * net.setback_m(b, e)
        segs.append((start, end, e))
    pts: list[np.ndarray] = []
    limits: list[np.ndarray] = []
    stop_points: list[tuple[int, str, str, tuple]] = []  # (index in pts, node, rule, yield_to)
    v_turn = traffic.turn_speed_mps
    for i, (start, end, e) in enumerate(segs):
        n = max(2, int(np.linalg.norm(end - start) / _SAMPLE_M) + 1)
        line = start + (end - start) * np.linspace(0.0, 1.0, n)[:, None]
        if pts:
            line = line[1:]
        pts.append(line)
        limits.append(np.full(len(line), np.inf))
        if i + 1 < len(segs):
            node = nodes[i + 1]
            kind = net.nodes[node].kind
            count = sum(len(p) for p in pts)
            d_in, d_out = dirs[i], dirs[i + 1]
            left = turns[i] == "left"
            oncoming = ((float(-d_in[0]), float(-d_in[1])),) if left else ()
            if kind == "signal":
                stop_points.append((count - 1, node, "arterial" if e.road == "arterial" else "cross", oncoming))
            elif kind == "tee" and e.road == "side":
                # the side road gives way to the arterial in both directions
                arterial = tuple(
                    (float(v[0]), float(v[1]))
                    for nb, ed in net.neighbours(node) if ed.road == "arterial"
                    for v in [(net.nodes[node].xy - net.nodes[nb].xy) / np.linalg.norm(net.nodes[node].xy - net.nodes[nb].xy)]
                )
                stop_points.append((count - 1, node, "stop", arterial))
            elif kind == "tee" and left:
                stop_points.append((count - 1, node, "yield", oncoming))
            nxt_start = segs[i + 1][0]
            ctrl = _line_intersection(end, d_in, nxt_start, d_out)
            if ctrl is None:
                ctrl = (end + nxt_start) / 2
            gap = np.linalg.norm(nxt_start - end)
            m = max(3, int(gap / _SAMPLE_M) + 2)
            curve = _bezier(end, ctrl, nxt_start, m)[1:-1]
            pts.append(curve)
            turning = _turn(d_in, d_out) != "straight"
            limits.append(np.full(len(curve), v_turn if turning else np.inf))
    xy = np.concatenate(pts)
    lim = np.concatenate(limits)
    step = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    keep = np.concatenate([[True], step > 1e-6])
    idx_map = np.cumsum(keep) - 1
    xy, lim = xy[keep], lim[keep]
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
    tan = np.gradient(xy, axis=0)
    tan /= np.maximum(np.linalg.norm(tan, axis=1, keepdims=True), 1e-9)
    stops = [Stop(float(s[idx_map[k]]), node, rule, yield_to) for k, node, rule, yield_to in stop_points]
    return Route(list(nodes), xy, tan, s, lim, stops)


@dataclass
class Vehicle:
    """One vehicle: identity, look, route and its simulated arc length over time."""

    vehicle_id: int
    appearance: Appearance
    route: Route
    desired_speed_mps: float
    #: simulation step index of its first sample
    first_step: int = 0
    #: arc length (m) of the vehicle centre at each step from ``first_step``
    s_hist: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))


@dataclass
class World:
    """A simulated split: the network, the vehicles, and the simulation clock."""

    network: RoadNetwork
    vehicles: list[Vehicle]
    t0_s: float  # scenario time of step 0 (negative: warm-up)
    step_s: float
    _cache: dict | None = field(default=None, repr=False)

    def _tables(self) -> dict[str, np.ndarray]:
        """All routes and arc-length histories concatenated, for vectorised look-ups."""
        if self._cache is None:
            gap = 10.0  # metres between consecutive routes in the concatenated arc length
            base, hist_off, s_all, xy_all, tan_all, hist_all = [], [], [], [], [], []
            b = 0.0
            h = 0
            for v in self.vehicles:
                base.append(b)
                s_all.append(v.route.s + b)
                xy_all.append(v.route.xy)
                tan_all.append(v.route.tangent)
                b += v.route.length_m + gap
                hist_off.append(h)
                hist_all.append(v.s_hist)
                h += len(v.s_hist)
            empty = np.zeros(0)
            self._cache = {
                "base": np.asarray(base),
                "s": np.concatenate(s_all) if s_all else empty,
                "xy": np.concatenate(xy_all) if xy_all else np.zeros((0, 2)),
                "tan": np.concatenate(tan_all) if tan_all else np.zeros((0, 2)),
                "hist": np.concatenate(hist_all).astype(np.float64) if hist_all else empty,
                "hist_off": np.asarray(hist_off, dtype=np.int64),
                "first": np.asarray([v.first_step for v in self.vehicles], dtype=np.int64),
                "count": np.asarray([len(v.s_hist) for v in self.vehicles], dtype=np.int64),
            }
        return self._cache

    def states_at(self, t_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vehicles on the road at scenario time ``t_s``, linearly interpolated between steps.

        Returns ``(indices (K,) int64 into vehicles, xy (K, 2) m, heading (K, 2) unit vectors)``.
        """
        tb = self._tables()
        if len(self.vehicles) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 2)), np.zeros((0, 2))
        j = (t_s - self.t0_s) / self.step_s - tb["first"]
        live = (j >= 0) & (j <= tb["count"] - 1)
        idx = np.flatnonzero(live)
        j = j[idx]
        j0 = np.floor(j).astype(np.int64)
        j1 = np.minimum(j0 + 1, tb["count"][idx] - 1)
        f = j - j0
        off = tb["hist_off"][idx]
        s = (1 - f) * tb["hist"][off + j0] + f * tb["hist"][off + j1]
        g = s + tb["base"][idx]
        xy = np.column_stack([np.interp(g, tb["s"], tb["xy"][:, 0]), np.interp(g, tb["s"], tb["xy"][:, 1])])
        hd = np.column_stack([np.interp(g, tb["s"], tb["tan"][:, 0]), np.interp(g, tb["s"], tb["tan"][:, 1])])
        hd /= np.maximum(np.linalg.norm(hd, axis=1, keepdims=True), 1e-9)
        return idx.astype(np.int64), xy, hd


#: a vehicle that has waited this long at a give-way line goes anyway (avoids starvation)
_MAX_YIELD_WAIT_S = 12.0
#: priority traffic within this distance of the junction, driving towards it, blocks a give-way
_YIELD_RANGE_M = 70.0


def _must_yield(stop: Stop, net: RoadNetwork, pos: np.ndarray, hd: np.ndarray, me: int, waited_s: float) -> bool:
    """Whether priority traffic (``stop.yield_to`` directions) is near ``stop.node``.

    ``pos`` (K, 2) and ``hd`` (K, 2) are the active vehicles; ``me`` is this vehicle's row.
    """
    if not stop.yield_to or waited_s >= _MAX_YIELD_WAIT_S:
        return False
    node = net.nodes[stop.node].xy
    rel = node[None, :] - pos  # from each vehicle to the junction
    dist = np.linalg.norm(rel, axis=1)
    for y in stop.yield_to:
        yv = np.asarray(y)
        moving = (hd @ yv > 0.9) & (dist < _YIELD_RANGE_M) & (rel @ yv > -4.0)
        moving[me] = False
        if moving.any():
            return True
    return False


def _signal_state(net: RoadNetwork, node: str, rule: str, t: float) -> str:
    """``"green"``, ``"amber"`` or ``"red"`` for the approach group ``rule`` at time ``t``.

    The arterial group has the first ``arterial_green_fraction`` of the cycle, the cross
    group the rest; each ends with ``amber_s`` of amber and ``all_red_s`` of red for all.
    """
    cfg = net.cfg
    c = cfg.signal_cycle_s
    phase = (t - net.nodes[node].signal_offset_s) % c
    g = cfg.arterial_green_fraction * c
    start, end = (0.0, g) if rule == "arterial" else (g, c)
    if not (start <= phase < end - cfg.all_red_s):
        return "red"
    return "amber" if phase >= end - cfg.all_red_s - cfg.amber_s else "green"


def _choose_path(net: RoadNetwork, rng: np.random.Generator, traffic: TrafficConfig) -> list[str]:
    ends = sorted(net.ends())
    side_ends = [e for e in ends if e not in ("W", "E")]
    if rng.random() < traffic.arterial_entry_fraction or not side_ends:
        entry = "W" if rng.random() < 0.5 else "E"
        if rng.random() < traffic.through_fraction:
            goal = "E" if entry == "W" else "W"
        else:
            goal = side_ends[int(rng.integers(len(side_ends)))] if side_ends else ("E" if entry == "W" else "W")
    else:
        entry = side_ends[int(rng.integers(len(side_ends)))]
        if rng.random() < 0.6:
            goal = "W" if rng.random() < 0.5 else "E"
        else:
            others = [e for e in ends if e != entry]
            goal = others[int(rng.integers(len(others)))]
    return net.path(entry, goal)


def simulate(
    net: RoadNetwork,
    traffic: TrafficConfig,
    rng: np.random.Generator,
    t_start_s: float,
    t_end_s: float,
    first_vehicle_id: int,
    spawn_scale: float = 1.0,
    look: VehicleLookConfig | None = None,
    look_rng: np.random.Generator | None = None,
) -> World:
    """Simulate traffic from ``t_start_s - warmup`` to ``t_end_s`` (scenario seconds).

    Vehicles are spawned by a Poisson process at the entries (rate ``spawn_rate_per_s *
    spawn_scale``), wait when their entry lane is occupied, and leave at their exit.
    ``look`` (finish, proportions, dirt) is drawn from ``look_rng``, a stream apart from
    ``rng``, so traffic and the demo look do not depend on it.
    """
    dt = traffic.step_s
    t0 = t_start_s - traffic.warmup_s
    n_steps = int(math.ceil((t_end_s - t0) / dt)) + 2
    rate = traffic.spawn_rate_per_s * spawn_scale
    # arrival times and what arrives are drawn up front: the appearance sequence depends only
    # on the seed, not on the simulation
    arrivals: list[tuple[float, list[str], Appearance, float, int]] = []
    t = t0
    while True:
        t += float(rng.exponential(1.0 / rate))
        if t >= t_end_s:
            break
        path = _choose_path(net, rng, traffic)
        app = sample_appearance(rng, traffic)
        if look is not None and look_rng is not None:
            app = apply_look(app, look_rng, look)
        speed = max(4.0, float(rng.normal(traffic.speed_mean_mps, traffic.speed_std_mps)))
        if app.vehicle_type in ("bus", "truck"):
            speed *= 0.85
        lane = int(rng.integers(3))
        arrivals.append((t, path, app, speed, lane))
    vehicles: list[Vehicle] = []
    for k, (_, path, app, speed, lane) in enumerate(arrivals):
        route = build_route(net, path, lane, traffic)
        vehicles.append(Vehicle(first_vehicle_id + k, app, route, speed))
    n = len(vehicles)
    lengths = np.array([v.appearance.length_m for v in vehicles])
    s = np.zeros(n)
    vel = np.zeros(n)
    active = np.zeros(n, dtype=bool)
    done = np.zeros(n, dtype=bool)
    next_stop = np.zeros(n, dtype=np.int64)
    waited = np.zeros(n)
    hist: list[list[float]] = [[] for _ in range(n)]
    pending = 0  # arrivals are spawned in order
    a_max, b = traffic.max_accel_mps2, traffic.comfortable_decel_mps2
    s0, headway = traffic.min_gap_m, traffic.time_headway_s
    v0 = np.array([v.desired_speed_mps for v in vehicles])
    table = _RouteTable([v.route for v in vehicles])
    for step in range(n_steps):
        t = t0 + step * dt
        # spawn: in arrival order; a blocked entry delays the vehicles behind it
        while pending < n and arrivals[pending][0] <= t:
            route = vehicles[pending].route
            start = route.xy[0]
            act = np.flatnonzero(active)
            if len(act):
                near = np.linalg.norm(table.position(act, s[act]) - start, axis=1)
                if (near < lengths[act] / 2 + lengths[pending] / 2 + 4.0).any():
                    break
            active[pending] = True
            s[pending] = 0.0
            vel[pending] = 0.8 * v0[pending]
            vehicles[pending].first_step = step
            pending += 1
        act = np.flatnonzero(active)
        if len(act) == 0:
            continue
        pos = table.position(act, s[act])
        hd = table.tangent(act, s[act])
        # leader: the nearest vehicle ahead in (about) the same lane and direction
        d = pos[None, :, :] - pos[:, None, :]  # (i, j, 2): from i to j
        ahead = np.einsum("ijk,ik->ij", d, hd)
        lateral = np.abs(d[..., 0] * hd[:, None, 1] - d[..., 1] * hd[:, None, 0])
        same = hd @ hd.T
        cand = (ahead > 0.1) & (lateral < 1.6) & (same > 0.2)
        np.fill_diagonal(cand, False)
        gaps = np.where(cand, ahead - (lengths[act][:, None] + lengths[act][None, :]) / 2, np.inf)
        lead = np.argmin(gaps, axis=1)
        gap = gaps[np.arange(len(act)), lead]
        dv = vel[act] - np.where(np.isfinite(gap), vel[act][lead], vel[act])
        # stop lines
        for m, j in enumerate(act):
            route = vehicles[j].route
            front = s[j] + lengths[j] / 2
            while next_stop[j] < len(route.stops) and front > route.stops[next_stop[j]].s_m + 0.5:
                next_stop[j] += 1
                waited[j] = 0.0
            if next_stop[j] >= len(route.stops):
                continue
            stop = route.stops[next_stop[j]]
            g = stop.s_m - front
            if g > 60.0:
                continue
            near_line = vel[j] < 0.3 and g < 2.0
            if near_line:
                waited[j] += dt
            can_stop = g >= vel[j] ** 2 / (2 * b) - 1.0
            # giving way may take a firmer stop than amber does
            can_yield = g >= vel[j] ** 2 / (4 * b) - 1.0
            if stop.rule == "stop":
                wait_s = net.cfg.side_road.stop_wait_s if net.cfg.side_road else 0.0
                must_stop = waited[j] < wait_s or _must_yield(stop, net, pos, hd, m, waited[j])
            elif stop.rule == "yield":
                must_stop = can_yield and _must_yield(stop, net, pos, hd, m, waited[j])
            else:
                state = _signal_state(net, stop.node, stop.rule, t)
                if state == "green":
                    must_stop = can_yield and _must_yield(stop, net, pos, hd, m, waited[j])
                elif state == "amber":
                    # past the point of a comfortable stop on amber: drive through (still giving way)
                    must_stop = can_stop or (can_yield and _must_yield(stop, net, pos, hd, m, waited[j]))
                else:
                    # on red, stop unless even an emergency stop (9 m/s^2) cannot make it
                    must_stop = g >= vel[j] ** 2 / (2 * 9.0) - 0.5
                    waited[j] = 0.0  # only waiting on green counts towards giving up a give-way
            if must_stop and g + 0.5 < gap[m]:
                gap[m] = max(g + 0.5, 0.01)
                dv[m] = vel[j]
        # speed limit ahead (turns): look 25 m ahead
        vlim = np.minimum(v0[act], table.limit_ahead(act, s[act]))
        v = vel[act]
        s_star = s0 + v * headway + v * dv / (2 * math.sqrt(a_max * b))
        acc = a_max * (1 - (v / vlim) ** 4 - (np.maximum(s_star, 0) / np.maximum(gap, 0.01)) ** 2)
        acc = np.clip(acc, -9.0, a_max)
        v_new = np.maximum(0.0, v + acc * dt)
        ds = np.minimum(v_new * dt, np.maximum(gap - 0.3, 0.0))
        ds = np.where(np.isfinite(gap), ds, v_new * dt)
        vel[act] = np.where(ds < v_new * dt, ds / dt, v_new)
        s[act] += ds
        for j in act:
            hist[j].append(s[j])
            if s[j] >= vehicles[j].route.length_m:
                active[j] = False
                done[j] = True
    kept = []
    for j, v in enumerate(vehicles):
        if hist[j]:
            v.s_hist = np.minimum(np.asarray(hist[j], dtype=np.float64), v.route.length_m)
            kept.append(v)
    log.debug("simulated %d vehicles (%d arrivals) over %d steps", len(kept), n, n_steps)
    return World(net, kept, t0, dt)


class _RouteTable:
    """All routes of a simulation concatenated, for vectorised look-ups by (vehicle, arc length)."""

    #: how far ahead a vehicle looks for a lower speed limit (a turn), metres
    LOOKAHEAD_M = 25.0

    def __init__(self, routes: list[Route]) -> None:
        gap = 10.0  # metres between consecutive routes on the concatenated axis
        base, s_all, xy, tan, ahead = [], [], [], [], []
        b = 0.0
        for r in routes:
            base.append(b)
            s_all.append(r.s + b)
            xy.append(r.xy)
            tan.append(r.tangent)
            # lowest limit from each point to LOOKAHEAD_M beyond it
            hi = np.searchsorted(r.s, r.s + self.LOOKAHEAD_M)
            lim = r.speed_limit
            finite = np.flatnonzero(np.isfinite(lim))
            look = np.full(len(lim), np.inf)
            if len(finite):
                k = np.searchsorted(finite, np.arange(len(lim)))  # first limited point at or after i
                has = k < len(finite)
                first = finite[np.minimum(k, len(finite) - 1)]
                ok = has & (first < hi)
                look[ok] = lim[first[ok]]
            ahead.append(look)
            b += r.length_m + gap
        self.base = np.asarray(base)
        self.s = np.concatenate(s_all) if s_all else np.zeros(0)
        self.xy = np.concatenate(xy) if xy else np.zeros((0, 2))
        self.tan = np.concatenate(tan) if tan else np.zeros((0, 2))
        self.ahead = np.concatenate(ahead) if ahead else np.zeros(0)

    def position(self, vehicles: np.ndarray, s: np.ndarray) -> np.ndarray:
        """(K, 2) ground positions (m) of ``vehicles`` (K,) at arc lengths ``s`` (K,)."""
        g = self.base[vehicles] + s
        return np.column_stack([np.interp(g, self.s, self.xy[:, 0]), np.interp(g, self.s, self.xy[:, 1])])

    def tangent(self, vehicles: np.ndarray, s: np.ndarray) -> np.ndarray:
        """(K, 2) unit headings."""
        g = self.base[vehicles] + s
        t = np.column_stack([np.interp(g, self.s, self.tan[:, 0]), np.interp(g, self.s, self.tan[:, 1])])
        return t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)

    def limit_ahead(self, vehicles: np.ndarray, s: np.ndarray) -> np.ndarray:
        """(K,) the lowest speed limit (m/s) within ``LOOKAHEAD_M`` ahead; inf if none."""
        idx = np.searchsorted(self.s, self.base[vehicles] + s)
        return self.ahead[np.minimum(idx, len(self.ahead) - 1)]
