"""Resume inside a camera (issue 20): a camera job killed (SIGKILL) half-way through its
video, then rerun, against one uninterrupted run.

The camera is the one of ``bench_run_memory.py`` (640 x 360 MJPG at 10 fps, 8 moving boxes
per frame, file detector, compact re-ID on every box, Deep SORT). Each job runs in a fresh
process. The killed job is stopped once half of its frames are saved as chunks
(``run.chunk_frames``); the rerun starts after the last saved chunk.

Target: rerun time <= 0.6 of the uninterrupted run (process wall time, imports included).

    python benchmarks/bench_resume.py            # a 10-minute camera (6,000 frames)
    python benchmarks/bench_resume.py --quick    # 100 s (1,000 frames), smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_run_memory import FPS, make_camera  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "resume.json"
CHUNK_FRAMES = 256


def child(folder: Path, num_frames: int, run_dir: Path) -> dict:
    """One camera job in this process (as a local worker runs it)."""
    from mct.config import load_config
    from mct.run.camera_job import CameraJob, run_camera_job
    from mct.types import Camera

    cfg = load_config(None, [
        "detector.source=file", "detector.roi_rule=none", "reid.arch=compact", "reid.weights=none",
        "reid.crop_height=64", "reid.crop_width=64", "reid.device=cpu", "run.threads_per_job=1", "run.batch_frames=8",
        f"run.chunk_frames={CHUNK_FRAMES}",
    ])
    cam = Camera("S01", "c001", folder / "vdo.avi", fps=FPS, num_frames=num_frames, frame_size=(640, 360), root=folder)
    t0 = time.perf_counter()
    result = run_camera_job(CameraJob(cam, cfg, str(run_dir), str(run_dir / "cache")))
    if result.status != "ok":
        raise SystemExit(f"camera job failed: {result.error}")
    return {"job_seconds": round(time.perf_counter() - t0, 2), "frames": result.frames,
            "resumed_after_frames": result.stages["detect"].get("resumed_after_frames", 0)}


def _run_child(folder: Path, frames: int, run_dir: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", str(folder), str(frames), str(run_dir)],
                          capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def _saved_frames(run_dir: Path) -> int:
    parts = list((run_dir / "cache" / "embed").rglob(f"parts/chunk{CHUNK_FRAMES}/*.npy"))
    return len(parts) * CHUNK_FRAMES


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 s of video instead of 10 minutes")
    parser.add_argument("--child", nargs=3, metavar=("FOLDER", "FRAMES", "RUN_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), int(args.child[1]), Path(args.child[2]))))
        return 0
    seconds = 100 if args.quick else 600
    frames = seconds * FPS
    out: dict = {"benchmark": "resume", "quick": args.quick, "host": platform.node(), "cpus": os.cpu_count(),
                 "load_avg_before": os.getloadavg(), "video_seconds": seconds, "frames": frames,
                 "chunk_frames": CHUNK_FRAMES}
    with tempfile.TemporaryDirectory(prefix="bench_resume_") as tmp:
        folder = Path(tmp) / "cam"
        make_camera(folder, frames)
        full_wall, full = _run_child(folder, frames, Path(tmp) / "full")
        print(f"uninterrupted: {full_wall:.1f} s ({full['job_seconds']:.1f} s in the job)", flush=True)
        # the same job, killed with SIGKILL once half the frames are saved
        run_dir = Path(tmp) / "killed"
        proc = subprocess.Popen([sys.executable, __file__, "--child", str(folder), str(frames), str(run_dir)],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.perf_counter()
        while _saved_frames(run_dir) < frames // 2 and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_after = time.perf_counter() - t0
        saved = _saved_frames(run_dir)
        rerun_wall, rerun = _run_child(folder, frames, run_dir)
        print(f"killed after {killed_after:.1f} s with {saved} of {frames} frames saved; rerun {rerun_wall:.1f} s "
              f"({rerun['job_seconds']:.1f} s in the job, resumed after frame {rerun['resumed_after_frames']})", flush=True)
    ratio = rerun_wall / full_wall
    out.update({"full_wall_s": round(full_wall, 1), "full_job_s": full["job_seconds"], "killed_after_s": round(killed_after, 1),
                "saved_frames_at_kill": saved, "rerun_wall_s": round(rerun_wall, 1), "rerun_job_s": rerun["job_seconds"],
                "resumed_after_frames": rerun["resumed_after_frames"], "rerun_over_full": round(ratio, 3),
                "rerun_over_full_job_only": round(rerun["job_seconds"] / full["job_seconds"], 3),
                "target": "rerun_over_full <= 0.6", "meets_target": ratio <= 0.6, "load_avg_after": os.getloadavg()})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"rerun / uninterrupted: {ratio:.3f} (target <= 0.6: {'met' if ratio <= 0.6 else 'NOT met'}); wrote {RESULTS}")
    return 0 if ratio <= 0.6 else 1


if __name__ == "__main__":
    raise SystemExit(main())
