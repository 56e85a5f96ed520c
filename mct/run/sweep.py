"""Sweeps: one run per variant of a config, sharing a stage cache, and a comparison table.

A config's ``sweep`` section declares a ``grid`` (dotted key -> list of values; every
combination is a variant) and/or named ``variants`` (name -> {dotted key: value}); the
unchanged config runs too as ``base`` (``include_base``). Layout::

    runs/<name>/
        config.yaml  manifest.json          the sweep config as given (resolved)
        cache/<stage>/<key>/<fingerprint>/  shared by every variant
        variants/<variant>/                 a complete run folder per variant
        comparison.md  comparison.json      IDF1, IDP, IDR, time per variant

Because stage outputs are keyed by the fingerprints of the config sections they depend
on, a variant that changes only ``association.*`` reuses every camera stage, and one that
changes ``tracker.*`` reuses detections and embeddings.
"""

from __future__ import annotations

import copy
import itertools
import logging
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from mct.config import Config, ConfigError, dump_config, set_dotted, validate
from mct.run import run_folder as rf
from mct.run.pipeline import RunSummary, default_run_dir, run_single
from mct.run.preflight import PreflightError, RunInputs, preflight
from mct.run.stages import PipelineStages

log = logging.getLogger(__name__)

__all__ = ["Variant", "SweepSummary", "expand_sweep", "run_sweep", "comparison_rows", "comparison_markdown"]


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict[str, Any]
    config: Config


@dataclass
class SweepSummary:
    name: str
    run_dir: str
    variants: list[tuple[Variant, RunSummary]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(s.ok for _, s in self.variants)

    @property
    def status(self) -> str:
        return "ok" if self.ok else "failed"


def _set_dotted(tree: dict[str, Any], key: str, value: Any, source: str) -> None:
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"{source}: empty key in {key!r}")
    set_dotted(tree, key, copy.deepcopy(value), where=f"{source}: {key}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+,-]+", "_", text).strip("_") or "variant"


def _value_text(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def expand_sweep(cfg: Config) -> list[Variant]:
    """The variants of ``cfg.sweep``, each a validated config with ``sweep`` removed.

    Errors (an unknown key, a wrong value type) name the variant and the dotted key.
    """
    sweep = cfg.sweep
    base = cfg.model_dump(mode="json")
    base["sweep"] = None
    raw: list[tuple[str, dict[str, Any]]] = []
    if sweep is None or getattr(sweep, "include_base", True):
        raw.append(("base", {}))
    if sweep is not None:
        if sweep.grid:
            keys = list(sweep.grid)
            for key in keys:
                if not isinstance(sweep.grid[key], list) or not sweep.grid[key]:
                    raise ConfigError(f"sweep.grid.{key}: expected a non-empty list of values")
            for combo in itertools.product(*(sweep.grid[k] for k in keys)):
                overrides = dict(zip(keys, combo))
                name = _slug(",".join(f"{k}={_value_text(v)}" for k, v in overrides.items()))
                raw.append((name, overrides))
        for name, overrides in sweep.variants.items():
            raw.append((_slug(name), dict(overrides)))
    seen: set[str] = set()
    out: list[Variant] = []
    for name, overrides in raw:
        if name in seen:
            raise ConfigError(f"sweep: two variants are both named {name!r}")
        seen.add(name)
        tree = copy.deepcopy(base)
        source = f"sweep variant {name!r}"
        for key, value in overrides.items():
            if key.split(".")[0] == "sweep":
                raise ConfigError(f"{source}: {key}: a variant cannot change the sweep itself")
            _set_dotted(tree, key, value, source)
        tree["name"] = f"{cfg.name}/{name}"
        out.append(Variant(name, overrides, validate(tree, type(cfg), source)))
    return out


def _metric(metrics: dict[str, Any], name: str) -> float | None:
    for key, value in metrics.items():
        if key.lower() == name and isinstance(value, (int, float)):
            return float(value)
    return None


def comparison_rows(summary: SweepSummary) -> list[dict[str, Any]]:
    rows = []
    for variant, run in summary.variants:
        computed = sum(1 for c in run.cameras for e in c.stages.values() if e.get("status") == "computed")
        cached = sum(1 for c in run.cameras for e in c.stages.values() if e.get("status") == "cached")
        rows.append({
            "variant": variant.name,
            "overrides": {k: v for k, v in variant.overrides.items()},
            "status": run.status,
            "idf1": _metric(run.metrics, "idf1"),
            "idp": _metric(run.metrics, "idp"),
            "idr": _metric(run.metrics, "idr"),
            "seconds": round(run.seconds, 3),
            "camera_stages_computed": computed,
            "camera_stages_cached": cached,
            "failed_cameras": [c.key for c in run.failed_cameras],
            "run_dir": run.run_dir,
        })
    return rows


def comparison_markdown(rows: Sequence[dict[str, Any]]) -> str:
    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{100 * v:.2f}"

    lines = [
        "| variant | overrides | IDF1 | IDP | IDR | time (s) | stages computed / cached | status |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        overrides = ", ".join(f"`{k}={_value_text(v)}`" for k, v in r["overrides"].items()) or "(base)"
        lines.append(f"| {r['variant']} | {overrides} | {fmt(r['idf1'])} | {fmt(r['idp'])} | {fmt(r['idr'])} | "
                     f"{r['seconds']:.1f} | {r['camera_stages_computed']} / {r['camera_stages_cached']} | {r['status']} |")
    return "\n".join(lines) + "\n"


def _preflight_variants(variants: Sequence[Variant], folder: rf.RunFolder, stages: PipelineStages,
                        force: bool) -> dict[str, RunInputs]:
    """:func:`preflight` of every variant (one error listing the problems of all of them)."""
    inputs: dict[str, RunInputs] = {}
    problems: list[str] = []
    seen: dict[str, list[str]] = {}  # the same problem in several variants is listed once
    for variant in variants:
        try:
            inputs[variant.name] = preflight(variant.config, folder.root / "variants" / variant.name, stages,
                                             force=force, cache_root=folder.cache_root)
        except PreflightError as exc:
            for problem in exc.problems:
                seen.setdefault(problem, []).append(variant.name)
    for problem, names in seen.items():
        problems.append(problem if len(names) == len(variants) else f"{problem} (variant {', '.join(names)})")
    if problems:
        raise PreflightError(variants[0].config.name.split("/")[0], problems)
    return inputs


def run_sweep(
    cfg: Config,
    out_dir: str | Path | None = None,
    *,
    force: bool = False,
    stages: PipelineStages | None = None,
    progress: bool = True,
    argv: Sequence[str] | None = None,
) -> SweepSummary:
    """Run every variant of ``cfg.sweep`` into ``<out_dir>/variants/<variant>``; shared cache."""
    variants = expand_sweep(cfg)  # validate every variant before running any
    root = Path(out_dir) if out_dir is not None else default_run_dir(cfg)
    folder = rf.RunFolder(root)
    stages = stages if stages is not None else PipelineStages()
    inputs = _preflight_variants(variants, folder, stages, force)  # check every variant before writing anything
    if force and folder.cache_root.is_dir():
        # every variant recomputes, but a stage shared by variants only once
        log.info("--force: removing the sweep cache %s", folder.cache_root)
        shutil.rmtree(folder.cache_root)
    folder.prepare(dump_config(cfg), cfg.seed, argv)
    summary = SweepSummary(cfg.name, str(folder.root))
    t0 = time.perf_counter()
    log.info("sweep %s: %d variant(s): %s", cfg.name, len(variants), ", ".join(v.name for v in variants))
    try:
        for i, variant in enumerate(variants, start=1):
            log.info("sweep variant %d/%d: %s", i, len(variants), variant.name)
            run = run_single(variant.config, folder.root / "variants" / variant.name, cache_root=folder.cache_root,
                             force=False, stages=stages, progress=progress, argv=argv, inputs=inputs[variant.name])
            summary.variants.append((variant, run))
    finally:
        summary.seconds = time.perf_counter() - t0
        rows = comparison_rows(summary)
        rf.write_json_atomic(folder.root / "comparison.json", {"name": cfg.name, "seconds": round(summary.seconds, 3),
                                                               "variants": rows})
        rf.write_text_atomic(folder.root / "comparison.md", comparison_markdown(rows))
    return summary
