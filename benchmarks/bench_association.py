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

Streamed (issue 21; mct.associate.store / stream): ``--stream`` writes each world into a
TrackletStore (512-d float16) and associates it in time windows, side by side with the
one-shot run; ``--hours`` adds the streamed peak memory at those hours of fixed traffic;
``--city N`` draws N tracklets of a 1,024-camera city at 10M a day straight into a store
(PCA 512 -> 64, float16) batch by batch and streams it:

    python benchmarks/bench_association.py --stream --sizes 1000000 --hours 6 12 24 --recall-queries 500
    python benchmarks/bench_association.py --stream --city 10000000 --window-s 3600
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


def camera_name(i: int, grid: int) -> str:
    return f"c{i + 1:03d}" if grid * grid < 1000 else f"c{i + 1:04d}"


def city_topology(rng: np.random.Generator, grid: int) -> tuple[list[list[int]], dict[tuple[int, int], float], TopologyFile]:
    """A ``grid`` x ``grid`` street grid of cameras: each camera's neighbours, the travel time
    of each adjacent pair (20-120 s), and the topology file of the city (draws from ``rng``)."""
    n_cam = grid * grid
    cam_xy = np.array([(i // grid, i % grid) for i in range(n_cam)])
    neighbours = [[j for j in (i - grid, i - 1, i + 1, i + grid) if 0 <= j < n_cam and abs(cam_xy[i] - cam_xy[j]).sum() == 1]
                  for i in range(n_cam)]
    neighbours = [sorted(nb) for nb in neighbours]
    travel: dict[tuple[int, int], float] = {}
    transitions = []
    for a in range(n_cam):
        name_a = camera_name(a, grid)
        transitions.append(Transition(src=name_a, dst=name_a, min_gap_s=0.0, max_gap_s=10.0))
        for b in neighbours[a]:
            if a < b:
                travel[(a, b)] = travel[(b, a)] = float(rng.uniform(20, 120))
            t = travel[(a, b)]
            transitions.append(Transition(src=name_a, dst=camera_name(b, grid), min_gap_s=0.7 * t, max_gap_s=1.5 * t))
    return neighbours, travel, TopologyFile(scenarios={"S01": ScenarioTopology(transitions=transitions)})


def make_world(n_tracklets: int, seed: int = 0) -> tuple[TrackletTable, np.ndarray, TopologyFile]:
    """The synthetic city: a table of about ``n_tracklets`` rows, the true vehicle of each row, the topology."""
    rng = np.random.default_rng(seed)
    n_cam = GRID * GRID
    neighbours, travel, topology = city_topology(rng, GRID)

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


# ---------------------------------------------------------------------------- streamed (issue 21)
STREAM_RESULTS = ROOT / "benchmarks" / "results" / "association_stream.json"
CITY_RESULTS = ROOT / "benchmarks" / "results" / "association_city.json"
#: the city of issue 21: 32 x 32 = 1,024 cameras, 10M tracklets a day
CITY_GRID = 32
CITY_PER_DAY = 10_000_000
#: store batches: one per this many seconds of start times (a camera job's flush)
BATCH_S = 600.0
#: longest tracklet of the synthetic worlds: 30 s view + 3 s occlusion gap, rounded up
MAX_TRACKLET_S = 40.0


def _cfg(overrides: dict) -> AssociationConfig:
    return AssociationConfig.model_validate(_nested({**_flat(BENCH_CFG), **overrides}))


def write_world_store(n: int, store_dir: Path, feature_dtype: str) -> dict:
    """Write ``make_world(n)`` into a TrackletStore (rows by start time, one batch per
    BATCH_S) and the true vehicle of each store row to ``truth.i64`` beside it."""
    from mct.associate.store import TrackletStore

    t0 = time.perf_counter()
    table, truth, _ = make_world(n)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    order = np.argsort(table.start_s, kind="stable")
    store = TrackletStore.create(store_dir, table.camera_keys, table.dim, feature_dtype=feature_dtype)  # type: ignore[arg-type]
    edges = np.searchsorted(table.start_s[order], np.arange(0.0, table.start_s.max() + BATCH_S, BATCH_S))
    for lo, hi in zip(edges[:-1], np.append(edges[1:-1], len(order))):
        rows = order[lo:hi]
        store.append(table.camera[rows], table.track_id[rows], table.start_s[rows], table.end_s[rows], table.features[rows])
    store.finish()
    truth[order].astype(np.int64).tofile(store_dir / "truth.i64")
    return {"generate_s": round(gen_s, 1), "store_write_s": round(time.perf_counter() - t0, 1),
            "store_gb": round(store.nbytes() / 1e9, 2), "writer_peak_rss_gb": round(peak_rss_gb(), 2)}


def write_city_store(n: int, store_dir: Path, per_day: int, grid: int, pca_dim: int, seed: int = 0) -> dict:
    """Stream a ``grid`` x ``grid`` city of about ``n`` tracklets at ``per_day`` a day into a
    store, batch by batch: vehicles are drawn in order of entry (BATCH_S at a time) as
    :func:`make_world` draws them (vectorised, features without the random rotation: cosines
    do not see it), and the rows that no later vehicle can precede are flushed in time
    order. Never more than ~half an hour of traffic is in memory. Features: 512-d, reduced
    by the store's PCA to ``pca_dim`` (fitted on the first batch), float16."""
    from mct.associate.store import TrackletStore

    t_start = time.perf_counter()
    rng = np.random.default_rng(seed)
    neighbours, travel, _ = city_topology(rng, grid)
    n_cam = grid * grid
    nb = np.full((n_cam, 4), -1, np.int64)
    tt = np.zeros((n_cam, 4))
    for c in range(n_cam):
        nb[c, : len(neighbours[c])] = neighbours[c]
        tt[c, : len(neighbours[c])] = [travel[(c, j)] for j in neighbours[c]]
    n_veh = max(1, int(round(n / (5.5 * 1.2))))
    horizon = DAY_S * n / per_day
    t_enter = np.sort(rng.uniform(0, horizon, n_veh))
    scale = (1.0 / (1.0 + np.arange(DIM) / 32.0)).astype(np.float32)
    scale /= np.linalg.norm(scale)
    n_models = max(1, n_veh // 20)
    models = rng.normal(size=(n_models, DIM)).astype(np.float32) * scale
    store = TrackletStore.create(store_dir, [("S01", camera_name(i, grid)) for i in range(n_cam)], DIM,
                                 feature_dtype="float16", pca_dim=pca_dim)
    truth_file = open(store_dir / "truth.i64", "wb")
    pending: list[dict[str, np.ndarray]] = []
    gen_s = write_s = 0.0
    tid = 0
    edges = np.searchsorted(t_enter, np.arange(0.0, horizon + BATCH_S, BATCH_S))
    for b, (lo, hi) in enumerate(zip(edges[:-1], np.append(edges[1:-1], n_veh))):
        t0 = time.perf_counter()
        m = hi - lo
        veh = np.arange(lo, hi)
        lengths = rng.integers(3, 9, m)
        cam = rng.integers(n_cam, size=m)
        prev = np.full(m, -1)
        t = t_enter[lo:hi].copy()
        parts = []
        for step in range(8):
            on = step < lengths
            stay = rng.uniform(5, 30, m)
            split = rng.random(m) < 0.2
            cut = rng.uniform(0.3, 0.7, m) * stay
            gap = rng.uniform(1, 3, m)
            whole = on & ~split
            two = on & split
            parts.append((cam[whole], veh[whole], t[whole], t[whole] + stay[whole]))
            parts.append((cam[two], veh[two], t[two], t[two] + cut[two]))
            parts.append((cam[two], veh[two], t[two] + cut[two] + gap[two], t[two] + stay[two] + gap[two]))
            stay = np.where(split, stay + gap, stay)
            ok = (nb[cam] >= 0) & (nb[cam] != prev[:, None])
            ok = np.where(ok.any(1, keepdims=True), ok, nb[cam] >= 0)
            pick = np.floor(rng.random(m) * ok.sum(1)).astype(np.int64)  # the pick-th allowed neighbour
            col = np.argmax(np.cumsum(ok, 1) > pick[:, None], axis=1)
            nxt = nb[cam, col]
            t = t + stay + tt[cam, col] * rng.uniform(0.8, 1.3, m)
            prev, cam = cam, nxt
        c_, v_, s_, e_ = (np.concatenate(x) for x in zip(*parts))
        centres = models[rng.integers(n_models, size=m)] + 0.75 * rng.normal(size=(m, DIM)).astype(np.float32) * scale
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        feats = centres[v_ - lo] + 0.55 * rng.normal(size=(len(v_), DIM)).astype(np.float32) * scale
        pending.append({"camera": c_, "vehicle": v_, "start_s": s_, "end_s": e_, "features": feats})
        # every later vehicle enters at or after the next batch's start: rows before it are final
        flush_before = t_enter[hi] if hi < n_veh else np.inf
        allrows = {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}
        order = np.argsort(allrows["start_s"], kind="stable")
        allrows = {k: v[order] for k, v in allrows.items()}
        cut_at = int(np.searchsorted(allrows["start_s"], flush_before))
        out = {k: v[:cut_at] for k, v in allrows.items()}
        pending = [{k: v[cut_at:] for k, v in allrows.items()}]
        gen_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        k_rows = len(out["start_s"])
        store.append(out["camera"], np.arange(tid, tid + k_rows), out["start_s"], out["end_s"], out["features"])
        out["vehicle"].astype(np.int64).tofile(truth_file)
        tid += k_rows
        write_s += time.perf_counter() - t0
        if b % 12 == 0:
            print(f"city store: {tid} rows, {out['start_s'][-1] / 3600 if k_rows else 0:.1f} h", file=sys.stderr, flush=True)
    truth_file.close()
    store.finish()
    return {"tracklets": len(store), "vehicles": n_veh, "generate_s": round(gen_s, 1), "store_write_s": round(write_s, 1),
            "store_write_total_s": round(time.perf_counter() - t_start, 1), "store_gb": round(store.nbytes() / 1e9, 2),
            "store_feature": f"PCA {DIM}->{pca_dim}, float16", "writer_peak_rss_gb": round(peak_rss_gb(), 2)}


def run_stream(store_dir: Path, overrides: dict, window_s: float, recall_queries: int, topology: TopologyFile) -> dict:
    """Associate the store in ``store_dir`` with :func:`associate_stream`; measure time, peak
    RSS, candidate recall (sampled queries of each window against exact kNN in the stored
    features over that window) and pairwise precision / recall against ``truth.i64``."""
    import shutil

    from mct.associate.store import TrackletStore
    from mct.associate.stream import associate_stream, read_stream_ids

    cfg = _cfg(overrides)
    store = TrackletStore.open(store_dir, readonly=True)
    cams = [Camera(s, c, fps=10.0) for s, c in store.camera_keys]
    labelled = CameraLinks.from_topology(topology, cams, cfg.links)
    out_dir = store_dir.parent / "stream_out"
    shutil.rmtree(out_dir, ignore_errors=True)
    hits = [0.0, 0, 0.0]  # recall x queries, queries, seconds spent measuring (not association)
    per_window = max(1, recall_queries // max(1, int(np.ceil(float(store.last_start_s or 0) / (window_s / 2)))))

    def measure(info: dict, table: TrackletTable) -> None:
        t = time.perf_counter()
        if len(table) > 1 and info["knn_idx"] is not None:
            r = exact_recall(table, info["knn_idx"], cfg.k, labelled, per_window, seed=info["window"])
            hits[0] += r * min(per_window, len(table))
            hits[1] += min(per_window, len(table))
        hits[2] += time.perf_counter() - t
        info["knn_idx"] = None  # keep nothing of the window

    rss_before = peak_rss_gb()
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    result = associate_stream(store, cfg, window_s, out_dir, labelled=labelled, max_tracklet_s=MAX_TRACKLET_S, on_window=measure)
    total_s, cpu_s = time.perf_counter() - t0 - hits[2], time.process_time() - c0 - hits[2]
    rss_assoc = peak_rss_gb()
    ids = read_stream_ids(out_dir)
    truth = np.fromfile(store_dir / "truth.i64", np.int64)
    precision, pair_recall = pairwise_scores(ids, truth)
    return {
        "mode": "stream",
        "tracklets": len(store),
        "vehicles": int(len(np.unique(truth))),
        "global_ids": result.global_ids,
        "hours": round(float(store.last_start_s or 0) / 3600, 2),
        "window_s": window_s,
        "overlap_s": round(result.overlap_s, 1),
        "windows": result.windows_closed,
        "max_window_rows": max(result.window_rows),
        "max_window_s": round(max(result.seconds), 1),
        "associate_s": round(total_s, 1),
        "associate_cpu_s": round(cpu_s, 1),
        "loadavg_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "knn_recall": round(hits[0] / max(hits[1], 1), 4),
        "knn_recall_queries": hits[1],
        "recall_measure_s": round(hits[2], 1),
        "pair_precision": round(precision, 4),
        "pair_recall": round(pair_recall, 4),
        "peak_rss_gb": round(rss_assoc, 2),
        "rss_before_associate_gb": round(rss_before, 2),
        "config": {**_flat(BENCH_CFG), **overrides},
    }


def run_one_stream(n: int, overrides: dict, recall_queries: int, window_s: float, work: Path) -> dict:
    """One size streamed, in two fresh processes: one writes the store (float16 features),
    the next associates it (its peak RSS is the association's own)."""
    import shutil

    store_dir = work / f"store_{n}"
    shutil.rmtree(store_dir, ignore_errors=True)
    store_dir.parent.mkdir(parents=True, exist_ok=True)
    writer = _child(["--write-store", str(n), "--work", str(work)])
    topology = city_topology(np.random.default_rng(0), GRID)[2]
    row = run_stream(store_dir, overrides, window_s, recall_queries, topology)
    row.update({f"store_{k}" if not k.startswith("store") else k: v for k, v in writer.items()})
    row["store_feature"] = "512-d float16"
    return row


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def stream_main(args: argparse.Namespace, overrides: dict) -> int:
    """``--stream``: one-shot and streamed side by side per size (fresh processes), plus
    the streamed peak memory at 6 / 12 / 24 h of fixed traffic (``--hours``); or ``--city``:
    the 1,024-camera city streamed."""
    work = Path(args.work)
    flat = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    if args.city:
        result = _child(["--one-city", str(args.city), "--work", str(work), "--window-s", str(args.window_s),
                         "--recall-queries", str(args.recall_queries), "--set", *flat])
        targets = {
            "city associate_s": {"value": result["associate_s"], "target": "< 1200", "ok": result["associate_s"] < 1200},
            "city peak_rss_gb": {"value": result["peak_rss_gb"], "target": "< 6", "ok": result["peak_rss_gb"] < 6},
            "city knn_recall": {"value": result["knn_recall"], "target": ">= 0.95", "ok": result["knn_recall"] >= 0.95},
        }
        out = {"name": "association_city", "machine": _machine(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
               "result": result, "targets": targets}
        path = Path(args.out) if args.out != str(RESULTS) else CITY_RESULTS
    else:
        rows = []
        for n in args.sizes or [1_000_000]:
            if not args.no_one_shot:
                one = _child(["--one", str(n), "--recall-queries", str(args.recall_queries), "--set", *flat])
                rows.append({"mode": "one-shot", **{k: v for k, v in one.items() if k != "config"}})
                print(json.dumps(rows[-1]), flush=True)
            rows.append(_child(["--one-stream", str(n), "--work", str(work), "--window-s", str(args.window_s),
                                "--recall-queries", str(args.recall_queries), "--set", *flat]))
            print(json.dumps(rows[-1]), flush=True)
        sweep = []
        for h in args.hours or []:
            n = int(round(TRACKLETS_PER_DAY * h / 24))
            same = [r for r in rows if r["mode"] == "stream" and r.get("store_tracklets_asked") == n]
            row = same[0] if same else _child(["--one-stream", str(n), "--work", str(work), "--window-s", str(args.window_s),
                                               "--recall-queries", str(args.recall_queries), "--set", *flat])
            sweep.append({"hours": h, **{k: row[k] for k in ("tracklets", "windows", "max_window_rows", "associate_s", "peak_rss_gb", "pair_recall", "pair_precision")}})
            print(json.dumps(sweep[-1]), flush=True)
        targets = {}
        if sweep:
            peaks = [r["peak_rss_gb"] for r in sweep]
            spread = max(peaks) / min(peaks) - 1
            targets["peak RSS 6/12/24 h, (max / min - 1)"] = {"value": round(spread, 3), "target": "<= 0.20", "ok": spread <= 0.20}
        out = {"name": "association_stream", "machine": _machine(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
               "results": [{k: v for k, v in r.items() if k != "config"} for r in rows], "hours_sweep": sweep,
               "config": {**_flat(BENCH_CFG), **overrides}, "targets": targets}
        path = Path(args.out) if args.out != str(RESULTS) else STREAM_RESULTS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    for name, t in out["targets"].items():
        print(f"{name}: {t['value']} (target {t['target']}) {'ok' if t['ok'] else 'MISSED'}")
    return 0


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


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
    parser.add_argument("--stream", action="store_true", help="streamed association (issue 21): side by side with one-shot")
    parser.add_argument("--city", type=int, default=None, help="with --stream: this many tracklets of the 1,024-camera city, streamed only")
    parser.add_argument("--hours", type=float, nargs="*", default=None, help="with --stream: streamed peak memory at these hours of fixed traffic")
    parser.add_argument("--no-one-shot", action="store_true", help="with --stream: skip the one-shot runs")
    parser.add_argument("--window-s", type=float, default=3600.0, help="stream window length, seconds")
    parser.add_argument("--work", default="/tmp/mct_bench_stream", help="where stores and stream outputs go")
    parser.add_argument("--write-store", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--one-stream", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--one-city", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--write-city", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--city-pca-dim", type=int, default=64, help="with --city: the store's PCA dim")
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
    if args.write_store is not None:
        print(json.dumps({"tracklets_asked": args.write_store, **write_world_store(args.write_store, Path(args.work) / f"store_{args.write_store}", "float16")}))
        return 0
    if args.one_stream is not None:
        print(json.dumps(run_one_stream(args.one_stream, overrides, args.recall_queries, args.window_s, Path(args.work))))
        return 0
    if args.one_city is not None:
        import shutil

        store_dir = Path(args.work) / "city_store"
        shutil.rmtree(store_dir, ignore_errors=True)
        store_dir.parent.mkdir(parents=True, exist_ok=True)
        writer = _child(["--write-city", str(args.one_city), "--work", args.work])
        topology = city_topology(np.random.default_rng(0), CITY_GRID)[2]
        row = run_stream(store_dir, overrides, args.window_s, args.recall_queries, topology)
        row["cameras"] = CITY_GRID * CITY_GRID
        row.update({k if k.startswith("store") or k.startswith("writer") else f"store_{k}": v for k, v in writer.items()})
        print(json.dumps(row))
        return 0
    if args.write_city is not None:
        print(json.dumps(write_city_store(args.write_city, Path(args.work) / "city_store", CITY_PER_DAY, CITY_GRID, args.city_pca_dim)))
        return 0
    if args.stream:
        return stream_main(args, overrides)

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
