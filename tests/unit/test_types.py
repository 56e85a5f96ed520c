import numpy as np
import pytest

from mct.types import (
    Camera,
    Detections,
    GlobalAssignment,
    Tracklet,
    camera_number,
    tlwh_to_xyxy,
    xyah_to_xyxy,
    xyxy_to_tlwh,
    xyxy_to_xyah,
)


def _dets(n: int = 3) -> Detections:
    xyxy = np.array([[0, 0, 10, 20], [5, 5, 15, 25], [100, 100, 140, 130]], np.float64)[:n]
    return Detections(7, xyxy, np.array([0.9, 0.5, 0.2])[:n], embeddings=np.eye(3, 4)[:n])


def test_detections_casts_dtypes_and_fills_class_ids():
    d = _dets()
    assert d.xyxy.dtype == np.float32 and d.scores.dtype == np.float32
    assert d.class_ids.dtype == np.int64 and d.class_ids.tolist() == [0, 0, 0]
    assert len(d) == 3


def test_detections_boolean_and_integer_indexing_returns_new_object():
    d = _dets()
    sub = d[d.scores > 0.4]
    assert len(sub) == 2 and sub.frame == 7
    np.testing.assert_array_equal(sub.embeddings, np.eye(3, 4)[:2])
    picked = d[np.array([2, 0])]
    np.testing.assert_array_equal(picked.scores, np.float32([0.2, 0.9]))
    # the input is untouched
    assert len(d) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"xyxy": np.zeros((2, 3)), "scores": np.zeros(2)}, r"xyxy: expected shape \(\*, 4\)"),
        ({"xyxy": np.zeros((2, 4)), "scores": np.zeros(3)}, r"scores: expected shape \(2\)"),
        ({"xyxy": np.zeros((2, 4)), "scores": np.zeros(2), "embeddings": np.zeros((3, 8))}, "embeddings"),
    ],
)
def test_detections_rejects_bad_shapes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Detections(1, **kwargs)


def test_detections_empty_and_bad_boolean_index():
    e = Detections.empty(3, embedding_dim=16)
    assert len(e) == 0 and e.xyxy.shape == (0, 4) and e.embeddings.shape == (0, 16)
    assert len(e[np.zeros(0, bool)]) == 0
    with pytest.raises(IndexError):
        _dets()[np.array([True, False])]


def test_box_conversions_round_trip():
    xyxy = np.array([[10, 20, 50, 100]], np.float32)
    np.testing.assert_array_equal(xyxy_to_tlwh(xyxy), [[10, 20, 40, 80]])
    np.testing.assert_array_equal(tlwh_to_xyxy(xyxy_to_tlwh(xyxy)), xyxy)
    np.testing.assert_allclose(xyxy_to_xyah(xyxy), [[30, 60, 0.5, 80]])
    np.testing.assert_allclose(xyah_to_xyxy(xyxy_to_xyah(xyxy)), xyxy)


def test_camera_number_and_validation():
    assert camera_number("c001") == 1 and camera_number("c046") == 46
    with pytest.raises(ValueError, match="'cam1'"):
        camera_number("cam1")
    cam = Camera("S02", "c006", fps=10, time_offset_s=1.5, frame_size=(4, 2), roi_mask=np.ones((2, 4)))
    assert cam.key == ("S02", "c006") and cam.number == 6 and cam.roi_mask.dtype == bool
    np.testing.assert_allclose(cam.frame_time([1, 11]), [1.5, 2.5])
    with pytest.raises(ValueError, match="roi_mask shape"):
        Camera("S02", "c006", frame_size=(5, 2), roi_mask=np.ones((2, 4)))
    with pytest.raises(ValueError, match="fps"):
        Camera("S02", "c006", fps=0)


def test_tracklet_requires_increasing_frames_and_matching_lengths():
    t = Tracklet("S02", "c006", 4, [1, 2, 5], np.zeros((3, 4)), np.ones(3), feature=np.ones(8))
    assert len(t) == 3 and t.first_frame == 1 and t.last_frame == 5 and t.key == ("S02", "c006", 4)
    with pytest.raises(ValueError, match="strictly increasing"):
        Tracklet("S02", "c006", 4, [1, 1], np.zeros((2, 4)), np.ones(2))
    with pytest.raises(ValueError, match="xyxy"):
        Tracklet("S02", "c006", 4, [1, 2], np.zeros((3, 4)), np.ones(2))


def test_global_assignment_lookup_and_duplicates():
    g = GlobalAssignment(["S02", "S02"], ["c006", "c007"], [1, 1], [10, 10])
    assert g.global_id("S02", "c007", 1) == 10 and g.global_id("S02", "c008", 1) is None
    with pytest.raises(ValueError, match="assigned twice"):
        GlobalAssignment(["S02", "S02"], ["c006", "c006"], [1, 1], [10, 11])
