"""City-scale association stories: a TrackletStore associated in overlapping time windows.

The world: three cameras on one road, c001 -> c002 -> c003, each hop 20-35 s (the topology
says 10-60 s). A vehicle enters c001 every 3 s for half an hour and is seen 5-10 s in each
camera; each vehicle has its own appearance (random 128-d direction: two vehicles are at cosine 0 +- 0.09; its views differ by a
little noise). The links reach 60 s + 3 spreads = 75 s and tracklets last at most 30 s
(``max_tracklet_s``), so windows overlap by 105 s: every hop starts inside one window
together, and no vehicle (at most ~95 s from first to last start) spans more than one
overlap.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from mct.associate import associate_table
from mct.associate.config import AssociationConfig, ScenarioTopology, TopologyFile, Transition
from mct.associate.links import CameraLinks
from mct.associate.store import TrackletStore
from mct.associate import stream as stream_module
from mct.associate.stream import associate_stream, link_overlap_s, read_stream_ids
from mct.types import Camera

CAMS = [Camera("S01", f"c00{i}") for i in (1, 2, 3)]
TOPOLOGY = TopologyFile(scenarios={"S01": ScenarioTopology(transitions=[
    Transition(src="c001", dst="c002", min_gap_s=10.0, max_gap_s=60.0),
    Transition(src="c002", dst="c003", min_gap_s=10.0, max_gap_s=60.0),
])})
CFG = AssociationConfig(self_training_rounds=1)
DIM = 128
MAX_TRACKLET_S = 30.0


def labelled() -> CameraLinks:
    return CameraLinks.from_topology(TOPOLOGY, CAMS, CFG.links)


def road_world(minutes: float = 30.0, seed: int = 0, every_s: float = 3.0) -> dict[str, np.ndarray]:
    """Columns of the road's tracklets, sorted by start, and ``vehicle`` (the truth)."""
    rng = np.random.default_rng(seed)
    rows = []
    for v, t in enumerate(np.arange(0.0, minutes * 60, every_s)):
        look = rng.normal(size=DIM)
        t = t + rng.uniform(0, 5)
        for cam in range(3):
            stay = rng.uniform(5, 10)
            rows.append((t, t + stay, cam, v, look + 0.1 * rng.normal(size=DIM)))
            t += stay + rng.uniform(20, 35)
    rows.sort(key=lambda r: r[0])
    return dict(
        start_s=np.array([r[0] for r in rows]), end_s=np.array([r[1] for r in rows]),
        camera=np.array([r[2] for r in rows], np.int32), track_id=np.arange(len(rows)),
        features=np.array([r[4] for r in rows], np.float32), vehicle=np.array([r[3] for r in rows]),
    )


def fill(path: Path, world: dict[str, np.ndarray], batch_s: float = 60.0, finish: bool = True, until_s: float | None = None) -> TrackletStore:
    """A store of ``world``, one batch per ``batch_s`` of start times (up to ``until_s``)."""
    store = TrackletStore.open(path) if (path / "manifest.json").exists() else TrackletStore.create(path, [c.key for c in CAMS], DIM)
    end = world["start_s"].max() + 1 if until_s is None else until_s
    done = store.last_start_s if store.last_start_s is not None else -np.inf
    for t in np.arange(0.0, end, batch_s):
        keep = (world["start_s"] >= max(t, np.nextafter(done, np.inf))) & (world["start_s"] < min(t + batch_s, end))
        store.append(**{k: world[k][keep] for k in ("camera", "track_id", "start_s", "end_s", "features")})
    if finish:
        store.finish()
    return store


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when ``a`` and ``b`` group the rows alike (ids may differ)."""
    pairs = np.unique(np.stack([a, b]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def test_overlap_is_the_longest_link_window_plus_the_longest_tracklet(tmp_path):
    store = TrackletStore.create(tmp_path / "s", [c.key for c in CAMS], DIM)
    # 60 s window edge + 3 spreads of 5 s, plus 30 s tracklets
    assert link_overlap_s(store, None, labelled(), MAX_TRACKLET_S, CFG) == pytest.approx(105.0)


def test_one_window_is_the_one_shot_association(tmp_path):
    world = road_world(minutes=10)
    store = fill(tmp_path / "s", world)
    result = associate_stream(store, CFG, window_s=1e6, out_dir=tmp_path / "out", labelled=labelled(), max_tracklet_s=MAX_TRACKLET_S)
    assert result.windows_closed == 1 and result.rows == len(store)
    one_shot = associate_table(store.table(0, len(store)), CFG, None, labelled(), progress=False)
    np.testing.assert_array_equal(read_stream_ids(tmp_path / "out"), one_shot + 1)


def test_stream_equals_one_shot_and_carries_ids_across_boundaries(tmp_path):
    world = road_world(minutes=30)
    store = fill(tmp_path / "s", world)
    details: list[dict] = []
    result = associate_stream(store, CFG, window_s=300.0, out_dir=tmp_path / "out", labelled=labelled(),
                              max_tracklet_s=MAX_TRACKLET_S, details=details)
    assert result.windows_closed >= 8  # 30 min in steps of 195 s
    ids = read_stream_ids(tmp_path / "out")
    assert len(ids) == len(store)
    one_shot = associate_table(store.table(0, len(store)), CFG, None, labelled(), progress=False)
    assert same_partition(ids, one_shot)
    assert same_partition(ids, world["vehicle"])  # and both find every vehicle
    # vehicles whose first view closes in one window and last view in a later one keep one id
    closed_in = np.concatenate([np.full(d["new_rows"], d["window"]) for d in details])
    crossing = [v for v in np.unique(world["vehicle"]) if len(np.unique(closed_in[world["vehicle"] == v])) > 1]
    assert len(crossing) >= 5
    for v in crossing:
        assert len(np.unique(ids[world["vehicle"] == v])) == 1
    assert result.global_ids == len(np.unique(world["vehicle"]))
    assert sorted(np.unique(ids)) == list(range(1, result.global_ids + 1))


def test_same_input_same_ids(tmp_path):
    world = road_world(minutes=12, seed=3)
    runs = []
    for name in ("a", "b"):
        store = fill(tmp_path / f"s_{name}", world, batch_s=45.0 if name == "a" else 90.0)  # batching differs
        associate_stream(store, CFG, window_s=300.0, out_dir=tmp_path / f"out_{name}", labelled=labelled(), max_tracklet_s=MAX_TRACKLET_S)
        runs.append(read_stream_ids(tmp_path / f"out_{name}"))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_resume_after_a_kill_gives_the_same_ids(tmp_path, monkeypatch):
    world = road_world(minutes=20, seed=1)
    store = fill(tmp_path / "s", world)
    kw = dict(window_s=300.0, labelled=labelled(), max_tracklet_s=MAX_TRACKLET_S)
    associate_stream(store, CFG, out_dir=tmp_path / "clean", **kw)
    clean = read_stream_ids(tmp_path / "clean")

    # the process dies inside window 3's association (windows 0-2 closed)
    real = stream_module.associate_table
    calls = []

    def dies_at_window_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(stream_module, "associate_table", dies_at_window_3)
    with pytest.raises(KeyboardInterrupt):
        associate_stream(store, CFG, out_dir=tmp_path / "killed", **kw)
    assert json.loads((tmp_path / "killed" / "stream.json").read_text())["closed"] == 3
    # killed again between writing window 3's file and the state: a stray file, recomputed
    monkeypatch.setattr(stream_module, "associate_table", real)
    (tmp_path / "killed" / "window_000003.npz").write_bytes(b"torn")
    resumed = associate_stream(store, CFG, out_dir=tmp_path / "killed", **kw)
    assert resumed.windows_skipped == 3 and resumed.windows_closed > 0
    np.testing.assert_array_equal(read_stream_ids(tmp_path / "killed"), clean)


def test_stream_follows_a_writer_and_resumes_after_a_torn_batch(tmp_path):
    world = road_world(minutes=20, seed=2)
    kw = dict(window_s=300.0, labelled=labelled(), max_tracklet_s=MAX_TRACKLET_S)
    store = fill(tmp_path / "full", world)
    associate_stream(store, CFG, out_dir=tmp_path / "full_out", **kw)
    # the writer has written the first 10 minutes: only the windows they close are closed
    partial = fill(tmp_path / "s", world, finish=False, until_s=600.0)
    first = associate_stream(TrackletStore.open(tmp_path / "s", readonly=True), CFG, out_dir=tmp_path / "out", **kw)
    assert 0 < first.windows_closed and first.rows < len(partial)
    # the writer is killed mid-batch, restarted (torn batch dropped), and writes the rest
    with open(tmp_path / "s" / "start_s.f64", "ab") as fh:
        fh.write(np.array([601.0, 602.0]).tobytes())
    fill(tmp_path / "s", world)
    rest = associate_stream(TrackletStore.open(tmp_path / "s", readonly=True), CFG, out_dir=tmp_path / "out", **kw)
    assert rest.windows_skipped == first.windows_closed
    np.testing.assert_array_equal(read_stream_ids(tmp_path / "out"), read_stream_ids(tmp_path / "full_out"))


def test_empty_store_and_bad_window(tmp_path):
    store = TrackletStore.create(tmp_path / "s", [c.key for c in CAMS], DIM)
    store.finish()
    result = associate_stream(store, CFG, window_s=300.0, out_dir=tmp_path / "out", labelled=labelled(), max_tracklet_s=MAX_TRACKLET_S)
    assert result.windows_closed == 0 and result.rows == 0
    with pytest.raises(ValueError, match="at least twice the overlap"):
        associate_stream(store, CFG, window_s=150.0, out_dir=tmp_path / "out2", labelled=labelled(), max_tracklet_s=MAX_TRACKLET_S)
    with pytest.raises(ValueError, match="window_s is 300.0, this call gives 600.0"):
        associate_stream(store, CFG, window_s=600.0, out_dir=tmp_path / "out", labelled=labelled(), max_tracklet_s=MAX_TRACKLET_S)


@pytest.mark.ray
@pytest.mark.slow
def test_ray_workers_write_while_the_driver_associates(tmp_path):
    # workers turn 60-s slots of the road into tracklet batches and hand them to one writer
    # actor, which appends them in slot order whatever order they finish in; the driver
    # follows the store and closes windows while later slots are still being written
    ray = pytest.importorskip("ray")
    import sys

    world = road_world(minutes=20, seed=4)
    slots = np.floor(world["start_s"] / 60.0).astype(int)
    n_slots = int(slots.max()) + 1
    cols = ("camera", "track_id", "start_s", "end_s", "features")
    store_path = tmp_path / "s"
    TrackletStore.create(store_path, [c.key for c in CAMS], DIM)

    paths = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    ray.init(num_cpus=1, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": paths, "RAY_AUTH_MODE": "disabled"}})
    try:
        writer = ray.remote(num_cpus=0)(_StoreWriter).remote(str(store_path), n_slots)
        produce = ray.remote(num_cpus=1)(_produce_slot)
        order = [s ^ 1 if (s ^ 1) < n_slots else s for s in range(n_slots)]  # neighbours swapped: 1, 0, 3, 2, ...
        tasks = [produce.remote(writer, s, {k: world[k][slots == s] for k in cols}) for s in order]
        details: list[dict] = []
        reader = TrackletStore.open(store_path, readonly=True)
        result = associate_stream(reader, CFG, window_s=300.0, out_dir=tmp_path / "out", labelled=labelled(),
                                  max_tracklet_s=MAX_TRACKLET_S, follow=True, poll_s=0.05, timeout_s=120.0, details=details)
        ray.get(tasks)
    finally:
        ray.shutdown()
    assert any(not d["store_finished"] for d in details)  # windows closed while workers still wrote
    ids = read_stream_ids(tmp_path / "out")
    assert result.rows == len(world["start_s"]) == len(ids)
    assert same_partition(ids, world["vehicle"])
    # the same ids as one process writing the store in order
    fill(tmp_path / "serial", world)
    associate_stream(TrackletStore.open(tmp_path / "serial", readonly=True), CFG, window_s=300.0, out_dir=tmp_path / "serial_out",
                     labelled=labelled(), max_tracklet_s=MAX_TRACKLET_S)
    np.testing.assert_array_equal(ids, read_stream_ids(tmp_path / "serial_out"))


class _StoreWriter:
    """The one writer of a store (a Ray actor): appends batches in slot order, finishes after the last."""

    def __init__(self, path: str, n_batches: int) -> None:
        from mct.associate.store import OrderedAppender

        self.appender = OrderedAppender(TrackletStore.open(path))
        self.n_batches = n_batches

    def put(self, seq: int, columns: dict) -> int:
        self.appender.put(seq, **columns)
        if self.appender.next_seq == self.n_batches:
            self.appender.finish()
        return self.appender.next_seq


def _produce_slot(writer, seq: int, columns: dict) -> int:
    import ray

    time.sleep(0.2)  # the camera work of one slot
    return ray.get(writer.put.remote(seq, columns))
