"""Generate splits of the synthetic world and write them in the AI City layout.

Per split (one scenario each, e.g. train/S01)::

    <split>/<S>/<cam>/vdo.avi            the video (``video_codec``)
    <split>/<S>/<cam>/roi.jpg            255 where annotated vehicles can be
    <split>/<S>/<cam>/calibration.txt    ground (metres) -> image homography, intrinsics
    <split>/<S>/<cam>/gt/gt.txt          frame,id,left,top,width,height,1,-1,-1,-1
    <split>/<S>/<cam>/det/det_sim.txt    simulated detector: frame,-1,l,t,w,h,score,-1,-1,-1
    <split>/<S>/<cam>/segm/coco_instances.json  COCO instance masks (RLE) of every visible vehicle
    <split>/<S>/<cam>/synth_boxes.txt    every rendered box: frame,id,l,t,w,h,visible_fraction,annotated
    cam_timestamp/<S>.txt, cam_framenum/<S>.txt, eval/ground_truth_<split>.txt
    synth/<S>.json                       cameras, frame times, vehicles and their looks

Annotation rule: a rendered vehicle is annotated when its visible pixels are at least
``annotation.min_visible_fraction`` of its unoccluded silhouette inside the frame, its
visible box is at least ``min_box_width_px`` x ``min_box_height_px``, and the box corners
lie inside the ROI; the box is tight to its visible pixels. With
``gt_only_multi_camera`` (CityFlowV2's rule) only vehicles annotated in at least two
cameras of the scenario are kept in gt.txt and the evaluation file.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from mct.data.calibration import write_calibration
from mct.data.mot import MotRows, write_mot
from mct.data.synth.cameras import PinholeCamera, make_cameras
from mct.data.synth.config import LightingConfig, SynthConfig
from mct.data.synth.render import (
    Background,
    Lighting,
    RenderedVehicle,
    draw_lighting,
    make_background,
    make_clutter,
    make_noise_bank,
    render_frame,
    sensor_effects,
    sun_vector,
)
from mct.data.synth.vehicles import COCO_CATEGORY, build_mesh
from mct.data.synth.world import World, build_network, simulate
from mct.types import camera_number

__all__ = ["generate", "build_world", "camera_overlap", "SplitSummary", "frame_times", "rle_from_crop", "visible_box"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[int], None]


@dataclass
class SplitSummary:
    """What one split produced (for the CLI and tests)."""

    split: str
    scenario: str
    cameras: int
    frames: int
    vehicles_in_gt: int
    boxes_in_gt: int
    lookalike_fraction: float  # vehicles in gt sharing type and colour with another one
    occluded_fraction: float  # gt boxes with visible fraction < 0.7
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def frame_times(cam: PinholeCamera, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Scenario time (s) of each written frame; dropped capture instants are skipped.

    ``round(duration * fps)`` capture instants at ``offset + k / fps``; each but the first is
    dropped with probability ``drop_frame_prob`` (the video then jumps in time).
    """
    n = max(1, int(round(duration_s * cam.fps)))
    keep = rng.random(n) >= cam.drop_frame_prob
    keep[0] = True
    return cam.time_offset_s + np.flatnonzero(keep) / cam.fps


def rle_from_crop(mask: np.ndarray, x0: int, y0: int, height: int, width: int) -> list[int]:
    """COCO uncompressed RLE counts of a full ``height x width`` mask that is zero except for
    the crop ``mask`` (h, w) bool placed at column ``x0``, row ``y0`` (column-major runs,
    starting with a run of zeros)."""
    h, w = mask.shape
    cols = np.zeros((w, height), np.uint8)
    cols[:, y0 : y0 + h] = mask.T
    v = cols.ravel()
    change = np.flatnonzero(v[1:] != v[:-1]) + 1
    bounds = np.concatenate([[0], change, [len(v)]])
    runs = np.diff(bounds).tolist()
    if v[0] == 1:
        runs.insert(0, 0)
    runs[0] += x0 * height
    tail = (width - x0 - w) * height
    if tail:
        if v[-1] == 0:
            runs[-1] += tail
        else:
            runs.append(tail)
    return [int(r) for r in runs]


def visible_box(ids: np.ndarray, rv: RenderedVehicle) -> tuple[tuple[int, int, int, int], float, np.ndarray] | None:
    """The box tight to a rendered vehicle's visible pixels in the id map ``ids`` (H, W).

    Returns ``((left, top, width, height) pixels, visible fraction, mask (height, width) bool
    inside that box)``, or ``None`` when no pixel of it is visible.
    """
    x0, y0, x1, y1 = rv.xyxy_hint
    crop = ids[y0:y1, x0:x1] == rv.draw_id
    if rv.full_pixels == 0 or not crop.any():
        return None
    rows = np.flatnonzero(crop.any(axis=1))
    cols = np.flatnonzero(crop.any(axis=0))
    sub = crop[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    box = (x0 + int(cols[0]), y0 + int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
    return box, min(1.0, int(np.count_nonzero(sub)) / rv.full_pixels), sub


def _fmt_time(t: float) -> str:
    s = f"{t:.3f}".rstrip("0").rstrip(".")
    return s or "0"


class _CameraWriter:
    """Renders and writes one camera of one split."""

    def __init__(self, cfg: SynthConfig, cam: PinholeCamera, cam_index: int, bg: Background, noise, folder: Path, seed: int):
        self.cfg, self.cam, self.bg, self.noise, self.folder = cfg, cam, bg, noise, folder
        self.rng = np.random.default_rng([seed, cam_index, 11])
        self.boxes: list[tuple] = []  # (frame, vid, l, t, w, h, vis, annotated)
        self.dets: list[tuple] = []  # (frame, l, t, w, h, score)
        self.coco_images: list[dict] = []
        self.coco_anns: list[dict] = []

    def run(
        self, world: World, meshes, times: np.ndarray, sun: np.ndarray, progress: ProgressFn | None,
        lighting: Lighting | None = None,
    ) -> None:
        cam, cfg = self.cam, self.cfg
        w, h = cam.frame_size
        self.folder.mkdir(parents=True, exist_ok=True)
        video = self.folder / "vdo.avi"
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*cfg.video_codec), cam.fps, (w, h))
        if not writer.isOpened():
            raise ValueError(f"video_codec: cv2 cannot write {cfg.video_codec!r} to {video}; use 'MJPG' or 'mp4v'")
        ann = cfg.annotation
        frames_dir = self.folder / "segm" / "frames"
        try:
            for fi, t in enumerate(times, start=1):
                idx, xy, hd = world.states_at(float(t))
                frame, ids, rendered = render_frame(cam, self.bg, meshes, idx, xy, hd, sun, lighting)
                img = sensor_effects(frame, cam, self.noise, int(self.rng.integers(1 << 30)))
                writer.write(img)
                want_coco = ann.coco_masks and (fi - 1) % ann.coco_frame_stride == 0
                self._annotate(fi, world, ids, rendered, want_coco)
                self._detect(fi)
                if want_coco and ann.coco_write_frames:
                    frames_dir.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(frames_dir / f"{fi:06d}.jpg"), img)
                if progress is not None:
                    progress(1)
        finally:
            writer.release()

    def _annotate(self, fi: int, world: World, ids: np.ndarray, rendered, want_coco: bool) -> None:
        ann = self.cfg.annotation
        h_img, w_img = ids.shape
        roi = self.bg.roi
        self._frame_visible: list[tuple] = []
        if want_coco:
            self.coco_images.append({"id": fi, "file_name": f"frames/{fi:06d}.jpg", "width": w_img, "height": h_img, "frame_id": fi})
        for rv in rendered:
            found = visible_box(ids, rv)
            if found is None:
                continue
            (left, top, bw, bh), vis, sub = found
            n_vis = int(np.count_nonzero(sub))
            vehicle = world.vehicles[rv.index]
            corners_in_roi = all(
                roi[y, x] == 255 for x, y in ((left, top), (left + bw - 1, top), (left, top + bh - 1), (left + bw - 1, top + bh - 1))
            )
            annotated = (
                vis >= ann.min_visible_fraction and bw >= ann.min_box_width_px and bh >= ann.min_box_height_px and corners_in_roi
            )
            self.boxes.append((fi, vehicle.vehicle_id, left, top, bw, bh, round(vis, 4), int(annotated)))
            self._frame_visible.append((left, top, bw, bh, vis))
            if want_coco and bw >= 4 and bh >= 4:
                counts = rle_from_crop(sub, left, top, h_img, w_img)
                self.coco_anns.append({
                    "id": len(self.coco_anns) + 1,
                    "image_id": fi,
                    "category_id": COCO_CATEGORY[vehicle.appearance.vehicle_type],
                    "bbox": [left, top, bw, bh],
                    "area": n_vis,
                    "segmentation": {"size": [h_img, w_img], "counts": counts},
                    "iscrowd": 0,
                    "vehicle_id": vehicle.vehicle_id,
                    "visible_fraction": round(vis, 4),
                })

    def _detect(self, fi: int) -> None:
        d = self.cfg.detector_sim
        rng = self.rng
        w_img, h_img = self.cam.frame_size
        for left, top, bw, bh, vis in self._frame_visible:
            p_vis = 1.0 if d.occlusion_miss_visible_fraction <= 0 else min(1.0, vis / d.occlusion_miss_visible_fraction)
            p_size = 1.0 if d.small_miss_height_px <= 0 else min(1.0, bh / d.small_miss_height_px)
            if rng.random() >= (1 - d.miss_rate) * p_vis * p_size:
                continue
            j = rng.normal(0, d.jitter_frac, size=4) * np.array([bw, bh, bw, bh])
            x1, y1 = left + j[0], top + j[1]
            x2, y2 = left + bw + j[2], top + bh + j[3]
            x1, y1 = max(0.0, x1), max(0.0, y1)
            x2, y2 = min(float(w_img), x2), min(float(h_img), y2)
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            score = float(rng.beta(*d.tp_score_beta)) * (0.7 + 0.3 * vis)
            if score >= d.min_score:
                self.dets.append((fi, x1, y1, x2 - x1, y2 - y1, score))
        for _ in range(int(rng.poisson(d.false_positives_per_frame))):
            ys, xs = np.nonzero(self.bg.roi)
            if len(xs) == 0:
                break
            k = int(rng.integers(len(xs)))
            bh = float(rng.uniform(0.04, 0.2)) * h_img
            bw = bh * float(rng.uniform(0.8, 2.0))
            x1 = float(np.clip(xs[k] - bw / 2, 0, w_img - 2))
            y1 = float(np.clip(ys[k] - bh, 0, h_img - 2))
            bw, bh = min(bw, w_img - x1), min(bh, h_img - y1)
            score = float(rng.beta(*d.fp_score_beta))
            if score >= d.min_score:
                self.dets.append((fi, x1, y1, bw, bh, score))


def _write_rows(path: Path, rows: list[tuple], gt: bool) -> None:
    if not rows:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        return
    a = np.asarray(rows, dtype=np.float64)
    if gt:
        mot = MotRows.from_arrays(a[:, 0], a[:, 1], a[:, 2:6], conf=1.0)
    else:
        mot = MotRows.from_arrays(a[:, 0], None, a[:, 1:5], conf=a[:, 5])
    write_mot(path, mot, decimals=2)


def build_world(cfg: SynthConfig, split: str, net=None, cams: Sequence[PinholeCamera] | None = None) -> World:
    """Simulate the traffic of ``split`` (deterministic: the split's seed)."""
    s = cfg.splits[split]
    net = build_network(cfg.road) if net is None else net
    cams = make_cameras(cfg) if cams is None else cams
    rng = np.random.default_rng([s.seed, 0])
    t_end = max(c.time_offset_s + s.duration_s for c in cams) + 1.0
    world = simulate(
        net, cfg.traffic, rng, 0.0, t_end, s.first_vehicle_id, s.traffic_scale,
        look=cfg.vehicle_look, look_rng=np.random.default_rng([s.seed, 9]),
    )
    if world.vehicles and world.vehicles[-1].vehicle_id >= s.first_vehicle_id + _max_vehicles(cfg, split):
        raise ValueError(f"splits.{split}: spawned more vehicles than the id range allows; raise the next split's first_vehicle_id")
    return world


def generate(
    cfg: SynthConfig,
    out: str | Path,
    splits: Sequence[str] | None = None,
    progress: bool = True,
    timings: dict[str, float] | None = None,
    workers: int = 1,
) -> list[SplitSummary]:
    """Generate ``splits`` (default: all in ``cfg.splits``) of ``cfg`` under ``out``.

    ``timings``, when given, receives wall seconds of the phases: ``setup_s`` (backgrounds,
    ROI, noise of every camera), ``simulate_s``, ``frames_s`` (render, annotate, write) and
    ``finish_s`` (text files, masks), summed over the splits. ``workers`` > 1 renders that
    many cameras at once in forked processes (the output is the same).
    """
    import time

    from tqdm import tqdm

    timings = {} if timings is None else timings
    for key in ("setup_s", "simulate_s", "frames_s", "finish_s"):
        timings.setdefault(key, 0.0)
    t0 = time.perf_counter()

    out = Path(out)
    names = list(cfg.splits) if not splits else list(splits)
    for name in names:
        if name not in cfg.splits:
            raise ValueError(f"--splits: unknown split {name!r}; this config has {', '.join(cfg.splits)}")
    _check_id_ranges(cfg)
    net = build_network(cfg.road)
    cams = make_cameras(cfg)
    sun = sun_vector(cfg.sun_azimuth_deg, cfg.sun_elevation_deg)
    clutter = make_clutter(net, np.random.default_rng([cfg.seed, 1]), cfg.road.clutter_per_100m)
    # the light of each split; None is the demo world's fixed day (its images unchanged)
    default_light = cfg.lighting == LightingConfig()
    lightings: dict[str, Lighting | None] = {n: None if default_light else draw_lighting(cfg, n) for n in names}
    keys = list(dict.fromkeys(lightings.values()))
    backgrounds: dict[tuple[Lighting | None, str], Background] = {}
    noise_banks = {}
    setup_jobs = [
        (cam, net, clutter, sun if key is None else key.sun_array, cfg.seed * 1000 + i, key)
        for key in keys for i, cam in enumerate(cams)
    ]
    bar = tqdm(total=len(setup_jobs), desc="synth set-up", unit="camera", disable=not progress, leave=False)
    with _pool(workers, len(setup_jobs)) as pool:
        for job, bg in zip(setup_jobs, pool.imap(_background_job, setup_jobs) if pool else map(_background_job, setup_jobs)):
            backgrounds[(job[5], job[0].camera_id)] = bg
            bar.update(1)
    bar.close()
    for i, cam in enumerate(cams):
        noise_banks[cam.camera_id] = make_noise_bank(cam, np.random.default_rng([cfg.seed, i, 3]))
    timings["setup_s"] += time.perf_counter() - t0
    summaries = []
    for name in names:
        t_start = time.perf_counter()
        split = cfg.splits[name]
        scen = split.scenario
        light = lightings[name]
        split_sun = sun if light is None else light.sun_array
        if light is not None:
            log.info("%s/%s: lighting %s, sun %s, fog %s", name, scen, light.regime, np.round(light.sun, 3).tolist(), light.fog_visibility_m)
        world = build_world(cfg, name, net, cams)
        meshes = [build_mesh(v.appearance) for v in world.vehicles]
        t_sim = time.perf_counter()
        cpu_sim = time.process_time()
        timings["simulate_s"] += t_sim - t_start
        times = {c.camera_id: frame_times(c, split.duration_s, np.random.default_rng([split.seed, i, 5])) for i, c in enumerate(cams)}
        total = sum(len(t) for t in times.values())
        bar = tqdm(total=total, desc=f"synth {name}/{scen}", unit="frame", disable=not progress, leave=False)
        writers: dict[str, _CameraWriter] = {}
        jobs = [
            (cfg, cam, i, backgrounds[(light, cam.camera_id)], noise_banks[cam.camera_id], out / name / scen / cam.camera_id,
             split.seed, world, meshes, times[cam.camera_id], split_sun, light)
            for i, cam in enumerate(cams)
        ]
        try:
            with _pool(workers, len(cams)) as pool:
                if pool is None:
                    for job in jobs:
                        cw = _camera_job(job, bar.update)
                        writers[cw.cam.camera_id] = cw
                else:
                    for cw in pool.imap_unordered(_camera_job, jobs):
                        writers[cw.cam.camera_id] = cw
                        bar.update(len(times[cw.cam.camera_id]))
        finally:
            bar.close()
        t_frames = time.perf_counter()
        timings["frames_s"] += t_frames - t_sim
        # CPU seconds of this process (worker processes not included: meaningful with workers=1)
        timings["frames_cpu_s"] = timings.get("frames_cpu_s", 0.0) + time.process_time() - cpu_sim
        summaries.append(_finish_split(cfg, out, name, scen, cams, writers, world, times, light))
        timings["finish_s"] += time.perf_counter() - t_frames
        summaries[-1].seconds = time.perf_counter() - t_start
        log.info(
            "%s/%s: %d cameras, %d frames, %d vehicles in gt, %d boxes (%.0f%% look-alikes, %.0f%% boxes >=30%% occluded), %.1f s",
            name, scen, len(cams), total, summaries[-1].vehicles_in_gt, summaries[-1].boxes_in_gt,
            100 * summaries[-1].lookalike_fraction, 100 * summaries[-1].occluded_fraction, summaries[-1].seconds,
        )
    return summaries


def _pool(workers: int, jobs: int):
    """A fork-based process pool of ``min(workers, jobs)`` processes, or a no-op for one."""
    n = min(workers, jobs)
    if n <= 1:
        return contextlib.nullcontext()
    import multiprocessing

    return multiprocessing.get_context("fork").Pool(n)


def _background_job(args) -> Background:
    cam, net, clutter, sun, seed, lighting = args
    return make_background(cam, net, clutter, sun, seed=seed, lighting=lighting)


def _camera_job(args, progress: ProgressFn | None = None) -> "_CameraWriter":
    """Render and write one camera of one split (runs in a worker process or in-process)."""
    cfg, cam, i, bg, noise, folder, seed, world, meshes, times, sun, lighting = args
    cw = _CameraWriter(cfg, cam, i, bg, noise, folder, seed)
    cw.run(world, meshes, times, sun, progress, lighting)
    cv2.imwrite(str(folder / "roi.jpg"), bg.roi)
    write_calibration(folder / "calibration.txt", cam.homography, intrinsics=cam.K, distortion=np.zeros(4), reprojection_error=0.0)
    cw.noise = []  # not needed any more; keeps the result small to send back
    return cw


def _max_vehicles(cfg: SynthConfig, split: str) -> int:
    """An upper bound on the vehicles a split spawns: 1.5 x the Poisson mean + 50."""
    s = cfg.splits[split]
    offsets = max((c.time_offset_s for c in cfg.cameras), default=0.0) + 5.0
    mean = cfg.traffic.spawn_rate_per_s * s.traffic_scale * (s.duration_s + cfg.traffic.warmup_s + offsets)
    return int(1.5 * mean + 50)


def _check_id_ranges(cfg: SynthConfig) -> None:
    starts = sorted((s.first_vehicle_id, n) for n, s in cfg.splits.items())
    for (a, na), (b, nb) in zip(starts[:-1], starts[1:]):
        bound = _max_vehicles(cfg, na)
        if a + bound > b:
            raise ValueError(
                f"splits.{nb}.first_vehicle_id: {b} is too close to splits.{na}.first_vehicle_id {a}: "
                f"{na} may use up to ~{int(bound)} ids; identities of splits must be disjoint"
            )


def _finish_split(cfg, out: Path, name: str, scen: str, cams, writers, world: World, times, lighting: Lighting | None = None) -> SplitSummary:
    ann = cfg.annotation
    seen: dict[int, set[str]] = {}
    for cid, cw in writers.items():
        for row in cw.boxes:
            if row[7]:
                seen.setdefault(row[1], set()).add(cid)
    keep = {vid for vid, cs in seen.items() if len(cs) >= 2} if ann.gt_only_multi_camera else set(seen)
    eval_rows = []
    n_boxes = 0
    occluded = 0
    for cid in sorted(writers):
        cw = writers[cid]
        folder = out / name / scen / cid
        gt = [(r[0], r[1], *r[2:6]) for r in cw.boxes if r[7] and r[1] in keep]
        gt.sort(key=lambda r: (r[0], r[1]))
        _write_rows(folder / "gt" / "gt.txt", gt, gt=True)
        n_boxes += len(gt)
        occluded += sum(1 for r in cw.boxes if r[7] and r[1] in keep and r[6] < 0.7)
        dets = sorted(cw.dets, key=lambda r: r[0])
        _write_rows(folder / "det" / "det_sim.txt", dets, gt=False)
        with (folder / "synth_boxes.txt").open("w") as fh:
            for r in sorted(cw.boxes, key=lambda r: (r[0], r[1])):
                fh.write(f"{r[0]},{r[1]},{r[2]},{r[3]},{r[4]},{r[5]},{r[6]:.4f},{r[7]}\n")
        if ann.coco_masks:
            _write_coco(folder / "segm" / "coco_instances.json", cw)
        num = camera_number(cid)
        eval_rows += [(num, r[1], r[0], r[2], r[3], r[4], r[5]) for r in gt]
    (out / "cam_timestamp").mkdir(parents=True, exist_ok=True)
    (out / "cam_framenum").mkdir(parents=True, exist_ok=True)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    (out / "cam_timestamp" / f"{scen}.txt").write_text("".join(f"{c.camera_id} {_fmt_time(c.time_offset_s)}\n" for c in cams))
    (out / "cam_framenum" / f"{scen}.txt").write_text("".join(f"{c.camera_id} {len(times[c.camera_id])}\n" for c in cams))
    eval_rows.sort()
    (out / "eval" / f"ground_truth_{name}.txt").write_text(
        "".join(f"{c} {i} {f} {x} {y} {w} {h} -1 -1\n" for c, i, f, x, y, w, h in eval_rows)
    )
    looks: dict[tuple[str, str], int] = {}
    by_id = {v.vehicle_id: v for v in world.vehicles}
    for vid in keep:
        a = by_id[vid].appearance
        looks[(a.vehicle_type, a.colour)] = looks.get((a.vehicle_type, a.colour), 0) + 1
    lookalike = sum(1 for vid in keep if looks[(by_id[vid].appearance.vehicle_type, by_id[vid].appearance.colour)] > 1)
    overlap = camera_overlap(cams, {c.camera_id: writers[c.camera_id].bg.roi for c in cams})
    _write_meta(out / "synth" / f"{scen}.json", cfg, name, scen, cams, world, times, seen, keep, overlap, lighting)
    return SplitSummary(
        split=name, scenario=scen, cameras=len(cams), frames=sum(len(t) for t in times.values()),
        vehicles_in_gt=len(keep), boxes_in_gt=n_boxes,
        lookalike_fraction=lookalike / len(keep) if keep else 0.0,
        occluded_fraction=occluded / n_boxes if n_boxes else 0.0,
    )


def _write_coco(path: Path, cw: _CameraWriter) -> None:
    from pycocotools import mask as mask_utils

    anns = []
    for a in cw.coco_anns:
        h, w = a["segmentation"]["size"]
        rle = mask_utils.frPyObjects(a["segmentation"], h, w)
        b = dict(a)
        b["segmentation"] = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
        anns.append(b)
    data = {
        "info": {"description": f"mct synth instance masks, camera {cw.cam.camera_id}", "frames_from": "../vdo.avi"},
        "images": cw.coco_images,
        "annotations": anns,
        "categories": [{"id": 3, "name": "car"}, {"id": 6, "name": "bus"}, {"id": 8, "name": "truck"}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")))


def camera_overlap(cams: Sequence[PinholeCamera], rois: dict[str, np.ndarray], step_px: int = 4) -> dict[str, dict[str, float]]:
    """Which cameras see the same road: ``a -> b -> fraction`` of ``a``'s ROI ground (sampled
    every ``step_px`` pixels) that lies inside ``b``'s ROI; pairs with no overlap are left out."""
    out: dict[str, dict[str, float]] = {}
    for a in cams:
        roi = rois[a.camera_id]
        ys, xs = np.nonzero(roi[::step_px, ::step_px] == 255)
        if len(xs) == 0:
            continue
        ground = a.ground_from_pixel(np.column_stack([xs * step_px, ys * step_px]).astype(np.float64))
        ground = ground[np.isfinite(ground).all(axis=1)]
        if len(ground) == 0:
            continue
        for b in cams:
            if b is a:
                continue
            uv, z = b.project(np.column_stack([ground, np.zeros(len(ground))]))
            w, h = b.frame_size
            inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 1] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] <= h - 1)
            ok = np.zeros(len(ground), bool)
            px = np.round(uv[inside]).astype(np.int64)
            ok[np.flatnonzero(inside)] = rois[b.camera_id][px[:, 1], px[:, 0]] == 255
            frac = float(ok.mean())
            if frac > 0.005:
                out.setdefault(a.camera_id, {})[b.camera_id] = round(frac, 3)
    return out


def _write_meta(path: Path, cfg, name, scen, cams, world: World, times, seen, keep, overlap=None, lighting: Lighting | None = None) -> None:
    vehicles = []
    for v in world.vehicles:
        t_first = world.t0_s + v.first_step * world.step_s
        vehicles.append({
            "id": v.vehicle_id,
            "appearance": v.appearance.as_dict(),
            "route": v.route.nodes,
            "t_enter_s": round(t_first, 3),
            "t_exit_s": round(t_first + (len(v.s_hist) - 1) * world.step_s, 3),
            "cameras": sorted(seen.get(v.vehicle_id, ())),
            "in_gt": v.vehicle_id in keep,
        })
    data = {
        "name": cfg.name, "split": name, "scenario": scen,
        "cameras": {c.camera_id: {**c.as_dict(), "frame_times_s": [round(float(t), 4) for t in times[c.camera_id]]} for c in cams},
        "vehicles": vehicles,
        # fraction of one camera's ROI ground that another camera's ROI also covers
        "camera_overlap": overlap or {},
    }
    if lighting is not None:  # written only off the demo look, whose files stay byte-identical
        data["lighting"] = {
            "regime": lighting.regime, "sun": [round(v, 4) for v in lighting.sun],
            "fog_visibility_m": None if lighting.fog_visibility_m is None else round(lighting.fog_visibility_m, 1),
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True))
