"""The one protocol every stage of a run follows (detect, embed, track, association, eval).

For each stage: fingerprint its inputs and config (the caller's :class:`StageSpec`), skip it
when its folder records that fingerprint as done, clear its temporary files, compute,
write atomically (through :meth:`StageSpec.atomic`), mark it done (``done.json``, written
last). :func:`run_stages` is that protocol, written once; a stage supplies only its spec
and its compute function.

Stages given together (detect and embed share one pass over the video) are ordered: once
one is due, every later one is due too, since it reads the earlier one's output.

A stage may keep partial results while it computes (``StageSpec.parts_dir``: finished
chunks of a long video, so a killed job resumes inside the camera). They survive a kill,
are dropped by ``force``, and are deleted once the stage is marked done.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from mct.atomic import atomic_path
from mct.run import run_folder as rf

__all__ = ["StageSpec", "StageOutcome", "Compute", "run_stages", "run_stage"]


@dataclass(frozen=True)
class StageSpec:
    """One stage of one camera (or of the whole run: ``key="all"``) under one fingerprint."""

    name: str
    key: str
    fingerprint: str
    #: the content-addressed folder of this fingerprint (``cache/<name>/<key>/<fingerprint>``)
    dir: Path
    #: the files the stage writes into ``dir``; all must exist for the stage to count as done
    outputs: tuple[str, ...] = ()

    def path(self, name: str) -> Path:
        return self.dir / name

    def atomic(self, name: str) -> contextlib.AbstractContextManager[Path]:
        """A temporary path for output ``name``, renamed into place when the block succeeds."""
        return atomic_path(self.dir / name)

    @property
    def parts_dir(self) -> Path:
        """Where the stage may keep finished partial results until it is done."""
        return self.dir / "parts"

    def is_done(self) -> bool:
        return rf.stage_is_done(self.dir, self.fingerprint)


@dataclass(frozen=True)
class StageOutcome:
    """What :func:`run_stages` did with one stage: ``computed`` or ``cached``, and its record
    (``done.json``: fingerprint, outputs, finished, and what the compute function returned)."""

    status: str
    spec: StageSpec
    record: Mapping[str, Any] = field(default_factory=dict)

    def entry(self) -> dict[str, Any]:
        """The stage's entry in ``summary.json``: status, fingerprint, dir, seconds, frames,
        frames/s, then the rest of its record (counts, timings)."""
        seconds = float(self.record.get("seconds", 0.0))
        frames = int(self.record.get("frames", 0))
        extra = {k: v for k, v in self.record.items()
                 if k not in ("fingerprint", "outputs", "finished", "seconds", "frames", "camera")}
        fps = frames / seconds if seconds > 0 and frames else None
        return {"status": self.status, "fingerprint": self.spec.fingerprint, "dir": str(self.spec.dir),
                "seconds": round(seconds, 4), "frames": frames, "fps": None if fps is None else round(fps, 2), **extra}


#: ``compute(due_specs) -> {stage name: info for done.json}``; writes each due stage's outputs.
Compute = Callable[[Sequence[StageSpec]], Mapping[str, Mapping[str, Any]]]


def run_stages(specs: Sequence[StageSpec], compute: Compute, *, force: bool = False,
               inputs_changed: bool = False) -> dict[str, StageOutcome]:
    """Run the protocol for ``specs`` (in order); returns ``{name: outcome}``.

    ``force``: recompute even when done, dropping partial results. ``inputs_changed``: an
    upstream stage was just recomputed; recompute these too (partial results are kept:
    they were made from the same fingerprint).
    """
    due: list[StageSpec] = []
    for spec in specs:
        if force or inputs_changed or due or not spec.is_done():
            due.append(spec)
    outcomes = {s.name: StageOutcome("cached", s, rf.read_json(s.dir / "done.json")) for s in specs if s not in due}
    if due:
        for spec in due:
            spec.dir.mkdir(parents=True, exist_ok=True)
            rf.remove_temp_files(spec.dir)
            if force and spec.parts_dir.exists():
                shutil.rmtree(spec.parts_dir)
        infos = compute(due)
        for spec in due:
            info = infos.get(spec.name)
            if info is None:
                raise RuntimeError(f"internal: stage {spec.name} of {spec.key} computed nothing")
            record = rf.mark_stage_done(spec.dir, spec.fingerprint, spec.outputs, info)
            if spec.parts_dir.exists():
                shutil.rmtree(spec.parts_dir, ignore_errors=True)
            outcomes[spec.name] = StageOutcome("computed", spec, record)
    return {s.name: outcomes[s.name] for s in specs}


def run_stage(spec: StageSpec, compute: Callable[[StageSpec], Mapping[str, Any]], *, force: bool = False,
              inputs_changed: bool = False) -> StageOutcome:
    """:func:`run_stages` for one stage whose ``compute(spec)`` returns its info."""
    return run_stages([spec], lambda due: {spec.name: compute(spec)}, force=force, inputs_changed=inputs_changed)[spec.name]

