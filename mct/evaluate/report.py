"""Evaluation reports: table rows for the terminal, a JSON file, a PNG figure.

The terminal table itself is drawn by ``mct/cli.py`` (the only module that formats for a
terminal) from :func:`summary_rows` and :func:`camera_rows`. The figure has the per-camera
IDF1 / IDP / IDR bars and, where the ground truth allows, a per-identity timeline across the
concatenated cameras: each ground-truth box is green when it is an identity true positive
(right global id), orange when matched with a wrong id, red when missed.

A run folder's ``eval/eval.png`` (:func:`write_run_figure`) has the per-camera bars only,
drawn from ``eval/metrics.json``, which holds no per-box timeline.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mct.evaluate.metrics import MotMetrics
from mct.evaluate.mtmc import MtmcResult

__all__ = [
    "summary_rows", "camera_rows", "mot_rows", "write_json", "plot_report", "write_report", "plot_camera_bars",
    "write_run_figure",
]

log = logging.getLogger(__name__)

#: (label, MotMetrics field, kind) of the summary columns; kind "pct" prints ratios in %.
SUMMARY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("IDF1", "idf1", "pct"),
    ("IDP", "idp", "pct"),
    ("IDR", "idr", "pct"),
    ("MOTA", "mota", "pct"),
    ("MOTP", "motp", "pct"),
    ("Rcll", "recall", "pct"),
    ("Prcn", "precision", "pct"),
    ("GT", "num_unique_objects", "int"),
    ("MT", "mostly_tracked", "int"),
    ("PT", "partially_tracked", "int"),
    ("ML", "mostly_lost", "int"),
    ("FP", "num_false_positives", "int"),
    ("FN", "num_misses", "int"),
    ("IDSW", "num_switches", "int"),
    ("Frag", "num_fragmentations", "int"),
    ("IDTP", "idtp", "int"),
    ("IDFP", "idfp", "int"),
    ("IDFN", "idfn", "int"),
)


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "pct":
        return f"{100.0 * value:.2f}"
    return str(int(value))


def _metric_row(name: str, m: MotMetrics, columns: tuple[tuple[str, str, str], ...] = SUMMARY_COLUMNS) -> dict[str, str]:
    row = {"": name}
    for label, key, kind in columns:
        row[label] = _fmt(getattr(m, key), kind)
    return row


def summary_rows(result: MtmcResult) -> list[dict[str, str]]:
    """The whole evaluation as ``metric | value`` rows (ratios in percent), like the official printout."""
    m = result.metrics
    return [{"metric": label, "MultiCam": _fmt(getattr(m, key), kind)} for label, key, kind in SUMMARY_COLUMNS]


CAMERA_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("IDF1", "idf1", "pct"),
    ("IDP", "idp", "pct"),
    ("IDR", "idr", "pct"),
    ("MOTA", "mota", "pct"),
    ("GT", "num_objects", "int"),
    ("pred", "num_predictions", "int"),
    ("IDSW", "num_switches", "int"),
)


def camera_rows(result: MtmcResult) -> list[dict[str, str]]:
    """One row per ground-truth camera: its share of the global evaluation plus what was filtered."""
    rows = []
    for cam in result.cameras:
        row = _metric_row(f"c{cam.camera:03d}", cam.metrics, CAMERA_COLUMNS)
        row["read"] = str(cam.num_pred_read)
        row["-ROI"] = str(cam.dropped_roi)
        row["-1cam"] = str(cam.dropped_single_camera)
        rows.append(row)
    return rows


#: the single-camera table: the summary columns plus HOTA and its parts (mct.evaluate.hota).
MOT_COLUMNS: tuple[tuple[str, str, str], ...] = SUMMARY_COLUMNS + (
    ("HOTA", "hota", "pct"),
    ("DetA", "det_a", "pct"),
    ("AssA", "ass_a", "pct"),
    ("LocA", "loc_a", "pct"),
)


def mot_rows(per_camera: Mapping[int, MotMetrics]) -> list[dict[str, str]]:
    """One row per camera of the single-camera (MOTChallenge) evaluation, HOTA included."""
    return [_metric_row(f"c{cam:03d}", m, MOT_COLUMNS) for cam, m in sorted(per_camera.items())]


def write_json(path: str | Path, result: MtmcResult, per_camera_mot: Mapping[int, MotMetrics] | None = None) -> Path:
    """The result as JSON (``nan`` -> ``null``); with the per-camera MOT metrics when given."""
    data = result.as_dict()
    if per_camera_mot is not None:
        data["single_camera"] = {f"c{c:03d}": m.as_dict() for c, m in sorted(per_camera_mot.items())}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    return path


def _segments(x: np.ndarray, key: np.ndarray, status: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of consecutive frames with one key and one status: ``(key, status, start, end)``."""
    order = np.lexsort((x, key))
    x, key, status = x[order], key[order], status[order]
    brk = np.ones(len(x), bool)
    brk[1:] = (key[1:] != key[:-1]) | (status[1:] != status[:-1]) | (x[1:] != x[:-1] + 1)
    starts = np.flatnonzero(brk)
    ends = np.append(starts[1:], len(x)) - 1
    return key[starts], status[starts], x[starts], x[ends] + 1


#: (label, metric key, colour) of the per-camera bars
_BARS: tuple[tuple[str, str, str], ...] = (("IDF1", "idf1", "#1f77b4"), ("IDP", "idp", "#2ca02c"), ("IDR", "idr", "#ff7f0e"))


def _pct(value: Any) -> float:
    """A ratio in [0, 1] (``None`` or ``nan`` when undefined) as a percentage; undefined -> 0."""
    return 0.0 if value is None else 100.0 * float(np.nan_to_num(float(value)))


def _camera_bars(ax: Any, names: list[str], per_camera: Mapping[str, list[Any]], overall: Mapping[str, Any]) -> None:
    """Grouped IDF1 / IDP / IDR bars, one group per camera; ``per_camera[key][i]`` is camera i's ratio."""
    x = np.arange(len(names))
    width = 0.27
    for k, (label, key, color) in enumerate(_BARS):
        ax.bar(x + (k - 1) * width, [_pct(v) for v in per_camera[key]], width, label=label, color=color)
    ax.set_xticks(x, names, rotation=90 if len(names) > 12 else 0)
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.set_title(
        f"IDF1 {_pct(overall['idf1']):.2f}  IDP {_pct(overall['idp']):.2f}  "
        f"IDR {_pct(overall['idr']):.2f}  (per camera: share of the global assignment)"
    )
    ax.legend(loc="upper right", ncols=3, fontsize=8)


def plot_camera_bars(metrics: Mapping[str, Any], path: str | Path, source: str = "<metrics>") -> Path:
    """PNG of the per-camera IDF1 / IDP / IDR bars from an evaluation in its JSON form.

    ``metrics`` is what :meth:`MtmcResult.as_dict` returns (the run folder's
    ``eval/metrics.json``): ``metrics.idf1/idp/idr`` overall and ``cameras[i].camera_id,
    idf1, idp, idr`` (ratios in [0, 1], ``None`` when undefined). ``source`` names the data
    in errors. The file is written atomically (a temporary name, then a rename).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    overall = metrics.get("metrics")
    cams = metrics.get("cameras")
    if not isinstance(overall, Mapping) or not isinstance(cams, list):
        raise ValueError(f"{source}: expected an evaluation with 'metrics' and 'cameras', got keys {sorted(metrics)}")
    keys = [key for _, key, _ in _BARS]
    for i, cam in enumerate(cams):
        missing = [k for k in ("camera_id", *keys) if k not in cam]
        if missing:
            raise ValueError(f"{source}: cameras[{i}]: missing {', '.join(missing)}")
    fig, ax = plt.subplots(1, 1, figsize=(max(8.0, 0.45 * len(cams) + 4), 4.5))
    _camera_bars(ax, [str(c["camera_id"]) for c in cams], {k: [c[k] for c in cams] for k in keys},
                 {k: overall.get(k) for k in keys})
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=110)
        tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def write_run_figure(eval_dir: str | Path) -> Path | None:
    """``eval.png`` (per-camera bars) beside a run folder's ``eval/metrics.json``.

    Redrawn only when the PNG is missing or older than ``metrics.json``; ``None`` when the
    folder has no ``metrics.json`` (a run without evaluation).
    """
    eval_dir = Path(eval_dir)
    src, png = eval_dir / "metrics.json", eval_dir / "eval.png"
    if not src.is_file():
        return None
    if png.is_file() and png.stat().st_mtime_ns >= src.stat().st_mtime_ns:
        return png
    try:
        data = json.loads(src.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{src}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
    if not isinstance(data, Mapping):
        raise ValueError(f"{src}: expected a JSON object, got {type(data).__name__}")
    plot_camera_bars(data, png, str(src))
    log.info("wrote %s", png)
    return png


def plot_report(result: MtmcResult, path: str | Path, max_identities: int = 60) -> Path:
    """PNG: per-camera IDF1/IDP/IDR bars and a per-identity timeline (the worst identities)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cams = result.cameras
    fig, (ax_bar, ax_tl) = plt.subplots(
        2, 1, figsize=(max(8.0, 0.45 * len(cams) + 4), 10), gridspec_kw={"height_ratios": [1, 1.6]}
    )
    _camera_bars(
        ax_bar,
        [f"c{c.camera:03d}" for c in cams],
        {key: [getattr(c.metrics, key) for c in cams] for key in ("idf1", "idp", "idr")},
        {key: getattr(result.metrics, key) for key in ("idf1", "idp", "idr")},
    )
    # --- identity timeline
    tl = result.timeline
    if tl is None or len(tl.gt_id) == 0:
        ax_tl.text(0.5, 0.5, "no ground truth to draw", ha="center", va="center")
        ax_tl.set_axis_off()
    else:
        offsets = np.array([tl.frame_offsets[int(c)] for c in tl.camera.tolist()], np.int64)
        gx = tl.frame + offsets
        status = np.where(tl.idtp, 0, np.where(tl.matched, 1, 2))
        ids, inv = np.unique(tl.gt_id, return_inverse=True)
        ratio = np.bincount(inv, weights=tl.idtp, minlength=len(ids)) / np.bincount(inv, minlength=len(ids))
        shown = np.argsort(ratio, kind="stable")[:max_identities]
        first = np.full(len(ids), np.iinfo(np.int64).max)
        np.minimum.at(first, inv, gx)
        shown = shown[np.argsort(first[shown], kind="stable")]
        row_of = np.full(len(ids), -1)
        row_of[shown] = np.arange(len(shown))
        sel = row_of[inv] >= 0
        key, st, x0, x1 = _segments(gx[sel], row_of[inv][sel], status[sel])
        colors = np.array(["#2ca02c", "#ff7f0e", "#d62728"])
        ax_tl.hlines(key, x0, x1, colors=colors[st], linewidth=max(1.0, 200 / max(len(shown), 1) / 3))
        for cam in cams:
            ax_tl.axvline(cam.frame_offset + 0.5, color="0.8", linewidth=0.6, zorder=0)
            ax_tl.text(cam.frame_offset + cam.frame_span / 2, -1.2, f"c{cam.camera:03d}", ha="center", va="top", fontsize=7)
        ax_tl.set_yticks(np.arange(len(shown)), [str(i) for i in ids[shown]], fontsize=max(4, 9 - len(shown) // 15))
        ax_tl.set_ylim(len(shown) - 0.5, -2.0)
        ax_tl.set_xlabel("frame in the concatenated cameras")
        ax_tl.set_ylabel("ground-truth id")
        what = "all" if len(shown) == len(ids) else f"the {len(shown)} worst of {len(ids)}"
        ax_tl.set_title(f"identity timeline ({what} identities): green = right global id, orange = wrong id, red = missed")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    out_dir: str | Path, result: MtmcResult, per_camera_mot: Mapping[int, MotMetrics] | None = None
) -> dict[str, Path]:
    """``eval.json`` and ``eval.png`` in ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json(out / "eval.json", result, per_camera_mot), "png": plot_report(result, out / "eval.png")}
    log.info("wrote %s and %s", paths["json"], paths["png"])
    return paths
