"""``mct render``: a camera's video annotated with global ids, and an id-over-time overview.

Reads a finished run folder (``config.yaml``, ``cameras/<S>_<cam>/<tracklets>``,
``association/assignment.csv``) and writes into ``<run>/render/``:

* ``<S>_<cam>.mp4``: every frame with each tracklet box drawn in the colour of its global
  id and labelled with it (local ids, prefixed ``L``, when the run has no association).
  H.264 (libx264 from the FFmpeg that PyAV's wheels ship, 4:2:0, ``faststart``), which
  browsers play; where that encoder cannot be opened, OpenCV's MPEG-4 Part 2 (``mp4v``),
  which most browsers do not, with a warning;
* ``<S>_overview.png``: one panel per camera of the scenario, global id against scenario
  time (seconds), one bar per tracklet.

Colours are a fixed function of the global id (golden-ratio hue steps), so the same
vehicle has the same colour in every camera and every render.
"""

from __future__ import annotations

import colorsys
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from mct.run import run_folder as rf
from mct.run.stages import PipelineStages
from mct.types import Camera, Tracklet

log = logging.getLogger(__name__)

__all__ = [
    "id_colour_bgr", "RenderResult", "render_camera", "render_overview", "load_run_config", "open_video_writer",
    "VideoWriter",
]

#: 1 / golden ratio: successive ids get well separated hues.
_HUE_STEP = 0.6180339887


def id_colour_bgr(global_id: int) -> tuple[int, int, int]:
    """A stable, saturated BGR colour for an id (``uint8`` components)."""
    h = (int(global_id) * _HUE_STEP) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


@dataclass(frozen=True)
class RenderResult:
    video: Path | None
    overview: Path
    frames: int
    #: codec of the video: "h264", or "mpeg4" (the fallback); None without a video
    codec: str | None = None


# ---------------------------------------------------------------------------- video files
#: the H.264 encoder of PyAV's bundled FFmpeg
H264_ENCODER = "libx264"
#: libx264 quality (constant rate factor: 0 lossless .. 51 worst; 23 is x264's default)
#: and speed preset; boxes and small labels stay legible at 20
H264_OPTIONS = {"crf": "20", "preset": "veryfast"}


class VideoWriter:
    """Writes BGR frames ``(H, W, 3) uint8`` to a video file; :meth:`close` finishes it."""

    codec: str

    def write(self, image_bgr: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _H264Writer(VideoWriter):
    """H.264 in MP4 through PyAV. 4:2:0 needs even sizes: an odd last row/column is dropped."""

    codec = "h264"

    def __init__(self, path: Path, fps: float, width: int, height: int) -> None:
        import av

        self._size = (width - width % 2, height - height % 2)
        self._container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        try:
            self._stream = self._container.add_stream(H264_ENCODER, rate=Fraction(fps).limit_denominator(1001))
            self._stream.width, self._stream.height = self._size
            self._stream.pix_fmt = "yuv420p"  # what browsers decode
            self._stream.options = dict(H264_OPTIONS)
            self._stream.codec_context.open()  # fails here, not at the first frame, when the encoder is missing
        except BaseException:
            self._container.close()
            raise
        self._frame_cls = av.VideoFrame

    def write(self, image_bgr: np.ndarray) -> None:
        w, h = self._size
        frame = self._frame_cls.from_ndarray(np.ascontiguousarray(image_bgr[:h, :w]), format="bgr24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self._stream.encode(None):  # flush the encoder's delayed frames
                self._container.mux(packet)
        finally:
            self._container.close()


class _Mp4vWriter(VideoWriter):
    """MPEG-4 Part 2 through OpenCV: the fallback (most browsers do not play it)."""

    codec = "mpeg4"

    def __init__(self, path: Path, fps: float, width: int, height: int) -> None:
        import cv2

        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
        if not self._writer.isOpened():
            raise ValueError(f"{path}: OpenCV cannot write an mp4v video here")

    def write(self, image_bgr: np.ndarray) -> None:
        self._writer.write(image_bgr)

    def close(self) -> None:
        self._writer.release()


def open_video_writer(path: Path, fps: float, width: int, height: int, name: str | None = None) -> VideoWriter:
    """An H.264 MP4 writer for ``path`` (``fps`` frames per second, frames ``width`` x ``height``
    pixels), else OpenCV's MPEG-4 Part 2 with a warning. ``name`` is the file named in the
    warning (``path`` may be a temporary name)."""
    try:
        return _H264Writer(path, fps, width, height)
    except Exception as exc:  # noqa: BLE001 - no PyAV, no libx264, or it cannot open: same fallback
        log.warning("%s: H.264 encoder %s not available (%s: %s); writing MPEG-4 Part 2 with OpenCV, "
                    "which most browsers do not play", name or path, H264_ENCODER, type(exc).__name__, exc)
    Path(path).unlink(missing_ok=True)
    return _Mp4vWriter(path, fps, width, height)


def load_run_config(run_dir: Path) -> Any:
    from mct.config import Config, validate

    path = run_dir / "config.yaml"
    if not path.is_file():
        if (run_dir / "variants").is_dir():
            names = ", ".join(sorted(p.name for p in (run_dir / "variants").iterdir()))
            raise FileNotFoundError(f"{run_dir} is a sweep: render one of its variants, {run_dir}/variants/<one of: {names}>")
        raise FileNotFoundError(f"{path}: not a run folder (no config.yaml)")
    return validate(yaml.safe_load(path.read_text()) or {}, Config, str(path))


def _find_tracklets_file(cam_dir: Path) -> Path | None:
    files = sorted(p for p in cam_dir.glob("tracklets.*") if rf.TMP_MARK not in p.name)
    return files[0] if files else None


def _global_ids(run_dir: Path) -> Any:
    from mct.run.pipeline import ASSIGNMENT_FILE, load_assignment

    path = run_dir / "association" / ASSIGNMENT_FILE
    if not path.is_file():
        log.warning("%s: no association in this run; showing local track ids", path)
        return None
    return load_assignment(path)


def _label(assignment: Any, t: Tracklet) -> tuple[int, str]:
    if assignment is None:
        return t.track_id, f"L{t.track_id}"
    gid = assignment.global_id(t.scenario, t.camera_id, t.track_id)
    return (gid, str(gid)) if gid is not None else (-t.track_id, f"L{t.track_id}")


def render_overview(
    run_dir: Path, scenario: str, cameras: Sequence[Camera], out: Path, stages: PipelineStages | None = None
) -> Path:
    """The id-over-time PNG of every camera of ``scenario`` that has tracklets in the run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = stages or PipelineStages()
    assignment = _global_ids(run_dir)
    folder = rf.RunFolder(run_dir)
    panels = []
    for cam in sorted((c for c in cameras if c.scenario == scenario), key=lambda c: c.camera_id):
        path = _find_tracklets_file(folder.camera_dir(*cam.key))
        if path is not None:
            panels.append((cam, stages.load_tracklets(path)))
    if not panels:
        raise FileNotFoundError(f"{run_dir}: no camera of scenario {scenario} has tracklets")
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 1.6 + 1.4 * len(panels)), sharex=True, squeeze=False)
    for ax, (cam, tracklets) in zip(axes[:, 0], panels):
        for t in tracklets:
            if len(t) == 0:
                continue
            gid, label = _label(assignment, t)
            b, g, r = id_colour_bgr(gid)
            t0, t1 = cam.frame_time(t.first_frame), cam.frame_time(t.last_frame)
            ax.plot([t0, t1], [gid, gid], color=(r / 255, g / 255, b / 255), linewidth=4, solid_capstyle="butt")
            ax.annotate(label, (float(t0), gid), fontsize=6, xytext=(0, 3), textcoords="offset points")
        ax.set_ylabel(f"{cam.camera_id}\nglobal id")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(f"{scenario} time (s)")
    fig.suptitle(f"{run_dir.name}: global ids over time, scenario {scenario}")
    fig.tight_layout()
    with rf.atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return out


def render_camera(
    run_dir: str | Path,
    camera_id: str,
    scenario: str | None = None,
    out_dir: str | Path | None = None,
    max_frames: int | None = None,
    stages: PipelineStages | None = None,
) -> RenderResult:
    """Render one camera of a finished run (see the module docstring)."""
    import cv2

    stages = stages or PipelineStages()
    run_dir = Path(run_dir).resolve()
    cfg = load_run_config(run_dir)
    cameras, _, _, _ = stages.load_dataset(cfg.dataset)
    matches = [c for c in cameras if c.camera_id == camera_id and (scenario is None or c.scenario == scenario)]
    if not matches:
        have = ", ".join(f"{c.scenario}/{c.camera_id}" for c in cameras) or "none"
        raise ValueError(f"{run_dir}: no camera {scenario + '/' if scenario else ''}{camera_id} in the run (have: {have})")
    if len(matches) > 1:
        raise ValueError(f"{run_dir}: camera {camera_id} is in scenarios "
                         f"{', '.join(c.scenario for c in matches)}: pass --scenario")
    cam = matches[0]
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "render"
    key = rf.camera_dirname(*cam.key)
    overview = render_overview(run_dir, cam.scenario, cameras, out_dir / f"{cam.scenario}_overview.png", stages)

    path = _find_tracklets_file(rf.RunFolder(run_dir).camera_dir(*cam.key))
    if path is None:
        raise FileNotFoundError(f"{run_dir}/cameras/{key}: no tracklets (did this camera fail? see summary.json)")
    tracklets = stages.load_tracklets(path)
    assignment = _global_ids(run_dir)
    by_frame: dict[int, list[tuple[np.ndarray, int, str]]] = {}
    for t in tracklets:
        gid, label = _label(assignment, t)
        for frame, xyxy in zip(t.frames.tolist(), t.xyxy):
            by_frame.setdefault(frame, []).append((xyxy, gid, label))

    if cam.video_path is None or not Path(cam.video_path).is_file():
        log.warning("%s: no video for %s; wrote only the overview", cam.video_path, key)
        return RenderResult(None, overview, 0)
    stop = (max_frames + 1) if max_frames else None
    video_out = out_dir / f"{key}.mp4"
    frames = 0
    codec = None
    with rf.atomic_path(video_out) as tmp:
        writer = None
        try:
            for number, image in stages.iter_frames(Path(cam.video_path), 1, stop):
                if writer is None:
                    h, w = image.shape[:2]
                    writer = open_video_writer(tmp, float(cam.fps), w, h, name=str(video_out))
                    codec = writer.codec
                thick = max(1, image.shape[0] // 360)
                for xyxy, gid, label in by_frame.get(number, ()):
                    colour = id_colour_bgr(gid)
                    x1, y1, x2, y2 = (int(round(v)) for v in xyxy)
                    cv2.rectangle(image, (x1, y1), (x2, y2), colour, thick)
                    cv2.putText(image, label, (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, colour, thick)
                cv2.putText(image, f"{key} frame {number}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
                writer.write(image)
                frames += 1
        finally:
            if writer is not None:
                writer.close()
    log.info("wrote %s (%d frames, %s) and %s", video_out, frames, codec, overview)
    return RenderResult(video_out, overview, frames, codec)
