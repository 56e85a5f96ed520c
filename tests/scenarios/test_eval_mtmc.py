"""Hand-built MTMC stories scored by the AI City protocol; IDF1 worked out by hand.

IDF1 = 2 IDTP / (#GT boxes + #predicted boxes), IDTP = boxes where the globally assigned
predicted id overlaps the ground truth (IoU >= 0.5). Cameras: c001, c002 (c003, c009 where
said); every box is the same 50x40 car at (100, 100) unless said; frames 1-3 per camera.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mct.data.submission import SubmissionRows, write_submission
from mct.evaluate.mtmc import (
    evaluate_mtmc,
    evaluate_mtmc_rows,
    find_roi_images,
    load_rois,
    roi_outlier_mask,
    single_camera_id_mask,
)

CAR = (100, 100, 50, 40)
OTHER = (400, 300, 60, 40)  # a second car, far from the first


def rows(*items: tuple[int, int, int, tuple[int, int, int, int]]) -> SubmissionRows:
    """``(camera, id, frame, tlwh)`` tuples -> rows."""
    if not items:
        return SubmissionRows.empty()
    return SubmissionRows.from_array([[c, i, f, *box] for c, i, f, box in items])


def track(camera: int, obj: int, box=CAR, frames=(1, 2, 3)) -> list:
    return [(camera, obj, f, box) for f in frames]


def one_car_two_cameras() -> SubmissionRows:
    # GT: car 1 in c001 frames 1-3 and in c002 frames 1-3 (6 boxes)
    return rows(*track(1, 1), *track(2, 1))


def test_perfect_prediction_scores_one() -> None:
    res = evaluate_mtmc_rows(one_car_two_cameras(), rows(*track(1, 10), *track(2, 10)), rois=None)
    # IDTP 6 of 6 GT and 6 predicted boxes
    assert res.idf1 == 1.0 and res.idp == 1.0 and res.idr == 1.0
    assert res.metrics.num_switches == 0 and res.mota == 1.0
    assert any("no ROI given" in w for w in res.warnings)


def test_identity_swapped_between_cameras() -> None:
    # GT: car 1 at CAR and car 2 at OTHER, both in c001 and c002 (12 boxes).
    gt = rows(*track(1, 1), *track(1, 2, OTHER), *track(2, 1), *track(2, 2, OTHER))
    # Prediction: c001 calls them 10 and 20, c002 swaps the names (20 on car 1, 10 on car 2).
    pred = rows(*track(1, 10), *track(1, 20, OTHER), *track(2, 20), *track(2, 10, OTHER))
    res = evaluate_mtmc_rows(gt, pred, rois=None)
    # overlap counts: (1,10)=3 (1,20)=3 (2,20)=3 (2,10)=3 -> best assignment keeps 6 of 12
    # IDF1 = 2*6 / (12 + 12) = 0.5
    assert res.metrics.idtp == 6
    assert res.idf1 == pytest.approx(0.5) and res.idp == pytest.approx(0.5) and res.idr == pytest.approx(0.5)
    # c002 starts at concatenated frame 4: both cars change predicted id -> 2 switches,
    # MOTA = 1 - 2/12
    assert res.metrics.num_switches == 2
    assert res.mota == pytest.approx(1 - 2 / 12)
    assert res.camera(2).frame_offset == 3 and res.camera(2).metrics.num_switches == 2
    # per camera, the global assignment keeps c001 (or c002) whole: 3+3 of 6 boxes in each
    assert res.camera(1).metrics.idtp + res.camera(2).metrics.idtp == 6


def test_camera_missing_from_the_prediction() -> None:
    # GT: car 1 in c001, c002 and c003 frames 1-2; car 2 in c001 and c002 (3+3+2 + 3+3 = 14 boxes)
    gt = rows(*track(1, 1), *track(2, 1), *track(3, 1, frames=(1, 2)), *track(1, 2, OTHER), *track(2, 2, OTHER))
    # Prediction: perfect in c001 and c002, nothing for c003 (12 boxes)
    pred = rows(*track(1, 10), *track(2, 10), *track(1, 20, OTHER), *track(2, 20, OTHER))
    res = evaluate_mtmc_rows(gt, pred, rois=None)
    # IDTP 12; IDF1 = 24 / (14 + 12) = 0.923077; IDP = 1; IDR = 12/14
    assert res.idf1 == pytest.approx(24 / 26)
    assert res.idp == 1.0 and res.idr == pytest.approx(12 / 14)
    assert res.missing_cameras == (3,)
    assert any("c003" in w and "count as misses" in w for w in res.warnings)
    assert res.camera(3).metrics.num_misses == 2


def _roi_dir(tmp_path: Path, cameras=(1, 2)) -> Path:
    # 640x480 ROIs, black (0) where x < 60, white elsewhere
    roi = np.full((480, 640), 255, np.uint8)
    roi[:, :60] = 0
    for cam in cameras:
        (tmp_path / "rois" / f"c{cam:03d}").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "rois" / f"c{cam:03d}" / "roi.jpg"), roi)
    return tmp_path / "rois"


def test_box_outside_the_roi_is_dropped(tmp_path: Path) -> None:
    # GT: car 1 in c001 frames 1-3 and c002 frames 1-3, but in c001 frame 3 it is at x = 20,
    # inside the black band of the ROI. The prediction copies the GT exactly (id 10).
    edge = (20, 100, 50, 40)
    gt = rows((1, 1, 1, CAR), (1, 1, 2, CAR), (1, 1, 3, edge), *track(2, 1))
    pred = rows((1, 10, 1, CAR), (1, 10, 2, CAR), (1, 10, 3, edge), *track(2, 10))
    rois = load_rois(_roi_dir(tmp_path), [1, 2])
    res = evaluate_mtmc_rows(gt, pred, rois=rois)
    # the predicted box of frame 3 is dropped (its left corners are on black): IDTP 5,
    # IDF1 = 2*5 / (6 + 5) = 0.909091; without the ROI filter it would be 1
    assert res.dropped_roi == 1 and res.camera(1).dropped_roi == 1
    assert res.idf1 == pytest.approx(10 / 11)
    assert evaluate_mtmc_rows(gt, pred, rois=None).idf1 == 1.0


def test_single_camera_id_is_removed() -> None:
    # GT: car 1 in c001 and c002. Prediction: perfect id 10, plus id 30 in c002 only
    # (a false-positive track at OTHER, frames 1-3).
    pred = rows(*track(1, 10), *track(2, 10), *track(2, 30, OTHER))
    res = evaluate_mtmc_rows(one_car_two_cameras(), pred, rois=None)
    # id 30 is seen in one camera: dropped before scoring -> IDF1 = 12/12 = 1
    # (kept, it would give 2*6 / (6 + 9) = 0.8)
    assert res.dropped_single_camera_ids == 1 and res.dropped_single_camera_rows == 3
    assert res.idf1 == 1.0


def test_a_track_in_one_camera_only_loses_its_boxes() -> None:
    # Prediction: c001 calls the car 10, c002 calls it 11: both ids are single-camera ids,
    # everything is dropped -> empty prediction, IDF1 0 (and a warning about the official tool).
    res = evaluate_mtmc_rows(one_car_two_cameras(), rows(*track(1, 10), *track(2, 11)), rois=None)
    assert res.idf1 == 0.0 and res.metrics.num_misses == 6
    assert any("empty after filtering" in w for w in res.warnings)


def test_empty_prediction() -> None:
    res = evaluate_mtmc_rows(one_car_two_cameras(), SubmissionRows.empty(), rois=None)
    # IDTP 0: IDF1 = 0 / (6 + 0) = 0, IDR = 0, IDP = 0/0 (nan)
    assert res.idf1 == 0.0 and res.idr == 0.0 and np.isnan(res.idp)
    assert res.missing_cameras == (1, 2)
    assert res.as_dict()["metrics"]["idp"] is None


def test_predicted_camera_unknown_to_the_ground_truth() -> None:
    # Prediction: id 10 perfect in c001 and seen in c009 (not in the GT); nothing in c002.
    pred = rows(*track(1, 10), *track(9, 10, OTHER))
    res = evaluate_mtmc_rows(one_car_two_cameras(), pred, rois=None)
    # c009 keeps id 10 alive for the single-camera rule, then is ignored:
    # IDTP 3, IDF1 = 2*3 / (6 + 3) = 0.6667
    assert res.dropped_single_camera_rows == 0
    assert res.ignored_cameras == (9,) and res.missing_cameras == (2,)
    assert res.idf1 == pytest.approx(6 / 9)


def test_frame_offsets_use_the_larger_of_gt_and_prediction() -> None:
    # c001: GT frames 1-3, the prediction also has a false box at frame 5 -> c002 starts after 5.
    pred = rows(*track(1, 10), (1, 10, 5, OTHER), *track(2, 10))
    res = evaluate_mtmc_rows(one_car_two_cameras(), pred, rois=None)
    assert [c.frame_offset for c in res.cameras] == [0, 5]
    assert [c.frame_span for c in res.cameras] == [5, 3]
    # IDTP 6, 7 predicted boxes: IDF1 = 12 / 13
    assert res.idf1 == pytest.approx(12 / 13) and res.metrics.num_false_positives == 1


def test_duplicate_rows_keep_the_first() -> None:
    # c001 frame 2 has id 10 twice: first the right box, then one far away.
    pred = rows((1, 10, 1, CAR), (1, 10, 2, CAR), (1, 10, 2, OTHER), (1, 10, 3, CAR), *track(2, 10))
    res = evaluate_mtmc_rows(one_car_two_cameras(), pred, rois=None)
    assert res.dropped_duplicates == 1 and res.idf1 == 1.0
    assert any("duplicate" in w and "first of each is kept" in w for w in res.warnings)


def test_ground_truth_errors() -> None:
    with pytest.raises(ValueError, match="no rows"):
        evaluate_mtmc_rows(SubmissionRows.empty(), one_car_two_cameras(), rois=None)
    with pytest.raises(ValueError, match="duplicate"):
        evaluate_mtmc_rows(rows(*track(1, 1), (1, 1, 1, OTHER)), one_car_two_cameras(), rois=None)


def test_missing_roi_for_a_scored_camera_is_an_error(tmp_path: Path) -> None:
    rois = load_rois(_roi_dir(tmp_path, cameras=(1,)), [1, 2])
    assert list(rois) == [1]
    with pytest.raises(ValueError, match="no ROI image for camera c002"):
        evaluate_mtmc_rows(one_car_two_cameras(), rows(*track(1, 10), *track(2, 10)), rois=rois)


def test_files_end_to_end(tmp_path: Path) -> None:
    write_submission(tmp_path / "gt.txt", one_car_two_cameras())
    write_submission(tmp_path / "pred.zip", rows(*track(1, 10), *track(2, 10)))
    res = evaluate_mtmc(tmp_path / "gt.txt", tmp_path / "pred.zip", roi_dir=_roi_dir(tmp_path))
    assert res.idf1 == 1.0 and res.roi_applied and res.warnings == ()


def test_roi_corner_rule() -> None:
    roi = np.full((100, 200), 255, np.uint8)
    roi[0:10, :] = 0  # black top band
    roi[50, 150] = 254  # one almost-white pixel
    tlwh = np.array([
        [20, 20, 30, 30],    # all corners white -> kept
        [20, 5, 30, 30],     # top corners on black -> dropped
        [180, 60, 50, 50],   # right and bottom corners outside the image, (180, 60) white -> kept
        [120, 20, 30, 30],   # corner (150, 50) on 254 -> dropped
        [-10, -10, 5, 5],    # every corner outside the image -> kept (nothing to test)
    ])
    assert roi_outlier_mask(tlwh, roi).tolist() == [False, True, False, True, False]


def test_single_camera_id_mask() -> None:
    cams = np.array([1, 2, 1, 1, 3])
    ids = np.array([7, 7, 8, 8, 9])
    assert single_camera_id_mask(cams, ids).tolist() == [False, False, True, True, True]


def test_roi_search_below_a_dataset_root(tmp_path: Path) -> None:
    roi = np.full((20, 30), 255, np.uint8)
    for scen, cam in (("S02", "c006"), ("S05", "c010")):
        (tmp_path / "validation" / scen / cam).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "validation" / scen / cam / "roi.jpg"), roi)
    assert sorted(find_roi_images(tmp_path, [6, 10, 11])) == [6, 10]
    (tmp_path / "train" / "S03" / "c010").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "train" / "S03" / "c010" / "roi.jpg"), np.zeros((20, 30), np.uint8))
    with pytest.raises(ValueError, match="different roi.jpg files for camera c010"):
        find_roi_images(tmp_path, [10])
    assert sorted(find_roi_images(tmp_path / "validation", [10])) == [10]
