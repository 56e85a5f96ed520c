"""Frames/s of the shipped demo detector on demo frames, and Soft-NMS vs hard NMS cost.

    python benchmarks/bench_detector.py           # 100 frames of data/demo validation S02/c001
    python benchmarks/bench_detector.py --quick   # 24 frames
    python benchmarks/bench_detector.py --weights none   # random weights (no trained model needed)
    python benchmarks/bench_detector.py --threads 1 --frames 60   # what docs/detection.md reports

The frames are decoded first (not timed). Timed: ``MaskRCNNDetector.detect`` (BGR -> tensor,
resize, backbone, RPN, RoI heads with Soft-NMS, masks at RoI resolution, filters) over all
frames in batches, for each thread count (1 and 2; 1 with ``--quick``) and for Soft-NMS
gaussian, linear and hard NMS with RoI masks, plus gaussian and hard without masks (which
separates the cost of NMS from the cost of running the mask head on the extra boxes that
Soft-NMS keeps). The variants are interleaved batch by batch, so a change of machine load
hits them alike; the figure is the median over 3 passes. Falls back to frames of the synthetic
``tiny`` world generated on the fly when ``data/demo`` is absent.
Writes ``benchmarks/results/detector.json``. Targets: >= 5 frames/s at the demo
resolution (640 x 360); Soft-NMS (gaussian) whole-detector time within 5% of hard NMS.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mct.data.video import iter_frames  # noqa: E402
from mct.detect.config import DetectorConfig  # noqa: E402
from mct.detect.maskrcnn import MaskRCNNDetector  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "detector.json"
TARGET_FPS = 5.0
TARGET_OVERHEAD = 0.05


def demo_video(root: Path) -> Path:
    video = root / "validation" / "S02" / "c001" / "vdo.avi"
    if video.is_file():
        return video
    from mct.config import load_config
    from mct.data.synth.config import SynthConfig
    from mct.data.synth.writer import generate

    out = Path(tempfile.mkdtemp(prefix="bench_detector_"))
    cfg = load_config(ROOT / "configs" / "synth" / "tiny.yaml", model=SynthConfig)
    list(generate(cfg, out, ["validation"], progress=False))
    return next((out / "validation").glob("*/c001/vdo.avi"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 24 frames, one pass")
    parser.add_argument("--weights", default="models/detector_demo.pt", help="checkpoint, or none")
    parser.add_argument("--data", default=str(ROOT / "data" / "demo"), help="AI City layout folder of the demo")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", default="1,2", help="torch thread counts to measure, comma-separated")
    parser.add_argument("--frames", type=int, default=100, help="frames of the video (24 with --quick)")
    args = parser.parse_args()
    video = demo_video(Path(args.data))
    n_frames = 24 if args.quick else args.frames
    frames = [bgr for _, bgr in iter_frames(video, 1, n_frames + 1)]
    numbers = list(range(1, len(frames) + 1))
    h, w = frames[0].shape[:2]
    passes = 1 if args.quick else 3
    rows = []
    variants = [("gaussian", "roi"), ("linear", "roi"), ("hard", "roi"), ("gaussian", "none"), ("hard", "none")]
    for threads in ((1,) if args.quick else tuple(int(t) for t in args.threads.split(","))):
        torch.set_num_threads(threads)
        detectors = {}
        for method, masks in variants:
            cfg = DetectorConfig(source="maskrcnn", weights=args.weights, batch_size=args.batch_size,
                                 soft_nms={"method": method}, roi_rule="none", masks=masks)
            detectors[(method, masks)] = MaskRCNNDetector(cfg, None)
        for det in detectors.values():
            det.detect(numbers[: args.batch_size], frames[: args.batch_size])  # warm-up
        seconds = {v: [] for v in detectors}
        boxes = {v: 0 for v in detectors}
        for _ in range(passes):
            spent = {v: 0.0 for v in detectors}
            for start in range(0, len(frames), args.batch_size):
                chunk = frames[start : start + args.batch_size]
                for v, det in detectors.items():
                    t0 = time.perf_counter()
                    out = det.detect(numbers[start : start + len(chunk)], chunk)
                    spent[v] += time.perf_counter() - t0
                    boxes[v] += sum(len(d) for d in out)
            for v in detectors:
                seconds[v].append(spent[v])
        for method, masks in detectors:
            t = statistics.median(seconds[(method, masks)])
            rows.append({"threads": threads, "nms": method, "masks": masks, "frames": len(frames), "width": w,
                         "height": h, "batch_size": args.batch_size, "seconds": t, "fps": len(frames) / t,
                         "boxes_per_frame": boxes[(method, masks)] / (passes * len(frames))})
        for r in rows:
            if r["threads"] == threads:
                hard = next(x for x in rows if x["threads"] == threads and x["nms"] == "hard" and x["masks"] == r["masks"])
                r["time_vs_hard"] = r["seconds"] / hard["seconds"] - 1.0
                print(f"{threads} thread(s)  {r['nms']:8s} masks {r['masks']:4s}  {r['fps']:6.2f} frames/s  "
                      f"{100 * r['time_vs_hard']:+6.1f}% vs hard  {r['boxes_per_frame']:.1f} boxes/frame")
    best = max(r["fps"] for r in rows if r["nms"] == "gaussian" and r["masks"] == "roi")
    overhead = min(r["time_vs_hard"] for r in rows if r["nms"] == "gaussian" and r["masks"] == "roi")
    targets = {
        "demo_detector_fps_cpu": {"value": best, "target": f">= {TARGET_FPS}", "ok": best >= TARGET_FPS},
        "soft_nms_whole_detector_overhead": {"value": overhead, "target": f"<= {TARGET_OVERHEAD}", "ok": overhead <= TARGET_OVERHEAD},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "detector",
        "quick": args.quick,
        "weights": args.weights,
        "video": str(video),
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
                    "load_avg": os.getloadavg()},
        "results": rows,
        "targets": targets,
    }, indent=1))
    print(f"best {best:.2f} frames/s (target >= {TARGET_FPS}); Soft-NMS vs hard {100 * overhead:+.1f}% "
          f"(target <= {100 * TARGET_OVERHEAD:.0f}%); wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
