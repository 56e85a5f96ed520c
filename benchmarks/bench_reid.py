"""Re-ID embedding speed: embeddings/s of the embedder on the CPU, batch 64.

    python benchmarks/bench_reid.py            # ResNet-18 / ResNet-50 at 256x256, demo model
    python benchmarks/bench_reid.py --quick    # 1 timed batch of 8 boxes each (smoke run)

Each row times ``Embedder.embed(frame, xyxy)`` on a 1920x1080 frame with 64 boxes of
40-400 px (crop + resize + normalise + network + L2), after one warm-up call, and the
crop step alone. Random weights (no ImageNet file is needed: speed does not depend on the
values). The demo model is ``models/reid_demo.pt`` when present, else the same
architecture with random weights. Writes ``benchmarks/results/reid.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mct.reid.config import EmbedderConfig  # noqa: E402
from mct.reid.crops import crop_boxes, frame_to_tensor  # noqa: E402
from mct.reid.embedder import Embedder  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "reid.json"
DEMO = ROOT / "models" / "reid_demo.pt"


def _boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    wh = rng.uniform(40, 400, (n, 2))
    xy = rng.uniform(0, [1920 - 40, 1080 - 40], (n, 2))
    return np.column_stack([xy, xy + wh]).astype(np.float32)


def bench(name: str, cfg: EmbedderConfig, batch: int, reps: int, rng: np.random.Generator) -> dict:
    emb = Embedder(cfg)
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    xyxy = _boxes(rng, batch)
    emb.embed(frame, xyxy)  # warm-up (allocations, one-time kernel choices)
    t0 = time.perf_counter()
    for _ in range(reps):
        emb.embed(frame, xyxy)
    total = (time.perf_counter() - t0) / reps
    h, w = emb.crop_size
    t0 = time.perf_counter()
    for _ in range(reps):
        crop_boxes(frame_to_tensor(frame), xyxy, h, w)
    crop = (time.perf_counter() - t0) / reps
    params = sum(p.numel() for p in emb.model.parameters())
    return {
        "model": name,
        "arch": emb.cfg.arch,
        "crop": f"{h}x{w}",
        "batch": batch,
        "flip": emb.cfg.flip,
        "threads": torch.get_num_threads(),
        "embeddings_per_s": batch / total,
        "ms_per_batch": total * 1000,
        "crop_ms_per_batch": crop * 1000,
        "dim": emb.dim,
        "params_m": params / 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one batch of 8: a smoke run, not a measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--reps", type=int, default=3, help="timed batches per model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch, reps = (8, 1) if args.quick else (64, args.reps)
    rng = np.random.default_rng(0)
    demo_weights = str(DEMO) if DEMO.is_file() else "none"
    configs = [
        ("resnet18", EmbedderConfig(arch="resnet18", weights="none", device="cpu", batch_size=64)),
        ("resnet50", EmbedderConfig(arch="resnet50", weights="none", device="cpu", batch_size=64)),
        ("demo" if DEMO.is_file() else "demo-arch (random)",
         EmbedderConfig(arch="compact", weights=demo_weights, crop_height=128, crop_width=128, device="cpu", batch_size=64)),
    ]
    rows = []
    for name, cfg in configs:
        row = bench(name, cfg, batch, reps, rng)
        rows.append(row)
        print(
            f"{name:>20}: {row['embeddings_per_s']:7.1f} embeddings/s  ({row['crop']}, batch {batch}, "
            f"{row['threads']} threads; crop {row['crop_ms_per_batch']:.1f} ms of {row['ms_per_batch']:.0f} ms)",
            flush=True,
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "reid",
                "command": "python benchmarks/bench_reid.py" + (" --quick" if args.quick else ""),
                "quick": args.quick,
                "machine": {"platform": platform.platform(), "cpus": torch.get_num_threads(), "torch": torch.__version__},
                "results": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
