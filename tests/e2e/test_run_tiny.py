"""``mct run`` with the real stages on the tiny synthetic scenario: both executors give
the same files; a corrupt video fails only its camera; rendering works on the result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from mct.config import load_config
from mct.run import run_folder as rf
from mct.run.runner import run_pipeline
from tests.e2e.conftest import TINY_RUN

RESULT_FILES = ("detections.npz", "embeddings.npy", "tracklets.npz", "tracks.txt", "assignment.csv", "submission.txt")


def _cfg(root: Path, *overrides: str):
    return load_config(None, [f"dataset.root={root}", "dataset.split=validation", *TINY_RUN, *overrides])


def _outputs(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.name in RESULT_FILES and "cache" not in p.parts}


@pytest.fixture(scope="module")
def local_run(tiny_dataset, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("local") / "run"
    summary = run_pipeline(_cfg(tiny_dataset), run_dir, progress=False)
    return run_dir, summary


def test_real_stages_end_to_end(local_run):
    run_dir, s = local_run
    assert s.ok, {c.key: c.error for c in s.cameras}
    assert [c.key for c in s.cameras] == ["S02_c001", "S02_c002", "S02_c003"]
    assert all(c.frames > 0 for c in s.cameras)
    assert s.association["status"] == "computed" and s.association["tracklets"] > 0
    # the tiny scenario has ground truth, so the run is scored
    assert s.evaluation["status"] == "computed"
    assert 0.0 <= s.metrics["idf1"] <= 1.0
    # the eval stage draws the per-camera figure itself (a library caller gets it too, not
    # only the CLI), after the metrics it is drawn from
    png = run_dir / "eval" / "eval.png"
    assert s.evaluation["figure"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_mtime_ns >= (run_dir / "eval" / "metrics.json").stat().st_mtime_ns
    summary = json.loads((run_dir / "summary.json").read_text())
    for cam in summary["cameras"].values():
        assert cam["stages"]["embed"]["fps"] > 0 and cam["stages"]["track"]["frames"] == cam["frames"]
    lines = (run_dir / "submission.txt").read_text().splitlines()
    assert lines and all(len(line.split()) == 9 for line in lines)
    assert not [p for p in run_dir.rglob("*") if rf.TMP_MARK in p.name]


@pytest.mark.ray
def test_ray_executor_gives_identical_files(tiny_dataset, local_run, tmp_path):
    pytest.importorskip("ray")
    run_dir, _ = local_run
    s = run_pipeline(_cfg(tiny_dataset, "run.executor=ray"), tmp_path / "ray", progress=False)
    assert s.ok, {c.key: c.error for c in s.cameras}
    a, b = _outputs(run_dir), _outputs(tmp_path / "ray")
    assert len(a) == 3 * 4 + 3  # 4 files per camera, assignment + 2 submissions
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []


def test_corrupt_video_leaves_the_other_cameras_intact(tiny_dataset, local_run, tmp_path):
    run_dir, _ = local_run
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    video = data / "validation" / "S02" / "c002" / "vdo.avi"
    video.write_bytes(video.read_bytes()[:4000])  # truncated: the header survives, the frames do not
    s = run_pipeline(_cfg(data), tmp_path / "run", progress=False)
    status = {c.key: c.status for c in s.cameras}
    assert status == {"S02_c001": "ok", "S02_c002": "failed", "S02_c003": "ok"}
    assert "c002/vdo.avi" in next(c.error for c in s.cameras if c.key == "S02_c002")
    assert s.status == "failed"
    for cam in ("S02_c001", "S02_c003"):
        for name in ("detections.npz", "embeddings.npy", "tracks.txt"):
            assert (tmp_path / "run" / "cameras" / cam / name).read_bytes() == \
                (run_dir / "cameras" / cam / name).read_bytes(), (cam, name)
    assert not [p for p in (tmp_path / "run").rglob("*") if rf.TMP_MARK in p.name]


def test_render_annotated_video_and_overview(local_run, tmp_path):
    from mct.run.render import id_colour_bgr, render_camera

    run_dir, s = local_run
    result = render_camera(run_dir, "c001", out_dir=tmp_path)
    assert result.video == tmp_path / "S02_c001.mp4" and result.overview == tmp_path / "S02_overview.png"
    cap = cv2.VideoCapture(str(result.video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == result.frames == s.cameras[0].frames
    cap.release()
    png = cv2.imread(str(result.overview))
    assert png is not None and png.shape[0] > 100
    # a stable colour per id, different for neighbouring ids
    assert id_colour_bgr(7) == id_colour_bgr(7) and id_colour_bgr(7) != id_colour_bgr(8)
    with pytest.raises(ValueError, match="no camera c099"):
        render_camera(run_dir, "c099", out_dir=tmp_path)


def test_check_links_script_on_a_run(tiny_dataset, local_run, tmp_path, monkeypatch):
    # scripts/check_links.py --run scores the run's prior and learned links against its
    # tracklets' true ids (it once called diagnose_association.load_run without its config
    # argument and crashed); the prior never rules out a true same-vehicle pair
    import importlib.util
    import json
    import sys

    run_dir, _ = local_run
    path = Path(__file__).resolve().parents[2] / "scripts" / "check_links.py"
    spec = importlib.util.spec_from_file_location("check_links", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "links.json"
    monkeypatch.setattr(sys, "argv", ["check_links.py", "--data", str(tiny_dataset), "--split", "validation",
                                      "--run", str(run_dir), "--json", str(out)])
    mod.main()
    numbers = json.loads(out.read_text())
    assert set(numbers) == {"prior", "learned"}
    assert numbers["prior"]["pairs"]["same_ruled_out"] == 0


def test_diagnose_association_script(local_run, capsys, tmp_path):
    # the oracle association (every tracklet given its true id) scores at least what the
    # run's own association scored on the same tracklets; a sweep re-scores the run
    import importlib.util

    run_dir, s = local_run
    path = Path(__file__).resolve().parents[2] / "scripts" / "diagnose_association.py"
    spec = importlib.util.spec_from_file_location("diagnose_association", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import sys

    argv = sys.argv
    try:
        sys.argv = ["diagnose_association.py", str(run_dir), "--truth"]
        assert mod.main() == 0
        out = capsys.readouterr().out
        oracle = float(out.split("oracle association on these tracklets: IDF1 ")[1].split()[0])
        assert oracle >= s.metrics["idf1"] - 1e-9
        sys.argv = ["diagnose_association.py", str(run_dir), "--sweep", f"min_log_lr={load_config(run_dir / 'config.yaml').association.min_log_lr}"]
        assert mod.main() == 0
        line = capsys.readouterr().out.strip().splitlines()[-1]
        # re-associating with the run's own settings reproduces the run's IDF1
        assert float(line.split("IDF1 ")[1].split()[0]) == pytest.approx(s.metrics["idf1"], abs=1e-4)
        # --set topology=FILE is the topology the sweep uses, also when the run has one of
        # its own (it once re-read the run's): a copy of the run whose config names a topology
        import shutil

        import yaml

        copy = tmp_path / "run_with_topology"
        shutil.copytree(run_dir, copy)
        (copy / "topology.yaml").write_text("scenarios:\n  '*':\n    unlisted: allow\n")
        cfg = yaml.safe_load((copy / "config.yaml").read_text())
        cfg["association"]["topology"] = str(copy / "topology.yaml")
        (copy / "config.yaml").write_text(yaml.safe_dump(cfg))
        sys.argv = ["diagnose_association.py", str(copy), "--sweep", "min_log_lr=0", "--set", f"topology={copy / 'no_such_topology.yaml'}"]
        with pytest.raises(FileNotFoundError, match="no_such_topology.yaml"):
            mod.main()
    finally:
        sys.argv = argv


def test_detection_recall_script(local_run, capsys):
    # recall of the run's detections against the split's evaluation ground truth: a stricter
    # IoU finds no more boxes, an impossible one finds none, and the printed total is the mean
    import importlib.util
    import sys

    run_dir, _ = local_run
    path = Path(__file__).resolve().parents[2] / "scripts" / "detection_recall.py"
    spec = importlib.util.spec_from_file_location("detection_recall", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    loose, strict, never = (mod.box_recall(run_dir, iou) for iou in (0.5, 0.9, 1.01))
    assert len(loose["found"]) > 0 and loose["found"].any()
    assert not (strict["found"] & ~loose["found"]).any() and not never["found"].any()
    argv = sys.argv
    try:
        sys.argv = ["detection_recall.py", str(run_dir)]
        assert mod.main() == 0
    finally:
        sys.argv = argv
    out = capsys.readouterr().out
    assert f"recall {loose['found'].mean():.3f} at IoU >= 0.5" in out and "cut by the edge" in out
