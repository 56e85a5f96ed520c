"""Frame access to camera videos (``vdo.avi``) through OpenCV.

Frames are numbered from 1 (AI City convention) and returned as BGR ``uint8 (H, W, 3)``
arrays, as cv2 decodes them. Every failure names the file: a missing file, a file cv2
cannot open, a video that yields no frame, and a frame that cannot be decoded (with its
number).

Seeking: OpenCV's ``CAP_PROP_POS_FRAMES`` seek restarts decoding from the previous key
frame, so skipping a few frames with ``grab()`` (demux + decode, no colour conversion) is
cheaper than a seek. Readers seek only when the gap to the next wanted frame is larger than
``max_grab_gap`` frames, and check that the seek landed where asked; if not, they fall back
to grabbing from where they are.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import cv2
import numpy as np

__all__ = ["VideoError", "VideoInfo", "video_info", "iter_frames", "iter_selected_frames", "read_frames", "MAX_GRAB_GAP"]

log = logging.getLogger(__name__)

#: seek instead of grabbing when more than this many frames must be skipped
#: (a seek costs a key-frame restart; at typical GOP sizes of 10-60 frames, grabbing
#: fewer frames than this is not slower than seeking).
MAX_GRAB_GAP = 60


class VideoError(ValueError):
    """A video cannot be opened or decoded; the message names the file (and frame)."""


class VideoInfo(NamedTuple):
    """What the container header says: ``fps`` (frames/s), ``num_frames``, ``width``, ``height`` (pixels)."""

    fps: float
    num_frames: int
    width: int
    height: int


def _open(path: str | Path) -> tuple[Path, cv2.VideoCapture]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: video not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{path}: OpenCV cannot open this video (unsupported codec or container, or a corrupt file)")
    return path, cap


def video_info(path: str | Path) -> VideoInfo:
    """``(fps, num_frames, width, height)`` from the video header.

    ``num_frames`` is the header's count (exact for AVI files with an index, an estimate for
    some other containers). Raises :class:`FileNotFoundError` / :class:`VideoError` for a
    missing or unreadable file, and :class:`VideoError` when the header has no frame size.
    """
    path, cap = _open(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        num_frames = int(round(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()
    if width <= 0 or height <= 0:
        raise VideoError(f"{path}: the video header has no frame size (width {width}, height {height})")
    return VideoInfo(fps if np.isfinite(fps) else 0.0, max(num_frames, 0), width, height)


class _Reader:
    """Sequential reader that knows which 1-based frame comes next."""

    def __init__(self, path: str | Path, max_grab_gap: int) -> None:
        self.path, self.cap = _open(path)
        self.next_frame = 1  # the frame the next grab() returns
        self.header_frames = max(int(round(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))), 0)
        self.max_grab_gap = max_grab_gap
        self.seeks = 0
        self.grabs = 0

    def close(self) -> None:
        self.cap.release()

    def _seek(self, frame: int) -> None:
        if self.cap.set(cv2.CAP_PROP_POS_FRAMES, frame - 1) and int(self.cap.get(cv2.CAP_PROP_POS_FRAMES)) == frame - 1:
            self.next_frame = frame
            self.seeks += 1
            return
        # the seek failed or landed elsewhere: reopen and grab forward from the start
        log.debug("%s: seek to frame %d not exact, reading forward", self.path, frame)
        self.cap.release()
        self.path, self.cap = _open(self.path)
        self.next_frame = 1

    def read(self, frame: int) -> np.ndarray | None:
        """Frame ``frame`` (>= current position), or ``None`` at the end of the stream."""
        if frame < self.next_frame or frame - self.next_frame > self.max_grab_gap:
            self._seek(frame)
        while self.next_frame < frame:
            if not self.cap.grab():
                return None
            self.grabs += 1
            self.next_frame += 1
        ok, image = self.cap.read()
        if not ok or image is None:
            return None
        self.next_frame += 1
        return image

    def failure(self, frame: int, what: str) -> VideoError:
        return VideoError(f"{self.path}: frame {frame}: {what} (the header says {self.header_frames} frames)")


def iter_frames(
    path: str | Path,
    start: int = 1,
    stop: int | None = None,
    step: int = 1,
    strict: bool = True,
    max_grab_gap: int = MAX_GRAB_GAP,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_number, bgr)`` for ``frame_number in range(start, stop, step)``.

    Args:
        path: the video file.
        start: first 1-based frame number.
        stop: end, exclusive (like ``range``); ``None`` = to the end of the video.
        step: yield every ``step``-th frame (the others are grabbed, not converted).
        strict: when the stream ends before the frame count in the header (or before
            ``stop``, when given and within the header's count), raise :class:`VideoError`
            naming the frame; when False, log a warning and stop.

    Yields:
        ``(frame_number, bgr)`` with ``bgr`` ``(H, W, 3) uint8``.

    Raises:
        FileNotFoundError: the file does not exist.
        VideoError: cv2 cannot open it, it yields no frame, or a frame fails to decode.
    """
    if start < 1:
        raise ValueError(f"{path}: start must be >= 1 (frames are 1-based), got {start}")
    if step < 1:
        raise ValueError(f"{path}: step must be >= 1, got {step}")
    reader = _Reader(path, max_grab_gap)
    try:
        frame = start
        yielded = 0
        while stop is None or frame < stop:
            image = reader.read(frame)
            if image is None:
                if yielded == 0 and frame == 1:
                    raise VideoError(f"{reader.path}: the video yields no frames")
                if frame <= reader.header_frames:
                    if strict or yielded == 0:
                        raise reader.failure(frame, "could not be decoded")
                    log.warning(
                        "%s: frame %d could not be decoded; stopping (the header says %d frames)",
                        reader.path, frame, reader.header_frames,
                    )
                elif yielded == 0:
                    raise reader.failure(frame, "the start frame is past the end of the video")
                break
            yield frame, image
            yielded += 1
            frame += step
    finally:
        reader.close()


def iter_selected_frames(
    path: str | Path, frame_numbers: Iterable[int], max_grab_gap: int = MAX_GRAB_GAP
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_number, bgr)`` for the distinct given frame numbers, in increasing order.

    One pass over the video, seeking only across gaps larger than ``max_grab_gap``; only one
    frame is held at a time (use this instead of :func:`read_frames` for many frames).

    Raises:
        FileNotFoundError, VideoError: as :func:`iter_frames`; a frame < 1 or past the end
        of the video is a :class:`VideoError` naming the file and frame.
    """
    wanted = sorted(set(int(f) for f in frame_numbers))
    if not wanted:
        return
    if wanted[0] < 1:
        raise VideoError(f"{path}: frame {wanted[0]}: frames are 1-based")
    reader = _Reader(path, max_grab_gap)
    try:
        for frame in wanted:
            image = reader.read(frame)
            if image is None:
                what = "could not be decoded" if frame <= reader.header_frames else "is past the end of the video"
                raise reader.failure(frame, what)
            yield frame, image
        log.debug("%s: read %d frames with %d seeks and %d grabs", reader.path, len(wanted), reader.seeks, reader.grabs)
    finally:
        reader.close()


def read_frames(
    path: str | Path, frame_numbers: Iterable[int], max_grab_gap: int = MAX_GRAB_GAP
) -> dict[int, np.ndarray]:
    """Random access: ``{frame_number: bgr}`` for the given 1-based frame numbers.

    The numbers may come in any order and repeat; they are read in sorted order with one
    pass (:func:`iter_selected_frames`), seeking only across gaps larger than
    ``max_grab_gap``. Every array is ``(H, W, 3) uint8`` BGR; all are held in memory.

    Raises:
        FileNotFoundError, VideoError: as :func:`iter_frames`; a frame < 1 or past the end
        of the video is a :class:`VideoError` naming the file and frame.
    """
    return dict(iter_selected_frames(path, frame_numbers, max_grab_gap))
