"""A failed camera is reported once in the log, whichever way it failed."""

from __future__ import annotations

import logging

from mct.run.pipeline import run_pipeline
from tests.e2e.fakes import FakeStages, fake_config, make_layout


def test_each_failed_camera_is_logged_once(tmp_path, caplog):
    # c002's video is garbage (its job fails and says so); c003's worker process dies (os._exit)
    data = make_layout(tmp_path / "data", cameras=("c001", "c002", "c003"), num_frames=5)
    (data / "validation" / "S01" / "c002" / "vdo.avi").write_bytes(b"\0garbage" * 100)
    with caplog.at_level(logging.INFO):
        s = run_pipeline(fake_config(data), tmp_path / "run", stages=FakeStages(crash_camera="c003"), progress=False)
    assert [c.status for c in s.cameras] == ["ok", "failed", "failed"]
    for key in ("S01_c002", "S01_c003"):
        reports = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and key in r.getMessage()]
        assert len(reports) == 1, reports
