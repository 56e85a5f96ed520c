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

from mct.associate.config import AssociationConfig, LinksConfig
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


def run_links(run: str) -> tuple[CameraLinks, CameraLinks]:
    """The run's prior links (its tracklets' entry/exit regions) and its learned links."""
    from pathlib import Path

    from mct.associate.topology import links_from_assignment
    from mct.data.aicity import dataset_from_config
    from mct.run.pipeline import load_assignment
    from mct.run.render import load_run_config
    from mct.track.tracklets import load_tracklets

    cfg = load_run_config(Path(run))
    dataset = dataset_from_config(cfg.dataset)
    tracklets = []
    for cam in dataset.cameras:
        path = Path(run) / "cameras" / f"{cam.scenario}_{cam.camera_id}" / "tracklets.npz"
        if path.is_file():
            tracklets += load_tracklets(path)
    learned = links_from_assignment(tracklets, dataset.cameras, load_assignment(Path(run) / "association" / "assignment.csv"))
    table = TrackletTable.from_tracklets(tracklets, dataset.cameras, AssociationConfig())
    return CameraLinks.from_geometry(dataset.cameras, table), learned


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
    sets = {"prior": CameraLinks.from_geometry(dataset.cameras, table, LinksConfig())}
    if args.run:
        sets["prior"], sets["learned"] = run_links(args.run)
    out = {}
    for name, links in sets.items():
        print(f"== {name} links" + (f" (entry/exit regions and matches of {args.run})" if args.run else " (entry/exit regions of the gt tracks)"))
        out[name] = report(links, visits, table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


def report(links: CameraLinks, visits: list, table: TrackletTable) -> dict:
    """Per camera pair and in all: true gaps inside the window, with positive travel-time
    evidence (``gap_log_lr > 0``) and below the hard bound (ruled out)."""
    arrays = links.compile(table)
    code = {key: i for i, key in enumerate(table.camera_keys)}
    scen_code = {name: i for i, name in enumerate(table.scenarios)}
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
    total = inside = positive = impossible = 0
    widths = []
    rows = []
    print(f"{'pair':<18}{'window (s)':>22}{'hard':>8}{'ovl':>5}{'true gaps (s)':>22}{'n':>5}{'in':>5}{'lr>0':>6}{'-inf':>6}")
    for (scen, src, dst), g in sorted(gaps.items()):
        lk = links.link(scen, src, dst)
        g = np.array(g)
        n_in = int(np.sum((g >= lk.lo_s) & (g <= lk.hi_s))) if lk else 0
        n = len(g)
        lr = arrays.gap_log_lr(np.full(n, scen_code[scen]), np.full(n, code[(scen, src)]), np.full(n, code[(scen, dst)]), g)
        n_pos, n_inf = int(np.sum(lr > 0)), int(np.sum(lr == -np.inf))
        total += n
        inside += n_in
        positive += n_pos
        impossible += n_inf
        if lk:
            widths.append(lk.hi_s - lk.lo_s)
        rows.append({"scenario": scen, "src": src, "dst": dst, "lo": lk.lo_s if lk else None, "hi": lk.hi_s if lk else None,
                     "hard": lk.min_gap_s if lk else None, "overlap": lk.overlap if lk else None,
                     "true_min": float(g.min()), "true_max": float(g.max()), "n": len(g), "inside": n_in,
                     "positive_lr": n_pos, "ruled_out": n_inf})
        win = f"[{lk.lo_s:7.1f}, {lk.hi_s:7.1f}]" if lk else "unknown"
        hard = f"{lk.min_gap_s:8.1f}" if lk else ""
        print(f"{scen} {src}->{dst:<8}{win:>22}{hard:>8}{str(lk.overlap if lk else '-')[0]:>5}"
              f"{f'[{g.min():7.1f}, {g.max():7.1f}]':>22}{len(g):>5}{n_in:>5}{n_pos:>6}{n_inf:>6}")
    print(f"recall {inside}/{total} = {inside / max(total, 1):.4f} inside the windows, {positive} with positive evidence, "
          f"{impossible} ruled out; window width median {np.median(widths):.1f} s, mean {np.mean(widths):.1f} s")
    return {"recall": inside / max(total, 1), "inside": inside, "total": total, "positive_lr": positive, "ruled_out": impossible,
            "median_width_s": float(np.median(widths)), "mean_width_s": float(np.mean(widths)), "pairs": rows}


if __name__ == "__main__":
    main()
