"""`make bench`: run every benchmarks/bench_*.py, collect benchmarks/results/*.json, write a table.

Each benchmark script writes ``benchmarks/results/<name>.json`` itself (a JSON object whose
``results`` is a list of flat rows, and optionally ``targets``: {name: {"value", "target", "ok"}}).
This script runs them one after another (they are timing measurements: never in parallel),
then writes ``benchmarks/results/summary.md``. ``--quick`` passes ``--quick`` on to each and
keeps its (smoke-test) results apart, in ``benchmarks/results/quick/``, so that they never
replace the measured ones.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULTS = BENCH_DIR / "results"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(no rows)"]
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a measurement")
    parser.add_argument("--report-only", action="store_true", help="run nothing: tabulate the results already measured")
    parser.add_argument("names", nargs="*", help="only these benchmarks (e.g. soft_nms tracker)")
    args = parser.parse_args()

    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if args.names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.names]
    if not scripts:
        print("no benchmarks found", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_dir = RESULTS / "quick" if args.quick else RESULTS
    failed: list[str] = []
    md = ["# Benchmark results", "", f"Command: `python scripts/bench.py{' --quick' if args.quick else ''}`"
          + (" (tables of the results last measured by each `benchmarks/bench_*.py`)" if args.report_only else ""), ""]
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        print(f"== {name}", flush=True)
        result_file = RESULTS / f"{name}.json"
        measured = result_file.read_bytes() if args.quick and result_file.is_file() else None
        if args.report_only:
            md += [f"## {name}", ""]
            rc = 0
        else:
            t0 = time.perf_counter()
            rc = subprocess.call([sys.executable, str(script), *(["--quick"] if args.quick else [])], cwd=ROOT)
            elapsed = time.perf_counter() - t0
            md += [f"## {name}", "", f"exit code {rc}, {elapsed:.1f} s", ""]
        if args.quick and result_file.is_file():
            out_dir.mkdir(parents=True, exist_ok=True)
            result_file = result_file.replace(out_dir / result_file.name)
            if measured is not None:
                (RESULTS / f"{name}.json").write_bytes(measured)
        if rc != 0:
            failed.append(name)
            continue
        if not result_file.is_file():
            md += [f"(no {result_file.name} written)", ""]
            continue
        data = json.loads(result_file.read_text())
        md += _table(data.get("results", [])) + [""]
        targets = data.get("targets") or {}
        if targets:
            md += _table([{"target": k, **v} for k, v in targets.items()]) + [""]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.md").write_text("\n".join(md))
    print(f"wrote {out_dir / 'summary.md'}")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
