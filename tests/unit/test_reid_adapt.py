"""`mct adapt`: pair mining from a first run, the masked triplet loss, and refusing to adapt
to a scenario with too few tracklets (the model file left as it was)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mct.config import load_config
from mct.reid.adapt import AdaptError, TrackletRef, adapt_reid, masked_batch_hard_triplet_loss, mine_pairs
from mct.reid.config import EmbedderConfig, ReidAdaptConfig
from mct.reid.model import ReidNet, save_checkpoint
from mct.track.tracklets import save_tracklets
from mct.types import Tracklet


def _unit(*v: float) -> np.ndarray:
    a = np.asarray(v, np.float32)
    return a / np.linalg.norm(a)


def _story() -> list[TrackletRef]:
    return [
        # camera c001: tracklets 1 and 2 are both in view at frames 10-20: two vehicles
        TrackletRef("S01", "c001", 1, 1, 20, global_id=7, feature=_unit(1, 0, 0)),
        TrackletRef("S01", "c001", 2, 10, 30, global_id=8, feature=_unit(0, 1, 0)),
        # tracklet 3 starts after both ended: it may be either of them again, not a negative
        TrackletRef("S01", "c001", 3, 40, 60, global_id=9, feature=_unit(0, 0, 1)),
        # camera c002 at the same time: another camera is never a negative
        TrackletRef("S01", "c002", 1, 5, 25, global_id=7, feature=_unit(0.9, 0.1, 0)),
        # global id 8 spans c001/2 and c002/5, but their features disagree (cosine 0): not confident
        TrackletRef("S01", "c002", 5, 30, 50, global_id=8, feature=_unit(0, 0, 1)),
    ]


def test_mining_positives_negatives_and_confident_cross_camera_pairs():
    refs = _story()
    mined = mine_pairs(refs, min_cross_camera_cosine=0.5)
    lab = mined.labels
    # global id 7: c001/1 and c002/1 are alike (cosine 0.99): one pseudo-identity
    assert lab[0] == lab[3]
    # global id 8: cosine 0 < 0.5, so c001/2 and c002/5 stay apart
    assert lab[1] != lab[4]
    assert mined.cross_camera_merges == (7,)
    assert mined.num_identities == 4
    neg = mined.negatives
    # frames 10-20 of c001: tracklets 1 and 2 are two vehicles, both ways
    assert neg[lab[0], lab[1]] and neg[lab[1], lab[0]]
    # c001/3 overlaps nobody in its camera; c002/5 overlaps nobody in c002 (c002/1 ends at 25)
    assert not neg[lab[2]].any() and not neg[lab[4]].any()
    # the merged identity (c001/1 + c002/1) is negative only to c001/2
    assert np.flatnonzero(neg[lab[0]]).tolist() == [lab[1]]
    # without cross-camera positives every tracklet is its own identity
    assert mine_pairs(refs, use_cross_camera=False).num_identities == 5


def test_a_group_with_two_concurrent_tracklets_of_one_camera_is_not_merged():
    refs = [
        # the first run gave c001/1 and c001/2 (alive together) one global id with c002/1
        TrackletRef("S01", "c001", 1, 1, 20, global_id=3, feature=_unit(1, 0)),
        TrackletRef("S01", "c001", 2, 5, 25, global_id=3, feature=_unit(1, 0.1)),
        TrackletRef("S01", "c002", 1, 1, 20, global_id=3, feature=_unit(1, 0.05)),
    ]
    mined = mine_pairs(refs, min_cross_camera_cosine=0.5)
    # one camera cannot see one vehicle twice at once: the group is wrong, nothing merged
    assert mined.num_identities == 3 and mined.cross_camera_merges == ()
    assert mined.negatives[mined.labels[0], mined.labels[1]]


def test_overlap_needs_min_overlap_frames():
    refs = [TrackletRef("S01", "c001", 1, 1, 10), TrackletRef("S01", "c001", 2, 10, 20)]
    # frame 10 is shared: one frame of overlap
    assert mine_pairs(refs, min_overlap_frames=1).negatives.any()
    assert not mine_pairs(refs, min_overlap_frames=2).negatives.any()


def test_empty_run_mines_nothing():
    mined = mine_pairs([])
    assert mined.num_identities == 0 and mined.labels.shape == (0,) and mined.negatives.shape == (0, 0)


def test_masked_triplet_uses_only_known_negatives():
    # crops 0, 1: identity 0; crops 2, 3: identity 1, placed right on top of identity 0
    f = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.05], [0.1, 0.05]])
    labels = torch.tensor([0, 0, 1, 1])
    unknown = torch.zeros(4, 4, dtype=torch.bool)
    # nothing is known to differ: no anchor has a negative, the loss is 0
    assert masked_batch_hard_triplet_loss(f, labels, unknown, 0.3).item() == 0.0
    known = labels[:, None] != labels[None, :]
    # known to differ and as close as the positives: the margin is violated
    assert masked_batch_hard_triplet_loss(f, labels, known, 0.3).item() > 0.2


# ---------------------------------------------------------------------------- refusing


def _tiny_model(path: Path) -> Path:
    cfg = EmbedderConfig(arch="compact", weights="none", crop_height=32, crop_width=32, compact_widths=(8, 8, 16, 16))
    torch.manual_seed(0)
    return save_checkpoint(path, ReidNet(cfg), cfg, fp16=True, with_classifier=False)


def _run_folder(root: Path, model: Path, n_tracklets: int) -> Path:
    run = root / "run"
    (run / "cameras" / "S01_c001").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"dataset": {"root": str(root / "data"), "split": "validation"},
                                                     "reid": {"weights": str(model)}}))
    tracklets = [
        Tracklet("S01", "c001", k + 1, np.arange(1, 31, dtype=np.int64), np.tile(np.float32([10, 10, 60, 50]), (30, 1)),
                 np.full(30, 0.9, np.float32), _unit(1, k))
        for k in range(n_tracklets)
    ]
    save_tracklets(run / "cameras" / "S01_c001" / "tracklets.npz", tracklets)
    return run


def test_adapt_refuses_too_few_tracklets_and_leaves_the_model_unchanged(tmp_path):
    model = _tiny_model(tmp_path / "reid.pt")
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    # three tracklets of 30 boxes each: below min_tracklets = 20
    run = _run_folder(tmp_path, model, 3)
    cfg = ReidAdaptConfig(run_dir=str(run), out_dir=str(tmp_path / "adapt"), min_tracklets=20)
    with pytest.raises(AdaptError, match=r"3 usable tracklets.*too few to adapt to.*left as it is"):
        adapt_reid(cfg, progress=False)
    assert hashlib.sha256(model.read_bytes()).hexdigest() == before
    # nothing written: no adapted model, not even the output folder
    assert not (tmp_path / "adapt").exists()


def test_adapt_cli_says_why_it_refuses(tmp_path):
    from click.testing import CliRunner

    from mct.cli import main

    model = _tiny_model(tmp_path / "reid.pt")
    run = _run_folder(tmp_path, model, 2)
    cfg_path = tmp_path / "adapt.yaml"
    cfg_path.write_text(f"run_dir: {run}\nout_dir: {tmp_path / 'adapt'}\n")
    result = CliRunner().invoke(main, ["adapt", str(cfg_path)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())  # the console wraps long lines
    assert "2 usable tracklets" in text and "left as it is" in text


def test_adapt_config_needs_a_run(tmp_path):
    bad = tmp_path / "adapt.yaml"
    bad.write_text("steps: 10\n")
    with pytest.raises(Exception, match="run_dir"):
        load_config(bad, model=ReidAdaptConfig)
