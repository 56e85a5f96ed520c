"""The detections file: round trip, empty cameras, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from mct.detect.cache import load_detections, save_detections
from mct.types import Detections


def _dets(masks: bool) -> list[Detections]:
    rng = np.random.default_rng(0)
    out = []
    for frame, n in ((1, 2), (2, 0), (4, 3)):  # frame 2 has no detections; frame 3 skipped
        xyxy = np.sort(rng.uniform(0, 100, (n, 4)).astype(np.float32).reshape(n, 2, 2), axis=1).reshape(n, 4)
        m = rng.uniform(0, 1, (n, 28, 28)).astype(np.float32) if masks else None
        out.append(Detections(frame, xyxy, rng.uniform(0, 1, n).astype(np.float32), rng.integers(0, 5, n), m))
    return out


@pytest.mark.parametrize("masks", [False, True])
def test_round_trip(tmp_path, masks):
    dets = _dets(masks)
    path = save_detections(tmp_path / "d.npz", dets, {"note": 1})
    back, meta = load_detections(path)
    assert meta["note"] == 1 and meta["format"] == 1
    assert [d.frame for d in back] == [1, 2, 4] and [len(d) for d in back] == [2, 0, 3]
    for a, b in zip(dets, back):
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
        if masks:
            np.testing.assert_allclose(a.masks, b.masks, atol=1e-3)  # stored as float16
        else:
            assert b.masks is None
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]  # no temporary file left


def test_empty_camera(tmp_path):
    back, _ = load_detections(save_detections(tmp_path / "e.npz", []))
    assert back == []


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="detection cache not found"):
        load_detections(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.npz: not a detection cache"):
        load_detections(bad)
    partial = tmp_path / "partial.npz"
    np.savez(partial, frames=np.array([1]), counts=np.array([2]), xyxy=np.zeros((1, 4), np.float32),
             scores=np.zeros(1, np.float32), class_ids=np.zeros(1, np.int64))
    with pytest.raises(ValueError, match="counts sum to 2 for 1 boxes"):
        load_detections(partial)
