"""The re-ID network and embedder: shapes, normalisation, crops, chunking, weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mct.reid.config import EmbedderConfig
from mct.reid.crops import clip_xyxy, crop_boxes, frame_to_tensor
from mct.reid.embedder import Embedder
from mct.reid.model import build_model, imagenet_weights_path, load_checkpoint, save_checkpoint

# a tiny network so each test runs in milliseconds
TINY = EmbedderConfig(arch="compact", weights="none", crop_height=32, crop_width=32, compact_widths=(4, 8, 8, 16), device="cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """The test machines are small and shared: torch's thread pool only slows tiny nets down."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (120, 160, 3), dtype=np.uint8)


def test_features_have_shape_dtype_and_unit_norm():
    emb = Embedder(TINY)
    boxes = np.array([[10, 10, 60, 50], [0, 0, 160, 120], [150, 100, 400, 300]], np.float32)  # last one leaves the frame
    feats = emb.embed(_frame(), boxes)
    assert feats.shape == (3, emb.dim) == (3, 16) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)


def test_zero_boxes_give_zero_rows():
    emb = Embedder(TINY)
    assert emb.embed(_frame(), np.zeros((0, 4), np.float32)).shape == (0, 16)
    out = emb.embed_many([_frame(), _frame(1)], [np.zeros((0, 4)), np.array([[1, 1, 30, 30]])])
    assert [o.shape for o in out] == [(0, 16), (1, 16)]
    assert emb.embed_many([], []) == []


def test_chunking_and_batching_across_frames_do_not_change_features():
    frames = [_frame(0), _frame(1)]
    boxes = [np.array([[0, 0, 40, 40], [20, 30, 90, 100], [5, 5, 150, 110]], np.float32), np.array([[50, 10, 120, 70], [0, 60, 80, 119]], np.float32)]
    torch.manual_seed(0)
    emb = Embedder(TINY)
    big = emb.embed_many(frames, boxes)
    one = [emb.embed(f, b) for f, b in zip(frames, boxes)]
    torch.manual_seed(0)  # the same random weights
    small = Embedder(TINY.model_copy(update={"batch_size": 2})).embed_many(frames, boxes)  # 5 boxes in chunks of 2
    for a, b, c in zip(big, small, one):
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(a, c, atol=1e-5)


def test_flip_averaging_is_flip_invariant():
    emb = Embedder(TINY.model_copy(update={"flip": True}))
    frame = _frame()
    crop = frame[10:74, 20:84]
    mirrored = frame.copy()
    mirrored[10:74, 20:84] = crop[:, ::-1]
    a = emb.embed(frame, np.array([[20, 10, 84, 74]]))
    b = emb.embed(mirrored, np.array([[20, 10, 84, 74]]))
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_crop_cuts_the_right_pixels_and_clips_to_the_frame():
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, :100] = (0, 0, 255)  # left half red (BGR)
    frame[:, 100:] = (255, 0, 0)  # right half blue
    crops = crop_boxes(frame_to_tensor(frame), np.array([[0, 0, 100, 100], [100, 0, 300, 100]]), 16, 8)
    assert crops.shape == (2, 3, 16, 8)
    # bilinear samples next to the box edge see a little of the neighbour pixel: allow 1 level
    torch.testing.assert_close(crops[0].mean((1, 2)), torch.tensor([0.0, 0.0, 255.0]), atol=1.0, rtol=0)
    # the second box reaches x = 300 but is clipped at 200: all blue, no black border
    torch.testing.assert_close(crops[1].mean((1, 2)), torch.tensor([255.0, 0.0, 0.0]), atol=1.0, rtol=0)
    torch.testing.assert_close(crops[1, 0].min(), torch.tensor(255.0 - 1.0), atol=1.0, rtol=0)
    # a box entirely outside becomes a 1-pixel box on the border, never an empty one
    np.testing.assert_array_equal(clip_xyxy(np.array([[300, 300, 400, 400]]), 200, 100), [[199, 99, 200, 100]])


def test_bad_inputs_name_the_problem():
    emb = Embedder(TINY)
    with pytest.raises(ValueError, match=r"xyxy\[0\]: expected shape \(N, 4\)"):
        emb.embed(_frame(), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="uint8 BGR"):
        emb.embed(np.zeros((10, 10), np.uint8), np.array([[0, 0, 5, 5]]))
    with pytest.raises(ValueError, match="2 frames but 1 box arrays"):
        emb.embed_many([_frame(), _frame()], [np.zeros((0, 4))])


def test_missing_imagenet_file_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    path, url = imagenet_weights_path("resnet18")
    assert path == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(FileNotFoundError) as err:
        Embedder(EmbedderConfig(arch="resnet18", weights="imagenet"))
    msg = str(err.value)
    assert "resnet18-f37072fd.pth not found in " + str(tmp_path / "hub" / "checkpoints") in msg and url in msg


def test_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pt not found"):
        Embedder(TINY.model_copy(update={"weights": str(tmp_path / "nothere.pt")}))
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an mct re-ID checkpoint"):
        Embedder(TINY.model_copy(update={"weights": str(tmp_path / "other.pt")}))


def test_checkpoint_records_arch_and_crop_size(tmp_path):
    model = build_model(TINY, num_classes=5).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, TINY, fp16=True, with_classifier=False)
    # the embedder's own config says resnet50 at 256: the checkpoint's arch and crop size win
    emb = Embedder(EmbedderConfig(weights=str(path), device="cpu"))
    assert (emb.cfg.arch, emb.crop_size, emb.dim) == ("compact", (32, 32), 16)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        loaded, _ = load_checkpoint(path)
        torch.testing.assert_close(loaded(x), expected, atol=2e-2, rtol=2e-2)  # fp16 storage


@pytest.mark.parametrize(("arch", "dim"), [("resnet18", 512), ("resnet50", 2048)])
def test_torchvision_backbones_last_stride_and_gem(arch, dim):
    cfg = EmbedderConfig(arch=arch, weights="none", pooling="gem", last_stride=1)
    model = build_model(cfg).eval()
    with torch.no_grad():
        fmap = model.backbone(torch.zeros(1, 3, 64, 64))
        out = model(torch.zeros(2, 3, 64, 64))
    assert fmap.shape[-2:] == (4, 4)  # stride 16 with last stride 1 (32 gives 2 x 2)
    assert out.shape == (2, dim) and model.dim == dim
