"""The run folder's eval/eval.png: per-camera IDF1 / IDP / IDR bars from eval/metrics.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mct.data.submission import read_submission_text
from mct.evaluate.mtmc import evaluate_mtmc_rows
from mct.evaluate.report import plot_camera_bars, write_run_figure

CAR = "100 100 50 40"
OTHER = "400 300 60 40"


def _metrics_json(eval_dir: Path) -> dict:
    """A run folder's eval/metrics.json for a two-camera story, as the pipeline writes it."""
    # car 1 crosses c001 then c002, frames 1-3 in each
    gt = read_submission_text("".join(f"{c} 1 {f} {CAR} -1 -1\n" for c in (1, 2) for f in (1, 2, 3)), "gt.txt")
    # predicted id 10 is right in c001; in c002 frame 3 it sits on the other spot (one miss, one false positive)
    pred = read_submission_text("".join(f"1 10 {f} {CAR} -1 -1\n" for f in (1, 2, 3))
                                + "".join(f"2 10 {f} {CAR} -1 -1\n" for f in (1, 2)) + f"2 10 3 {OTHER} -1 -1\n", "pred.txt")
    data = evaluate_mtmc_rows(gt, pred).as_dict()
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / "metrics.json").write_text(json.dumps(data))
    return data


def test_a_run_folder_gets_its_per_camera_figure(tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    data = _metrics_json(tmp_path / "eval")
    assert [c["camera_id"] for c in data["cameras"]] == ["c001", "c002"]
    png = write_run_figure(tmp_path / "eval")
    assert png == tmp_path / "eval" / "eval.png"
    image = mpimg.imread(png)
    # a drawn figure (880 x 495 px at 110 dpi), not a blank page
    assert image.shape[:2] == (495, 880) and image[..., :3].std() > 0.05
    assert not list((tmp_path / "eval").glob("*.tmp*"))


def test_the_figure_is_redrawn_only_when_the_metrics_are_newer(tmp_path: Path) -> None:
    metrics = tmp_path / "eval" / "metrics.json"
    _metrics_json(tmp_path / "eval")
    png = write_run_figure(tmp_path / "eval")
    # a cached rerun: metrics.json older than the PNG, which is left as it is (a marker here)
    png.write_bytes(b"drawn before")
    newer = metrics.stat().st_mtime_ns + 10**9
    os.utime(png, ns=(newer, newer))
    assert write_run_figure(tmp_path / "eval") == png and png.read_bytes() == b"drawn before"
    # the evaluation is recomputed (metrics.json newer than the PNG): the PNG is drawn again
    os.utime(metrics, ns=(newer + 10**9, newer + 10**9))
    write_run_figure(tmp_path / "eval")
    assert png.read_bytes().startswith(b"\x89PNG")


def test_no_metrics_no_figure(tmp_path: Path) -> None:
    # a run without evaluation (no ground truth for the split)
    assert write_run_figure(tmp_path / "eval") is None
    assert not (tmp_path / "eval").exists()


def test_undefined_ratios_draw_as_zero(tmp_path: Path) -> None:
    # a camera with no ground truth in its share has IDP/IDR undefined (null in the JSON)
    data = {"metrics": {"idf1": 0.5, "idp": None, "idr": float("nan")},
            "cameras": [{"camera_id": "c001", "idf1": None, "idp": None, "idr": None}]}
    assert plot_camera_bars(data, tmp_path / "eval.png").stat().st_size > 1000


def test_a_broken_metrics_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text('{"metrics": {"idf1": 0.5},\n "cameras": [{"camera_id": "c001"}]}')
    with pytest.raises(ValueError, match=r"metrics.json: cameras\[0\]: missing idf1, idp, idr"):
        write_run_figure(tmp_path)
    (tmp_path / "metrics.json").write_text('{"metrics":\n  oops}')
    with pytest.raises(ValueError, match=r"metrics.json:2: not valid JSON"):
        write_run_figure(tmp_path)
    # nothing half-written is left behind
    assert not (tmp_path / "eval.png").exists() and not list(tmp_path.glob("*.tmp*"))
