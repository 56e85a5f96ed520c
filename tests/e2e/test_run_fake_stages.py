"""The run orchestration end to end with fake stages (seconds, no models): executors,
faults, kill-and-resume, Ctrl-C, sweeps and their cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mct.run import run_folder as rf
from mct.run.runner import run_pipeline
from tests.e2e.fakes import FakeStages, fake_config, make_layout

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return make_layout(tmp_path_factory.mktemp("fake_data"), cameras=("c001", "c002", "c003"), num_frames=20)


def _outputs(run_dir: Path) -> dict[str, bytes]:
    """Every result file of a run (not timings, not logs) by relative path."""
    names = ("detections.npz", "embeddings.npy", "tracks.txt", "assignment.csv", "submission.txt", "metrics.json")
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.name in names and "cache" not in p.parts}


def _no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if rf.TMP_MARK in p.name]


def test_local_run_writes_the_run_folder(layout, tmp_path):
    s = run_pipeline(fake_config(layout), tmp_path / "run", stages=FakeStages(), progress=False)
    assert s.ok and [c.status for c in s.cameras] == ["ok"] * 3
    run = tmp_path / "run"
    for name in ("config.yaml", "manifest.json", "summary.json", "submission.txt", "association/assignment.csv",
                 "eval/metrics.json"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["frames"] == 60 and summary["failed"] == {}
    assert set(summary["cameras"]) == {"S01_c001", "S01_c002", "S01_c003"}
    assert summary["cameras"]["S01_c001"]["stages"]["detect"]["fps"] > 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["packages"]["numpy"]
    # 2 fake cars x 3 cameras x 20 frames; the fake association makes ids local id + k
    rows = (run / "submission.txt").read_text().splitlines()
    assert len(rows) == 120 and sorted({r.split()[1] for r in rows}) == ["11", "12"]
    assert s.metrics["rows"] == 120
    assert _no_temp_files(run)


@pytest.mark.ray
def test_ray_executor_gives_identical_outputs(layout, tmp_path):
    pytest.importorskip("ray")
    local = run_pipeline(fake_config(layout), tmp_path / "local", stages=FakeStages(), progress=False)
    ray_run = run_pipeline(fake_config(layout, "run.executor=ray"), tmp_path / "ray", stages=FakeStages(), progress=False)
    assert local.ok and ray_run.ok, [c.error for c in ray_run.cameras]
    a, b = _outputs(tmp_path / "local"), _outputs(tmp_path / "ray")
    assert len(a) == 3 * 3 + 4 and a == b  # 3 files per camera; assignment, 2 submissions, metrics


def test_corrupt_video_and_crashing_worker_fail_only_their_camera(layout, tmp_path):
    data = make_layout(tmp_path / "data", cameras=("c001", "c002", "c003"), num_frames=10)
    (data / "validation" / "S01" / "c002" / "vdo.avi").write_bytes(b"\0garbage" * 100)
    run = tmp_path / "run"
    s = run_pipeline(fake_config(data), run, stages=FakeStages(crash_camera="c003"), progress=False)
    status = {c.key: c.status for c in s.cameras}
    assert status == {"S01_c001": "ok", "S01_c002": "failed", "S01_c003": "failed"}
    errors = {c.key: c.error for c in s.cameras}
    assert "c002/vdo.avi" in errors["S01_c002"]
    assert "exited with code 3" in errors["S01_c003"]  # the worker died: os._exit(3)
    assert s.status == "failed" and not s.ok
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["failed"]) == {"S01_c002", "S01_c003"}
    # the good camera kept its results, and association ran on it
    assert (run / "cameras" / "S01_c001" / "tracks.txt").is_file()
    assert summary["association"]["cameras"] == ["S01_c001"]
    assert _no_temp_files(run)


def test_cli_exit_status_and_message_for_a_failed_camera(layout, tmp_path):
    data = make_layout(tmp_path / "data", cameras=("c001",), num_frames=5)
    (data / "validation" / "S01" / "c001" / "vdo.avi").unlink()
    (data / "cam_timestamp").mkdir()
    (data / "cam_timestamp" / "S01.txt").write_text("c001 0\n")
    (data / "validation" / "S01" / "c001" / "gt").mkdir()
    (data / "validation" / "S01" / "c001" / "gt" / "gt.txt").write_text("1,1,0,0,10,10,1,-1,-1,-1\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"dataset:\n  root: {data}\ndetector:\n  source: gt\n")
    # the real stages: re-ID needs the frames, the video is missing: the camera fails
    proc = subprocess.run([sys.executable, "-m", "mct.cli", "-q", "run", str(cfg), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, cwd=REPO, timeout=300, env=dict(os.environ, COLUMNS="250"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED S01_c001" in proc.stdout and "vdo.avi: video not found" in proc.stdout
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"


def _spawn_fake_run(run_dir: Path, root: Path, block_file: Path, *overrides: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    log = open(run_dir.parent / "fake_run.log", "wb")  # a file, not a pipe nobody reads
    return subprocess.Popen([sys.executable, "-m", "tests.e2e.fakes", str(run_dir), str(root), str(block_file), *overrides],
                            cwd=REPO, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
                            # a background job of a non-interactive shell inherits SIGINT ignored,
                            # and Python then installs no KeyboardInterrupt handler: restore it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError("condition not reached")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_run_killed_mid_way_resumes_to_the_same_result(layout, tmp_path, sig):
    reference = tmp_path / "reference"
    assert run_pipeline(fake_config(layout, "run.workers=1"), reference, stages=FakeStages(), progress=False).ok

    run = tmp_path / "run"
    # one worker; camera 1 finishes, camera 2 waits (for a file that never appears) in its
    # detect stage with its embeddings file open: then we stop the run
    proc = _spawn_fake_run(run, layout, tmp_path / "never", "run.workers=1")
    try:
        _wait_for(lambda: (run / "cameras" / "S01_c001" / "tracks.txt").exists()
                  and any((run / "cache" / "embed" / "S01_c002").rglob(f"*{rf.TMP_MARK}*")), timeout=120)
        os.killpg(proc.pid, sig)  # the whole process group, as a terminal's Ctrl-C does
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert not (run / "submission.txt").exists()
    if sig == signal.SIGINT:
        assert _no_temp_files(run)  # Ctrl-C leaves no half-written file
        assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"

    resumed = run_pipeline(fake_config(layout, "run.workers=1"), run, stages=FakeStages(), progress=False)
    assert resumed.ok
    by_key = {c.key: c for c in resumed.cameras}
    assert by_key["S01_c001"].stages["detect"]["status"] == "cached"  # finished work was kept
    assert by_key["S01_c003"].stages["detect"]["status"] == "computed"
    assert _outputs(run) == _outputs(reference)
    assert _no_temp_files(run)


def test_sweep_reuses_cached_stages_and_writes_a_comparison(layout, tmp_path):
    cfg_path = tmp_path / "sweep.yaml"
    cfg_path.write_text(f"""
name: sweep
dataset: {{root: {layout}, split: validation}}
sweep:
  grid:
    association.k: [1, 2]
  variants:
    short_tracks: {{tracker.max_age: 3}}
""")
    from mct.config import load_config

    s = run_pipeline(load_config(cfg_path), tmp_path / "sw", stages=FakeStages(), progress=False)
    assert s.ok and [v.name for v, _ in s.variants] == ["base", "association.k=1", "association.k=2", "short_tracks"]
    runs = {v.name: r for v, r in s.variants}

    def statuses(run):
        return {e["status"] for c in run.cameras for e in c.stages.values()}

    assert statuses(runs["base"]) == {"computed"}
    assert statuses(runs["association.k=1"]) == {"cached"}  # only association changed
    assert runs["association.k=1"].association["status"] == "computed"
    short = {s: {c.stages[s]["status"] for c in runs["short_tracks"].cameras} for s in ("detect", "embed", "track")}
    assert short == {"detect": {"cached"}, "embed": {"cached"}, "track": {"computed"}}
    assert runs["association.k=2"].metrics["IDF1"] == pytest.approx(1 / 3)
    table = json.loads((tmp_path / "sw" / "comparison.json").read_text())
    assert [r["variant"] for r in table["variants"]] == ["base", "association.k=1", "association.k=2", "short_tracks"]
    assert "| association.k=1 | `association.k=1` |" in (tmp_path / "sw" / "comparison.md").read_text()
    assert (tmp_path / "sw" / "variants" / "short_tracks" / "submission.txt").is_file()
    # the sweep again: everything cached, same table numbers
    again = run_pipeline(load_config(cfg_path), tmp_path / "sw", stages=FakeStages(), progress=False)
    assert all(statuses(r) == {"cached"} for _, r in again.variants)


def _gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # dead, not yet reaped
    except psutil.NoSuchProcess:
        return True


def test_workers_die_with_their_parent_and_the_rerun_finishes_clean(layout, tmp_path):
    import psutil

    reference = tmp_path / "reference"
    assert run_pipeline(fake_config(layout), reference, stages=FakeStages(), progress=False).ok
    run = tmp_path / "run"
    # two workers: c001 finishes, c002 (and then c003) wait in their detect stage
    proc = _spawn_fake_run(run, layout, tmp_path / "never")
    try:
        _wait_for(lambda: any((run / "cache" / "embed" / "S01_c002").rglob(f"*{rf.TMP_MARK}*")), timeout=120)
        workers = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)
                   if "resource_tracker" not in " ".join(p.cmdline())]
        assert workers, "no worker process found"
        os.kill(proc.pid, signal.SIGKILL)  # the parent only, as `kill -9 PID` does
        proc.wait(timeout=30)
        _wait_for(lambda: all(_gone(pid) for pid in workers), timeout=5)  # within a few seconds
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in workers if "workers" in locals() else ():
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
    resumed = run_pipeline(fake_config(layout), run, stages=FakeStages(), progress=False)
    assert resumed.ok
    assert _outputs(run) == _outputs(reference)
    assert _no_temp_files(run)
    assert not list(run.glob("cameras/*/error.txt"))  # no stale error beside a finished camera


def test_a_rerun_waits_for_the_camera_lock_and_never_deletes_a_live_workers_files(layout, tmp_path):
    import threading

    from mct.run.camera_job import CameraJob, camera_stage_specs, run_camera_job

    cfg = fake_config(layout, "dataset.cameras=[c001]")
    stages = FakeStages()
    cam = stages.load_dataset(cfg.dataset)[0][0]
    job = CameraJob(cam, cfg, str(tmp_path / "run"), str(tmp_path / "run" / "cache"), False, stages)
    folder = rf.RunFolder(job.run_root, job.cache_root)
    # a live worker of an earlier run: it holds the camera's lock and is writing a file
    live_file = camera_stage_specs(job)["detect"].dir / f"detections{rf.TMP_MARK}123-abc.npz"
    live_file.parent.mkdir(parents=True)
    live_file.write_bytes(b"half written")
    held, release = threading.Event(), threading.Event()

    def live_worker() -> None:
        with rf.exclusive_lock(folder.lock_path(job.key)):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=live_worker)
    holder.start()
    held.wait(10)
    results = []
    rerun = threading.Thread(target=lambda: results.append(run_camera_job(job)))
    rerun.start()
    time.sleep(1.0)
    # the rerun waits: it has neither finished nor touched the live worker's file
    assert rerun.is_alive() and live_file.read_bytes() == b"half written"
    release.set()  # the worker ends; the rerun goes ahead
    rerun.join(60)
    holder.join()
    assert results and results[0].status == "ok", results
    assert not live_file.exists()  # the worker is gone: now its leftovers are removed


def test_a_camera_killed_mid_video_resumes_from_its_last_chunk_with_the_same_bytes(tmp_path):
    # one camera of 30 frames, batches of 2 frames, chunks of 4: chunk k = frames 4k+1 .. 4k+4
    data = make_layout(tmp_path / "data", cameras=("c001",), num_frames=30)
    settings = ("run.workers=1", "run.batch_frames=2", "run.chunk_frames=4")
    reference = tmp_path / "reference"
    assert run_pipeline(fake_config(data, *settings), reference, stages=FakeStages(), progress=False).ok

    run = tmp_path / "run"
    # the detector stops at frame 13 (the 4th chunk): chunks 1-3 (frames 1-12) are saved
    proc = _spawn_fake_run(run, data, tmp_path / "never", "block_at=13", *settings)
    parts = run / "cache" / "detect" / "S01_c001"
    try:
        _wait_for(lambda: len(list(parts.glob("*/parts/chunk4/*.npz"))) == 3, timeout=120)
        time.sleep(0.3)  # frames 13-14 are in the detector now
        os.killpg(proc.pid, signal.SIGKILL)  # kill -9, mid-video
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (run / "cameras" / "S01_c001" / "detections.npz").exists()

    resumed = run_pipeline(fake_config(data, *settings), run, stages=FakeStages(), progress=False)
    assert resumed.ok
    detect = resumed.cameras[0].stages["detect"]
    assert detect["status"] == "computed" and detect["resumed_after_frames"] == 12 and detect["frames"] == 30
    assert resumed.cameras[0].stages["embed"]["resumed_after_frames"] == 12
    assert _outputs(run) == _outputs(reference)  # byte for byte
    assert not list(parts.glob("*/parts"))  # the chunks go once the stage is done
    assert _no_temp_files(run)
