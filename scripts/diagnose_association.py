"""Where a run's cross-camera IDF1 goes: tracking or association, re-ID or constraints.

    python scripts/diagnose_association.py runs/demo
    python scripts/diagnose_association.py runs/demo --sweep 0.4,0.5,0.6 --set use_direction=true

Each tracklet of the run gets the ground-truth id it overlaps most (IoU >= 0.5 frames).
Then it reports, for tracklet pairs of different cameras:

* true pairs (same gt id) and how many the space-time constraints allow (LINK);
* the cosine similarity of true pairs against false pairs (distribution quantiles);
* the oracle association: the run's tracklets with global id = their gt id, scored by the
  AI City protocol, i.e. the IDF1 a perfect association would reach on these tracklets.

``--sweep`` instead re-associates the run's tracklets at each ``min_similarity`` (other
``association`` keys from ``--set``) and scores each result (AI City protocol, with ROI).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mct.associate import associate, write_submission_rows  # noqa: E402
from mct.associate.clustering import mutual_best  # noqa: E402
from mct.associate.config import AssociationConfig  # noqa: E402
from mct.associate.constraints import LINK, Constraints, load_topology  # noqa: E402
from mct.associate.table import TrackletTable  # noqa: E402
from mct.config import load_config  # noqa: E402
from mct.data.aicity import load_dataset  # noqa: E402
from mct.data.mot import read_mot  # noqa: E402
from mct.data.submission import read_submission  # noqa: E402
from mct.evaluate.mtmc import evaluate_mtmc_rows, load_rois  # noqa: E402
from mct.track.matching import iou_xyxy  # noqa: E402
from mct.track.tracklets import load_tracklets  # noqa: E402


def gt_id_of(tracklet, gt, gt_xyxy: np.ndarray) -> int:
    """Majority gt id over frames where a gt box (``gt_xyxy`` = ``gt.xyxy``) overlaps the
    tracklet box at IoU >= 0.5 (-1: none)."""
    votes: dict[int, int] = {}
    for f, box in zip(tracklet.frames.tolist(), tracklet.xyxy):
        rows = gt.rows_in_frame(f)
        if len(rows) == 0:
            continue
        iou = iou_xyxy(box[None], gt_xyxy[rows])[0]
        k = int(np.argmax(iou))
        if iou[k] >= 0.5:
            gid = int(gt.id[rows[k]])
            votes[gid] = votes.get(gid, 0) + 1
    return max(votes, key=votes.get) if votes else -1


def load_run(run_dir: Path, with_labels: bool = False):
    """The run's config, dataset, tracklets, evaluation ground truth and ROIs (and, with
    ``with_labels``, each tracklet's gt id by :func:`gt_id_of`)."""
    cfg = load_config(run_dir / "config.yaml")
    data = load_dataset(cfg.dataset.root, cfg.dataset.split)
    tracklets, labels = [], []
    for cam in data.cameras:
        part = load_tracklets(run_dir / "cameras" / f"{cam.scenario}_{cam.camera_id}" / "tracklets.npz")
        tracklets += part
        if with_labels:
            gt = read_mot(cam.root / "gt" / "gt.txt", "gt")
            gt_xyxy = gt.xyxy
            labels += [gt_id_of(t, gt, gt_xyxy) for t in part]
    gt_rows = read_submission(data.ground_truth_path(cfg.dataset.split))
    rois = load_rois(Path(cfg.dataset.root) / cfg.dataset.split, np.unique(gt_rows.camera))
    return cfg, data, tracklets, np.array(labels, np.int64), gt_rows, rois


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--sweep", default="", help="comma-separated min_similarity values to re-associate at")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="association key override")
    args = parser.parse_args()
    import yaml

    over = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.sweep:
        sweep(args.run_dir, [float(v) for v in args.sweep.split(",")], **over)
        return 0
    cfg, data, tracklets, labels, gt_rows, rois = load_run(args.run_dir, with_labels=True)
    acfg: AssociationConfig = cfg.association.model_copy(update=over)
    topo = load_topology(acfg.topology) if acfg.topology else None
    table = TrackletTable.from_tracklets(tracklets, data.cameras, acfg)
    lab = labels[table.source]
    cons = Constraints.build(table, topo, acfg)
    n = len(table)
    i, j = np.triu_indices(n, 1)
    diff_cam = table.camera[i] != table.camera[j]
    i, j = i[diff_cam], j[diff_cam]
    same = (lab[i] == lab[j]) & (lab[i] >= 0)
    status = cons.status(table, i, j)
    sim = np.sum(table.features[i] * table.features[j], axis=1)
    print(f"tracklets {n} ({(lab < 0).sum()} without a gt id), gt ids {len(set(lab[lab >= 0]))}")
    print(f"cross-camera pairs {len(i)}: true {same.sum()}, of which LINK {(status[same] == LINK).sum()}")
    q = [0.05, 0.25, 0.5, 0.75, 0.95]
    print("similarity quantiles", q)
    print("  true pairs        ", np.round(np.quantile(sim[same], q), 3))
    print("  true LINK pairs   ", np.round(np.quantile(sim[same & (status == LINK)], q), 3))
    fl = ~same & (status == LINK)
    print(f"  false LINK pairs ({fl.sum()})", np.round(np.quantile(sim[fl], q), 3))
    # each tracklet's most similar LINK partner in any other camera
    best = {}
    for a, b, s, st in zip(i, j, sim, status):
        if st != LINK:
            continue
        for x, y in ((a, b), (b, a)):
            if s > best.get(x, (-9, -1))[0]:
                best[x] = (s, y)
    link = status == LINK
    mutual = mutual_best(table, i[link], j[link], sim[link])
    true_link = same[link]
    for th in (0.2, 0.3, 0.5):
        m = mutual & (sim[link] >= th)
        o = ~mutual & (sim[link] >= th)
        print(f"pairs the rules allow, cosine >= {th}: mutual-best {m.sum()} ({true_link[m].sum()} one vehicle), others {o.sum()} ({true_link[o].sum()} one vehicle)")
    top1 = np.mean([lab[x] == lab[y] for x, (s, y) in best.items() if lab[x] >= 0])
    print(f"top-1 LINK neighbour has the same gt id: {top1:.3f} of {len(best)} tracklets")
    for c in range(len(table.camera_keys)):
        m = table.camera == c
        print(f"  {table.camera_keys[c][1]}: {m.sum()} tracklets, mean length {np.mean([len(tracklets[s]) for s in table.source[m]]):.0f}")
    # oracle association: every tracklet with a gt id gets it, the others an id of their own
    assignment = table.assignment(np.where(lab >= 0, lab, 10_000_000 + np.arange(n)))
    res = evaluate_mtmc_rows(gt_rows, write_submission_rows(tracklets, assignment), rois)
    print(f"oracle association on these tracklets: IDF1 {res.idf1:.4f} IDP {res.idp:.4f} IDR {res.idr:.4f}")
    return 0


def sweep(run_dir: Path, values: list[float], **over) -> None:
    """IDF1 of the run's tracklets re-associated with other association settings."""
    cfg, data, tracklets, _, gt_rows, rois = load_run(run_dir)
    topology = over.get("topology", cfg.association.topology)  # --set topology=FILE is honoured
    topo = load_topology(topology) if topology else None
    for v in values:
        acfg = cfg.association.model_copy(update={"min_similarity": v, **over})
        assignment = associate(tracklets, data.cameras, acfg, topo)
        res = evaluate_mtmc_rows(gt_rows, write_submission_rows(tracklets, assignment), rois)
        ids = len(np.unique(assignment.global_ids))
        print(f"min_similarity {v:.2f} {over}: IDF1 {res.idf1:.4f} IDP {res.idp:.4f} IDR {res.idr:.4f} ids {ids}")


if __name__ == "__main__":
    sys.exit(main())
