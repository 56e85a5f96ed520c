"""Which ground-truth boxes a run's detector finds: recall by how the box lies in the frame.

    python scripts/detection_recall.py runs/demo
    python scripts/detection_recall.py runs/demo_test --iou 0.5

For every box of the run's evaluation ground truth (the split's
``ground_truth_<split>.txt``), a detection of the run (``cameras/<S>_<cam>/detections.npz``,
after the detector's filters) at IoU >= ``--iou`` in the same frame counts as found. Recall
is reported for all boxes, for boxes cut by the frame edge (a side within 1 px of it) and
inside, by height / width and by area, and per camera with the ids missed most.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mct.config import load_config  # noqa: E402
from mct.data.aicity import load_dataset  # noqa: E402
from mct.data.submission import read_submission  # noqa: E402
from mct.detect.cache import read_detection_arrays  # noqa: E402
from mct.run.camera_job import DETECTIONS_FILE  # noqa: E402
from mct.run.run_folder import RunFolder  # noqa: E402
from mct.track.matching import iou_xyxy  # noqa: E402
from mct.types import camera_number  # noqa: E402

#: ``(label, lower, upper)`` bins of box height / width and of box area (px^2).
ASPECT_BINS = (("h/w < 0.3", 0.0, 0.3), ("h/w 0.3-0.5", 0.3, 0.5), ("h/w 0.5-0.8", 0.5, 0.8), ("h/w >= 0.8", 0.8, np.inf))
AREA_BINS = (("area < 1000", 0.0, 1e3), ("area 1000-3000", 1e3, 3e3), ("area 3000-10000", 3e3, 1e4), ("area >= 10000", 1e4, np.inf))


def box_recall(run_dir: Path, iou: float = 0.5) -> dict[str, np.ndarray]:
    """Per ground-truth box of the run's split: ``found``, ``cut`` (by the frame edge),
    ``aspect`` (h / w), ``area`` (px^2), ``camera`` and ``obj_id``, ``(N,)`` arrays."""
    cfg = load_config(run_dir / "config.yaml")
    data = load_dataset(cfg.dataset.root, cfg.dataset.split)
    gt = read_submission(data.ground_truth_path(cfg.dataset.split))
    found = np.zeros(len(gt.camera), bool)
    cut = np.zeros(len(gt.camera), bool)
    folder = RunFolder(run_dir)
    for cam in data.cameras:
        rows = np.flatnonzero(gt.camera == camera_number(cam.camera_id))
        if len(rows) == 0:
            continue
        arrays, _ = read_detection_arrays(folder.camera_dir(cam.scenario, cam.camera_id) / DETECTIONS_FILE)
        bounds = np.concatenate([[0], np.cumsum(arrays["counts"])])
        where = {int(f): k for k, f in enumerate(arrays["frames"])}
        xyxy = gt.xyxy[rows].astype(np.float64)
        if cam.frame_size is not None:
            w, h = cam.frame_size
            cut[rows] = (xyxy[:, 0] <= 1) | (xyxy[:, 1] <= 1) | (xyxy[:, 2] >= w - 1) | (xyxy[:, 3] >= h - 1)
        for r, box in zip(rows, xyxy):
            k = where.get(int(gt.frame[r]))
            if k is None or bounds[k + 1] == bounds[k]:
                continue
            found[r] = iou_xyxy(box[None], arrays["xyxy"][bounds[k] : bounds[k + 1]]).max() >= iou
    xyxy = gt.xyxy.astype(np.float64)
    wh = np.maximum(xyxy[:, 2:] - xyxy[:, :2], 1e-9)
    return {"found": found, "cut": cut, "aspect": wh[:, 1] / wh[:, 0], "area": wh[:, 0] * wh[:, 1],
            "camera": gt.camera, "obj_id": gt.obj_id}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--iou", type=float, default=0.5, help="IoU at which a detection finds a box")
    args = parser.parse_args()
    r = box_recall(args.run_dir, args.iou)
    found = r["found"]

    def line(label: str, mask: np.ndarray) -> None:
        n = int(mask.sum())
        print(f"  {label:<18} {n:>6} boxes  recall {found[mask].mean() if n else float('nan'):.3f}")

    print(f"{args.run_dir}: {len(found)} ground-truth boxes, recall {found.mean():.3f} at IoU >= {args.iou}")
    line("inside the frame", ~r["cut"])
    line("cut by the edge", r["cut"])
    for label, lo, hi in ASPECT_BINS:
        line(label, (r["aspect"] >= lo) & (r["aspect"] < hi))
    for label, lo, hi in AREA_BINS:
        line(label, (r["area"] >= lo) & (r["area"] < hi))
    for c in np.unique(r["camera"]):
        m = r["camera"] == c
        ids, n = np.unique(r["obj_id"][m & ~found], return_counts=True)
        worst = ", ".join(f"{i}: {k}" for i, k in sorted(zip(ids.tolist(), n.tolist()), key=lambda x: -x[1])[:3])
        print(f"  c{c:03d}: {int(m.sum())} boxes, recall {found[m].mean():.3f}; missed most (id: boxes) {worst or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
