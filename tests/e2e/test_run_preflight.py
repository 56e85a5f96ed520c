"""A run that cannot start: the previous run's folder stays as it was, the user gets one
error naming every problem, and nothing says "ok"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mct.run.runner import run_pipeline
from tests.e2e.fakes import FakeStages, fake_config, make_layout

REPO = Path(__file__).resolve().parents[2]
RUN_FILES = ("config.yaml", "manifest.json", "summary.json")


def _mct(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mct.cli", "-q", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=dict(os.environ, COLUMNS="250", PYTHONPATH=str(REPO)))


def _snapshot(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in RUN_FILES}


def test_a_bad_dataset_root_leaves_the_last_good_run_untouched(tmp_path):
    layout = make_layout(tmp_path / "data", cameras=("c001",), num_frames=5)
    run = tmp_path / "run"
    # run 1: a good run
    assert run_pipeline(fake_config(layout), run, stages=FakeStages(), progress=False).ok
    before = _snapshot(run)
    assert json.loads(before["summary.json"])["status"] == "ok"
    # run 2: the same folder, a root that does not exist: it must not start at all
    with pytest.raises((OSError, ValueError), match="nonexistent_root"):
        run_pipeline(fake_config(tmp_path / "nonexistent_root"), run, stages=FakeStages(), progress=False)
    assert _snapshot(run) == before
    assert (run / "submission.txt").is_file()


def test_cli_bad_root_exits_2_and_keeps_the_previous_files(tmp_path):
    # a previous run's files (their content does not matter, only that they survive)
    run = tmp_path / "demo"
    run.mkdir()
    for name in RUN_FILES:
        (run / name).write_text(f"previous {name}\n")
    before = _snapshot(run)
    proc = _mct("run", str(REPO / "configs" / "demo.yaml"), "--set", "dataset.root=/nonexistent_root", "--out", str(run))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "/nonexistent_root" in proc.stderr
    assert _snapshot(run) == before


def test_cli_aic21_without_its_data_writes_no_ok_summary(tmp_path):
    # configs/aic21.yaml names /data/AIC21_Track3_MTMC_Tracking, absent here
    if Path("/data/AIC21_Track3_MTMC_Tracking").exists():
        pytest.skip("the AI City data is installed on this machine")
    run = tmp_path / "aic21"
    proc = _mct("run", str(REPO / "configs" / "aic21.yaml"), "--out", str(run))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "AIC21_Track3_MTMC_Tracking" in proc.stderr
    assert not run.exists()  # nothing written, so nothing can say "ok"


def test_an_error_after_the_start_is_recorded_as_failed_never_ok(tmp_path, monkeypatch):
    import mct.run.pipeline as pipeline

    layout = make_layout(tmp_path / "data", cameras=("c001",), num_frames=5)

    def broken_executor(*args, **kwargs):
        raise RuntimeError("the executor broke")

    monkeypatch.setattr(pipeline, "run_camera_jobs", broken_executor)
    with pytest.raises(RuntimeError, match="executor broke"):
        run_pipeline(fake_config(layout), tmp_path / "run", stages=FakeStages(), progress=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "the executor broke" in summary["error"]


def test_every_problem_is_listed_in_one_error_before_anything_is_written(tmp_path):
    from mct.run.preflight import PreflightError

    corrupt = tmp_path / "reid.pt"
    corrupt.write_bytes(b"not a checkpoint at all")  # found, but it does not load
    blocker = tmp_path / "a_file"
    blocker.write_text("the run folder would have to be inside this file")
    cfg = fake_config(tmp_path / "nonexistent_root", "detector.source=maskrcnn", f"detector.weights={tmp_path}/no_det.pt",
                      f"reid.weights={corrupt}", f"association.topology={tmp_path}/no_topology.yaml")
    with pytest.raises(PreflightError) as info:
        run_pipeline(cfg, blocker / "run", stages=FakeStages(), progress=False)
    problems = info.value.problems
    assert [p.split(":")[0] for p in problems] == ["dataset.root", "detector.weights", "reid.weights",
                                                   "association.topology", "run folder"], problems
    assert "--set dataset.root=PATH" in problems[0]
    assert "no_det.pt not found" in problems[1] and "--set detector.weights=PATH" in problems[1]
    # loaded, not only found: the loader's own complaint about the file
    assert "reid.pt: " in problems[2] and "load" in problems[2] and "--set reid.weights=PATH" in problems[2]
    assert "no_topology.yaml" in problems[3] and "--set association.topology=PATH" in problems[3]
    assert "is a file, not a folder" in problems[4]
    assert "5 problems" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "reid.pt"]


def test_a_wrong_split_lists_the_splits_there(tmp_path):
    from mct.run.preflight import PreflightError

    layout = make_layout(tmp_path / "data", cameras=("c001",), num_frames=3)
    with pytest.raises(PreflightError, match=r"dataset.split: .*/valdation: no such folder; splits in .*: validation"):
        run_pipeline(fake_config(layout, "dataset.split=valdation"), tmp_path / "run", stages=FakeStages(), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_sweep_checks_every_variant_before_running_any(tmp_path):
    from mct.config import load_config
    from mct.run.preflight import PreflightError

    layout = make_layout(tmp_path / "data", cameras=("c001",), num_frames=3)
    cfg_path = tmp_path / "sweep.yaml"
    cfg_path.write_text(f"""
name: sweep
dataset: {{root: {layout}, split: validation}}
reid: {{weights: none}}
sweep:
  variants:
    no_topology: {{association.topology: {tmp_path}/missing_topology.yaml}}
""")
    with pytest.raises(PreflightError, match=r"missing_topology.yaml.*\(variant no_topology\)"):
        run_pipeline(load_config(cfg_path), tmp_path / "sw", stages=FakeStages(), progress=False)
    assert not (tmp_path / "sw").exists()  # the base variant did not run either
