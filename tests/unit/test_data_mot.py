"""MOT txt files: parse, write, round trip, grouping, and every promised error message."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mct.data.mot import MotFormatError, MotRows, read_mot, write_mot

GT = (
    "1,1,10,20,30,40,1,-1,-1,-1\n"  # frame 1: car 1
    "1,2,50,60,10,10,0,-1,-1,-1\n"  # frame 1: car 2, flagged ignore (column 7 = 0)
    "3,1,12,20,30,40,1,-1,-1,-1\n"  # frame 3: car 1 again (frame 2 has no rows)
)


def write(tmp_path: Path, text: str, name: str = "gt.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_gt_columns(tmp_path: Path) -> None:
    rows = read_mot(write(tmp_path, GT), "gt")
    assert len(rows) == 3
    np.testing.assert_array_equal(rows.frame, [1, 1, 3])
    np.testing.assert_array_equal(rows.id, [1, 2, 1])
    np.testing.assert_array_equal(rows.tlwh[0], [10, 20, 30, 40])
    np.testing.assert_array_equal(rows.xyxy[0], [10, 20, 40, 60])
    np.testing.assert_array_equal(rows.conf, [1, 0, 1])
    np.testing.assert_array_equal(rows.col7, rows.conf)
    np.testing.assert_array_equal(rows.cls, [-1, -1, -1])
    assert rows.frame.dtype == np.int64 and rows.tlwh.dtype == np.float32 and rows.conf.dtype == np.float32


def test_by_frame_and_detections(tmp_path: Path) -> None:
    rows = read_mot(write(tmp_path, GT), "gt")
    groups = rows.by_frame()
    # frames 1 and 3 have rows; frame 2 has none and is absent
    assert list(groups) == [1, 3]
    np.testing.assert_array_equal(groups[1].id, [1, 2])
    np.testing.assert_array_equal(rows.frames, [1, 3])
    dets = rows.to_detections(1)
    assert dets.frame == 1 and len(dets) == 2
    np.testing.assert_array_equal(dets.xyxy[1], [50, 60, 60, 70])
    np.testing.assert_array_equal(dets.scores, [1, 0])
    # frame 2: no rows -> empty detections, not an error
    assert len(rows.to_detections(2)) == 0
    assert [f for f, _ in rows.iter_frames()] == [1, 3]


def test_by_frame_keeps_file_order_within_frame(tmp_path: Path) -> None:
    # frames out of order in the file: grouping sorts by frame but keeps the file order inside
    rows = read_mot(write(tmp_path, "2,5,1,1,1,1,1,-1,-1,-1\n1,7,1,1,1,1,1,-1,-1,-1\n2,3,1,1,1,1,1,-1,-1,-1\n"))
    groups = rows.by_frame()
    assert list(groups) == [1, 2]
    np.testing.assert_array_equal(groups[2].id, [5, 3])


def test_det_round_trip_floats(tmp_path: Path) -> None:
    rows = MotRows.from_arrays(
        frame=[1, 2, 2],
        id=None,
        tlwh=[[1.25, 2.5, 10.75, 5.0], [0.0, 0.0, 3.0, 4.0], [100.5, 7.0, 1.5, 2.0]],
        conf=[0.91, 0.5, 0.07],
    )
    path = write_mot(tmp_path / "det" / "det_x.txt", rows)
    assert path.read_text().splitlines()[0] == "1,-1,1.25,2.50,10.75,5,0.91,-1,-1,-1"
    back = read_mot(path, "det")
    np.testing.assert_array_equal(back.id, [-1, -1, -1])
    np.testing.assert_allclose(back.tlwh, rows.tlwh)
    np.testing.assert_allclose(back.conf, rows.conf)


def test_gt_round_trip_is_byte_identical(tmp_path: Path) -> None:
    path = write(tmp_path, GT)
    out = write_mot(tmp_path / "again.txt", read_mot(path, "gt"))
    assert out.read_text() == GT


def test_empty_file_and_empty_rows(tmp_path: Path) -> None:
    assert len(read_mot(write(tmp_path, ""), "det")) == 0
    assert len(read_mot(write(tmp_path, "\n\n"), "det")) == 0
    empty = MotRows.empty()
    assert empty.by_frame() == {} and len(empty.to_detections(1)) == 0
    path = write_mot(tmp_path / "e.txt", empty)
    assert path.read_text() == "" and len(read_mot(path)) == 0


def test_blank_lines_are_counted_in_line_numbers(tmp_path: Path) -> None:
    # line 1 and 3 blank; line 4 has a zero width
    text = "\n1,1,1,1,5,5,1,-1,-1,-1\n\n2,1,1,1,0,5,1,-1,-1,-1\n"
    with pytest.raises(MotFormatError, match=r"gt\.txt:4: width must be > 0, got 0"):
        read_mot(write(tmp_path, text), "gt")
    good = "\n1,1,1,1,5,5,1,-1,-1,-1\n\n2,1,1,1,5,5,1,-1,-1,-1\n\n"
    np.testing.assert_array_equal(read_mot(write(tmp_path, good), "gt").frame, [1, 2])
    # blank lines only after the first line (the vectorised path keeps them as rows): line 3
    text = "1,1,1,1,5,5,1,-1,-1,-1\n\n2,1,1,1,5,-2,1,-1,-1,-1\n\n"
    with pytest.raises(MotFormatError, match=r"gt\.txt:3: height must be > 0, got -2"):
        read_mot(write(tmp_path, text), "gt")
    # a line of nan is not a blank line
    with pytest.raises(MotFormatError, match=r"gt\.txt:2: column 1 \(frame\): expected a finite number, got 'nan'"):
        read_mot(write(tmp_path, "1,1,1,1,5,5,1,-1,-1,-1\n" + ",".join(["nan"] * 10) + "\n"), "gt")


@pytest.mark.parametrize(
    ("kind", "text", "ncols", "conf", "cls"),
    [
        ("gt", "1,1,1,1,5,5,1,3,0.5\n", 9, 1.0, 3),  # MOT16/17 gt: 9 columns, class 3
        ("det", "1,-1,1,1,5,5,0.7\n", 7, 0.7, -1),  # detections may stop after the score
        ("pred", "1,4,1,1,5,5\n", 6, 1.0, -1),  # a tracker result may stop after the box
    ],
)
def test_short_files_accepted_where_the_format_allows(tmp_path: Path, kind, text, ncols, conf, cls) -> None:
    rows = read_mot(write(tmp_path, text), kind)
    assert len(rows) == 1 and rows.conf[0] == pytest.approx(conf) and rows.cls[0] == cls
    assert rows.col10[0] == -1


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("gt", "1,1,1,1,5,5,1,-1,-1,-1\n1,1,1,1,5,5,1\n", "gt.txt:2: expected 9 or 10 comma-separated columns, got 7"),
        ("det", "1,-1,1,1,5,5\n", "gt.txt:1: expected 7 to 10 comma-separated columns, got 6"),
        ("pred", "1,1,1,1,5\n", "gt.txt:1: expected 6 to 10 comma-separated columns, got 5"),
        ("gt", "1,1,1,1,5,5,1,-1,-1,-1,\n", "gt.txt:1: expected 9 or 10 comma-separated columns, got 11 (trailing comma?)"),
        ("det", "1 -1 1 1 5 5 0.5 -1 -1 -1\n",
         "gt.txt:1: expected 7 to 10 comma-separated columns, got 1 (separated by spaces? MOT files use commas)"),
        ("gt", "1,1,1,1,5,5,1,-1,-1,-1\n1,1,1,1,5,5,1,-1,-1\n",
         "gt.txt:2: expected 10 comma-separated columns like the lines above, got 9"),
        ("gt", "1,1,1,1,5,5,1,-1,-1,-1\n2,1,abc,1,5,5,1,-1,-1,-1\n", "gt.txt:2: column 3 (left): expected a number, got 'abc'"),
        ("det", "1,-1,1,1,5,5,high,-1,-1,-1\n", "gt.txt:1: column 7 (confidence): expected a number, got 'high'"),
        ("gt", "1,1,1,1,5,nan,1,-1,-1,-1\n", "gt.txt:1: column 6 (height): expected a finite number, got 'nan'"),
        ("gt", "1,1,1,1,5,5,1,-1,-1,-1\n1.5,1,1,1,5,5,1,-1,-1,-1\n", "gt.txt:2: frame must be an integer, got 1.5"),
        ("gt", "1,2.5,1,1,5,5,1,-1,-1,-1\n", "gt.txt:1: id must be an integer, got 2.5"),
        ("gt", "0,1,1,1,5,5,1,-1,-1,-1\n", "gt.txt:1: frame must be >= 1 (frames are 1-based), got 0"),
        ("gt", "1,1,1,1,-3,5,1,-1,-1,-1\n", "gt.txt:1: width must be > 0, got -3"),
        ("gt", "1,1,1,1,5,5,1,-1,-1,-1\n2,1,1,1,5,0,1,-1,-1,-1\n3,1,1,1,5,0,1,-1,-1,-1\n",
         "gt.txt:2: height must be > 0, got 0 (1 more such line)"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, kind, text, message) -> None:
    path = write(tmp_path, text)
    with pytest.raises(MotFormatError, match=re.escape(f"{tmp_path}/{message}")):
        read_mot(path, kind)


def test_missing_file_and_bad_kind(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path}/none.txt: MOT det file not found")):
        read_mot(tmp_path / "none.txt", "det")
    with pytest.raises(ValueError, match="kind must be one of"):
        read_mot(write(tmp_path, GT), "boxes")  # type: ignore[arg-type]


def test_large_file_error_found_late(tmp_path: Path) -> None:
    # 5000 good lines, then a 7-column line: the vectorised parse fails and the exact one names line 5001
    good = "".join(f"{f},1,1,1,5,5,1,-1,-1,-1\n" for f in range(1, 5001))
    path = write(tmp_path, good + "5001,1,1,1,5,5,1\n")
    with pytest.raises(MotFormatError, match=r"gt\.txt:5001: expected 9 or 10 comma-separated columns, got 7"):
        read_mot(path)


def test_indexing_and_concat() -> None:
    rows = MotRows.from_xyxy([1, 2, 3], [7, 8, 9], [[0, 0, 2, 2], [1, 1, 4, 5], [2, 2, 3, 3]], conf=[0.1, 0.2, 0.3])
    np.testing.assert_array_equal(rows.tlwh[1], [1, 1, 3, 4])
    sub = rows[rows.conf > 0.15]
    np.testing.assert_array_equal(sub.id, [8, 9])
    both = MotRows.concat([rows, sub])
    assert len(both) == 5 and len(MotRows.concat([])) == 0
    with pytest.raises(ValueError, match=r"tlwh: expected shape \(2, 4\)"):
        MotRows.from_arrays([1, 2], None, [[0, 0, 1, 1]])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.lists(
        st.tuples(
            st.integers(1, 100_000),  # frame
            st.integers(-1, 10_000),  # id
            st.integers(-50_000, 500_000),  # left, hundredths of a pixel
            st.integers(-50_000, 500_000),  # top
            st.integers(1, 100_000),  # width > 0
            st.integers(1, 100_000),  # height > 0
            st.integers(0, 100),  # confidence, hundredths
        ),
        max_size=30,
    )
)
def test_write_read_round_trip_property(tmp_path: Path, data) -> None:
    # any rows with 2-decimal boxes and scores come back equal (float32 of the same decimal)
    arr = np.array(data, dtype=np.float64).reshape(-1, 7)
    rows = MotRows.from_arrays(arr[:, 0], arr[:, 1], arr[:, 2:6] / 100, arr[:, 6] / 100)
    back = read_mot(write_mot(tmp_path / "rt.txt", rows), "pred")
    np.testing.assert_array_equal(back.frame, rows.frame)
    np.testing.assert_array_equal(back.id, rows.id)
    np.testing.assert_array_equal(back.tlwh, rows.tlwh)
    np.testing.assert_array_equal(back.conf, rows.conf)
