"""Speed of the data layer: MOT txt read/write and video frame access.

    python benchmarks/bench_data_io.py           # 300k-line MOT file, 300-frame 1280x720 video
    python benchmarks/bench_data_io.py --quick   # 30k lines, 60 frames at 320x180

Writes ``benchmarks/results/data_io.json``. Measured on whatever machine runs it; the
videos are MJPG written with cv2 (the real vdo.avi files are H.264, whose seeks cost more).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mct.data.mot import MotRows, read_mot, write_mot  # noqa: E402
from mct.data.video import iter_frames, read_frames  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "data_io.json"


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_lines = 30_000 if args.quick else 300_000
    n_frames, size = (60, (320, 180)) if args.quick else (300, (1280, 720))
    rng = np.random.default_rng(0)
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        rows = MotRows.from_arrays(
            rng.integers(1, 2000, n_lines),
            None,
            np.c_[rng.uniform(0, 1200, (n_lines, 2)), rng.uniform(5, 300, (n_lines, 2))],
            rng.uniform(0, 1, n_lines),
        )
        path = tmp_path / "det.txt"
        t_write = timed(lambda: write_mot(path, rows), repeat=1)
        t_read = timed(lambda: read_mot(path, "det"))
        # a whitespace-only last line forces the exact (line-by-line) parser: the slow path's cost
        path.write_text(path.read_text() + "  \n")
        t_read_slow = timed(lambda: read_mot(path, "det"), repeat=1)
        loaded = read_mot(path, "det")
        t_group = timed(lambda: MotRows(*(getattr(loaded, f) for f in ("frame", "id", "tlwh", "conf", "cls", "vis", "col10"))).by_frame(), repeat=1)
        rows_out.append({"what": "read_mot (vectorised)", "lines": n_lines, "seconds": t_read, "lines_per_s": n_lines / t_read})
        rows_out.append({"what": "read_mot (exact fallback)", "lines": n_lines, "seconds": t_read_slow, "lines_per_s": n_lines / t_read_slow})
        rows_out.append({"what": "write_mot", "lines": n_lines, "seconds": t_write, "lines_per_s": n_lines / t_write})
        rows_out.append({"what": "by_frame", "lines": n_lines, "seconds": t_group, "lines_per_s": n_lines / t_group})

        video = tmp_path / "vdo.avi"
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
        base = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        for k in range(n_frames):
            writer.write(np.roll(base, k, axis=1))
        writer.release()
        t_seq = timed(lambda: sum(1 for _ in iter_frames(video)), repeat=1)
        wanted = sorted(rng.choice(np.arange(1, n_frames + 1), size=n_frames // 10, replace=False).tolist())
        t_rand = timed(lambda: read_frames(video, wanted), repeat=1)
        t_rand_seek = timed(lambda: read_frames(video, wanted, max_grab_gap=0), repeat=1)
        res = f"{size[0]}x{size[1]}"
        rows_out.append({"what": f"iter_frames {res} MJPG", "frames": n_frames, "seconds": t_seq, "frames_per_s": n_frames / t_seq})
        rows_out.append({"what": f"read_frames 10% random {res} (grab)", "frames": len(wanted), "seconds": t_rand, "frames_per_s": len(wanted) / t_rand})
        rows_out.append({"what": f"read_frames 10% random {res} (seek always)", "frames": len(wanted), "seconds": t_rand_seek, "frames_per_s": len(wanted) / t_rand_seek})
    for row in rows_out:
        print(row)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"name": "data_io", "quick": args.quick, "machine": platform.machine(),
                                   "python": platform.python_version(), "results": rows_out}, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
