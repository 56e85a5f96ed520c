"""Cost of the camera links (mct/associate/links.py) at scale.

A synthetic scenario: ``--cameras`` tilted cameras (640x360, 6.5 m high, pitched down 15
degrees) 150 m apart along one road, and ``--rows`` tracklets spread over them with entry
and exit points in the lower half of the image. Measured (wall clock, seconds; peak RSS):

* ``from_geometry``: footprints, entry/exit regions, a prior link per camera pair;
* ``learned``: the links refitted from ``--rows`` matches between random camera pairs;
* ``compile``: the (S, C, C) arrays;
* ``gap_log_lr``: the travel-time evidence of ``--rows`` pairs.

    python benchmarks/bench_links.py                      # 100 cameras, 1M rows
    python benchmarks/bench_links.py --cameras 20 --rows 100000
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mct.associate.links import CameraLinks  # noqa: E402
from mct.associate.table import TrackletTable  # noqa: E402
from mct.types import Camera  # noqa: E402

W, H = 640, 360


def tilted_homography(x_cam: float, pitch_deg: float = 15.0) -> np.ndarray:
    """Ground (x, y) metres -> pixels of a camera 6.5 m above (x_cam, 18) looking along +x."""
    k = np.array([[800.0, 0, W / 2], [0, 800, H / 2], [0, 0, 1]])
    p = math.radians(pitch_deg)
    forward = np.array([math.cos(p), 0.0, -math.sin(p)])
    right = np.array([0.0, -1.0, 0.0])
    rot = np.stack([right, np.cross(forward, right), forward])
    centre = np.array([x_cam, 18.0, 6.5])
    return k @ np.c_[rot[:, 0], rot[:, 1], -rot @ centre]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=100)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    n_cam, n = args.cameras, args.rows
    cams = [Camera(scenario="S01", camera_id=f"c{i + 1:03d}", fps=10.0, frame_size=(W, H), homography=tilted_homography(150.0 * i))
            for i in range(n_cam)]
    rng = np.random.default_rng(0)
    cam = rng.integers(0, n_cam, n)
    entry = np.c_[rng.uniform(0, W, n), rng.uniform(H / 2 + 20, H, n)]
    exit_ = np.c_[rng.uniform(0, W, n), rng.uniform(H / 2 + 20, H, n)]
    start = rng.uniform(0, 3600, n)
    table = TrackletTable.from_arrays([c.key for c in cams], cam, np.arange(n), start, start + 10,
                                      np.ones((n, 1), np.float32), entry, exit_)
    a, b = rng.integers(0, n_cam, n), rng.integers(0, n_cam, n)
    gaps = rng.uniform(0, 100, n)
    timings = {}
    t = time.perf_counter()
    links = CameraLinks.from_geometry(cams, table)
    timings["from_geometry_s"] = time.perf_counter() - t
    t = time.perf_counter()
    learned = links.learned(np.zeros(n), a, b, gaps)
    timings["learned_s"] = time.perf_counter() - t
    t = time.perf_counter()
    arrays = learned.compile(table)
    timings["compile_s"] = time.perf_counter() - t
    t = time.perf_counter()
    arrays.gap_log_lr(np.zeros(n, np.int64), a, b, rng.uniform(-50, 200, n))
    timings["gap_log_lr_s"] = time.perf_counter() - t
    result = {"cameras": n_cam, "rows": n, **{k: round(v, 3) for k, v in timings.items()},
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    print(json.dumps(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
