"""Re-ID training: the P x K sampler, the triplet loss, a few steps, checkpoints and resume."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from mct.reid.config import EmbedderConfig, ReidTrainConfig
from mct.reid.dataset import CropSet
from mct.reid.embedder import Embedder
from mct.reid.train import PKSampler, ReidTrainer, augment, batch_hard_triplet_loss

TINY_MODEL = EmbedderConfig(arch="compact", weights="none", crop_height=32, crop_width=32, compact_widths=(8, 16, 16, 32))


def tiny_crops(num_ids: int, cams: int = 2, per_cam: int = 3, seed: int = 0, id_offset: int = 0) -> CropSet:
    """Each identity = a two-colour 32 x 32 'vehicle' (top / bottom colour) plus noise."""
    rng = np.random.default_rng(seed)
    images, ids, cam_ids, frames, tracks = [], [], [], [], []
    for i in range(num_ids):
        top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        for c in range(cams):
            for k in range(per_cam):
                im = np.empty((32, 32, 3), np.float64)
                im[:16], im[16:] = top, bottom
                images.append(np.clip(im + rng.normal(0, 15, im.shape), 0, 255).astype(np.uint8))
                ids.append(i + id_offset)
                cam_ids.append(f"S01/c00{c + 1}")
                frames.append(k + 1)
                tracks.append(i * cams + c)
    return CropSet(np.stack(images), np.array(ids), np.array(cam_ids), np.array(frames), np.array(tracks))


@pytest.fixture(autouse=True)
def one_thread():
    """The test machines are small and shared: torch's thread pool only slows tiny nets down."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cfg(tmp_path, **kw) -> ReidTrainConfig:
    base = dict(
        model=TINY_MODEL, num_identities=4, num_instances=2, epochs=2, batches_per_epoch=3,
        out_dir=str(tmp_path / "out"), pad_pixels=4, num_threads=1, lr=1e-3,
    )
    base.update(kw)
    return ReidTrainConfig(**base)


def test_sampler_yields_p_distinct_identities_times_k():
    # 5 identities; identity 4 has a single crop -> sampled with replacement
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4])
    sampler = PKSampler(labels, num_identities=3, num_instances=4, seed=1)
    seen = set()
    for batch in sampler.epoch(6):
        assert batch.shape == (12,)
        per = labels[batch].reshape(3, 4)
        assert (per == per[:, :1]).all()  # K consecutive crops of one identity
        assert len(set(per[:, 0])) == 3  # P distinct identities
        seen.update(per[:, 0].tolist())
    assert seen == {0, 1, 2, 3, 4}  # 6 batches x 3 cycle through all identities
    with pytest.raises(ValueError, match="num_identities \\(P\\) = 6 but the training crops hold only 5"):
        PKSampler(labels, 6, 2)


def test_batch_hard_triplet_by_hand():
    # 1-D features: identity 0 at 0 and 1, identity 1 at 3 and 5; margin 1
    # anchor 0: hardest pos 1, hardest neg 3 -> max(0, 1 - 3 + 1) = 0
    # anchor 1: pos 1, neg 2 -> 0 ; anchor 3: pos 2, neg 2 -> 1 ; anchor 5: pos 2, neg 4 -> 0
    feats = torch.tensor([[0.0], [1.0], [3.0], [5.0]])
    loss = batch_hard_triplet_loss(feats, torch.tensor([0, 0, 1, 1]), margin=1.0)
    assert loss.item() == pytest.approx(0.25, abs=1e-5)
    # no negative in the batch: nothing to learn
    assert batch_hard_triplet_loss(feats, torch.zeros(4, dtype=torch.long), 1.0).item() == 0.0


def test_augment_shapes_and_no_op_when_disabled(tmp_path):
    crops = torch.from_numpy(tiny_crops(2).images[:4])
    gen = torch.Generator().manual_seed(0)
    out = augment(crops, _cfg(tmp_path), gen)
    assert out.shape == (4, 3, 32, 32) and out.dtype == torch.float32
    plain = augment(crops, _cfg(tmp_path, flip_prob=0.0, pad_pixels=0, erasing_prob=0.0), gen)
    flipped = augment(crops, _cfg(tmp_path, flip_prob=1.0, pad_pixels=0, erasing_prob=0.0), gen)
    torch.testing.assert_close(flipped, plain.flip(3))
    erased = augment(crops, _cfg(tmp_path, flip_prob=0.0, pad_pixels=0, erasing_prob=1.0), gen)
    assert ((erased == 0).all(1).flatten(1).sum(1) > 0).all()  # every crop has an erased patch


def test_truncation_stretches_one_side_of_the_crop_back_to_full_size():
    from mct.reid.train import _truncate

    # value = x + 100 y: a band along one side, stretched back, shrinks exactly one of the
    # two spans (x or y) and keeps the other; and keeps at least min_keep of it
    h, w = 10, 20
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    image = (xs + 100 * ys).expand(1, 3, h, w)
    x = image.repeat(16, 1, 1, 1)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(_truncate(x, 0.0, 0.4, gen), x)
    out = _truncate(x, 1.0, 0.4, gen)
    assert out.shape == x.shape
    sides = set()
    for crop in out[:, 0]:
        span_x = float(crop[0, -1] - crop[0, 0])
        span_y = float(crop[-1, 0] - crop[0, 0]) / 100
        full_x, full_y = abs(span_x - (w - 1)) < 1e-3, abs(span_y - (h - 1)) < 1e-3
        assert full_x != full_y, (span_x, span_y)  # exactly one axis was cut
        kept = span_x / (w - 1) if not full_x else span_y / (h - 1)
        assert 0.4 - 0.15 <= kept < 1.0  # (a band of k pixels spans k - 1 steps)
        start = float(crop[0, 0])  # 0 when the band starts at the left / top edge
        sides.add(("x" if not full_x else "y", start == 0.0))
    assert len(sides) == 4  # left, right, top and bottom bands all occur
    # with min_keep = 1 nothing is cut
    assert torch.allclose(_truncate(x, 1.0, 1.0, gen), x, atol=1e-4)


def test_truncation_is_wired_into_augment(tmp_path):
    crops = torch.from_numpy(tiny_crops(2).images[:4])
    off = dict(flip_prob=0.0, pad_pixels=0, erasing_prob=0.0)
    plain = augment(crops, _cfg(tmp_path, **off), torch.Generator().manual_seed(0))
    cut = augment(crops, _cfg(tmp_path, truncate_prob=1.0, truncate_min_keep=0.5, **off), torch.Generator().manual_seed(0))
    assert cut.shape == plain.shape
    assert not torch.allclose(cut, plain)


def test_a_few_steps_reduce_the_loss(tmp_path):
    torch.manual_seed(0)
    cfg = _cfg(tmp_path, flip_prob=0.0, pad_pixels=0, erasing_prob=0.0)
    trainer = ReidTrainer(cfg, train_crops=tiny_crops(6))
    index = next(trainer.sampler.epoch(1))
    losses = [trainer.train_step(index, lr=3e-3)["loss"] for _ in range(20)]
    # each value is the loss before that step's update; with seed 0 it falls from 2.10 to 0.78
    assert losses[-1] < 0.5 * losses[0], losses


def test_training_writes_checkpoints_log_and_resumes(tmp_path):
    torch.manual_seed(0)
    train, val = tiny_crops(6), tiny_crops(4, seed=5, id_offset=100)
    summary = ReidTrainer(_cfg(tmp_path, epochs=2, eval_every_epochs=1), train, val).run(progress=False)
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} >= {"last.pt", "model.pt", "loss_log.csv", "metrics.json"}
    assert summary["epochs"] == 2 and summary["steps"] == 6 and 0 < summary["val"]["mAP"] <= 1
    assert [h["epoch"] for h in summary["history"]] == [1, 2] and "val" in summary["history"][0]
    # resume: a second run asked for 3 epochs trains only the third
    summary = ReidTrainer(_cfg(tmp_path, epochs=3), train, val).run(progress=False)
    assert summary["epochs"] == 3 and summary["steps"] == 9
    with (out / "loss_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]  # the last step of each epoch is logged
    assert [int(r["step"]) for r in rows] == [3, 6, 9]
    # the exported model is an embedder weights file with the training crop size
    emb = Embedder(EmbedderConfig(weights=str(out / "model.pt"), device="cpu"))
    assert emb.crop_size == (32, 32) and emb.dim == 32
    assert (out / "model.pt").stat().st_size < (out / "last.pt").stat().st_size


def test_resume_refuses_other_identities(tmp_path):
    ReidTrainer(_cfg(tmp_path, epochs=1), tiny_crops(6)).run(progress=False)
    with pytest.raises(ValueError, match="trained on other identities"):
        ReidTrainer(_cfg(tmp_path, epochs=2), tiny_crops(6, id_offset=50)).run(progress=False)


def test_crop_size_must_match_the_model(tmp_path):
    with pytest.raises(ValueError, match="training crops are \\(32, 32\\)"):
        ReidTrainer(_cfg(tmp_path, model=TINY_MODEL.model_copy(update={"crop_height": 64})), tiny_crops(6))


def tiny_crops_at(size: int, num_ids: int) -> CropSet:
    base = tiny_crops(num_ids)
    import cv2

    images = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR) for im in base.images])
    return CropSet(images, base.ids, base.cams, base.frames, base.tracks)


def test_fine_tune_a_checkpoint_at_a_larger_crop_size(tmp_path):
    # stage 1 at 32 x 32, then fine-tuned from its model.pt at 48 x 48 on other identities
    ReidTrainer(_cfg(tmp_path, epochs=1), tiny_crops(6)).run(progress=False)
    stage1 = tmp_path / "out" / "model.pt"
    model48 = TINY_MODEL.model_copy(update={"weights": str(stage1), "crop_height": 48, "crop_width": 48})
    trainer = ReidTrainer(_cfg(tmp_path, epochs=1, model=model48, out_dir=str(tmp_path / "ft")), tiny_crops_at(48, 5))
    assert (trainer.model_cfg.crop_height, trainer.model_cfg.crop_width) == (48, 48)
    # the backbone starts from stage 1 (same weights), the classifier is new (5 identities)
    first = next(k for k in trainer.model.state_dict() if k.startswith("backbone."))
    torch.testing.assert_close(trainer.model.state_dict()[first], Embedder(EmbedderConfig(weights=str(stage1))).model.state_dict()[first])
    assert trainer.model.classifier.out_features == 5
    trainer.run(progress=False)
    emb = Embedder(EmbedderConfig(weights=str(tmp_path / "ft" / "model.pt"), device="cpu"))
    assert emb.crop_size == (48, 48)
