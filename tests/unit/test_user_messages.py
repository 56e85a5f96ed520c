"""Messages a new user reads: each says what it means, names the file or key, and prints as is."""

from __future__ import annotations

import logging
from pathlib import Path

from mct.data.aicity import load_dataset
from tests.helpers import write_aicity_tree


def test_dataset_log_counts_cameras_per_fps_source(tmp_path: Path, caplog) -> None:
    # two cameras whose fps come from their video headers: the count is of cameras, not an fps
    root = write_aicity_tree(tmp_path)
    with caplog.at_level(logging.INFO, logger="mct.data.aicity"):
        load_dataset(root, "train")
    assert "2 cameras in 1 scenarios (fps: video header for 2 cameras)" in caplog.text, caplog.text
