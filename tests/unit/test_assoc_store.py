"""TrackletStore: column memmaps + JSON manifest, appended in time order, read by time range."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from mct.associate.store import OrderedAppender, TrackletStore

KEYS = [("S01", "c001"), ("S01", "c002"), ("S01", "c003")]


def batch(starts: list[float], cams: list[int] | None = None, dim: int = 8, seed: int = 0, first_tid: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    n = len(starts)
    start = np.array(starts, np.float64)
    return dict(
        camera=np.array(cams if cams is not None else [i % 3 for i in range(n)], np.int32),
        track_id=np.arange(first_tid, first_tid + n),
        start_s=start,
        end_s=start + 5.0,
        features=rng.normal(size=(n, dim)).astype(np.float32),
        entry_xy=rng.uniform(0, 100, (n, 2)).astype(np.float32),
        exit_xy=rng.uniform(0, 100, (n, 2)).astype(np.float32),
    )


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_round_trip_and_time_range_read(tmp_path):
    store = TrackletStore.create(tmp_path / "s", KEYS, dim=8)
    b1, b2 = batch([0.0, 1.0, 2.0, 2.0], seed=1), batch([3.0, 10.0, 11.5], seed=2, first_tid=4)
    store.append(**b1)
    store.append(**b2)
    again = TrackletStore.open(tmp_path / "s", readonly=True)  # another process would see the same
    assert len(again) == 7 and again.camera_keys == tuple(KEYS) and again.last_start_s == 11.5
    table = again.table(0, 7)
    for name in ("camera", "track_id", "start_s", "end_s", "entry_xy", "exit_xy"):
        np.testing.assert_array_equal(getattr(table, name), np.concatenate([b1[name], b2[name]]))
    np.testing.assert_allclose(table.features, unit_rows(np.concatenate([b1["features"], b2["features"]])), atol=1e-6)
    # [2, 10): the two rows at 2 s and the one at 3 s, nothing else
    assert again.rows_between(2.0, 10.0) == (2, 5)
    part = again.read_between(2.0, 10.0)
    np.testing.assert_array_equal(part.start_s, [2.0, 2.0, 3.0])
    np.testing.assert_array_equal(part.source, [2, 3, 4])  # store rows
    assert len(again.read_between(20.0, 30.0)) == 0


def test_time_range_read_maps_without_copy(tmp_path):
    store = TrackletStore.create(tmp_path / "s", KEYS, dim=8)
    store.append(**batch([float(t) for t in range(100)]))
    view = store.column("start_s", 10, 20)
    assert isinstance(view, np.memmap) and not view.flags.owndata  # a window of the mapped file
    np.testing.assert_array_equal(view, np.arange(10, 20))


def test_float16_features_halve_the_file_and_keep_cosines(tmp_path):
    b = batch([float(t) for t in range(50)], dim=64)
    full = TrackletStore.create(tmp_path / "f32", KEYS, dim=64)
    half = TrackletStore.create(tmp_path / "f16", KEYS, dim=64, feature_dtype="float16")
    full.append(**b)
    half.append(**b)
    assert (tmp_path / "f16" / "features.f16").stat().st_size * 2 == (tmp_path / "f32" / "features.f32").stat().st_size
    f32, f16 = full.table(0, 50).features, half.table(0, 50).features
    assert f16.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f16, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(f16 @ f16.T, f32 @ f32.T, atol=2e-3)


def test_pca_reduced_features(tmp_path):
    rng = np.random.default_rng(0)
    # 16-d features that vary in 4 directions only: a 4-d PCA keeps every cosine
    basis = np.linalg.qr(rng.normal(size=(16, 4)))[0].T
    b = batch([float(t) for t in range(200)], dim=16)
    b["features"] = (rng.normal(size=(200, 4)) @ basis).astype(np.float32)
    store = TrackletStore.create(tmp_path / "s", KEYS, dim=16, pca_dim=4)
    store.append(**b)
    store.append(**{**b, "start_s": b["start_s"] + 200, "end_s": b["end_s"] + 200})  # the same PCA for later batches
    assert store.dim == 4 and (tmp_path / "s" / "pca.npz").exists()
    feats = TrackletStore.open(tmp_path / "s", readonly=True).table(0, 400).features
    assert feats.shape == (400, 4)
    y = unit_rows(b["features"])  # the store normalises, then centres on the first batch's mean
    x = unit_rows(y - y.mean(0))
    np.testing.assert_allclose(feats[:200] @ feats[:200].T, x @ x.T, atol=1e-4)


def test_torn_last_batch_is_dropped_with_a_warning(tmp_path, caplog):
    store = TrackletStore.create(tmp_path / "s", KEYS, dim=8)
    store.append(**batch([0.0, 1.0, 2.0]))
    # the writer is killed mid-batch: two of the column files got the next batch, the manifest did not
    torn = batch([3.0, 4.0])
    for name, col in (("camera.i32", "camera"), ("start_s.f64", "start_s")):
        with open(tmp_path / "s" / name, "ab") as fh:
            fh.write(torn[col].tobytes())
    with caplog.at_level(logging.WARNING, logger="mct.associate.store"):
        reopened = TrackletStore.open(tmp_path / "s")
    assert "torn batch dropped" in caplog.text
    assert len(reopened) == 3
    assert (tmp_path / "s" / "start_s.f64").stat().st_size == 3 * 8
    reopened.append(**batch([3.0, 4.0], first_tid=3))  # the writer appends the batch again
    np.testing.assert_array_equal(reopened.table(0, 5).start_s, [0, 1, 2, 3, 4])


def test_manifest_ahead_of_its_files_drops_the_last_batch(tmp_path, caplog):
    store = TrackletStore.create(tmp_path / "s", KEYS, dim=8)
    store.append(**batch([0.0, 1.0]))
    store.append(**batch([2.0, 3.0, 4.0]))
    # the machine died: the manifest reached disk, one column file lost the second batch
    with open(tmp_path / "s" / "features.f32", "ab") as fh:
        fh.truncate(2 * 8 * 4 + 5)
    with caplog.at_level(logging.WARNING, logger="mct.associate.store"):
        reopened = TrackletStore.open(tmp_path / "s")
    assert "dropped the last batch" in caplog.text
    assert len(reopened) == 2 and reopened.last_start_s == 1.0
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["rows"] == 2
    assert (tmp_path / "s" / "features.f32").stat().st_size == 2 * 8 * 4


def test_out_of_order_tracklets_raise_naming_camera_and_time(tmp_path):
    store = TrackletStore.create(tmp_path / "s", KEYS, dim=8)
    store.append(**batch([5.0, 6.0], cams=[0, 0]))
    # within a batch: c002's tracklet at 12 s comes after one at 13 s
    with pytest.raises(ValueError, match=r"camera S01/c002 track 1 starts at 12\.000 s, before 13\.000 s"):
        store.append(**batch([13.0, 12.0], cams=[0, 1]))
    # across batches: c003 at 4 s after the stored 6 s
    with pytest.raises(ValueError, match=r"camera S01/c003 track 0 starts at 4\.000 s, before 6\.000 s \(camera S01/c001 track 1"):
        store.append(**batch([4.0], cams=[2]))
    assert len(store) == 2  # neither batch was written
    assert (tmp_path / "s" / "camera.i32").stat().st_size == 2 * 4


def test_empty_store_reads_empty(tmp_path):
    store = TrackletStore.create(tmp_path / "s", KEYS, dim=8)
    assert len(store) == 0 and store.last_start_s is None
    assert len(store.read_between(0.0, 100.0)) == 0
    store.append(**batch([]))
    assert len(TrackletStore.open(tmp_path / "s")) == 0


def test_ordered_appender_gives_one_store_whatever_order_batches_arrive(tmp_path):
    batches = [batch([10.0 * s + 1, 10.0 * s + 2], seed=s, first_tid=2 * s) for s in range(4)]
    stores = []
    for name, order in (("in_order", [0, 1, 2, 3]), ("shuffled", [2, 0, 3, 1])):
        appender = OrderedAppender(TrackletStore.create(tmp_path / name, KEYS, dim=8))
        for s in order:
            appender.put(s, **batches[s])
        appender.finish()
        stores.append(TrackletStore.open(tmp_path / name, readonly=True))
    assert stores[1].finished and len(stores[1]) == 8
    np.testing.assert_array_equal(stores[0].table(0, 8).features, stores[1].table(0, 8).features)
    np.testing.assert_array_equal(stores[1].table(0, 8).track_id, np.arange(8))
    appender = OrderedAppender(TrackletStore.create(tmp_path / "gap", KEYS, dim=8))
    appender.put(1, **batches[1])
    with pytest.raises(ValueError, match=r"batches \[1\] wait for batch 0"):
        appender.finish()
