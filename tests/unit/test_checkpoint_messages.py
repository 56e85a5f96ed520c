"""Weights files a new user gets wrong: a fresh machine, no network, a damaged or foreign file.

Every message names the file, says what really failed and which config key to change; none
passes on torch's advice to load with ``weights_only=False``. No network: the download
function is replaced.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
import torch

from mct.checkpoint import load_checkpoint_file
from mct.detect import maskrcnn
from mct.detect.config import REPO_ROOT
from mct.reid.config import EmbedderConfig
from mct.reid.embedder import load_reid_model
from mct.reid.model import read_checkpoint as read_reid_checkpoint


def _like_torch_hub(write: bool = True):
    """A stand-in for ``torch.hub.download_url_to_file``: it writes ``<dst>.<id>.partial``
    in the destination's folder, then renames it, as torch does."""

    def download(url: str, dst: str, progress: bool = True) -> None:
        partial = dst + ".1a2b.partial"
        with open(partial, "wb") as f:  # FileNotFoundError when the folder is missing
            if write:
                torch.save({"backbone.weight": torch.ones(2)}, f)
        os.replace(partial, dst)

    return download


# ---------------------------------------------------------------------------- COCO download
def test_coco_download_on_a_fresh_machine_creates_torchs_checkpoint_folder(tmp_path, monkeypatch):
    # a fresh machine: TORCH_HOME has never been used, its checkpoints/ folder does not exist
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_home" / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _like_torch_hub())
    state = maskrcnn._load_coco("resnet50_fpn", allow_download=True)
    assert torch.equal(state["backbone.weight"], torch.ones(2))
    assert maskrcnn.coco_weights_file("resnet50_fpn").is_file()


def test_coco_download_without_network_says_the_download_failed_and_why(tmp_path, monkeypatch):
    def offline(url, dst, progress=True):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(FileNotFoundError) as err:
        maskrcnn._load_coco("resnet50_fpn", allow_download=True)
    msg = str(err.value)
    assert msg.startswith("detector.weights=coco: ")
    assert "the download failed (Temporary failure in name resolution)" in msg
    assert str(tmp_path / "hub" / "checkpoints") in msg and ".partial" not in msg


def test_coco_download_that_cannot_write_says_so(tmp_path, monkeypatch):
    def no_permission(url, dst, progress=True):
        raise PermissionError(13, "Permission denied", dst + ".1a2b.partial")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_permission)
    with pytest.raises(FileNotFoundError, match=r"the file cannot be written there \(Permission denied\)"):
        maskrcnn._load_coco("resnet50_fpn", allow_download=True)


def test_coco_checkpoint_folder_that_cannot_be_created_says_so(tmp_path, monkeypatch):
    # TORCH_HOME points below a regular file
    (tmp_path / "a_file").write_text("")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "a_file" / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _like_torch_hub())
    with pytest.raises(FileNotFoundError, match=r"that folder cannot be created \(.*TORCH_HOME"):
        maskrcnn._load_coco("resnet50_fpn", allow_download=True)


# ---------------------------------------------------------------------------- damaged files
def _damaged_files(folder: Path) -> dict[str, Path]:
    good = folder / "good.pt"
    torch.save({"format": "x", "state_dict": {"w": torch.zeros(64)}}, good)
    data = good.read_bytes()
    files = {"truncated": folder / "truncated.pt", "empty": folder / "empty.pt", "foreign": folder / "foreign.pt"}
    files["truncated"].write_bytes(data[: len(data) // 2])  # an interrupted copy
    files["empty"].write_bytes(b"")
    torch.save({"format": "x", "optimizer": torch.optim.SGD}, files["foreign"])  # a Python class inside
    return files


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("truncated", "it is damaged or not a torch checkpoint"),
        ("empty", "it is empty or cut short"),
        ("foreign", "it holds a Python object (torch.optim.sgd.SGD)"),
    ],
)
def test_a_damaged_checkpoint_names_the_file_the_reason_and_the_key(tmp_path, kind, reason):
    path = _damaged_files(tmp_path)[kind]
    for load, key in ((lambda p: maskrcnn.read_checkpoint(p), "detector.weights"),
                      (lambda p: read_reid_checkpoint(p), "reid.weights")):
        with pytest.raises(ValueError) as err:
            load(path)
        msg = str(err.value)
        assert msg.startswith(f"{path}: cannot load this checkpoint: {reason}"), msg
        assert f"set {key} to another one" in msg
        assert "weights_only" not in msg and "Re-running" not in msg
        # torch's own message is not chained either (it would show in a traceback)
        assert err.value.__cause__ is None and err.value.__context__ is None


def test_the_shipped_checkpoints_load_as_weights_only():
    # the re-ID loader used to unpickle arbitrary objects; the shipped files need tensors only
    for name in ("models/reid_demo.pt", "models/detector_demo.pt"):
        assert isinstance(load_checkpoint_file(REPO_ROOT / name, "key"), dict)


# ---------------------------------------------------------------------------- missing files
def test_a_missing_reid_checkpoint_names_the_config_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        load_reid_model(EmbedderConfig(weights="models/reid_mine.pt"))
    msg = str(err.value)
    assert msg.startswith(f"reid.weights: re-ID checkpoint models/reid_mine.pt (relative to {tmp_path}) not found")
    assert "set reid.weights to" in msg


def test_a_missing_detector_checkpoint_lists_each_folder_once(monkeypatch):
    # run from the repository itself: the working directory and the repository are one folder
    monkeypatch.chdir(REPO_ROOT)
    with pytest.raises(FileNotFoundError) as err:
        maskrcnn.resolve_weights_path("models/nope.pt")
    assert str(err.value) == f"detector.weights: checkpoint 'models/nope.pt' not found (looked in {REPO_ROOT})"


def test_the_detector_training_config_names_its_own_key(tmp_path):
    # configs/detector/*.yaml choose the starting weights with init_weights, not detector.weights
    from mct.detect.config import DetectorTrainConfig
    from mct.detect.train import _initial_model

    cfg = DetectorTrainConfig(root=str(tmp_path), model="small", init_weights=str(tmp_path / "start.pt"))
    with pytest.raises(FileNotFoundError, match=r"^init_weights: checkpoint '.*start.pt' not found"):
        _initial_model(cfg)
    (tmp_path / "start.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"start.pt: cannot load this checkpoint: it is empty or cut short.*set init_weights"):
        _initial_model(cfg)


def test_the_reid_training_config_names_its_own_key(tmp_path):
    # configs/reid/*.yaml choose the starting checkpoint with model.weights, not reid.weights
    from types import SimpleNamespace

    from mct.reid.config import ReidTrainConfig
    from mct.reid.train import ReidTrainer

    cfg = ReidTrainConfig.model_validate({"model": {"arch": "compact", "weights": str(tmp_path / "start.pt")}})
    with pytest.raises(FileNotFoundError, match=r"^model.weights: re-ID checkpoint .*start.pt not found; set model.weights"):
        ReidTrainer._init_model(SimpleNamespace(cfg=cfg), 5)
