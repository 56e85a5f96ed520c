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
import sys
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


def _run_table(run: str) -> TrackletTable:
    from pathlib import Path

    from mct.data.aicity import dataset_from_config
    from mct.run.render import load_run_config
    from mct.run.run_folder import load_run_tracklets

    cfg = load_run_config(Path(run))
    dataset = dataset_from_config(cfg.dataset)
    tracklets = load_run_tracklets(run, dataset.cameras)
    return TrackletTable.from_tracklets(tracklets, dataset.cameras, AssociationConfig())


def run_links(run: str) -> tuple[CameraLinks, CameraLinks]:
    """The run's prior links (its tracklets' entry/exit regions) and its learned links."""
    from pathlib import Path

    from mct.associate.topology import links_from_assignment
    from mct.data.aicity import dataset_from_config
    from mct.run.pipeline import load_assignment
    from mct.run.render import load_run_config
    from mct.run.run_folder import load_run_tracklets

    cfg = load_run_config(Path(run))
    dataset = dataset_from_config(cfg.dataset)
    tracklets = load_run_tracklets(run, dataset.cameras)
    learned = links_from_assignment(tracklets, dataset.cameras, load_assignment(Path(run) / "association" / "assignment.csv"))
    table = TrackletTable.from_tracklets(tracklets, dataset.cameras, AssociationConfig())
    return CameraLinks.from_geometry(dataset.cameras, table), learned


def confident_matches(table: TrackletTable, arrays, min_margin: float, min_lr: float) -> np.ndarray:
    """``(P, 2)`` rows ``(i, j)``, ``i`` starting first, in two cameras of one scenario, that
    are each other's most similar tracklet in the other's camera by appearance (cosine), by
    at least ``min_margin`` over the second most similar, among the pairs whose travel-time
    evidence is above ``min_lr`` under ``arrays``."""
    n = len(table)
    sims = table.features @ table.features.T
    first = table.start_s[:, None] <= table.start_s[None, :]
    src = np.where(first, np.arange(n)[:, None], np.arange(n)[None, :])
    dst = np.where(first, np.arange(n)[None, :], np.arange(n)[:, None])
    gap = table.start_s[dst] - table.end_s[src]
    lr = arrays.gap_log_lr(table.scenario[src].ravel(), table.camera[src].ravel(), table.camera[dst].ravel(), gap.ravel()).reshape(n, n)
    allowed = (table.camera[:, None] != table.camera[None, :]) & (table.scenario[:, None] == table.scenario[None, :]) & (lr > min_lr)
    sims = np.where(allowed, sims, -np.inf)
    n_c = len(table.camera_keys)
    best = np.full((n, n_c), -1)
    margin = np.zeros((n, n_c))
    for c in range(n_c):
        cols = np.flatnonzero(table.camera == c)
        if len(cols) == 0:
            continue
        sub = sims[:, cols]
        order = np.argsort(-sub, axis=1)
        top = np.take_along_axis(sub, order[:, :1], 1)[:, 0]
        second = np.take_along_axis(sub, order[:, 1:2], 1)[:, 0] if len(cols) > 1 else np.full(n, -np.inf)
        ok = np.isfinite(top)
        best[ok, c] = cols[order[ok, 0]]
        margin[:, c] = np.where(ok, top - np.where(np.isfinite(second), second, -1.0), 0.0)
    i = np.repeat(np.arange(n), n_c)
    j = best.ravel()
    keep = j >= 0
    i, j = i[keep], j[keep]
    mutual = best[j, table.camera[i]] == i
    strong = (margin[i, table.camera[j]] >= min_margin) & (margin[j, table.camera[i]] >= min_margin)
    i, j = i[mutual & strong & (i < j)], j[mutual & strong & (i < j)]
    swap = table.start_s[j] < table.start_s[i]
    return np.c_[np.where(swap, j, i), np.where(swap, i, j)]


def self_train(prior: CameraLinks, table: TrackletTable, passes: int, min_margin: float,
               truth: np.ndarray | None) -> CameraLinks:
    """Learn links from the run's own confident appearance matches: the first pass under the
    prior (matches not ruled out), later passes under the links learned so far (matches with
    positive travel-time evidence). Prints each pass's matches and, with ``truth`` (a gt id
    per row, -1 none), their precision."""
    links = prior
    for k in range(passes):
        pairs = confident_matches(table, links.compile(table), min_margin, -np.inf if k == 0 else 0.0)
        i, j = pairs[:, 0], pairs[:, 1]
        line = f"pass {k + 1}: {len(pairs)} confident matches"
        if truth is not None and len(pairs):
            known = (truth[i] >= 0) & (truth[j] >= 0)
            right = int(np.sum(known & (truth[i] == truth[j])))
            line += f", {right} of {int(known.sum())} with known ids right ({right / max(int(known.sum()), 1):.3f})"
        print(line)
        links = links.learned(table.scenario[i], table.camera[i], table.camera[j], table.start_s[j] - table.end_s[i], table=table)
    return links


def run_truth(run: str, table: TrackletTable) -> np.ndarray:
    """The gt id of each row of the run's table (majority over frames at IoU >= 0.5; -1 none)."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from diagnose_association import load_run  # noqa: E402

    _, _, tracklets, labels, _, _ = load_run(Path(run), None, with_labels=True)
    by_key = {t.key: int(lab) for t, lab in zip(tracklets, labels)}
    return np.array([by_key.get((table.camera_keys[c][0], table.camera_keys[c][1], int(t)), -1)
                     for c, t in zip(table.camera.tolist(), table.track_id.tolist())], np.int64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("--run", default=None, help="take entry/exit regions from this run's tracklets")
    ap.add_argument("--split-gap-s", type=float, default=10.0)
    ap.add_argument("--json", default=None, help="also write the numbers here")
    ap.add_argument("--self-train", type=int, default=0, metavar="PASSES",
                    help="with --run: also learn links from the run's own confident appearance matches (no labels)")
    ap.add_argument("--min-margin", type=float, default=0.1, help="--self-train: cosine margin over the second best")
    ap.add_argument("--topology", default=None, help="with --run: also score this topology file's links (e.g. fitted on train)")
    ap.add_argument("--write-links", default=None, metavar="DIR", help="write each set of links as DIR/<name>.yaml (topology format)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    dataset = load_dataset(args.data, args.split)
    table, visits = gt_table(dataset, args.split_gap_s)
    sets = {"prior": CameraLinks.from_geometry(dataset.cameras, table, LinksConfig())}
    if args.run:
        sets["prior"], sets["learned"] = run_links(args.run)
        if args.self_train:
            run_table = _run_table(args.run)
            prior = CameraLinks.from_geometry(dataset.cameras, run_table)
            print(f"== self-training on the appearance of {args.run} (no labels)")
            sets["self-trained"] = self_train(prior, run_table, args.self_train, args.min_margin, run_truth(args.run, run_table))
    if args.run and args.topology:
        from mct.config import load_topology

        sets["file"] = CameraLinks.for_run(dataset.cameras, _run_table(args.run), topology=load_topology(args.topology))
    out = {}
    for name, links in sets.items():
        print(f"== {name} links" + (f" (entry/exit regions and matches of {args.run})" if args.run else " (entry/exit regions of the gt tracks)"))
        out[name] = report(links, visits, table)
    if args.run:
        run_table = _run_table(args.run)
        truth = run_truth(args.run, run_table)
        print(f"== travel-time evidence on the cross-camera tracklet pairs of {args.run} (gt ids by IoU)")
        for name, links in sets.items():
            out[name]["pairs"] = separation(links, run_table, truth)
            sep = out[name]["pairs"]
            print(f"{name:>13}: AUC {sep['auc']:.3f}; mean log-LR same {sep['mean_same']:+.2f}, different {sep['mean_different']:+.2f}; "
                  f"same ruled out {sep['same_ruled_out']} of {sep['same']}, different ruled out {sep['different_ruled_out']} of {sep['different']}")
    if args.write_links:
        from pathlib import Path

        from mct.associate.topology import write_topology

        for name, links in sets.items():
            print(f"wrote {write_topology(Path(args.write_links) / f'{name}.yaml', links.to_topology())}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


def separation(links: CameraLinks, table: TrackletTable, truth: np.ndarray) -> dict:
    """How well ``gap_log_lr`` tells same-vehicle from different-vehicle pairs among every
    pair of rows of two cameras of one scenario whose gt ids are both known: the AUC (the
    chance that a same pair scores above a different one, ties half), mean log-LR (ruled-out
    pairs left out of the means) and how many of each are ruled out."""
    arrays = links.compile(table)
    i, j = np.triu_indices(len(table), 1)
    keep = (table.camera[i] != table.camera[j]) & (table.scenario[i] == table.scenario[j]) & (truth[i] >= 0) & (truth[j] >= 0)
    i, j = i[keep], j[keep]
    first = table.start_s[i] <= table.start_s[j]
    a, b = np.where(first, i, j), np.where(first, j, i)
    lr = arrays.gap_log_lr(table.scenario[a], table.camera[a], table.camera[b], table.start_s[b] - table.end_s[a])
    same = truth[a] == truth[b]
    from scipy.stats import rankdata

    ranks = rankdata(np.where(np.isfinite(lr), lr, -1e9))
    n_s, n_d = int(same.sum()), int((~same).sum())
    auc = (ranks[same].sum() - n_s * (n_s + 1) / 2) / max(n_s * n_d, 1)
    fin = np.isfinite(lr)
    return {"auc": float(auc), "same": n_s, "different": n_d,
            "mean_same": float(lr[same & fin].mean()) if (same & fin).any() else float("nan"),
            "mean_different": float(lr[~same & fin].mean()) if (~same & fin).any() else float("nan"),
            "same_ruled_out": int(np.sum(same & ~fin)), "different_ruled_out": int(np.sum(~same & ~fin))}


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
