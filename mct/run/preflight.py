"""Checks made before a run touches its folder or starts a camera.

:func:`preflight` reads the dataset (root, split, the selected cameras), loads every
checkpoint the run will need (detector and re-ID: loaded the way their stage loads them,
not only found), reads the topology file when one is named, and checks that the run
folder can be written. Every problem is collected; one :class:`PreflightError` then lists
them all, each with the ``--set`` that fixes a wrong path. Nothing is written before these
checks pass, so a run that cannot start leaves the previous run's files as they were.

A checkpoint is loaded only when some camera still has the stage that reads it to compute
(a rerun whose detections and embeddings are all cached does not pay for it). Loading
happens in a short-lived spawned process, so the main process does not keep torch and a
model in memory for the rest of the run.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing as mp
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from mct.config import Config
from mct.run import run_folder as rf
from mct.run.camera_job import camera_fingerprints, embedding_enabled
from mct.run.stages import PipelineStages, weights_file
from mct.types import Camera

log = logging.getLogger(__name__)

__all__ = ["PreflightError", "RunInputs", "preflight"]


class PreflightError(ValueError):
    """The run cannot start; ``problems`` holds one line per problem."""

    def __init__(self, name: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(f"run {name!r} cannot start ({n} problem{'s' if n != 1 else ''}; nothing was written):\n{lines}")


@dataclass(frozen=True)
class RunInputs:
    """What the checks read, handed to the run so that nothing is read twice."""

    cameras: tuple[Camera, ...]
    #: the evaluation ground truth of the split, when it has one
    ground_truth: Path | None
    #: the split folder (its camera folders hold ``roi.jpg``)
    roi_dir: Path | None
    #: camera key -> why that camera could not be loaded (the others still run)
    load_failures: dict[str, str] = field(default_factory=dict)


def preflight(
    cfg: Config, run_dir: str | Path, stages: PipelineStages, *, force: bool = False, cache_root: str | Path | None = None,
) -> RunInputs:
    """Check everything the run ``cfg`` into ``run_dir`` needs (``cache_root``: its stage
    cache, when not ``run_dir/cache``); raise :class:`PreflightError` listing every problem,
    or return the loaded inputs. Reads only."""
    problems: list[str] = []
    inputs = _check_dataset(cfg, stages, problems)
    folder = rf.RunFolder(run_dir, cache_root)
    _check_weights(cfg, stages, inputs, folder, force, problems)
    _check_topology(cfg, stages, problems)
    _check_output(Path(run_dir), problems)
    if problems or inputs is None:
        raise PreflightError(cfg.name, problems)
    return inputs


# ---------------------------------------------------------------------------- dataset
def _check_dataset(cfg: Config, stages: PipelineStages, problems: list[str]) -> RunInputs | None:
    ds = cfg.dataset
    root = Path(ds.root)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "no such folder"
        problems.append(f"dataset.root: {root}: {what} (fix: --set dataset.root=PATH)")
        return None
    split = root / ds.split
    if not split.is_dir():
        splits = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("S*")))
        problems.append(f"dataset.split: {split}: no such folder; splits in {root}: {', '.join(splits) or 'none'} "
                        f"(fix: --set dataset.split=NAME)")
        return None
    try:
        cameras, gt, roi_dir, failures = stages.load_dataset(ds)
    except (OSError, ValueError) as exc:
        problems.append(f"dataset: {exc}")
        return None
    if not cameras and not failures:
        problems.append(f"dataset: no camera in {split} matches scenarios={list(ds.scenarios)} cameras={list(ds.cameras)} "
                        f"(fix: --set dataset.scenarios=... / dataset.cameras=...)")
        return None
    return RunInputs(tuple(cameras), gt, roi_dir, dict(failures))


# ---------------------------------------------------------------------------- checkpoints
def _stage_needed(stage: str, cfg: Config, inputs: RunInputs | None, folder: rf.RunFolder, force: bool) -> bool:
    """Whether some camera still has ``stage`` to compute (unknown cameras: yes)."""
    if force or inputs is None:
        return True
    for cam in inputs.cameras:
        fp = camera_fingerprints(cam, cfg)[stage]
        if not rf.stage_is_done(folder.stage_dir(stage, rf.camera_dirname(*cam.key), fp), fp):
            return True
    return False


def _check_weights(cfg: Config, stages: PipelineStages, inputs: RunInputs | None, folder: rf.RunFolder, force: bool,
                   problems: list[str]) -> None:
    to_load: list[tuple[str, str, str]] = []  # (config key, kind, path)
    if cfg.detector.source == "maskrcnn" and _stage_needed("detect", cfg, inputs, folder, force):
        name = cfg.detector.weights
        path = weights_file("detector", name)
        if name.lower() == "coco":
            to_load.append(("detector.weights", "coco", cfg.detector.model))  # found (or fetched) in the child
        elif name.lower() not in ("", "none"):
            if path is None:
                problems.append(f"detector.weights: checkpoint {name} not found (looked in {Path.cwd()} and the "
                                f"repository) (fix: --set detector.weights=PATH)")
            else:
                to_load.append(("detector.weights", "detector", str(path)))
    if embedding_enabled(cfg):
        name = cfg.reid.weights
        if name.strip().lower() not in ("", "none", "imagenet"):
            path = weights_file("reid", name)
            if path is None:
                problems.append(f"reid.weights: checkpoint {name} not found in {Path.cwd()} "
                                f"(fix: --set reid.weights=PATH)")
            elif _stage_needed("embed", cfg, inputs, folder, force):
                to_load.append(("reid.weights", "reid", str(path)))
    if to_load:
        for key, message in _load_in_child(stages, cfg, to_load):
            problems.append(f"{key}: {message} (fix: --set {key}=PATH)")


def _load_in_child(stages: PipelineStages, cfg: Config, to_load: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """Load each checkpoint in a spawned process; ``(config key, error)`` of those that fail."""
    log.info("loading %s to check %s", ", ".join(path for _, _, path in to_load), "them" if len(to_load) > 1 else "it")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        errors = pool.submit(_load_checkpoints, stages, cfg, [(kind, path) for _, kind, path in to_load]).result()
    return [(key, err) for (key, _, _), err in zip(to_load, errors) if err is not None]


def _load_checkpoints(stages: PipelineStages, cfg: Config, items: list[tuple[str, str]]) -> list[str | None]:
    """(In the child process.) The error of each ``(kind, what)``, ``None`` when it loads."""
    out: list[str | None] = []
    for kind, what in items:
        try:
            stages.load_weights(kind, what, cfg)
            out.append(None)
        except Exception as exc:  # noqa: BLE001 - any failure to load is the user's problem to see
            out.append(str(exc))
    return out


# ---------------------------------------------------------------------------- topology, output
def _check_topology(cfg: Config, stages: PipelineStages, problems: list[str]) -> None:
    topology = str(getattr(cfg.association, "topology", "") or "")
    if not topology:
        return
    if not Path(topology).exists():
        problems.append(f"association.topology: {topology}: no such file or folder (fix: --set association.topology=PATH, "
                        f"or association.topology= for none)")
        return
    try:
        stages.check_topology(Path(topology))
    except (OSError, ValueError) as exc:
        problems.append(f"association.topology: {exc}")


def _check_output(run_dir: Path, problems: list[str]) -> None:
    path = run_dir.absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    fix = "(fix: --out DIR or --set run.output_dir=DIR)"
    if not existing.is_dir():
        problems.append(f"run folder: {path}: {existing} is a file, not a folder {fix}")
    elif not os.access(existing, os.W_OK | os.X_OK):
        problems.append(f"run folder: {path}: {existing} is not writable {fix}")
