"""`make demo`: generate the demo scenario, run the whole pipeline with the shipped models, evaluate, render.

Steps (each one an `mct` command, printed before it runs, so the demo is also a recipe):
  1. mct synth configs/synth/demo.yaml --out data/demo --splits validation   (skipped when present)
  2. mct run configs/demo.yaml                                                (finished stages are reused)
  3. mct render runs/demo --camera c002
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MCT = [sys.executable, "-m", "mct.cli"]


def _run(args: list[str]) -> int:
    print("$ mct " + " ".join(shlex.quote(a) for a in args), flush=True)
    return subprocess.call([*MCT, *args], cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/demo", help="where the demo scenario is written")
    parser.add_argument("--camera", default="c002", help="camera to render")
    parser.add_argument("--force", action="store_true", help="regenerate the data and redo every stage")
    args = parser.parse_args()

    t0 = time.perf_counter()
    data = ROOT / args.data
    if args.force or not (data / "validation").is_dir():
        rc = _run(["synth", "configs/synth/demo.yaml", "--out", args.data, "--splits", "validation"])
        if rc != 0:
            return rc
    else:
        print(f"demo scenario already in {args.data} (use --force to regenerate)")
    run_args = ["run", "configs/demo.yaml", "--set", f"dataset.root={args.data}"]
    rc = _run([*run_args, *(["--force"] if args.force else [])])
    run_dir = ROOT / "runs" / "demo"
    if rc != 0 and not (run_dir / "summary.json").is_file():
        return rc
    render_rc = _run(["render", "runs/demo", "--camera", args.camera])
    elapsed = time.perf_counter() - t0

    summary = json.loads((run_dir / "summary.json").read_text())
    print()
    print(f"demo finished in {elapsed:.0f} s")
    metrics = (summary.get("evaluation") or {}).get("metrics") or {}
    if metrics:
        print("MTMC IDF1 {:.2%}  IDP {:.2%}  IDR {:.2%}  (AI City protocol, validation split S02)".format(
            metrics["idf1"], metrics["idp"], metrics["idr"]))
    print(f"run folder:      {run_dir}")
    print(f"submission:      {run_dir / 'submission.txt'}")
    print(f"evaluation:      {run_dir / 'eval'}")
    if render_rc == 0:
        print(f"rendered video:  {run_dir / 'render'} (camera {args.camera})")
    return rc or render_rc


if __name__ == "__main__":
    raise SystemExit(main())
