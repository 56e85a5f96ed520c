"""Soft-NMS against a plain per-box loop written from the paper, and against torchvision NMS."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mct.detect.config import SoftNMSConfig
from mct.detect.soft_nms import soft_nms, soft_nms_from_config


def reference_soft_nms(boxes, scores, method, nt=0.3, sigma=0.5, threshold=0.001, labels=None, plus_one=False):
    """The algorithm as the paper states it, one box at a time (Python floats)."""
    e = 1.0 if plus_one else 0.0
    s = [float(x) for x in scores]
    remaining = list(range(len(s)))
    keep, kept_scores = [], []
    while remaining:
        best = remaining[0]
        for k in remaining:  # first of equal maxima wins
            if s[k] > s[best]:
                best = k
        keep.append(best)
        kept_scores.append(s[best])
        remaining.remove(best)
        bx = boxes[best]
        survivors = []
        for k in remaining:
            b = boxes[k]
            if labels is not None and labels[k] != labels[best]:
                survivors.append(k)
                continue
            iw = min(bx[2], b[2]) - max(bx[0], b[0]) + e
            ih = min(bx[3], b[3]) - max(bx[1], b[1]) + e
            if iw > 0 and ih > 0:
                inter = iw * ih
                union = (bx[2] - bx[0] + e) * (bx[3] - bx[1] + e) + (b[2] - b[0] + e) * (b[3] - b[1] + e) - inter
                o = inter / union if union > 0 else 0.0
                if method == "linear":
                    w = 1.0 - o if o > nt else 1.0
                elif method == "gaussian":
                    w = math.exp(-(o * o) / sigma)
                else:
                    w = 0.0 if o > nt else 1.0
                s[k] *= w
                if s[k] < threshold or (method == "hard" and w == 0.0):
                    continue  # dropped
            survivors.append(k)
        remaining = survivors
    return keep, kept_scores


def random_boxes(rng: np.random.Generator, n: int, extent: float = 400.0, max_size: float = 80.0):
    xy = rng.uniform(0, extent, (n, 2))
    wh = rng.uniform(0, max_size, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1), rng.uniform(0, 1, n)


def check_against_reference(boxes, scores, method, labels=None, plus_one=False, **kw):
    keep_ref, scores_ref = reference_soft_nms(boxes.tolist(), scores, method, labels=None if labels is None else labels.tolist(), plus_one=plus_one, **kw)
    keep, kept = soft_nms(
        torch.from_numpy(boxes),
        torch.from_numpy(scores),
        None if labels is None else torch.from_numpy(labels),
        method=method,
        plus_one=plus_one,
        **{{"nt": "iou_threshold", "sigma": "sigma", "threshold": "min_score"}[k]: v for k, v in kw.items()},
    )
    assert keep.tolist() == keep_ref
    np.testing.assert_allclose(kept.numpy(), scores_ref, rtol=1e-12, atol=0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 120),
    method=st.sampled_from(["linear", "gaussian", "hard"]),
    classes=st.integers(1, 3),
    plus_one=st.booleans(),
    nt=st.sampled_from([0.0, 0.3, 0.5, 0.9]),
    threshold=st.sampled_from([0.0, 0.001, 0.2]),
)
def test_matches_the_per_box_loop_on_random_boxes(seed, n, method, classes, plus_one, nt, threshold):
    rng = np.random.default_rng(seed)
    # a small extent makes overlaps (and long selection chains) common
    boxes, scores = random_boxes(rng, n, extent=float(rng.choice([50, 400])))
    labels = rng.integers(0, classes, n) if classes > 1 else None
    check_against_reference(boxes, scores, method, labels, plus_one, nt=nt, threshold=threshold)


@pytest.mark.slow
@pytest.mark.parametrize("method,n", [("gaussian", 2000), ("linear", 1000), ("hard", 1000)])
def test_matches_the_per_box_loop_on_large_inputs(method, n):
    # large enough that the vectorised rounds run before the per-step phase
    rng = np.random.default_rng(7)
    boxes, scores = random_boxes(rng, n, extent=1000.0)
    check_against_reference(boxes, scores, method, nt=0.3, threshold=0.001)


def test_clustered_boxes_match_the_loop():
    # 15 objects, 40 jittered boxes each: long chains of overlaps, as a detector gives
    rng = np.random.default_rng(3)
    centres = rng.uniform(0, 500, (15, 2))
    pts = np.repeat(centres, 40, axis=0) + rng.normal(0, 6, (600, 2))
    size = rng.uniform(30, 60, (600, 2))
    boxes = np.concatenate([pts - size / 2, pts + size / 2], axis=1)
    scores = rng.uniform(0, 1, 600)
    for method in ("linear", "gaussian", "hard"):
        check_against_reference(boxes, scores, method, nt=0.3, threshold=0.001)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), nt=st.sampled_from([0.1, 0.3, 0.5, 0.7]))
def test_hard_equals_torchvision_nms(seed, n, nt):
    rng = np.random.default_rng(seed)
    boxes, _ = random_boxes(rng, n, extent=200.0)
    # distinct scores (torchvision's order among ties is unspecified), all above min_score
    scores = (rng.permutation(n) + 1.0) / (n + 1.0)
    b, s = torch.from_numpy(boxes).float(), torch.from_numpy(scores).float()
    keep, kept = soft_nms(b, s, method="hard", iou_threshold=nt, min_score=0.0)
    expected = torchvision.ops.nms(b.double(), s.double(), nt)
    assert keep.tolist() == expected.tolist()
    assert torch.equal(kept, s[keep])
    labels = torch.from_numpy(rng.integers(0, 3, n))
    keep_c, _ = soft_nms(b, s, labels, method="hard", iou_threshold=nt, min_score=0.0)
    assert keep_c.tolist() == torchvision.ops.batched_nms(b.double(), s.double(), labels, nt).tolist()


def test_worked_example_by_hand():
    # box 0 (score 0.9) and box 1 (0.8) overlap with IoU 50 / 150 = 1/3; box 2 is far away
    boxes = torch.tensor([[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 110]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8, 0.85], dtype=torch.float64)
    iou = 1 / 3
    keep, kept = soft_nms(boxes, scores, method="linear", iou_threshold=0.3)
    # 0 first; 2 (0.85, untouched) second; 1 decayed to 0.8 * (1 - 1/3)
    assert keep.tolist() == [0, 2, 1]
    np.testing.assert_allclose(kept.numpy(), [0.9, 0.85, 0.8 * (1 - iou)])
    keep, kept = soft_nms(boxes, scores, method="gaussian", sigma=0.5)
    np.testing.assert_allclose(kept.numpy(), [0.9, 0.85, 0.8 * math.exp(-(iou**2) / 0.5)])
    keep, kept = soft_nms(boxes, scores, method="linear", iou_threshold=0.5)
    # IoU 1/3 is not above Nt 0.5: no decay
    assert keep.tolist() == [0, 2, 1] and kept[2].item() == 0.8
    keep, _ = soft_nms(boxes, scores, method="hard", iou_threshold=0.3)
    assert keep.tolist() == [0, 2]


def test_threshold_drops_decayed_boxes_but_not_untouched_ones():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=torch.float32)
    # box 1 is identical to box 0: linear decay by (1 - 1) -> 0 < 0.001, dropped;
    # box 2 scores below the threshold but overlaps nothing: the authors keep it
    scores = torch.tensor([0.9, 0.8, 0.0005])
    keep, kept = soft_nms(boxes, scores, method="linear")
    assert keep.tolist() == [0, 2]
    assert kept.dtype == torch.float32


def test_first_of_equal_maxima_wins():
    # three identical boxes with equal scores: selection order is index order
    boxes = torch.tensor([[0, 0, 10, 10]] * 3, dtype=torch.float32)
    scores = torch.tensor([0.5, 0.5, 0.5])
    keep, kept = soft_nms(boxes, scores, method="gaussian")
    assert keep.tolist() == [0, 1, 2]
    w = math.exp(-1 / 0.5)
    np.testing.assert_allclose(kept.numpy(), [0.5, 0.5 * w, 0.5 * w * w], rtol=1e-6)
    keep, _ = soft_nms(boxes, scores, method="hard")
    assert keep.tolist() == [0]


def test_zero_area_boxes_never_overlap():
    # two identical zero-area boxes: union 0 -> IoU 0, both kept with their scores
    boxes = torch.tensor([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 0, 10]], dtype=torch.float32)
    scores = torch.tensor([0.3, 0.6, 0.2])
    for method in ("linear", "gaussian", "hard"):
        keep, kept = soft_nms(boxes, scores, method=method)
        assert keep.tolist() == [1, 0, 2]
        assert kept.tolist() == pytest.approx([0.6, 0.3, 0.2])
    # torchvision agrees for hard NMS
    assert torchvision.ops.nms(boxes, scores, 0.3).tolist() == [1, 0, 2]


def test_plus_one_convention_changes_iou():
    # touching boxes: no overlap in the modern convention, 1 px column of overlap with +1
    boxes = torch.tensor([[0, 0, 9, 9], [9, 0, 18, 9]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8], dtype=torch.float64)
    _, modern = soft_nms(boxes, scores, method="gaussian")
    _, plus_one = soft_nms(boxes, scores, method="gaussian", plus_one=True)
    assert modern[1].item() == 0.8
    iou = 10 / (100 + 100 - 10)
    assert plus_one[1].item() == pytest.approx(0.8 * math.exp(-(iou**2) / 0.5))


def test_classes_never_suppress_each_other():
    boxes = torch.tensor([[0, 0, 10, 10]] * 2, dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8])
    keep, kept = soft_nms(boxes, scores, torch.tensor([1, 2]), method="hard")
    assert keep.tolist() == [0, 1] and kept.tolist() == pytest.approx([0.9, 0.8])


def test_empty_input():
    keep, kept = soft_nms(torch.zeros((0, 4)), torch.zeros(0))
    assert keep.shape == (0,) and keep.dtype == torch.int64 and kept.shape == (0,)


def test_bad_input_raises_clear_errors():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 5, 5]], dtype=torch.float32)
    with pytest.raises(ValueError, match=r"scores\[1\] = nan"):
        soft_nms(boxes, torch.tensor([0.5, float("nan")]))
    with pytest.raises(ValueError, match=r"finite.*xyxy\[0\]"):
        soft_nms(torch.tensor([[0, 0, float("inf"), 1.0]]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match=r"x1 <= x2.*xyxy\[0\] = \[10.0, 0.0, 5.0, 5.0\]"):
        soft_nms(torch.tensor([[10.0, 0, 5, 5]]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="method must be one of"):
        soft_nms(boxes, torch.tensor([0.5, 0.4]), method="soft")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        soft_nms(torch.zeros((2, 5)), torch.zeros(2))
    with pytest.raises(ValueError, match=r"scores must have shape \(2,\)"):
        soft_nms(boxes, torch.zeros(3))


def test_from_config_and_device_round_trip():
    cfg = SoftNMSConfig(method="linear", iou_threshold=0.3)
    boxes = torch.tensor([[0, 0, 10, 10], [5, 0, 15, 10]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8])
    keep, kept = soft_nms_from_config(boxes, scores, None, cfg)
    assert keep.device == scores.device and kept.tolist() == pytest.approx([0.9, 0.8 * (1 - 1 / 3)])
    if torch.cuda.is_available():  # pragma: no cover - no GPU here
        keep_cuda, kept_cuda = soft_nms_from_config(boxes.cuda(), scores.cuda(), None, cfg)
        assert keep_cuda.is_cuda and keep_cuda.cpu().tolist() == keep.tolist()


def clustered_boxes(rng: np.random.Generator, objects: int, per_object: int, jitter: float = 0.15):
    """Candidate boxes around a few objects, as a detector scores them before NMS."""
    centre = rng.uniform(0, 400, (objects, 2))
    size = rng.uniform(20, 120, (objects, 2))
    which = rng.integers(0, objects, objects * per_object)
    c = centre[which] + rng.normal(0, 1, (len(which), 2)) * size[which] * jitter
    s = np.maximum(size[which] * (1 + 0.2 * rng.normal(0, 1, (len(which), 2))), 2.0)
    return np.concatenate([c - s / 2, c + s / 2], axis=1)


@pytest.mark.parametrize("method", ["linear", "gaussian", "hard"])
def test_clustered_boxes_with_many_ties_and_long_decay_chains(method):
    rng = np.random.default_rng(11)
    boxes = clustered_boxes(rng, objects=6, per_object=60, jitter=0.05)
    # scores on a coarse grid: many exact ties, resolved by the lowest index; duplicated
    # boxes (same box, same score) make chains of equal decayed scores too
    scores = rng.integers(1, 6, len(boxes)) / 5.0
    boxes[::7] = boxes[3]
    scores[::7] = scores[3]
    check_against_reference(boxes, scores, method, nt=0.3, threshold=0.001)
    # a low threshold keeps the long chains of repeatedly decayed boxes alive
    check_against_reference(boxes, scores, method, nt=0.5, threshold=1e-12)


@pytest.mark.parametrize("method", ["linear", "gaussian", "hard"])
def test_class_aware_clustered_boxes_match_per_class_loop(method):
    # the same clusters scored for 4 classes (as the RoI heads give one box per class)
    rng = np.random.default_rng(12)
    base = clustered_boxes(rng, objects=8, per_object=25)
    boxes = np.concatenate([base + rng.normal(0, 1, base.shape) for _ in range(4)])
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
    labels = np.repeat(np.array([7, -2, 0, 1_000_000]), len(base))  # any integers
    perm = rng.permutation(len(boxes))
    boxes, labels = boxes[perm], labels[perm]
    scores = rng.uniform(0, 1, len(boxes))
    check_against_reference(boxes, scores, method, labels=labels, nt=0.3, threshold=0.001)
    keep, _ = soft_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels), method=method)
    # equal to running each class on its own and merging by selection order
    merged = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        k, s = soft_nms(torch.from_numpy(boxes[idx]), torch.from_numpy(scores[idx]), method=method)
        merged += [(-sc, int(idx[i])) for i, sc in zip(k.tolist(), s.tolist())]
    assert keep.tolist() == [i for _, i in sorted(merged)]


def test_elongated_and_far_apart_layouts_match_the_loop():
    rng = np.random.default_rng(13)
    # a long row of boxes (spread 1e5 px along x), thin and wide boxes, one huge box
    # covering everything, and boxes far away at large coordinates
    row = np.stack([np.arange(300) * 333.0, rng.uniform(0, 50, 300)], axis=1)
    row = np.concatenate([row, row + rng.uniform(5, 400, (300, 2))], axis=1)
    thin = np.array([[0, 0, 1e5, 3], [0, 0, 2, 60], [10, 10, 10, 40], [0, 0, 1e5, 60]])
    far = np.array([[1e7, 1e7, 1e7 + 30, 1e7 + 30], [1e7 + 10, 1e7, 1e7 + 40, 1e7 + 30]])
    boxes = np.concatenate([row, thin, far])
    scores = rng.uniform(0, 1, len(boxes))
    for method in ("linear", "gaussian", "hard"):
        check_against_reference(boxes, scores, method, nt=0.3, threshold=0.001)
        check_against_reference(boxes, scores, method, plus_one=True, nt=0.3, threshold=0.001)


def test_scores_below_min_score_dropped_by_an_overlap_below_nt():
    # box 1 overlaps box 0 at IoU 1/3 < Nt 0.5: linear factor 1, but its score is below
    # min_score, so the overlap drops it; box 2 (no overlap) keeps its low score
    boxes = torch.tensor([[0, 0, 10, 10], [5, 0, 15, 10], [50, 50, 60, 60]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.0005, 0.0004], dtype=torch.float64)
    for method in ("linear", "hard"):
        keep, kept = soft_nms(boxes, scores, method=method, iou_threshold=0.5)
        assert keep.tolist() == [0, 2] and kept.tolist() == [0.9, 0.0004]


@pytest.mark.slow
def test_works_where_no_cache_folder_is_writable(tmp_path):
    # numba finds no place for its cache (as with a read-only install and home): the
    # kernels are compiled in memory, with no warning and the same results
    code = (
        "import logging, torch; logging.basicConfig(level=logging.DEBUG);"
        "[logging.getLogger(n).setLevel(logging.WARNING) for n in ('numba',)];"
        "from mct.detect.soft_nms import soft_nms;"
        "k, s = soft_nms(torch.tensor([[0, 0, 10, 10], [5, 0, 15, 10.]]), torch.tensor([0.9, 0.8]), method='linear');"
        "print(k.tolist(), round(s[1].item(), 6))"
    )
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "IPythonCacheLocator", "PYTHONWARNINGS": "default"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=Path(__file__).parents[2], timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "[0, 1] 0.533333"
    assert "compiled in memory" in out.stderr and "Warning" not in out.stderr


@pytest.mark.parametrize("sigma", [0.5, 0.3, 1.0, 2.0**-3, 7.0])
def test_gaussian_width_on_clustered_boxes(sigma):
    # other widths than the default 0.5, on overlapping boxes with long decay chains
    rng = np.random.default_rng(14)
    boxes = clustered_boxes(rng, objects=5, per_object=40)
    scores = rng.uniform(0, 1, len(boxes))
    check_against_reference(boxes, scores, "gaussian", sigma=sigma, threshold=0.001)


def exact_check(boxes, scores, method, labels=None, **kw):
    """Like check_against_reference, but the scores must be bit-identical."""
    keep_ref, scores_ref = reference_soft_nms(boxes.tolist(), scores, method, labels=None if labels is None else labels.tolist(), **kw)
    keep, kept = soft_nms(
        torch.from_numpy(boxes),
        torch.from_numpy(scores),
        None if labels is None else torch.from_numpy(labels),
        method=method,
        **{{"nt": "iou_threshold", "sigma": "sigma", "threshold": "min_score"}[k]: v for k, v in kw.items()},
    )
    assert keep.tolist() == keep_ref
    assert kept.tolist() == scores_ref


@pytest.mark.parametrize("method", ["linear", "hard"])
def test_linear_and_hard_scores_are_bit_identical_to_the_loop(method):
    # the same float64 products in the same order, not just close ones
    rng = np.random.default_rng(21)
    boxes = clustered_boxes(rng, objects=6, per_object=50)
    scores = rng.uniform(0, 1, len(boxes))
    exact_check(boxes, scores, method, nt=0.3, threshold=0.001)
    exact_check(boxes, scores, method, nt=0.5, threshold=1e-9)


def test_gaussian_without_logarithms_is_bit_identical_to_the_loop():
    # a score <= 0 (no logarithm) or min_score 0 (products may go subnormal): gaussian then
    # multiplies the scores by exp(-o^2 / sigma) like the loop, so the scores are identical
    rng = np.random.default_rng(22)
    boxes = clustered_boxes(rng, objects=5, per_object=40)
    scores = rng.uniform(0, 1, len(boxes))
    exact_check(boxes, scores, "gaussian", threshold=0.0)
    scores[::9] = 0.0
    scores[4::9] = -0.25
    exact_check(boxes, scores, "gaussian", threshold=0.001)
    exact_check(boxes, scores, "gaussian", threshold=0.0)
    exact_check(boxes, scores, "gaussian", threshold=-0.1)


def test_exact_gaussian_is_bit_identical_to_the_loop():
    # exact=True keeps the loop's products for positive scores too (the default sums logs)
    rng = np.random.default_rng(23)
    boxes = clustered_boxes(rng, objects=6, per_object=50)
    scores = rng.uniform(0.01, 1, len(boxes))
    keep_ref, scores_ref = reference_soft_nms(boxes.tolist(), scores, "gaussian")
    b, s = torch.from_numpy(boxes), torch.from_numpy(scores)
    keep, kept = soft_nms(b, s, method="gaussian", exact=True)
    assert keep.tolist() == keep_ref and kept.tolist() == scores_ref
    keep_c, kept_c = soft_nms_from_config(b, s, None, SoftNMSConfig(method="gaussian", exact=True))
    assert keep_c.tolist() == keep_ref and kept_c.tolist() == scores_ref
    # the log domain gives the same selections, scores within rounding, not bit for bit here
    keep_log, kept_log = soft_nms(b, s, method="gaussian")
    assert keep_log.tolist() == keep_ref
    np.testing.assert_allclose(kept_log.numpy(), scores_ref, rtol=1e-12)
    assert kept_log.tolist() != scores_ref


def test_gaussian_threshold_rule_in_the_log_domain():
    # two identical boxes (IoU 1): box 1 decays to 0.5 * exp(-1 / 0.5) = 0.0677; box 2
    # overlaps nothing and scores below min_score
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.5, 0.0004], dtype=torch.float64)
    decayed = 0.5 * math.exp(-2.0)
    keep, kept = soft_nms(boxes, scores, method="gaussian", min_score=0.065)  # 0.0677 stays
    assert keep.tolist() == [0, 1, 2]
    np.testing.assert_allclose(kept.numpy(), [0.9, decayed, 0.0004], rtol=1e-14)
    assert kept[0].item() == 0.9 and kept[2].item() == 0.0004  # never decayed: exactly the input
    keep, kept = soft_nms(boxes, scores, method="gaussian", min_score=0.07)  # 0.0677 dropped
    assert keep.tolist() == [0, 2] and kept.tolist() == [0.9, 0.0004]


def test_gaussian_scores_of_boxes_never_decayed_are_exact():
    # scores come back from the log domain only for decayed boxes
    rng = np.random.default_rng(23)
    boxes, scores = random_boxes(rng, 300, extent=5000.0, max_size=20.0)
    keep, kept = soft_nms(torch.from_numpy(boxes), torch.from_numpy(scores), method="gaussian")
    keep_ref, scores_ref = reference_soft_nms(boxes.tolist(), scores, "gaussian")
    assert keep.tolist() == keep_ref
    ours = dict(zip(keep.tolist(), kept.tolist()))
    never_decayed = [k for k, s in zip(keep_ref, scores_ref) if s == scores[k]]
    assert len(never_decayed) > 250  # most boxes overlap nothing here
    # exp(log(s)) differs from s for about one score in seven: these must not go through it
    assert [ours[k] for k in never_decayed] == [scores[k] for k in never_decayed]


@pytest.mark.parametrize("method", ["linear", "gaussian", "hard"])
def test_equal_scores_far_apart_go_in_index_order(method):
    # 300 boxes in 100 places (3 copies each), all scoring 0.5, in random input order: the
    # equal maxima sit in many leaves of the tree, and the lowest index must win each time
    rng = np.random.default_rng(24)
    places = np.stack(np.meshgrid(np.arange(10), np.arange(10)), -1).reshape(-1, 2) * 100.0
    corner = np.repeat(places, 3, axis=0)
    boxes = np.concatenate([corner, corner + 30.0], axis=1)[rng.permutation(300)]
    scores = np.full(300, 0.5)
    check_against_reference(boxes, scores, method, nt=0.3, threshold=0.001)
    keep, _ = soft_nms(torch.from_numpy(boxes), torch.from_numpy(scores), method=method)
    first_copies = sorted(min(np.flatnonzero((boxes == b).all(1))) for b in np.unique(boxes, axis=0))
    assert keep.tolist()[:100] == first_copies  # every place's lowest index, in index order


def test_many_labels_sharing_leaves_match_the_loop():
    # 40 labels with a few boxes each: the boxes of several labels share a leaf of the tree
    rng = np.random.default_rng(25)
    boxes = clustered_boxes(rng, objects=6, per_object=40)
    labels = rng.integers(0, 40, len(boxes))
    scores = rng.uniform(0, 1, len(boxes))
    for method in ("linear", "gaussian", "hard"):
        check_against_reference(boxes, scores, method, labels=labels, nt=0.3, threshold=0.001)
