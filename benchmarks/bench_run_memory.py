"""Memory of one camera job against video length (issue 8): streaming must keep it flat.

A synthetic camera (640 x 360 MJPG at 10 fps, 8 moving boxes per frame in
``det/det_sim.txt``) is processed by the real camera job: file detector -> compact re-ID
embedder (random weights, 64 x 64 crops) on every box -> Deep SORT -> tracklets. Each
length runs in a fresh process, which reports its own peak RSS (``ru_maxrss``); the job's
frames/s is reported too.

Target: peak RSS of a 10-minute camera within 20% of a 1-minute one.

    python benchmarks/bench_run_memory.py            # 1 min vs 10 min (6,000 frames)
    python benchmarks/bench_run_memory.py --quick    # 10 s vs 100 s, smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "run_memory.json"
FPS = 10
W, H = 640, 360
BOXES = 8


def make_camera(folder: Path, num_frames: int) -> None:
    """``folder/vdo.avi`` and ``folder/det/det_sim.txt``: boxes sweeping across the frame."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "det").mkdir(exist_ok=True)
    writer = cv2.VideoWriter(str(folder / "vdo.avi"), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    rng = np.random.default_rng(0)
    background = rng.integers(40, 90, size=(H, W, 3), dtype=np.uint8)
    colours = rng.integers(0, 255, size=(BOXES, 3))
    lines = []
    for n in range(1, num_frames + 1):
        frame = background.copy()
        for b in range(BOXES):
            x = int((n * (3 + b) + 97 * b) % (W - 80))
            y = 20 + 40 * b
            frame[y:y + 30, x:x + 60] = colours[b]
            lines.append(f"{n},-1,{x},{y},60,30,0.9,-1,-1,-1")
        writer.write(frame)
    writer.release()
    (folder / "det" / "det_sim.txt").write_text("\n".join(lines) + "\n")


def child(folder: Path, num_frames: int, run_dir: Path) -> dict:
    """Run one camera job in this process; report peak RSS and speed."""
    from mct.config import load_config
    from mct.run.camera_job import CameraJob, run_camera_job
    from mct.types import Camera

    cfg = load_config(None, [
        "detector.source=file", "detector.roi_rule=none", "reid.arch=compact", "reid.weights=none",
        "reid.crop_height=64", "reid.crop_width=64", "reid.device=cpu", "run.threads_per_job=1", "run.batch_frames=8",
    ])
    cam = Camera("S01", "c001", folder / "vdo.avi", fps=FPS, num_frames=num_frames, frame_size=(W, H), root=folder)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    result = run_camera_job(CameraJob(cam, cfg, str(run_dir), str(run_dir / "cache")))
    seconds = time.perf_counter() - t0
    if result.status != "ok":
        raise SystemExit(f"camera job failed: {result.error}")
    return {
        "frames": result.frames,
        "seconds": round(seconds, 2),
        "frames_per_s": round(result.frames / seconds, 1),
        "stage_fps": {s: e.get("fps") for s, e in result.stages.items()},
        "tracklets": result.num_tracklets,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_after_imports_mb": round(rss_before / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 s vs 100 s of video (smoke run)")
    parser.add_argument("--child", nargs=3, metavar=("FOLDER", "FRAMES", "RUN_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), int(args.child[1]), Path(args.child[2]))))
        return 0

    seconds = (10, 100) if args.quick else (60, 600)
    out: dict = {"benchmark": "run_memory", "quick": args.quick, "host": platform.node(), "cpus": os.cpu_count(),
                 "load_avg_before": os.getloadavg(), "video": f"{W}x{H} MJPG {FPS} fps, {BOXES} boxes/frame", "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench_run_memory_") as tmp:
        for length in seconds:
            folder = Path(tmp) / f"cam_{length}s"
            frames = length * FPS
            t0 = time.perf_counter()
            make_camera(folder, frames)
            gen_s = time.perf_counter() - t0
            proc = subprocess.run([sys.executable, __file__, "--child", str(folder), str(frames), str(Path(tmp) / f"run_{length}s")],
                                  capture_output=True, text=True, cwd=REPO)
            if proc.returncode != 0:
                sys.stderr.write(proc.stdout + proc.stderr)
                return 1
            record = json.loads(proc.stdout.strip().splitlines()[-1])
            record.update({"video_seconds": length, "generate_s": round(gen_s, 1)})
            out["runs"].append(record)
            print(f"{length:4d} s video ({frames} frames): peak RSS {record['peak_rss_mb']:.0f} MB "
                  f"(after imports {record['rss_after_imports_mb']:.0f} MB), {record['frames_per_s']:.1f} frames/s, "
                  f"{record['tracklets']} tracklets", flush=True)
    short, long_ = out["runs"]
    ratio = long_["peak_rss_mb"] / short["peak_rss_mb"]
    out["rss_ratio_long_over_short"] = round(ratio, 3)
    out["target"] = "ratio <= 1.2"
    out["meets_target"] = ratio <= 1.2
    out["load_avg_after"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"peak RSS ratio {seconds[1]} s / {seconds[0]} s video: {ratio:.3f} (target <= 1.2: "
          f"{'met' if ratio <= 1.2 else 'NOT met'}); wrote {RESULTS}")
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
