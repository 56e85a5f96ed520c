"""TEMPORARY stand-in for mct/associate/links.py (Engineer L's), with the contract's API and
simple behaviour, until links.py lands on main. Deleted then."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from pydantic import Field

from mct.associate.config import ScenarioTopology, TopologyFile, Transition
from mct.schema import StrictModel


class LinksConfig(StrictModel):
    min_speed_mps: float = Field(default=2.0, gt=0)
    max_speed_mps: float = Field(default=25.0, gt=0)
    max_gap_s: float = Field(default=120.0, gt=0)


@dataclass(frozen=True)
class LinkArrays:
    lo: np.ndarray
    hi: np.ndarray
    spread_s: np.ndarray
    min_gap_s: np.ndarray
    overlap: np.ndarray
    known: np.ndarray
    source: np.ndarray
    horizon_s: float = 120.0

    def gap_log_lr(self, s: np.ndarray, a: np.ndarray, b: np.ndarray, gap_s: np.ndarray) -> np.ndarray:
        lo, hi, sp = self.lo[s, a, b], self.hi[s, a, b], self.spread_s[s, a, b]
        z = (hi - lo) + sp * math.sqrt(2 * math.pi)
        d = np.where(gap_s < lo, (lo - gap_s) / sp, np.where(gap_s > hi, (gap_s - hi) / sp, 0.0))
        out = np.log(self.horizon_s / z) - 0.5 * d * d
        out = np.where(self.known[s, a, b], out, 0.0)
        return np.where(gap_s < self.min_gap_s[s, a, b], -np.inf, out)


@dataclass(frozen=True)
class Link:
    lo: float
    hi: float
    spread_s: float
    min_gap_s: float
    source: int
    count: int = 0


@dataclass(frozen=True)
class CameraLinks:
    links: dict[str, dict[tuple[str, str], Link]] = field(default_factory=dict)
    cfg: LinksConfig = field(default_factory=LinksConfig)

    @classmethod
    def from_geometry(cls, cameras: Sequence[object], table: object, cfg: LinksConfig) -> "CameraLinks":
        return cls({}, cfg)

    @classmethod
    def from_topology(cls, topology: TopologyFile, cameras: Sequence[object]) -> "CameraLinks":
        out: dict[str, dict[tuple[str, str], Link]] = {}
        for name, scen in topology.scenarios.items():
            d = out.setdefault(name, {})
            for t in scen.transitions:
                spread = max(1.0, 0.1 * (t.max_gap_s - t.min_gap_s))
                d[(t.src, t.dst)] = Link(t.min_gap_s, t.max_gap_s, spread, -math.inf, 4, t.count)
        return cls(out)

    def _get(self, scenario: str, src: str, dst: str) -> Link | None:
        for name in (scenario, "*"):
            if name in self.links and (src, dst) in self.links[name]:
                return self.links[name][(src, dst)]
        return None

    def learned(self, s: np.ndarray, a: np.ndarray, b: np.ndarray, gap_s: np.ndarray, weight: np.ndarray | None = None,
                table: object = None) -> "CameraLinks":
        out = {k: dict(v) for k, v in self.links.items()}
        groups: dict[tuple[int, int, int], list[float]] = {}
        for si, ai, bi, g in zip(s.tolist(), a.tolist(), b.tolist(), gap_s.tolist()):
            groups.setdefault((si, ai, bi), []).append(g)
        for (si, ai, bi), gs in groups.items():
            if len(gs) < 3 or table is None:
                continue
            scen = table.scenarios[si]  # type: ignore[attr-defined]
            src, dst = table.camera_keys[ai][1], table.camera_keys[bi][1]  # type: ignore[attr-defined]
            lo, hi = float(np.min(gs)), float(np.max(gs))
            margin = max(2.0, 0.2 * (hi - lo))
            out.setdefault(scen, {})[(src, dst)] = Link(lo - margin, hi + margin, max(1.0, 0.1 * (hi - lo)), -math.inf, 2, len(gs))
        return CameraLinks(out, self.cfg)

    def overridden_by(self, other: "CameraLinks") -> "CameraLinks":
        out = {k: dict(v) for k, v in self.links.items()}
        for name, d in other.links.items():
            out.setdefault(name, {}).update(d)
        return CameraLinks(out, self.cfg)

    def compile(self, table: object) -> LinkArrays:
        keys = table.camera_keys  # type: ignore[attr-defined]
        scens = table.scenarios  # type: ignore[attr-defined]
        S, C = len(scens), len(keys)
        lo = np.zeros((S, C, C))
        hi = np.zeros((S, C, C))
        sp = np.ones((S, C, C))
        mg = np.full((S, C, C), -np.inf)
        known = np.zeros((S, C, C), bool)
        src = np.zeros((S, C, C), np.int8)
        for si, scen in enumerate(scens):
            for a, (sa, ca) in enumerate(keys):
                for b, (sb, cb) in enumerate(keys):
                    if sa != scen or sb != scen:
                        continue
                    link = self._get(scen, ca, cb)
                    if link is None:
                        continue
                    lo[si, a, b], hi[si, a, b], sp[si, a, b], mg[si, a, b] = link.lo, link.hi, link.spread_s, link.min_gap_s
                    known[si, a, b] = True
                    src[si, a, b] = link.source
        return LinkArrays(lo, hi, sp, mg, lo < 0, known, src, self.cfg.max_gap_s)

    def to_topology(self) -> TopologyFile:
        scen = {}
        for name, d in self.links.items():
            scen[name] = ScenarioTopology(
                transitions=[Transition(src=s, dst=t, min_gap_s=round(l.lo, 3), max_gap_s=round(l.hi, 3), count=l.count) for (s, t), l in sorted(d.items())],
                unlisted="allow",
            )
        return TopologyFile(scenarios=scen)
