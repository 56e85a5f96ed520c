"""End-to-end fixtures: the tiny synthetic scenario, generated once per test session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """``mct synth configs/synth/tiny.yaml`` (validation split only): 3 cameras, ~4 s each."""
    out = tmp_path_factory.mktemp("tiny") / "data"
    cmd = [sys.executable, "-m", "mct.cli", "-q", "synth", str(REPO / "configs" / "synth" / "tiny.yaml"),
           "--out", str(out), "--splits", "validation"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return out


#: overrides that keep a real run small: precomputed detections, a tiny random re-ID net.
TINY_RUN = (
    "detector.source=file",
    "reid.arch=compact",
    "reid.weights=none",
    "reid.crop_height=32",
    "reid.crop_width=32",
    "reid.compact_widths=[8,16,32,64]",
    "reid.device=cpu",
    "run.workers=2",
    "run.threads_per_job=1",
)
