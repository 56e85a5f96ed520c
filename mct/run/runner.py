"""``mct run``'s entry point: one run, or a sweep of runs, for a config.

Kept apart from :mod:`mct.run.pipeline` (one run) and :mod:`mct.run.sweep` (which runs
variants through it), so that imports flow one way: runner -> sweep -> pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mct.config import Config
from mct.run.pipeline import RunSummary, run_single
from mct.run.stages import PipelineStages
from mct.run.sweep import SweepSummary, run_sweep

__all__ = ["run_pipeline"]


def run_pipeline(
    cfg: Config,
    out_dir: str | Path | None = None,
    *,
    force: bool = False,
    stages: PipelineStages | None = None,
    progress: bool = True,
    argv: Sequence[str] | None = None,
) -> RunSummary | SweepSummary:
    """Run ``cfg``: a :class:`RunSummary`, or a :class:`SweepSummary` when the config
    declares a sweep. ``out_dir`` replaces ``run.output_dir/<name>``. Raises
    :class:`mct.run.preflight.PreflightError` (nothing written) when the run cannot start."""
    if cfg.sweep is not None and (cfg.sweep.grid or cfg.sweep.variants):
        return run_sweep(cfg, out_dir, force=force, stages=stages, progress=progress, argv=argv)
    return run_single(cfg, out_dir, force=force, stages=stages, progress=progress, argv=argv)
