"""Run folder primitives: atomic writes, fingerprints, stage records, stored arrays."""

from __future__ import annotations

import numpy as np
import pytest

from mct.run import run_folder as rf
from mct.detect.cache import save_detections
from mct.run.storage import EmbeddingReader, EmbeddingWriter, StoredDetections
from mct.types import Detections


def test_atomic_path_renames_on_success_and_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out" / "a.txt"
    with rf.atomic_path(target) as tmp:
        assert tmp.suffix == ".txt" and rf.TMP_MARK in tmp.name  # suffix kept for np.savez & co
        tmp.write_text("whole")
    assert target.read_text() == "whole"
    # an interrupted writer: the old file stays, the temp file goes
    with pytest.raises(KeyboardInterrupt):
        with rf.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "whole"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


def test_remove_temp_files_only_removes_temporaries(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.npz").write_text("k")
    (tmp_path / "x" / f"tracks{rf.TMP_MARK}12-ab.txt").write_text("t")
    assert rf.remove_temp_files(tmp_path) == 1
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["keep.npz"]
    assert rf.remove_temp_files(tmp_path / "missing") == 0


def test_fingerprint_ignores_key_order_but_not_values():
    assert rf.fingerprint({"a": 1, "b": [1, 2]}) == rf.fingerprint({"b": [1, 2], "a": 1})
    assert rf.fingerprint({"a": 1}) != rf.fingerprint({"a": 2})
    assert rf.fingerprint("detect", {"a": 1}) != rf.fingerprint("track", {"a": 1})


def test_stage_done_needs_matching_fingerprint_and_every_output(tmp_path):
    d = tmp_path / "stage"
    assert not rf.stage_is_done(d, "fp1")
    (d).mkdir()
    (d / "out.bin").write_bytes(b"1")
    rf.mark_stage_done(d, "fp1", ["out.bin"], {"seconds": 1.0})
    assert rf.stage_is_done(d, "fp1")
    assert not rf.stage_is_done(d, "fp2")  # config changed
    (d / "out.bin").unlink()
    assert not rf.stage_is_done(d, "fp1")  # an output went missing
    (d / "done.json").write_text("{not json")
    assert not rf.stage_is_done(d, "fp1")


def test_link_atomic_is_idempotent(tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("s")
    rf.link_atomic(src, tmp_path / "view" / "dst.txt")
    rf.link_atomic(src, tmp_path / "view" / "dst.txt")  # same file again: no temp left behind
    assert [p.name for p in (tmp_path / "view").iterdir()] == ["dst.txt"]
    assert (tmp_path / "view" / "dst.txt").read_text() == "s"


def test_detections_round_trip_keeps_empty_frames(tmp_path):
    dets = [
        # frame 1: two boxes
        Detections(1, np.array([[0, 0, 10, 10], [5, 5, 20, 30]], np.float32), np.array([0.9, 0.4], np.float32),
                   np.array([2, 7])),
        # frame 2: nothing detected; the frame must still be there
        Detections.empty(2),
        # frame 5: one box (frames need not be consecutive)
        Detections(5, np.array([[1, 2, 3, 4]], np.float32), np.array([0.5], np.float32)),
    ]
    path = tmp_path / "detections.npz"
    save_detections(path, dets)
    back = list(StoredDetections(path))  # what the track stage reads
    assert [d.frame for d in back] == [1, 2, 5]
    assert [len(d) for d in back] == [2, 0, 1]
    np.testing.assert_array_equal(back[0].xyxy, dets[0].xyxy)
    np.testing.assert_array_equal(back[0].class_ids, [2, 7])
    save_detections(path, [])
    assert list(StoredDetections(path)) == []


def test_embeddings_stream_to_disk_and_read_back_by_rows(tmp_path):
    path = tmp_path / "embeddings.npy"
    rng = np.random.default_rng(0)
    blocks = [rng.normal(size=(n, 8)).astype(np.float32) for n in (3, 0, 5)]
    with EmbeddingWriter(path) as w:
        for b in blocks:
            w.append(b)
    whole = np.concatenate(blocks)
    np.testing.assert_array_equal(np.load(path), whole)  # a plain .npy
    with EmbeddingReader(path) as r:
        assert (r.rows, r.dim) == (8, 8)
        np.testing.assert_array_equal(r.read(2, 6), whole[2:6])
        assert r.read(4, 4).shape == (0, 8)
        with pytest.raises(IndexError):
            r.read(5, 9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embeddings.npy"]


def test_embedding_writer_with_no_rows_and_abort(tmp_path):
    w = EmbeddingWriter(tmp_path / "e.npy")
    w.close(dim_if_empty=4)
    assert np.load(tmp_path / "e.npy").shape == (0, 4)
    w = EmbeddingWriter(tmp_path / "f.npy")
    w.append(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="dim changed"):
        w.append(np.ones((1, 3), np.float32))
    w.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npy"]


def test_joined_chunks_are_the_bytes_of_one_write(tmp_path):
    from mct.run.storage import DetectionsBuffer, concat_detection_files, concat_embedding_files

    rng = np.random.default_rng(1)
    dets = [Detections(f, rng.uniform(0, 50, (n, 4)).astype(np.float32), rng.uniform(0, 1, n).astype(np.float32))
            for f, n in ((1, 2), (2, 0), (3, 1), (4, 3))]  # frame 2: no boxes
    embs = [rng.normal(size=(len(d), 8)).astype(np.float32) for d in dets]
    # in one go
    whole = DetectionsBuffer()
    whole.extend(dets)
    whole.save(tmp_path / "whole.npz")
    with EmbeddingWriter(tmp_path / "whole.npy") as w:
        for e in embs:
            w.append(e)
    # in two chunks (frames 1-2, frames 3-4); the first chunk's second frame has no rows
    for k, sl in enumerate((slice(0, 2), slice(2, 4))):
        part = DetectionsBuffer()
        part.extend(dets[sl])
        part.save(tmp_path / f"{k}.npz")
        with EmbeddingWriter(tmp_path / f"{k}.npy") as w:
            for e in embs[sl]:
                w.append(e)
    assert concat_detection_files([tmp_path / "0.npz", tmp_path / "1.npz"], tmp_path / "joined.npz") == 6
    concat_embedding_files([tmp_path / "0.npy", tmp_path / "1.npy"], tmp_path / "joined.npy")
    assert (tmp_path / "joined.npz").read_bytes() == (tmp_path / "whole.npz").read_bytes()
    assert (tmp_path / "joined.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()
    with pytest.raises(ValueError, match="no embedding chunks"):
        concat_embedding_files([], tmp_path / "none.npy")


def test_load_run_tracklets_reads_each_camera_and_names_a_missing_one(tmp_path, caplog):
    from mct.track.tracklets import save_tracklets
    from mct.types import Camera, Tracklet

    run = tmp_path / "run"
    # c006 finished with two tracks; c007 failed (no tracklets.npz)
    ours = [Tracklet("S02", "c006", k, np.array([1, 2]), np.array([[0, 0, 10, 10], [1, 1, 11, 11]], np.float32),
                     np.array([0.9, 0.8], np.float32)) for k in (3, 8)]
    save_tracklets(run / "cameras" / "S02_c006" / "tracklets.npz", ours)
    cams = [Camera("S02", "c006"), Camera("S02", "c007")]
    with caplog.at_level("WARNING"):
        got = rf.load_run_tracklets(run, cams)
    assert [(t.camera_id, t.track_id) for t in got] == [("c006", 3), ("c006", 8)]
    assert "S02_c007/tracklets.npz" in caplog.text and "left out" in caplog.text
