"""Per-camera MOTChallenge-style evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mct.data.mot import MotRows
from mct.evaluate.metrics import TrackBoxes
from mct.evaluate.mot import evaluate_mot, evaluate_mot_files, find_camera_gt_files

DATA = Path(__file__).resolve().parents[1] / "data" / "motchallenge"


def test_ignored_ground_truth_rows_are_dropped() -> None:
    # frame 1: car 1 (flag 1) found; frame 2: car 1 found, car 2 flagged 0 (ignored) not found
    gt = MotRows.from_arrays([1, 2, 2], [1, 1, 2], [[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 10, 10]], conf=[1, 1, 0])
    pred = TrackBoxes([1, 2], [7, 7], [[0, 0, 10, 10], [0, 0, 10, 10]])
    m = evaluate_mot(gt, pred)
    assert m.num_objects == 2 and m.num_misses == 0 and m.idf1 == 1.0
    # kept, the ignored car would be a miss
    m = evaluate_mot(gt, pred, drop_ignored=False)
    assert m.num_objects == 3 and m.num_misses == 1


def test_mot_files_reproduce_the_devkit() -> None:
    m = evaluate_mot_files(DATA / "TUD-Campus" / "gt.txt", DATA / "TUD-Campus" / "test.txt")
    # devkit: IDF1 0.557659, MOTA 0.526462, IDSW 7 (read through mct.data.mot, float32 boxes)
    assert m.idf1 == pytest.approx(0.557659, abs=1e-4)
    assert m.mota == pytest.approx(0.526462, abs=1e-4)
    assert m.num_switches == 7


def test_find_camera_gt_files(tmp_path: Path) -> None:
    for scen, cam in (("S01", "c001"), ("S01", "c002")):
        (tmp_path / scen / cam / "gt").mkdir(parents=True)
        (tmp_path / scen / cam / "gt" / "gt.txt").write_text("1,1,0,0,5,5,1,-1,-1,-1\n")
    assert sorted(find_camera_gt_files(tmp_path, [1, 2, 3])) == [1, 2]
    with pytest.raises(FileNotFoundError):
        find_camera_gt_files(tmp_path / "nope", [1])
    assert np.array_equal(sorted(find_camera_gt_files(tmp_path, [2])), [2])
