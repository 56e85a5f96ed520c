"""Speed of the AI City MTMC evaluation (`mct eval`) on a realistic submission.

    python benchmarks/bench_eval.py            # ~300k GT boxes, 40 cameras, 1920x1080 ROIs
    python benchmarks/bench_eval.py --quick    # ~15k boxes, 8 cameras

The ground truth: vehicles that each cross 2-4 cameras, one track per camera (40-200 frames,
moving boxes of 40-300 px). The prediction perturbs it the way trackers fail: boxes jittered
and scaled, ~8 % of frames missed, tracks split in two (the second half
takes another vehicle's id), a share of camera visits given another vehicle's global id, some false-positive tracks (part of them in one camera only,
which the protocol drops), a few boxes in the ROI's black border, a few duplicate rows.
Times the whole `evaluate_mtmc` (read both files, ROI filter, match, per camera) and writes
``benchmarks/results/eval.json``; the target is < 30 s for ~300k boxes.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mct.data.submission import SubmissionRows, write_submission  # noqa: E402
from mct.evaluate.mtmc import evaluate_mtmc  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "eval.json"
WIDTH, HEIGHT = 1920, 1080
BORDER = 40  # black ROI border, pixels


def make_ground_truth(rng: np.random.Generator, n_cameras: int, n_vehicles: int, n_frames: int) -> SubmissionRows:
    """Vehicles crossing 2-4 cameras each; one straight track per visited camera."""
    parts = []
    for vid in range(1, n_vehicles + 1):
        cams = rng.choice(np.arange(1, n_cameras + 1), size=int(rng.integers(2, 5)), replace=False)
        for cam in cams:
            length = int(rng.integers(40, 201))
            start = int(rng.integers(1, n_frames - length))
            t = np.arange(length)
            size = rng.uniform(40, 300, 2) * np.array([1.3, 1.0])
            p0 = rng.uniform([BORDER, BORDER], [WIDTH - BORDER - size[0], HEIGHT - BORDER - size[1]])
            p1 = rng.uniform([BORDER, BORDER], [WIDTH - BORDER - size[0], HEIGHT - BORDER - size[1]])
            xy = p0 + (p1 - p0) * (t / max(length - 1, 1))[:, None]
            wh = np.broadcast_to(size, (length, 2))
            parts.append(np.column_stack([np.full(length, cam), np.full(length, vid), start + t, xy, wh]))
    a = np.rint(np.concatenate(parts)).astype(np.int64)
    a = a[np.lexsort((a[:, 1], a[:, 2], a[:, 0]))]
    return SubmissionRows(a[:, 0], a[:, 1], a[:, 2], a[:, 3:7])


def make_prediction(rng: np.random.Generator, gt: SubmissionRows, n_frames: int) -> SubmissionRows:
    """A tracker-like perturbation of ``gt`` (see the module docstring)."""
    n = len(gt)
    keep = rng.random(n) > 0.08  # missed detections
    tlwh = gt.tlwh.astype(np.float64)
    scale = rng.uniform(0.9, 1.15, (n, 1))
    tlwh[:, 2:] *= scale
    tlwh[:, :2] += rng.normal(0, 4, (n, 2))
    # global ids: a camera visit keeps the vehicle's predicted id with p = 0.8
    visit_key = gt.camera * 1_000_000 + gt.obj_id
    visits, inv = np.unique(visit_key, return_inverse=True)
    good = rng.random(len(visits)) < 0.8
    n_vehicles = int(gt.obj_id.max())
    # a wrong visit takes another vehicle's predicted id (an identity confusion across cameras)
    visit_ids = np.where(good, visits % 1_000_000, rng.integers(1, n_vehicles + 1, len(visits))) + 100_000
    obj = visit_ids[inv]
    # split 10 % of visits into two local ids at their middle frame
    split = rng.random(len(visits)) < 0.1
    mid = np.zeros(len(visits))
    np.maximum.at(mid, inv, gt.frame)
    first = np.full(len(visits), np.inf)
    np.minimum.at(first, inv, gt.frame)
    second_half = split[inv] & (gt.frame > (first[inv] + mid[inv]) / 2)
    other = rng.integers(1, n_vehicles + 1, len(visits)) + 100_000
    obj = np.where(second_half, other[inv], obj)
    pred = np.column_stack([gt.camera, obj, gt.frame, np.rint(tlwh)]).astype(np.int64)[keep]
    # false-positive tracks: half of them appear in two cameras (kept), half in one (dropped)
    n_cams = int(gt.camera.max())
    fps = []
    for k in range(max(20, n // 3000)):
        cams = rng.choice(np.arange(1, n_cams + 1), size=1 + k % 2, replace=False)
        for cam in cams:
            length = int(rng.integers(10, 60))
            start = int(rng.integers(1, n_frames - length))
            xy = rng.uniform(BORDER, [WIDTH - 300, HEIGHT - 300])
            fps.append(np.column_stack([np.full(length, cam), np.full(length, 900_000 + k), start + np.arange(length),
                                        np.tile(np.rint(xy), (length, 1)), np.full((length, 2), 80)]))
    pred = np.concatenate([pred] + fps).astype(np.int64)
    # a few boxes touching the black ROI border, a few duplicate rows
    edge = rng.choice(len(pred), size=len(pred) // 500, replace=False)
    pred[edge, 3] = rng.integers(0, BORDER // 2, len(edge))
    dup = pred[rng.choice(len(pred), size=len(pred) // 1000, replace=False)]
    pred = np.concatenate([pred, dup])
    pred[:, 5:7] = np.maximum(pred[:, 5:7], 1)
    return SubmissionRows(pred[:, 0], pred[:, 1], pred[:, 2], pred[:, 3:7])


def write_rois(folder: Path, n_cameras: int) -> None:
    import cv2

    roi = np.zeros((HEIGHT, WIDTH), np.uint8)
    roi[BORDER:-BORDER, BORDER:-BORDER] = 255
    for cam in range(1, n_cameras + 1):
        (folder / f"c{cam:03d}").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"c{cam:03d}" / "roi.jpg"), roi)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~15k boxes over 8 cameras")
    args = parser.parse_args()
    n_cameras, n_vehicles, n_frames = (8, 50, 1000) if args.quick else (40, 900, 2000)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        t0 = time.perf_counter()
        gt = make_ground_truth(rng, n_cameras, n_vehicles, n_frames)
        pred = make_prediction(rng, gt, n_frames)
        write_submission(tmp_path / "gt.txt", gt)
        write_submission(tmp_path / "pred.txt", pred)
        write_rois(tmp_path / "rois", n_cameras)
        t_make = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = evaluate_mtmc(tmp_path / "gt.txt", tmp_path / "pred.txt", roi_dir=tmp_path / "rois")
        t_eval = time.perf_counter() - t0
    m = result.metrics
    row = {
        "cameras": n_cameras,
        "gt_boxes": len(gt),
        "pred_boxes": len(pred),
        "gt_ids": int(len(np.unique(gt.obj_id))),
        "seconds_evaluate": round(t_eval, 3),
        "boxes_per_second": round((len(gt) + len(pred)) / t_eval),
        "idf1": round(m.idf1, 4),
        "idp": round(m.idp, 4),
        "idr": round(m.idr, 4),
        "mota": round(m.mota, 4),
        "idsw": m.num_switches,
        "dropped_roi": result.dropped_roi,
        "dropped_single_camera_rows": result.dropped_single_camera_rows,
        "dropped_duplicates": result.dropped_duplicates,
    }
    print(f"generated in {t_make:.1f} s; evaluated {len(gt)} GT + {len(pred)} predicted boxes over "
          f"{n_cameras} cameras in {t_eval:.2f} s")
    for k, v in row.items():
        print(f"  {k:28s} {v}")
    target = 30.0
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "name": "eval", "quick": args.quick, "machine": platform.machine(), "python": platform.python_version(),
        "results": [row],
        "targets": {} if args.quick else {"seconds_evaluate": {"value": row["seconds_evaluate"], "target": target,
                                                             "ok": t_eval < target}},
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
