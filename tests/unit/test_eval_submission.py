"""The submission / evaluation-ground-truth format: reading, writing, every bad input."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mct.data.submission import (
    SubmissionFormatError,
    SubmissionRows,
    duplicate_mask,
    read_submission,
    read_submission_text,
    write_submission,
)

GOOD = "1 34 56 1513 339 405 175 -1 -1\n2 34 57 100 200 30 40 -1 -1\n"


def test_reads_space_tab_and_comma_separated_lines() -> None:
    text = "1 34 56 1513 339 405 175 -1 -1\n2\t34\t57\t100\t200\t30\t40\t-1\t-1\n3,35,58,1,2,3,4,-1,-1\n4, 35, 59, 1, 2, 3, 4, -1, -1\n"
    rows = read_submission_text(text, "s.txt")
    assert rows.camera.tolist() == [1, 2, 3, 4]
    assert rows.obj_id.tolist() == [34, 34, 35, 35]
    assert rows.frame.tolist() == [56, 57, 58, 59]
    assert rows.tlwh[0].tolist() == [1513, 339, 405, 175]
    assert rows.xyxy[0].tolist() == [1513, 339, 1918, 514]


def test_blank_lines_are_skipped_and_line_numbers_kept() -> None:
    rows = read_submission_text("\n" + GOOD + "\n\n1 35 56 1 2 3 4 -1 -1\n", "s.txt")
    assert rows.line.tolist() == [2, 3, 6]


def test_world_columns_may_be_real_numbers() -> None:
    rows = read_submission_text("1 34 56 10 20 30 40 42.5 -71.25\n", "s.txt")
    assert rows.world.tolist() == [[42.5, -71.25]]


def test_empty_file_gives_no_rows(tmp_path: Path) -> None:
    (tmp_path / "e.txt").write_text("")
    assert len(read_submission(tmp_path / "e.txt")) == 0


@pytest.mark.parametrize(
    "text, message",
    [
        (GOOD + "1 34 58 1 2 3 4 -1\n", "s.txt:3: expected 9 columns"),
        (GOOD + "1 34 58 1 2 3 4 -1 -1 7\n", "s.txt:3: expected 9 columns"),
        ("1 34 56 10.5 20 30 40 -1 -1\n", "s.txt:1: column xmin: '10.5' is not an integer"),
        ("1 34 56 10 20 30.0 40 -1 -1\n", "s.txt:1: column width: '30.0' is not an integer"),
        ("1 34 56 10 20 30 40 x -1\n", "s.txt:1: column xworld: 'x' is not a number"),
        ("1 abc 56 10 20 30 40 -1 -1\n", "s.txt:1: column obj_id: 'abc' is not a number"),
        (GOOD + "1 34 58 10 20 0 40 -1 -1\n", "s.txt:3: width 0 must be > 0"),
        (GOOD + "1 34 58 10 20 30 -4 -1 -1\n", "s.txt:3: height -4 must be > 0"),
        ("1 34 0 10 20 30 40 -1 -1\n", "s.txt:1: frame_id 0 must be >= 1"),
        ("0 34 3 10 20 30 40 -1 -1\n", "s.txt:1: camera_id 0 must be >= 1"),
        (GOOD + "\n2 34 57 1 1 1 1 -1 -1\n", "s.txt:4: duplicate row for camera 2, frame 57, id 34 (first at line 2)"),
    ],
)
def test_bad_input_names_file_line_and_value(text: str, message: str) -> None:
    with pytest.raises(SubmissionFormatError) as info:
        read_submission_text(text, "s.txt")
    assert message in str(info.value)


def test_many_bad_rows_are_counted() -> None:
    text = "".join(f"1 {i} 5 1 1 0 1 -1 -1\n" for i in range(4))
    with pytest.raises(SubmissionFormatError, match=r"s.txt:1: width 0 must be > 0 \(3 more such rows\)"):
        read_submission_text(text, "s.txt")


def test_duplicates_keep_first_warns_and_keeps_the_first(caplog: pytest.LogCaptureFixture) -> None:
    text = "1 34 56 10 20 30 40 -1 -1\n1 34 56 99 99 30 40 -1 -1\n1 35 56 1 2 3 4 -1 -1\n"
    rows = read_submission_text(text, "s.txt", duplicates="keep_first")
    assert rows.tlwh[:, 0].tolist() == [10, 1]
    assert "keeping the first row of each, as the official evaluation does" in caplog.text
    assert len(read_submission_text(text, "s.txt", duplicates="keep")) == 3
    with pytest.raises(ValueError, match="duplicates must be"):
        read_submission_text(text, "s.txt", duplicates="drop")  # type: ignore[arg-type]


def test_duplicate_mask_marks_later_copies_only() -> None:
    rows = SubmissionRows.from_array([[1, 1, 1, 0, 0, 5, 5], [1, 2, 1, 0, 0, 5, 5], [1, 1, 1, 9, 9, 5, 5], [2, 1, 1, 0, 0, 5, 5]])
    assert duplicate_mask(rows).tolist() == [False, False, True, False]


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def _tgz(path: Path, members: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_archives_with_one_file_are_read(tmp_path: Path) -> None:
    z = read_submission(_zip(tmp_path / "s.zip", {"track1.txt": GOOD}))
    t = read_submission(_tgz(tmp_path / "s.tar.gz", {"track1.txt": GOOD}))
    assert z.camera.tolist() == t.camera.tolist() == [1, 2]
    # errors name the member inside the archive
    with pytest.raises(SubmissionFormatError, match=r"s2.zip:track1.txt:1: expected 9 columns"):
        read_submission(_zip(tmp_path / "s2.zip", {"track1.txt": "1 2 3\n"}))


def test_archives_with_several_or_no_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SubmissionFormatError, match="2 files"):
        read_submission(_zip(tmp_path / "two.zip", {"a.txt": GOOD, "b.txt": GOOD}))
    with pytest.raises(SubmissionFormatError, match="no file"):
        read_submission(_tgz(tmp_path / "none.tgz", {}))
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(SubmissionFormatError, match="not a valid zip"):
        read_submission(tmp_path / "broken.zip")


def test_file_type_missing_file_and_binary(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text(GOOD)
    with pytest.raises(SubmissionFormatError, match="unsupported file type"):
        read_submission(tmp_path / "s.csv")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_submission(tmp_path / "nope.txt")
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SubmissionFormatError, match="not a text file"):
        read_submission(tmp_path / "b.txt")


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 50
    arr = np.column_stack([rng.integers(1, 5, n), np.arange(n), rng.integers(1, 100, n), rng.integers(0, 1000, (n, 2)),
                           rng.integers(1, 300, (n, 2)), -np.ones((n, 2), np.int64)])
    for name in ("out.txt", "out.zip"):
        path = write_submission(tmp_path / name, arr)
        back = read_submission(path)
        np.testing.assert_array_equal(back.to_array(), arr.astype(np.float64))
    assert (tmp_path / "out.txt").read_text().splitlines()[0].count(" ") == 8


def test_write_refuses_bad_rows(tmp_path: Path) -> None:
    with pytest.raises(SubmissionFormatError, match="width 0"):
        write_submission(tmp_path / "x.txt", [[1, 1, 1, 0, 0, 0, 5, -1, -1]])
    with pytest.raises(SubmissionFormatError, match="must hold integers"):
        SubmissionRows([1], [1], [1], [[0.5, 0, 5, 5]])
