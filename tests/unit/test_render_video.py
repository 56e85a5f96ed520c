"""`mct render`'s video file: H.264 in MP4 (browsers play it), OpenCV's MPEG-4 Part 2 only
as a logged fallback. Checked by decoding the files back."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from mct.run import render


def _frames(n: int, height: int, width: int) -> list[np.ndarray]:
    """Frame k: grey level 20 k with a white bar at column 4 k (BGR uint8)."""
    frames = []
    for k in range(n):
        image = np.full((height, width, 3), 20 * k, np.uint8)
        image[:, 4 * k : 4 * k + 4] = 255
        frames.append(image)
    return frames


def _write(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> str:
    writer = render.open_video_writer(path, fps, frames[0].shape[1], frames[0].shape[0])
    for image in frames:
        writer.write(image)
    writer.close()
    return writer.codec


def _decode(path: Path) -> tuple[str, float, list[np.ndarray]]:
    """(codec name, frame rate, frames as BGR) as PyAV's decoder reads the file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
        return stream.codec_context.name, float(stream.average_rate), frames


def test_the_video_is_h264_in_mp4_and_decodes_to_the_frames_written(tmp_path):
    frames = _frames(8, 48, 64)
    assert _write(tmp_path / "c001.mp4", frames, fps=10.0) == "h264"
    codec, fps, decoded = _decode(tmp_path / "c001.mp4")
    assert (codec, fps, len(decoded)) == ("h264", 10.0, 8)
    for k, (got, want) in enumerate(zip(decoded, frames)):
        # lossy, but each frame is the one written: its grey level and where its bar is
        assert abs(float(got[:, 40:].mean()) - float(want[:, 40:].mean())) < 4, k
        assert int(np.argmax(got[24, :, 1])) in range(4 * k - 1, 4 * k + 5), k
    # OpenCV, which reads the run's own videos, reads it too
    cap = cv2.VideoCapture(str(tmp_path / "c001.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    cap.release()


def test_odd_frame_sizes_lose_their_last_row_and_column(tmp_path):
    # 4:2:0 chroma needs even sizes
    _write(tmp_path / "odd.mp4", _frames(3, 47, 63))
    _, _, decoded = _decode(tmp_path / "odd.mp4")
    assert decoded[0].shape == (46, 62, 3)


def test_without_the_h264_encoder_the_video_is_mpeg4_and_says_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(render, "H264_ENCODER", "no_such_encoder")
    with caplog.at_level(logging.WARNING, logger="mct.run.render"):
        assert _write(tmp_path / "c001.mp4", _frames(5, 48, 64)) == "mpeg4"
    assert "H.264 encoder no_such_encoder not available" in caplog.text
    assert "MPEG-4 Part 2" in caplog.text
    codec, _, decoded = _decode(tmp_path / "c001.mp4")
    assert codec == "mpeg4" and len(decoded) == 5


@pytest.mark.parametrize("fps", [12.5, 29.97])
def test_fractional_frame_rates_are_kept(tmp_path, fps):
    _write(tmp_path / "v.mp4", _frames(4, 32, 32), fps=fps)
    assert _decode(tmp_path / "v.mp4")[1] == pytest.approx(fps, abs=1e-3)
