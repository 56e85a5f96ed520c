"""Per-camera tracking on the tiny synthetic world: the tracker modes of ``bench_mot15.py`` there.

    python benchmarks/bench_tiny_tracker.py --modes motion_only motion_only+output=filtered

Generates the validation split of ``configs/synth/tiny.yaml`` (S02, 3 cameras) into a
temporary folder and scores each mode as ``tests/scenarios/test_deep_sort.py`` does
(``_single_camera_idf1``: ``det_sim.txt`` with score >= 0.3, every annotated box as ground
truth, per-camera IDF1). Mode syntax as ``bench_mot15.py`` (``name+key=value...``). Prints
one line per mode; writes nothing. It checks that an option chosen on MOT15 does not hurt a
world of another look (docs/tracking.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_mot15 import mode_config  # noqa: E402
from mct.config import load_config  # noqa: E402
from mct.data.synth.config import SynthConfig  # noqa: E402
from mct.data.synth.writer import generate  # noqa: E402
from tests.scenarios.test_deep_sort import _single_camera_idf1  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", default=["motion_only", "motion_only+output=filtered"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(ROOT / "configs" / "synth" / "tiny.yaml", model=SynthConfig)
        generate(cfg, Path(tmp), ["validation"], progress=False)
        for mode in args.modes:
            scores = _single_camera_idf1(Path(tmp), mode_config(mode))
            cells = " ".join(f"{cam} {v:.3f}" for cam, v in sorted(scores.items()))
            print(f"{mode}: {cells} mean {sum(scores.values()) / len(scores):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
