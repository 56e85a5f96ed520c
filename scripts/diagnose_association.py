"""Re-associate a finished run's tracklets in seconds, and see where its IDF1 goes.

    python scripts/diagnose_association.py runs/demo                       # IDF1 with the run's association section
    python scripts/diagnose_association.py runs/demo --config configs/demo.yaml
    python scripts/diagnose_association.py runs/demo --set terms=[appearance]
    python scripts/diagnose_association.py runs/demo --sweep min_log_lr=-2,0,2
    python scripts/diagnose_association.py runs/demo --truth               # pair statistics against the ground truth

The run's camera stages are reused as they are; the ``association`` section is the run's
own, or ``--config``'s, with ``--set KEY=VALUE`` overrides (keys of ``association``); a run
made before the association keys changed is read with configs/demo.yaml's section.

Prints the AI City MTMC IDF1 (with ROI) of the re-association, the self-training rounds
and the fitted term models. ``--truth`` also gives each tracklet the ground-truth id it
overlaps most (IoU >= 0.5 frames) and reports, for candidate pairs of different cameras,
each term's log-likelihood ratio for true and false pairs, and the oracle association
(every tracklet with its true id: the IDF1 a perfect association reaches on these tracklets).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mct.associate import associate, write_submission_rows  # noqa: E402
from mct.associate.config import AssociationConfig  # noqa: E402
from mct.associate.labelled import run_truth_ids  # noqa: E402
from mct.associate.score import term_breakdown  # noqa: E402
from mct.config import Config, ConfigError, load_topology, load_yaml_tree, validate  # noqa: E402
from mct.data.aicity import load_dataset  # noqa: E402
from mct.data.submission import read_submission  # noqa: E402
from mct.evaluate.mtmc import evaluate_mtmc_rows, load_rois  # noqa: E402
from mct.track.tracklets import load_tracklets  # noqa: E402


def run_config(run_dir: Path, config: Path | None) -> Config:
    """The run's config, with the association section of ``config`` when given (else the
    run's own, or configs/demo.yaml's when the run's names keys that no longer exist)."""
    tree = load_yaml_tree(run_dir / "config.yaml")
    if config is not None:
        tree["association"] = load_yaml_tree(config).get("association", {})
        return validate(tree, Config, str(config))
    try:
        return validate(tree, Config, str(run_dir / "config.yaml"))
    except ConfigError as exc:
        if "association" not in str(exc):
            raise
        print(f"{run_dir / 'config.yaml'}: its association section is out of date ({str(exc).splitlines()[0]}); "
              "using configs/demo.yaml's", file=sys.stderr)
        return run_config(run_dir, ROOT / "configs" / "demo.yaml")


def load_run(run_dir: Path, config: Path | None, with_labels: bool = False):
    """The config, dataset, tracklets, evaluation ground truth and ROIs of a run (and, with
    ``with_labels``, each tracklet's gt id by :func:`mct.associate.labelled.run_truth_ids`)."""
    cfg = run_config(run_dir, config)
    data = load_dataset(cfg.dataset.root, cfg.dataset.split)
    tracklets = []
    for cam in data.cameras:
        tracklets += load_tracklets(run_dir / "cameras" / f"{cam.scenario}_{cam.camera_id}" / "tracklets.npz")
    labels = run_truth_ids(tracklets, data) if with_labels else np.zeros(0, np.int64)
    gt_rows = read_submission(data.ground_truth_path(cfg.dataset.split))
    rois = load_rois(Path(cfg.dataset.root) / cfg.dataset.split, np.unique(gt_rows.camera))
    return cfg, data, tracklets, labels, gt_rows, rois


def reassociate(cfg: Config, data, tracklets, gt_rows, rois, acfg: AssociationConfig) -> tuple[object, dict]:
    topo = load_topology(acfg.topology) if acfg.topology else None
    details: dict = {}
    t0 = time.perf_counter()
    assignment = associate(tracklets, data.cameras, acfg, topo, details=details)
    details["seconds"] = time.perf_counter() - t0
    res = evaluate_mtmc_rows(gt_rows, write_submission_rows(tracklets, assignment), rois)
    return res, details


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--config", type=Path, default=None, help="config whose association section is used (default: the run's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="association key override")
    parser.add_argument("--sweep", default="", metavar="KEY=V1,V2", help="re-associate at each value of one association key")
    parser.add_argument("--truth", action="store_true", help="pair statistics against the ground truth, and the oracle IDF1")
    args = parser.parse_args()
    import yaml

    over = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    cfg, data, tracklets, labels, gt_rows, rois = load_run(args.run_dir, args.config, with_labels=args.truth)
    base = AssociationConfig.model_validate({**cfg.association.model_dump(exclude_defaults=True), **over})
    variants = [("", base)]
    if args.sweep:
        key, values = args.sweep.split("=", 1)
        variants = [(f"{key}={v}", AssociationConfig.model_validate({**base.model_dump(exclude_defaults=True), key: yaml.safe_load(v)}))
                    for v in values.split(",")]
    for name, acfg in variants:
        res, details = reassociate(cfg, data, tracklets, gt_rows, rois, acfg)
        model = details["model"]
        a = model.appearance
        print(f"  {len(details['rounds'])} rounds ("
              + ", ".join(f"{r['global_ids']} ids/{r.get('confident', '-')} confident" for r in details["rounds"])
              + f"), {details['seconds']:.1f} s; appearance: {a.source}, even odds at cosine {a.even_cosine():.3f}, "
              f"prior {a.prior:.3f}; direction kappa {model.direction.kappa:.2f}; co-location sigma "
              f"{model.colocation.sigma_m:.1f} m, radius {model.colocation.radius_m:.0f} m")
        print(f"{name or 'association'} {over}: IDF1 {res.idf1:.4f} IDP {res.idp:.4f} IDR {res.idr:.4f}")
    if args.truth:
        truth(cfg, data, tracklets, labels, gt_rows, rois, base)
    return 0


def reliability(log_odds: np.ndarray, same: np.ndarray, cross: np.ndarray, terms: dict[str, np.ndarray]) -> None:
    """Is the pair model calibrated? For cross-camera candidate pairs binned by the model's
    posterior log-odds (and each term by its own log-likelihood ratio): how many pairs, how
    many true, the observed log-odds in the bin. A calibrated posterior has observed ~ predicted;
    a calibrated term has observed - (the term's log-LR) constant over its bins (the prior)."""
    edges = np.array([-np.inf, -8, -4, -2, -1, 0, 1, 2, 4, 8, np.inf])

    def table(name: str, v: np.ndarray) -> None:
        m = cross & np.isfinite(v)
        print(f"  {name}: bin | pairs | true | observed log-odds (Laplace)")
        for lo, hi in zip(edges[:-1], edges[1:]):
            k = m & (v > lo) & (v <= hi)
            if k.sum() == 0:
                continue
            t = int((same & k).sum())
            obs = np.log((t + 0.5) / (k.sum() - t + 0.5))
            print(f"    ({lo:>5}, {hi:>4}] {int(k.sum()):6d} {t:5d} {obs:+6.2f}")

    print("reliability (cross-camera candidate pairs)")
    table("posterior log-odds", log_odds)
    for name, v in terms.items():
        table(f"{name} log-LR", v)


def truth(cfg, data, tracklets, labels, gt_rows, rois, acfg: AssociationConfig) -> None:
    """Each term's evidence on true and false candidate pairs, and the oracle IDF1."""
    from mct.associate.table import TrackletTable

    _, details = reassociate(cfg, data, tracklets, gt_rows, rois, acfg)
    table = TrackletTable.from_tracklets(tracklets, data.cameras, acfg)
    lab = labels[table.source]
    a, b, scores = details["pairs"]
    cross = table.camera[a] != table.camera[b]
    same = (lab[a] == lab[b]) & (lab[a] >= 0)
    print(f"tracklets {len(table)} ({(lab < 0).sum()} without a gt id); candidate pairs {len(a)}, "
          f"cross-camera {cross.sum()} of which true {(same & cross).sum()}")
    terms = term_breakdown(table, details["model"], a, b)
    q = [0.05, 0.25, 0.5, 0.75, 0.95]
    print("log-LR quantiles", q)
    for name, v in [*terms.items(), ("total", scores)]:
        for kind, m in (("true ", same & cross), ("false", ~same & cross)):
            vals = v[m][np.isfinite(v[m])]
            print(f"  {name:11s} {kind} {np.round(np.quantile(vals, q), 2) if len(vals) else '-'}")
    reliability(scores + details["model"].prior_log_odds, same, cross, terms)
    # true pairs that never became candidates
    n = len(table)
    i, j = np.triu_indices(n, 1)
    true_pairs = (lab[i] == lab[j]) & (lab[i] >= 0) & (table.camera[i] != table.camera[j])
    cand = set((a * n + b).tolist())
    found = np.array([x in cand for x in (i[true_pairs] * n + j[true_pairs]).tolist()])
    print(f"true cross-camera pairs {true_pairs.sum()}, among the candidates {found.sum()}")
    assignment = table.assignment(np.where(lab >= 0, lab, 10_000_000 + np.arange(n)))
    res = evaluate_mtmc_rows(gt_rows, write_submission_rows(tracklets, assignment), rois)
    print(f"oracle association on these tracklets: IDF1 {res.idf1:.4f} IDP {res.idp:.4f} IDR {res.idr:.4f}")


if __name__ == "__main__":
    sys.exit(main())
