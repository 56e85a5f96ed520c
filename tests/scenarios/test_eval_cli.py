"""`mct eval` end to end: the table, the report files, a non-zero exit on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from mct.cli import main

CAR = "100 100 50 40"
OTHER = "400 300 60 40"


def _gt(tmp_path: Path) -> Path:
    # car 1 in c001 and c002, frames 1-3
    lines = [f"{cam} 1 {f} {CAR} -1 -1" for cam in (1, 2) for f in (1, 2, 3)]
    (tmp_path / "gt.txt").write_text("\n".join(lines) + "\n")
    return tmp_path / "gt.txt"


def test_eval_prints_the_table_and_writes_the_report(tmp_path: Path) -> None:
    # prediction: id 10 right in c001, in c002 frame 3 it sits on the other spot
    lines = [f"1 10 {f} {CAR} -1 -1" for f in (1, 2, 3)] + [f"2 10 {f} {CAR} -1 -1" for f in (1, 2)] + [f"2 10 3 {OTHER} -1 -1"]
    (tmp_path / "pred.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["-q", "eval", "--gt", str(_gt(tmp_path)), "--pred", str(tmp_path / "pred.txt"),
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    # IDTP 5 of 6 and 6: IDF1 = 10/12 = 83.33 %
    assert "IDF1" in res.output and "83.33" in res.output
    data = json.loads((out / "eval.json").read_text())
    assert np.isclose(data["metrics"]["idf1"], 10 / 12)
    assert [c["camera_id"] for c in data["cameras"]] == ["c001", "c002"]
    assert (out / "eval.png").stat().st_size > 10_000


def test_eval_exits_non_zero_on_a_malformed_prediction(tmp_path: Path) -> None:
    (tmp_path / "pred.txt").write_text(f"1 10 1 {CAR} -1 -1\n1 10 2 100 100 50\n")
    res = CliRunner().invoke(main, ["eval", "--gt", str(_gt(tmp_path)), "--pred", str(tmp_path / "pred.txt")])
    assert res.exit_code != 0
    text = "".join(res.output.split())  # the console wraps long lines
    assert "pred.txt:2:expected9columns" in text and "got6" in text


def test_eval_exits_non_zero_on_a_missing_file(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["eval", "--gt", str(_gt(tmp_path)), "--pred", str(tmp_path / "nope.txt")])
    assert res.exit_code != 0 and "nope.txt" in "".join(res.output.split())


def test_eval_per_camera_gt_dir(tmp_path: Path) -> None:
    # per-camera gt/gt.txt (MOTChallenge style); the row of frame 3 in c001 is flagged 0 (ignored)
    for cam in (1, 2):
        d = tmp_path / "data" / "S01" / f"c{cam:03d}" / "gt"
        d.mkdir(parents=True)
        flag = {1: 1, 2: 1, 3: 0 if cam == 1 else 1}
        d.joinpath("gt.txt").write_text("".join(f"{f},1,100,100,50,40,{flag[f]},-1,-1,-1\n" for f in (1, 2, 3)))
    lines = [f"{cam} 10 {f} {CAR} -1 -1" for cam in (1, 2) for f in (1, 2)]
    (tmp_path / "pred.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["-q", "eval", "--gt", str(_gt(tmp_path)), "--pred", str(tmp_path / "pred.txt"),
                                    "--per-camera-gt-dir", str(tmp_path / "data"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    single = json.loads((out / "eval.json").read_text())["single_camera"]
    # c001: frame 3 is ignored -> 2 GT boxes, both found; c002: 3 GT boxes, 2 found
    assert single["c001"]["num_objects"] == 2 and single["c001"]["num_misses"] == 0
    assert single["c002"]["num_objects"] == 3 and single["c002"]["num_misses"] == 1


def test_eval_names_the_missing_ground_truth_and_its_option(tmp_path: Path) -> None:
    # the prediction exists, the ground truth does not: the error is about --gt, not the submission
    (tmp_path / "pred.txt").write_text(f"1 10 1 {CAR} -1 -1\n")
    res = CliRunner().invoke(main, ["eval", "--gt", str(tmp_path / "eval" / "ground_truth_validation.txt"),
                                    "--pred", str(tmp_path / "pred.txt")])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "--gt" in text and "ground_truth_validation.txt" in text and "does not exist" in text, res.output
    assert "submission" not in text


def test_eval_names_a_missing_folder_with_its_option(tmp_path: Path) -> None:
    (tmp_path / "pred.txt").write_text(f"1 10 1 {CAR} -1 -1\n")
    for option in ("--roi-dir", "--per-camera-gt-dir"):
        res = CliRunner().invoke(main, ["eval", "--gt", str(_gt(tmp_path)), "--pred", str(tmp_path / "pred.txt"),
                                        option, str(tmp_path / "validation")])
        assert res.exit_code == 2
        text = " ".join(res.output.split())
        assert option in text and "validation" in text and "does not exist" in text, res.output
