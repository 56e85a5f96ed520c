"""Scale benchmark of cross-camera association (issue 10).

A synthetic city with re-ID-like features, plausible cameras and times:

* 100 cameras on a 10 x 10 street grid; adjacent cameras are 20-120 s apart (the topology
  lists both directions with window [0.7 T, 1.5 T], plus a 0-10 s self-transition for
  fragmented tracks).
* Vehicles enter at a steady rate (1M tracklets = 24 h of traffic, so more tracklets = a
  longer recording), drive a random walk of 3-8 cameras, stay 5-30 s in each view; 20% of
  views are cut into two tracklets by an occlusion.
* Features (dim 512): each vehicle a centre, each tracklet that centre plus noise; vehicles
  of one "model" (20 per model) have nearby centres (look-alikes, cos ~0.5-0.6 between
  their tracklets, ~0.75 within a vehicle). All vectors are drawn with a decaying spectrum
  (std of component d proportional to 1 / (1 + d / 32)) and rotated at random, as trained
  embeddings concentrate their variance in a few dozen directions.

Measured per size, each in a fresh process: generation time, association time per step
(wall clock, and CPU seconds of the process: the machine is shared, so the load average
before and after is recorded too),
peak RSS, candidate recall@k against exact kNN in the original 512-d space over the
tracklets within reach in time (sampled queries), and pairwise precision / recall of the
global ids against the true vehicles.

    python benchmarks/bench_association.py            # 10k, 100k, 1M
    python benchmarks/bench_association.py --quick    # 10k only, smoke run
    python benchmarks/bench_association.py --sizes 100000 --set index.pca_dim=64 self_training_rounds=0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mct.associate import associate, associate_table, write_submission_rows  # noqa: E402
from mct.associate.config import AssociationConfig, ScenarioTopology, TopologyFile, Transition  # noqa: E402
from mct.associate import UNKNOWN_REACH_S  # noqa: E402
from mct.associate.constraints import camera_adjacency, camera_reach, within_reach  # noqa: E402
from mct.associate.links import CameraLinks  # noqa: E402
from mct.associate.table import TrackletTable  # noqa: E402
from mct.types import Camera, Tracklet  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "association.json"
GRID = 10
DIM = 512
TRACKLETS_PER_DAY = 1_000_000
DAY_S = 86_400.0
#: benchmark settings: full 512-d features, exact search in blocks of one camera x 60 s
#: sizes up to this also time the public path on Tracklet objects
OBJECTS_MAX = 100_000
BENCH_CFG: dict = dict(k=10, index=dict(pca_dim=0, time_slice_s=60.0))


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is KiB on Linux


def make_world(n_tracklets: int, seed: int = 0) -> tuple[TrackletTable, np.ndarray, TopologyFile]:
    """The synthetic city: a table of about ``n_tracklets`` rows, the true vehicle of each row, the topology."""
    rng = np.random.default_rng(seed)
    n_cam = GRID * GRID
    cam_xy = np.array([(i // GRID, i % GRID) for i in range(n_cam)])
    neighbours = [[j for j in range(n_cam) if abs(cam_xy[i] - cam_xy[j]).sum() == 1] for i in range(n_cam)]
    travel = {}
    transitions = []
    for a in range(n_cam):
        transitions.append(Transition(src=f"c{a + 1:03d}", dst=f"c{a + 1:03d}", min_gap_s=0.0, max_gap_s=10.0))
        for b in neighbours[a]:
            if a < b:
                travel[(a, b)] = travel[(b, a)] = float(rng.uniform(20, 120))
            t = travel[(a, b)]
            transitions.append(Transition(src=f"c{a + 1:03d}", dst=f"c{b + 1:03d}", min_gap_s=0.7 * t, max_gap_s=1.5 * t))
    topology = TopologyFile(scenarios={"S01": ScenarioTopology(transitions=transitions)})

    # vehicles: routes and times
    per_vehicle = 5.5 * 1.2  # mean cameras per route x tracklets per view
    n_veh = max(1, int(round(n_tracklets / per_vehicle)))
    horizon = DAY_S * n_tracklets / TRACKLETS_PER_DAY
    cams, vehs, starts, ends = [], [], [], []
    t_enter = rng.uniform(0, horizon, n_veh)
    lengths = rng.integers(3, 9, n_veh)
    for v in range(n_veh):
        c = int(rng.integers(n_cam))
        prev = -1
        t = t_enter[v]
        for step in range(lengths[v]):
            stay = rng.uniform(5, 30)
            if rng.random() < 0.2:  # occlusion splits the view into two tracklets
                cut = rng.uniform(0.3, 0.7) * stay
                gap = rng.uniform(1, 3)
                for s, e in ((t, t + cut), (t + cut + gap, t + stay + gap)):
                    cams.append(c), vehs.append(v), starts.append(s), ends.append(e)
                stay += gap
            else:
                cams.append(c), vehs.append(v), starts.append(t), ends.append(t + stay)
            options = [b for b in neighbours[c] if b != prev] or neighbours[c]
            nxt = options[int(rng.integers(len(options)))]
            t = t + stay + travel[(c, nxt)] * rng.uniform(0.8, 1.3)
            prev, c = c, nxt
    cams, vehs = np.array(cams, np.int32), np.array(vehs, np.int64)
    starts, ends = np.array(starts), np.array(ends)
    n = len(cams)

    # features: model centre + vehicle offset + tracklet noise, spectrum-shaped and rotated
    scale = (1.0 / (1.0 + np.arange(DIM) / 32.0)).astype(np.float32)
    scale /= np.linalg.norm(scale)  # a draw then has expected norm 1
    q, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    q = q.astype(np.float32)
    n_models = max(1, n_veh // 20)
    models = rng.normal(size=(n_models, DIM)).astype(np.float32) * scale
    model_of = rng.integers(n_models, size=n_veh)
    centres = models[model_of] + 0.75 * rng.normal(size=(n_veh, DIM)).astype(np.float32) * scale
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    feats = np.empty((n, DIM), np.float32)
    for lo in range(0, n, 100_000):
        hi = min(n, lo + 100_000)
        x = centres[vehs[lo:hi]] + 0.55 * rng.normal(size=(hi - lo, DIM)).astype(np.float32) * scale
        x = x @ q
        feats[lo:hi] = x / np.linalg.norm(x, axis=1, keepdims=True)
    del centres
    table = TrackletTable.from_arrays(
        [("S01", f"c{i + 1:03d}") for i in range(n_cam)], cams, np.arange(n), starts, ends, feats
    )
    return table, vehs, topology


def exact_recall(table: TrackletTable, knn_idx: np.ndarray, k: int, links: CameraLinks, n_queries: int, seed: int = 0) -> float:
    """Recall of the found kNN lists against exact kNN in the original 512-d features over
    the tracklets a query may be linked with: cameras its links do not forbid, within the
    camera's reach in time, not seen at once in its own camera (self excluded from both)."""
    from mct.associate.constraints import same_camera_concurrent

    arrays = links.compile(table)
    reach_c = camera_reach(table, arrays, UNKNOWN_REACH_S)
    adjacency = camera_adjacency(table, arrays)
    reach = float(reach_c.max())
    rng = np.random.default_rng(seed + 1)
    queries = rng.choice(len(table), size=min(n_queries, len(table)), replace=False)
    order = np.argsort(table.start_s)
    sorted_start = table.start_s[order]
    max_dur = float((table.end_s - table.start_s).max())
    hits = total = 0
    for q in queries:
        lo = np.searchsorted(sorted_start, table.start_s[q] - reach - max_dur)
        hi = np.searchsorted(sorted_start, table.end_s[q] + reach, "right")
        cand = order[lo:hi]
        qq = np.full(len(cand), q)
        keep = within_reach(table, reach_c, qq, cand) & (cand != q) & np.isin(table.camera[cand], adjacency[table.camera[q]])
        keep &= ~same_camera_concurrent(table, qq, cand, 1.0)
        cand = cand[keep]
        sims = table.features[cand] @ table.features[q]
        top = cand[np.argsort(-sims)[:k]]
        found = knn_idx[q][(knn_idx[q] >= 0) & (knn_idx[q] != q)][:k]
        hits += len(np.intersect1d(top, found))
        total += len(top)
    return hits / max(total, 1)


def pairwise_scores(labels: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Pairwise precision and recall of a clustering against the true vehicles."""

    def pairs(x: np.ndarray) -> float:
        c = np.bincount(x).astype(np.float64)
        return float((c * (c - 1) / 2).sum())

    joint = labels.astype(np.int64) * (truth.max() + 1) + truth
    _, joint = np.unique(joint, return_inverse=True)
    tp = pairs(joint)
    return tp / max(pairs(labels), 1), tp / max(pairs(truth), 1)


def run_one(n: int, overrides: dict, recall_queries: int) -> dict:
    t0 = time.perf_counter()
    table, truth, topology = make_world(n)
    gen_s = time.perf_counter() - t0
    rss_before = peak_rss_gb()
    cfg = AssociationConfig.model_validate(_nested({**_flat(BENCH_CFG), **overrides}))
    cams = [Camera(s, c, fps=10.0) for s, c in table.camera_keys]
    labelled = CameraLinks.from_topology(topology, cams, cfg.links)  # the city's true windows, as a file would give them
    timings: dict[str, float] = {}
    details: dict = {}
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    labels = associate_table(table, cfg, None, labelled, timings, progress=False, details=details)
    total_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    recall = exact_recall(table, details["knn_idx"], cfg.k, labelled, recall_queries)
    precision, pair_recall = pairwise_scores(labels, truth)
    objects = objects_run(table, cfg, topology) if n <= OBJECTS_MAX else {}
    return {
        "tracklets": len(table),
        "vehicles": int(truth.max()) + 1,
        "global_ids": int(labels.max()) + 1,
        "hours": round(float(table.end_s.max()) / 3600, 2),
        "generate_s": round(gen_s, 1),
        "associate_s": round(total_s, 1),
        "associate_cpu_s": round(cpu_s, 1),
        "loadavg_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        **{(f"{k[:-4]}_cpu_s" if k.endswith("_cpu") else f"{k}_s"): round(v, 1) for k, v in timings.items()},
        "knn_recall": round(recall, 4),
        "pair_precision": round(precision, 4),
        "pair_recall": round(pair_recall, 4),
        "rounds": [{k: v for k, v in r.items() if k in ("round", "global_ids", "changed", "confident", "seconds")} for r in details["rounds"]],
        "peak_rss_gb": round(peak_rss_gb(), 2),
        "rss_after_generate_gb": round(rss_before, 2),
        **objects,
        "config": {**_flat(BENCH_CFG), **overrides},
    }


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _nested(flat: dict) -> dict:
    out: dict = {}
    for key, v in flat.items():
        *parents, last = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = v
    return out


def objects_run(table: TrackletTable, cfg: AssociationConfig, topology: TopologyFile) -> dict:
    """The public path: ``associate(tracklets, cameras, cfg)`` on Tracklet objects (two boxes
    each, first and last frame, 10 fps cameras), timed including the table build."""
    cams = [Camera(s, c, fps=10.0) for s, c in table.camera_keys]
    tracklets = []
    for r in range(len(table)):
        s, c = table.camera_keys[table.camera[r]]
        first = int(round(table.start_s[r] * 10)) + 1
        last = max(first + 1, int(round(table.end_s[r] * 10)) + 1)
        tracklets.append(
            Tracklet(s, c, int(table.track_id[r]), np.array([first, last]), np.zeros((2, 4), np.float32) + [0, 0, 10, 10], np.ones(2), feature=table.features[r])
        )
    t0 = time.perf_counter()
    assignment = associate(tracklets, cams, cfg, topology=topology)
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = write_submission_rows(tracklets, assignment)
    return {"objects_associate_s": round(seconds, 1), "objects_submission_rows_s": round(time.perf_counter() - t0, 1), "objects_rows": len(rows)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k tracklets only (smoke run)")
    parser.add_argument("--sizes", type=int, nargs="*", default=None, help="tracklet counts (default 10k 100k 1M)")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], help="AssociationConfig overrides, KEY=VALUE")
    parser.add_argument("--recall-queries", type=int, default=1000)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # internal: one size, JSON to stdout
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    overrides = {}
    for item in args.overrides:
        key, value = item.split("=", 1)
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    if args.one is not None:
        print(json.dumps(run_one(args.one, overrides, args.recall_queries)))
        return 0

    sizes = args.sizes or ([10_000] if args.quick else [10_000, 100_000, 1_000_000])
    rows = []
    for n in sizes:
        # a fresh process per size: peak RSS is that size's own
        cmd = [sys.executable, __file__, "--one", str(n), "--recall-queries", str(args.recall_queries), "--set", *args.overrides]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return out.returncode
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row))
    big = max(rows, key=lambda r: r["tracklets"])
    targets = {}
    if big["tracklets"] >= 1_000_000:
        targets["1M associate_s"] = {"value": big["associate_s"], "target": "< 120", "ok": big["associate_s"] < 120}
        targets["1M peak_rss_gb"] = {"value": big["peak_rss_gb"], "target": "< 4", "ok": big["peak_rss_gb"] < 4}
    targets["min knn_recall"] = {
        "value": min(r["knn_recall"] for r in rows),
        "target": ">= 0.95",
        "ok": min(r["knn_recall"] for r in rows) >= 0.95,
    }
    if len(rows) > 1:
        small = min(rows, key=lambda r: r["tracklets"])
        growth = (big["associate_s"] / small["associate_s"]) / (big["tracklets"] / small["tracklets"])
        targets["time growth / size growth"] = {"value": round(growth, 2), "target": "~1 (near-linear)", "ok": growth < 2}
    result = {
        "name": "association",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "results": [{k: v for k, v in r.items() if k != "config"} for r in rows],
        "config": rows[0]["config"],
        "targets": targets,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for name, t in targets.items():
        print(f"{name}: {t['value']} (target {t['target']}) {'ok' if t['ok'] else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
