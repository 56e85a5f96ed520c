"""Video access: header info, sequential and random frame reads, and the promised errors."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from mct.data.video import VideoError, iter_frames, iter_selected_frames, read_frames, video_info
from tests.helpers import frame_colour, write_video


def grey(image: np.ndarray) -> int:
    """The flat grey level of a frame written by write_video (JPEG rounding tolerated)."""
    return int(round(float(image.mean())))


def which_frame(image: np.ndarray) -> int:
    """Frame k of write_video is grey 40 k (+- a few levels after MJPG)."""
    return int(round(grey(image) / 40))


def test_video_info(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", num_frames=2, fps=8.0, size=(16, 12))
    fps, num_frames, width, height = video_info(path)
    assert (fps, num_frames, width, height) == (8.0, 2, 16, 12)


def test_iter_frames_all(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", num_frames=2)
    got = list(iter_frames(path))
    # frame 1 is grey 40, frame 2 grey 80: numbers are 1-based and frames in order
    assert [f for f, _ in got] == [1, 2]
    assert [which_frame(img) for _, img in got] == [1, 2]
    image = got[0][1]
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    assert abs(grey(image) - frame_colour(1)) <= 3


def test_iter_frames_start_stop_step(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", num_frames=6)
    assert [(f, which_frame(i)) for f, i in iter_frames(path, start=2, stop=5)] == [(2, 2), (3, 3), (4, 4)]
    assert [(f, which_frame(i)) for f, i in iter_frames(path, start=1, step=2)] == [(1, 1), (3, 3), (5, 5)]
    # stop beyond the end: reads to the end without error
    assert [f for f, _ in iter_frames(path, start=5, stop=100)] == [5, 6]
    # start far away forces a seek (max_grab_gap=0); the frame must still be the right one
    assert [(f, which_frame(i)) for f, i in iter_frames(path, start=5, max_grab_gap=0)] == [(5, 5), (6, 6)]


def test_read_frames_random_access(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", num_frames=6)
    for gap in (0, 60):  # always seek / never seek: same frames
        frames = read_frames(path, [5, 2, 5, 1], max_grab_gap=gap)
        assert sorted(frames) == [1, 2, 5]
        assert {f: which_frame(i) for f, i in frames.items()} == {1: 1, 2: 2, 5: 5}
    assert read_frames(path, []) == {}
    # the generator form: increasing order, each frame once
    assert [(f, which_frame(i)) for f, i in iter_selected_frames(path, [6, 3, 3])] == [(3, 3), (6, 6)]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing.avi"
    with pytest.raises(FileNotFoundError, match=re.escape(f"{path}: video not found")):
        video_info(path)
    with pytest.raises(FileNotFoundError, match=re.escape(f"{path}: video not found")):
        next(iter_frames(path))
    with pytest.raises(FileNotFoundError, match=re.escape(f"{path}: video not found")):
        read_frames(path, [1])


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.avi"
    path.write_bytes(b"this is not a video" * 20)
    with pytest.raises(VideoError, match=re.escape(f"{path}: OpenCV cannot open this video")):
        video_info(path)
    with pytest.raises(VideoError, match=re.escape(f"{path}: OpenCV cannot open this video")):
        list(iter_frames(path))


def test_video_without_frames(tmp_path: Path) -> None:
    path = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (16, 16))
    writer.release()  # a header, no frame
    with pytest.raises(VideoError, match=re.escape(f"{path}: the video yields no frames")):
        list(iter_frames(path))


def test_truncated_video_names_the_frame(tmp_path: Path) -> None:
    # six frames of noise (so each JPEG is large), then cut the file in half: the header still
    # says 6 frames, the stream ends early
    path = tmp_path / "v.avi"
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 64))
    for _ in range(6):
        writer.write(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=re.escape(f"{path}: frame 4: could not be decoded (the header says 6 frames)")):
        list(iter_frames(path))
    with pytest.raises(VideoError, match=re.escape(f"{path}: frame 4: could not be decoded")):
        read_frames(path, [1, 4])
    # strict=False: the readable frames, then a warning and a clean stop
    assert [f for f, _ in iter_frames(path, strict=False)] == [1, 2, 3]


def test_frames_out_of_range(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", num_frames=2)
    with pytest.raises(VideoError, match=re.escape(f"{path}: frame 3: is past the end of the video")):
        read_frames(path, [1, 3])
    with pytest.raises(VideoError, match=re.escape(f"{path}: frame 0: frames are 1-based")):
        read_frames(path, [0])
    with pytest.raises(VideoError, match=re.escape(f"{path}: frame 5: the start frame is past the end")):
        list(iter_frames(path, start=5))
    with pytest.raises(ValueError, match="start must be >= 1"):
        list(iter_frames(path, start=0))
