"""Per-camera tracking on real data: the tracker modes on eight MOT15 training sequences.

    python benchmarks/bench_mot15.py                      # every mode, all eight sequences
    python benchmarks/bench_mot15.py --modes motion_only mct --sequences ETH-Bahnhof
    python benchmarks/bench_mot15.py --modes motion_only+oc_recovery=true+output=filtered --no-write

Input: ``../shared/data/mot15/<SEQ>/`` (``det.txt``: the Faster R-CNN detections SORT
ships, ``gt.txt``, ``seqinfo.txt``; see its README). Every frame ``1 .. frames`` is fed in
order (frames without detections as empty frames), at the sequence's frame rate.
Appearance is neutralised: each detection carries the same constant feature, so the
``deep_sort`` mode runs its cascade on the motion gate alone ("constant feature").

Scored as MOTChallenge does (gt rows with flag 0 dropped, IoU >= 0.5): IDF1, MOTA, IDSW
from :mod:`mct.evaluate.metrics`; HOTA, DetA, AssA, LocA from :mod:`mct.evaluate.hota`.
OVERALL is the scores of the counts summed over the sequences (as py-motmetrics'
``OVERALL`` row and TrackEval's combined HOTA). frames/s: the per-frame ``update`` loop
only (reading and scoring excluded), one run.

Output conventions (``TrackerConfig.output``, e.g. ``--modes deep_sort+output=filtered``):
each frame writes the rows of the tracker's ``TrackerOutput``: ``matched`` (default) the
matched detection's box on matched frames (the pipeline's); ``filtered`` the Kalman state
box of every confirmed track updated within the last frame, i.e. also one coasted frame
after a miss (the reference application's).

Writes ``benchmarks/results/mot15.json`` and ``benchmarks/results/mot15.md`` and prints
the table with the peers' numbers of ``../shared/data/mot15/REFERENCE.md`` beside ours.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny matrices: one BLAS thread is fastest

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mct.evaluate.hota import HotaCounts, hota_counts  # noqa: E402
from mct.evaluate.metrics import TrackBoxes, evaluate_boxes  # noqa: E402
from mct.track.config import TRACKER_PRESETS, TrackerConfig  # noqa: E402
from mct.track.deep_sort import DeepSortTracker  # noqa: E402
from mct.types import Detections  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "mot15"
RESULTS_JSON = ROOT / "benchmarks" / "results" / "mot15.json"
RESULTS_MD = ROOT / "benchmarks" / "results" / "mot15.md"
SEQUENCES = (
    "ADL-Rundle-6", "ADL-Rundle-8", "ETH-Bahnhof", "ETH-Pedcross2",
    "ETH-Sunnyday", "KITTI-13", "PETS09-S2L1", "Venice-2",
)
#: the peers' OVERALL numbers measured with their authors' code (REFERENCE.md, 2026-12-04):
#: IDF1, MOTA, HOTA, DetA, AssA (percent), IDSW; None = not reported there.
PEERS: dict[str, tuple[float | None, float | None, float | None, float | None, float | None, int]] = {
    "SORT (authors)": (44.4, 38.3, 35.61, None, None, 522),
    "Deep SORT ref, const. feature": (39.5, 30.2, 31.11, None, None, 862),
    "BoT-SORT (boxmot)": (48.9, 38.6, 37.39, 37.50, 37.79, 468),
    "ByteTrack (boxmot)": (47.3, 36.5, 36.83, 37.64, 36.54, 564),
    "OC-SORT (trackers)": (46.7, 36.4, 35.36, 34.87, 36.23, 430),
    "BoostTrack (boxmot)": (47.0, 38.0, 35.91, 35.67, 36.59, 395),
}


@dataclass(frozen=True)
class Sequence:
    """One MOT15 sequence: its detections per frame and its scored ground truth."""

    name: str
    fps: float
    frames: list[Detections]
    gt: TrackBoxes


def _seqinfo(path: Path) -> dict[str, str]:
    out = {}
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        if "=" not in line:
            raise ValueError(f"{path}:{line_no}: expected key=value, got {line!r}")
        key, value = line.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def load_sequence(folder: Path, embedding_dim: int = 1) -> Sequence:
    """Detections of every frame (constant unit features of ``embedding_dim``) and gt with flag 0 dropped."""
    info = _seqinfo(folder / "seqinfo.txt")
    num_frames = int(info["frames"])
    fps = float(info["frame_rate"])
    det = np.loadtxt(folder / "det.txt", delimiter=",", ndmin=2)
    gt = np.loadtxt(folder / "gt.txt", delimiter=",", ndmin=2)
    if det.shape[1] < 7 or gt.shape[1] < 7:
        raise ValueError(f"{folder}: det.txt and gt.txt need at least 7 columns")
    det_frame = det[:, 0].astype(np.int64)
    tlwh = det[:, 2:6]
    xyxy = np.concatenate([tlwh[:, :2], tlwh[:, :2] + tlwh[:, 2:]], axis=1).astype(np.float32)
    scores = det[:, 6].astype(np.float32)
    order = np.argsort(det_frame, kind="stable")
    bounds = np.searchsorted(det_frame[order], np.arange(1, num_frames + 2))
    frames = []
    for f in range(1, num_frames + 1):
        rows = order[bounds[f - 1] : bounds[f]]
        emb = np.ones((len(rows), embedding_dim), np.float32) / np.sqrt(embedding_dim)
        frames.append(Detections(f, xyxy[rows], scores[rows], embeddings=emb))
    keep = gt[:, 6] != 0
    boxes = TrackBoxes(gt[keep, 0].astype(np.int64), gt[keep, 1].astype(np.int64), gt[keep, 2:6])
    return Sequence(folder.name, fps, frames, boxes)


def run_tracker(cfg: TrackerConfig, seq: Sequence) -> tuple[TrackBoxes, float]:
    """The tracker's output boxes over the sequence and the seconds of its update loop."""
    tracker = DeepSortTracker(cfg, seq.fps)
    out_f: list[np.ndarray] = []
    out_id: list[np.ndarray] = []
    out_xyxy: list[np.ndarray] = []
    seconds = 0.0
    # appearance is neutral here: only the faithful mode (which requires it) gets the constant feature
    frames = seq.frames if cfg.mode == "deep_sort" else [Detections(d.frame, d.xyxy, d.scores) for d in seq.frames]
    for dets in frames:
        t0 = time.perf_counter()
        written = tracker.update(dets)
        seconds += time.perf_counter() - t0
        out_f.append(np.full(len(written), dets.frame, np.int64))
        out_id.append(written.track_ids)
        out_xyxy.append(written.xyxy)
    xyxy = np.concatenate(out_xyxy)
    tlwh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    return TrackBoxes(np.concatenate(out_f), np.concatenate(out_id), tlwh), seconds


def score(gt: TrackBoxes, pred: TrackBoxes) -> dict[str, float]:
    """Counts of one sequence (summable) for the OVERALL row."""
    m, _ = evaluate_boxes(gt, pred, min_iou=0.5)
    h = hota_counts(gt, pred)
    return {
        "gt": m.num_objects, "pred": m.num_predictions, "idtp": m.idtp, "fp": m.num_false_positives,
        "fn": m.num_misses, "idsw": m.num_switches, "hota_counts": h,
    }


def ratios(c: dict) -> dict[str, float]:
    """Percentages of summed counts."""
    h: HotaCounts = c["hota_counts"]
    summary = h.summary()
    return {
        "IDF1": 100 * 2 * c["idtp"] / max(c["gt"] + c["pred"], 1),
        "MOTA": 100 * (1 - (c["fp"] + c["fn"] + c["idsw"]) / max(c["gt"], 1)),
        "HOTA": 100 * summary.hota,
        "DetA": 100 * summary.det_a,
        "AssA": 100 * summary.ass_a,
        "LocA": 100 * summary.loc_a,
        "IDSW": c["idsw"],
        "FP": c["fp"],
        "FN": c["fn"],
    }


def add_counts(a: dict | None, b: dict) -> dict:
    if a is None:
        return dict(b)
    return {k: (a[k] + b[k]) for k in b}


def mode_config(mode: str) -> TrackerConfig:
    """``name[+key=value...]`` -> config.

    E.g. ``motion_only+byte_min_high_score=0.7+output=filtered``: the mode and options on
    top (YAML values).
    """
    import yaml

    name, *options = mode.split("+")
    if name not in TRACKER_PRESETS and name not in ("deep_sort", "motion_only"):
        raise ValueError(f"--modes {mode!r}: unknown mode; choose from deep_sort, motion_only, {', '.join(TRACKER_PRESETS)}")
    overrides = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise ValueError(f"--modes {mode!r}: option {option!r} is not key=value")
        overrides[key] = yaml.safe_load(value)
    return TrackerConfig(mode=name, **overrides)  # a preset's options come with its mode


def fmt_row(name: str, r: dict, fps: float | None) -> str:
    def f(v: float | None, digits: int = 1) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    return (f"| {name} | {f(r['IDF1'])} | {f(r['MOTA'])} | {f(r['HOTA'], 2)} | {f(r['DetA'], 2)} | "
            f"{f(r['AssA'], 2)} | {r['IDSW']} | {'-' if fps is None else f'{fps:.0f}'} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", default=["motion_only", "motion_only+output=matched", "deep_sort",
                                                          "deep_sort+output=filtered", "mct", "mct+output=matched"],
                        help="tracker modes: deep_sort, motion_only or a TRACKER_PRESETS name, then +key=value "
                             "options (output=filtered: the reference output convention)")
    parser.add_argument("--sequences", nargs="+", default=list(SEQUENCES))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--no-write", action="store_true", help="print only (for quick experiments)")
    args = parser.parse_args()

    seqs = [load_sequence(args.data / name) for name in args.sequences]
    results: dict[str, dict] = {}
    lines = ["| tracker | IDF1 | MOTA | HOTA | DetA | AssA | IDSW | fps |", "|---|---|---|---|---|---|---|---|"]
    for mode in args.modes:
        cfg = mode_config(mode)
        total = None
        per_seq = {}
        frames = 0
        seconds = 0.0
        for seq in seqs:
            pred, sec = run_tracker(cfg, seq)
            counts = score(seq.gt, pred)
            per_seq[seq.name] = {**ratios(counts), "fps": len(seq.frames) / max(sec, 1e-9)}
            total = add_counts(total, counts)
            frames += len(seq.frames)
            seconds += sec
        overall = {**ratios(total), "fps": frames / max(seconds, 1e-9)}
        results[mode] = {"config": cfg.model_dump(), "overall": overall, "sequences": per_seq}
        lines.append(fmt_row(f"mct {mode}", overall, overall["fps"]))
        print(lines[-1], flush=True)
        for name, r in per_seq.items():
            print(f"    {name:14s} IDF1 {r['IDF1']:5.1f} MOTA {r['MOTA']:5.1f} HOTA {r['HOTA']:5.2f} IDSW {r['IDSW']}")
    for name, (idf1, mota, hota, deta, assa, idsw) in PEERS.items():
        lines.append(fmt_row(f"{name} (REFERENCE.md)", {"IDF1": idf1, "MOTA": mota, "HOTA": hota, "DetA": deta,
                                                      "AssA": assa, "IDSW": idsw}, None))
    table = "\n".join(lines)
    print("\nOVERALL on " + ", ".join(args.sequences) + "\n" + table)
    if args.no_write:
        return 0
    per_seq_lines = ["| sequence | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for name in args.sequences:
        cells = [f"{results[m]['sequences'][name]['IDF1']:.1f} / {results[m]['sequences'][name]['MOTA']:.1f} / "
                 f"{results[m]['sequences'][name]['IDSW']}" for m in results]
        per_seq_lines.append(f"| {name} | " + " | ".join(cells) + " |")
    command = "python benchmarks/bench_mot15.py " + " ".join(sys.argv[1:])
    md = (f"# Tracker modes on MOT15 (SORT's detections, constant feature)\n\n`{command.strip()}`\n\n"
          f"OVERALL (peers from ../shared/data/mot15/REFERENCE.md):\n\n{table}\n\n"
          f"Per sequence (IDF1 / MOTA / IDSW):\n\n" + "\n".join(per_seq_lines) + "\n")
    RESULTS_MD.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_MD.write_text(md)
    payload = {
        "benchmark": "mot15",
        "command": command.strip(),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "load_average": list(os.getloadavg())},
        "results": results,
    }
    RESULTS_JSON.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {RESULTS_JSON.relative_to(ROOT)} and {RESULTS_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
