"""Speed of the synthetic world generator (``mct synth``): frames/s at the demo size and at 1280x720.

For each frame size, the ``demo`` preset's validation split is generated with every camera
at that size (a shorter clip than the preset's). Reported: the one-off set-up per camera
(background, ROI, noise bank), the simulation, and frames/s of the per-frame work
(interpolating the world, rendering, annotating, the simulated detector, COCO masks,
writing vdo.avi) per wall second and per CPU second of the process (the machine is
shared: the load average is recorded too). One worker process.

    python benchmarks/bench_synth.py            # 20 s clips
    python benchmarks/bench_synth.py --quick    # 4 s clips, smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mct.config import load_config  # noqa: E402
from mct.data.synth.config import SynthConfig  # noqa: E402
from mct.data.synth.writer import generate  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "synth.json"
SIZES = {"demo": (640, 360), "hd": (1280, 720)}


def run(size: tuple[int, int], duration_s: float) -> dict:
    cfg = load_config(
        ROOT / "configs" / "synth" / "demo.yaml",
        [f"splits.validation.duration_s={duration_s}", f"camera_defaults.frame_size=[{size[0]}, {size[1]}]"],
        model=SynthConfig,
    )
    cams = tuple(c.model_copy(update={"frame_size": None}) for c in cfg.cameras)
    cfg = cfg.model_copy(update={"cameras": cams})
    with tempfile.TemporaryDirectory() as tmp:
        load0 = os.getloadavg()[0]
        wall0, cpu0 = time.perf_counter(), time.process_time()
        timings: dict = {}
        summary = generate(cfg, tmp, ["validation"], progress=False, timings=timings)[0]
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        size_mb = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / 1e6
    frames = summary.frames
    return {
        "frame_size": list(size),
        "cameras": summary.cameras,
        "frames": frames,
        "clip_s": duration_s,
        "setup_s": round(timings["setup_s"], 2),
        "simulate_s": round(timings["simulate_s"], 2),
        "frames_s": round(timings["frames_s"], 2),
        "frames_per_s": round(frames / timings["frames_s"], 1),
        "frames_cpu_s": round(timings["frames_cpu_s"], 2),
        "frames_per_cpu_s": round(frames / timings["frames_cpu_s"], 1),
        "total_wall_s": round(wall, 2),
        "total_cpu_s": round(cpu, 2),
        "output_mb": round(size_mb, 1),
        "boxes_in_gt": summary.boxes_in_gt,
        "load_avg_before": round(load0, 2),
        "load_avg_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 s clips (smoke run)")
    args = ap.parse_args()
    duration = 4.0 if args.quick else 20.0
    results = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "runs": {}}
    for name, size in SIZES.items():
        r = run(size, duration)
        results["runs"][name] = r
        print(
            f"{name:5s} {size[0]}x{size[1]}: {r['cameras']} cameras, {r['frames']} frames, "
            f"{r['frames_per_s']} frames/s wall, {r['frames_per_cpu_s']} per CPU second (set-up {r['setup_s']} s, simulation {r['simulate_s']} s, "
            f"wall {r['total_wall_s']} s, cpu {r['total_cpu_s']} s, load {r['load_avg_before']})"
        )
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
