"""Compare the camera links made from geometry (no labels) with the true transitions of a split.

usage: .venv/bin/python scripts/check_links.py --data data/demo --split validation [--run runs/demo]

Prior links come from each camera's calibration and ROI and from where tracklets enter and
leave it: the run's tracklets with ``--run`` (what association sees), else the ground-truth
tracks of the split (one tracklet per visit). The truth is every pair of visits of one
vehicle (``mct fit-topology``'s transitions, ``--pairs all``). Prints per camera pair the
prior window, the true gaps' range and how many fall inside the window, then the recall
over all true transitions and the windows' median width.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict

import numpy as np

from mct.associate.config import LinksConfig
from mct.associate.links import CameraLinks
from mct.associate.table import TrackletTable
from mct.associate.topology import camera_visits
from mct.data.aicity import load_dataset


def gt_table(dataset, split_gap_s: float) -> tuple[TrackletTable, list[tuple[str, int, float, float, str]]]:
    """One row per ground-truth visit (entry/exit pixels from its first/last box), and the visits."""
    keys, cams, tids, starts, ends, entry, exit_ = [], [], [], [], [], [], []
    visits = []
    for cam in dataset.cameras:
        gt = dataset.read_gt(cam)
        if gt is None:
            continue
        keys.append(cam.key)
        order = np.lexsort((gt.frame, gt.id))
        frames, ids, tlwh = gt.frame[order], gt.id[order], gt.tlwh[order].astype(np.float64)
        feet = np.c_[tlwh[:, 0] + tlwh[:, 2] / 2, tlwh[:, 1] + tlwh[:, 3]]
        times = cam.frame_time(frames)
        for vid, t0, t1 in camera_visits(cam, frames, ids, split_gap_s):
            rows = np.flatnonzero((ids == vid) & (times >= t0) & (times <= t1))
            cams.append(len(keys) - 1)
            tids.append(vid)
            starts.append(t0)
            ends.append(t1)
            entry.append(feet[rows[0]])
            exit_.append(feet[rows[-1]])
            visits.append((cam.scenario, vid, t0, t1, cam.camera_id))
    n = len(cams)
    feats = np.zeros((n, 1), np.float32)
    feats[:, 0] = 1
    table = TrackletTable.from_arrays(keys, np.array(cams), np.array(tids), np.array(starts), np.array(ends), feats,
                                      np.array(entry), np.array(exit_))
    return table, visits


def run_table(run: str, dataset) -> TrackletTable:
    from mct.associate.config import AssociationConfig
    from mct.run.storage import read_all_tracklets  # type: ignore[attr-defined]

    tracklets = read_all_tracklets(run)
    return TrackletTable.from_tracklets(tracklets, dataset.cameras, AssociationConfig())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("--run", default=None, help="take entry/exit regions from this run's tracklets")
    ap.add_argument("--split-gap-s", type=float, default=10.0)
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    dataset = load_dataset(args.data, args.split)
    table, visits = gt_table(dataset, args.split_gap_s)
    if args.run:
        table = run_table(args.run, dataset)
    links = CameraLinks.from_geometry(dataset.cameras, table, LinksConfig())
    by_vehicle = defaultdict(list)
    for scen, vid, t0, t1, cam in visits:
        by_vehicle[(scen, vid)].append((t0, t1, cam))
    gaps = defaultdict(list)
    for (scen, _), vs in by_vehicle.items():
        vs.sort()
        for i in range(len(vs)):
            for j in range(i + 1, len(vs)):
                if vs[i][2] != vs[j][2]:
                    gaps[(scen, vs[i][2], vs[j][2])].append(vs[j][0] - vs[i][1])
    total = inside = 0
    widths = []
    rows = []
    print(f"{'pair':<18}{'prior window (s)':>22}{'hard':>8}{'ovl':>5}{'true gaps (s)':>22}{'n':>5}{'in':>5}")
    for (scen, src, dst), g in sorted(gaps.items()):
        lk = links.link(scen, src, dst)
        g = np.array(g)
        n_in = int(np.sum((g >= lk.lo_s) & (g <= lk.hi_s))) if lk else 0
        total += len(g)
        inside += n_in
        if lk:
            widths.append(lk.hi_s - lk.lo_s)
        rows.append({"scenario": scen, "src": src, "dst": dst, "lo": lk.lo_s if lk else None, "hi": lk.hi_s if lk else None,
                     "hard": lk.min_gap_s if lk else None, "overlap": lk.overlap if lk else None,
                     "true_min": float(g.min()), "true_max": float(g.max()), "n": len(g), "inside": n_in})
        win = f"[{lk.lo_s:7.1f}, {lk.hi_s:7.1f}]" if lk else "unknown"
        hard = f"{lk.min_gap_s:8.1f}" if lk else ""
        print(f"{scen} {src}->{dst:<8}{win:>22}{hard:>8}{str(lk.overlap if lk else '-')[0]:>5}"
              f"{f'[{g.min():7.1f}, {g.max():7.1f}]':>22}{len(g):>5}{n_in:>5}")
    below = sum(r["n"] for r in rows)  # noqa: F841
    print(f"recall {inside}/{total} = {inside / max(total, 1):.4f}; window width median {np.median(widths):.1f} s, "
          f"mean {np.mean(widths):.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"recall": inside / max(total, 1), "inside": inside, "total": total,
                       "median_width_s": float(np.median(widths)), "pairs": rows}, f, indent=1)


if __name__ == "__main__":
    main()
