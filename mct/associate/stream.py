"""City-scale association: a :class:`~mct.associate.store.TrackletStore` associated in
overlapping time windows, in memory bounded by one window.

Each window is associated by the one association there is, :func:`mct.associate.associate_table`,
on the store rows that start inside it. Windows overlap by the longest time a link can
bridge (``overlap_s``: the links' longest reach plus the longest tracklet), so every pair of
tracklets that could be one vehicle starts inside some window together.

Global ids across windows: the rows of window ``i`` that start in its overlap with window
``i - 1`` already have their global id (written when window ``i - 1`` closed; it is final).
Every cluster of window ``i`` that holds such rows takes the id most of them carry (ties:
the smaller id), so a vehicle crossing the boundary keeps one id; a cluster without one
gets the next new id. Where window ``i`` splits what window ``i - 1`` joined, both parts
keep the joined id (the earlier decision stands); where it joins two earlier ids, its new
rows take the majority one.

Output folder::

    stream.json           window length, overlap, origin, windows closed, next global id
    window_000000.npz     rows (store row indices, contiguous) and global ids of the rows
                          that window closed (those starting after the previous overlap)

A window's file is written atomically, then ``stream.json``; a run killed at any point
resumes at the first window not in ``stream.json`` and, the association being
deterministic, gives the same ids. A window wider than the whole recording is the one-shot
association: the ids equal ``associate_table``'s labels + 1.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from mct.associate import UNKNOWN_REACH_S, associate_table
from mct.associate.config import AssociationConfig, ScoreFit
from mct.associate.links import CameraLinks
from mct.associate.store import TrackletStore
from mct.associate.table import TrackletTable

__all__ = ["associate_stream", "StreamResult", "read_stream_ids", "link_overlap_s"]

log = logging.getLogger(__name__)

STATE = "stream.json"


@dataclass
class StreamResult:
    """What one call of :func:`associate_stream` did.

    Attributes:
        windows_closed: windows closed by this call.
        windows_skipped: windows found closed already (a resumed run).
        rows: store rows given a global id so far (all calls).
        global_ids: global ids handed out so far.
        overlap_s: the windows' overlap, seconds.
        seconds: wall-clock seconds per window closed by this call.
        window_rows: rows associated per window closed by this call (overlap included).
    """

    windows_closed: int = 0
    windows_skipped: int = 0
    rows: int = 0
    global_ids: int = 0
    overlap_s: float = 0.0
    seconds: list[float] = field(default_factory=list)
    window_rows: list[int] = field(default_factory=list)


def link_overlap_s(store: TrackletStore, links: CameraLinks | None, labelled: CameraLinks | None,
                   max_tracklet_s: float, cfg: AssociationConfig) -> float:
    """The overlap windows need: the longest gap any camera link searches (the links'
    reach, :func:`~mct.associate.constraints.camera_reach`; ``UNKNOWN_REACH_S`` for a camera
    pair with no link) plus ``max_tracklet_s`` (a tracklet's start precedes its end by that)."""
    from mct.associate.constraints import camera_reach

    probe = TrackletTable.from_arrays(store.camera_keys, np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0),
                                      np.zeros(0), np.zeros((0, store.dim), np.float32))
    if links is None:
        links = CameraLinks(links={}, cfg=cfg.links, camera_keys=probe.camera_keys)
    current = links if labelled is None else links.overridden_by(labelled)
    reach = camera_reach(probe, current.compile(probe, horizon_s=np.ones(len(probe.scenarios))), UNKNOWN_REACH_S)
    return float(reach.max() if len(reach) else 0.0) + float(max_tracklet_s)


def _write_atomic(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _window_file(out_dir: Path, i: int) -> Path:
    return out_dir / f"window_{i:06d}.npz"


def _carry_ids(labels: np.ndarray, known: np.ndarray, next_gid: int) -> tuple[np.ndarray, int]:
    """Global ids of a window's clusters.

    Args:
        labels: ``(n,) int64`` the window's cluster labels ``0..M-1``, numbered by first row.
        known: ``(m,) int64`` global ids of the window's first ``m`` rows (its overlap with
            the previous window), final already.
        next_gid: the first unused global id.

    Returns:
        ``(M,) int64`` the global id of each cluster, and the next unused global id.
    """
    n_clusters = int(labels.max()) + 1 if len(labels) else 0
    gid_of = np.full(n_clusters, -1, np.int64)
    if len(known):
        lab = labels[: len(known)]
        pairs, counts = np.unique(np.stack([lab, known]), axis=1, return_counts=True)
        # per cluster: most rows first, then the smaller id
        order = np.lexsort((pairs[1], -counts, pairs[0]))
        pairs = pairs[:, order]
        first = np.ones(pairs.shape[1], bool)
        first[1:] = pairs[0, 1:] != pairs[0, :-1]
        gid_of[pairs[0, first]] = pairs[1, first]
    fresh = np.flatnonzero(gid_of < 0)  # in label order: numbered by first row, so deterministic
    gid_of[fresh] = next_gid + np.arange(len(fresh))
    return gid_of, next_gid + len(fresh)


def associate_stream(
    store: TrackletStore,
    cfg: AssociationConfig,
    window_s: float,
    out_dir: str | Path,
    links: CameraLinks | None = None,
    labelled: CameraLinks | None = None,
    max_tracklet_s: float = 120.0,
    overlap_s: float | None = None,
    follow: bool = False,
    poll_s: float = 0.5,
    timeout_s: float | None = None,
    details: list[dict] | None = None,
    on_window: Callable[[dict, TrackletTable], None] | None = None,
    score: ScoreFit | None = None,
) -> StreamResult:
    """Give every store row a global id, window by window, writing each window's ids as it closes.

    Args:
        store: the tracklets (a writer may still be appending: see ``follow``).
        cfg: the association config, used for every window.
        window_s: window length, seconds; at least twice the overlap (or longer than the
            recording: one window, the one-shot association).
        out_dir: where window results and the resume state go (created).
        links, labelled, score: as :func:`~mct.associate.associate_table`, for every window.
        max_tracklet_s: longest tracklet expected, seconds (part of the overlap); longer
            ones are associated, with a warning, but a link from their start may be missed
            at a window boundary.
        overlap_s: the windows' overlap; default :func:`link_overlap_s`.
        follow: wait for the writer: a window closes once a row starts after its end or the
            store is finished; return when the store is finished and every row has an id.
            ``False``: close the windows the committed rows close and return.
        poll_s: seconds between looks at the store while following.
        timeout_s: give up following after this many seconds without a new window
            (``TimeoutError``); ``None``: wait for ever.
        details: if given, one dict per window closed: ``window`` index, ``t0``/``t1`` its time
            range, ``rows`` ``(lo, hi)`` store rows, ``new_rows`` rows it closed, ``ids`` its
            clusters, ``seconds``, ``store_rows``/``store_finished`` what the store held when
            it closed, ``knn_idx`` that window's kNN rows (window row numbers).
        on_window: if given, called with that dict and the window's table as each window
            closes (a benchmark measures recall there without keeping every window).

    Returns:
        A :class:`StreamResult`. Read the ids with :func:`read_stream_ids`.

    Raises ``ValueError`` when ``out_dir`` holds a stream of another window length, overlap
    or store.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if overlap_s is None:
        overlap_s = link_overlap_s(store, links, labelled, max_tracklet_s, cfg)
    if not (0 <= overlap_s and 2 * overlap_s <= window_s < math.inf):
        raise ValueError(f"associate_stream: window_s must be finite and at least twice the overlap "
                         f"({overlap_s:.1f} s), got {window_s} s")
    state_path = out_dir / STATE
    state: dict
    if state_path.exists():
        state = json.loads(state_path.read_text())
        for key, value in (("window_s", float(window_s)), ("overlap_s", float(overlap_s)), ("store", str(store.path.resolve()))):
            if state[key] != value:
                raise ValueError(f"{state_path}: {key} is {state[key]!r}, this call gives {value!r}: use a new out_dir")
        log.info("stream %s: resuming after %d closed windows", out_dir, state["closed"])
    else:
        state = {"window_s": float(window_s), "overlap_s": float(overlap_s), "store": str(store.path.resolve()),
                 "origin_s": None, "closed": 0, "next_gid": 1, "rows": 0}
        _write_atomic(state_path, lambda f: f.write(json.dumps(state, indent=1).encode()))
    step = window_s - overlap_s
    result = StreamResult(windows_skipped=state["closed"], overlap_s=float(overlap_s))
    warned_long = False
    waited_since = time.monotonic()
    while True:
        store.refresh()
        n, last = len(store), store.last_start_s
        if state["origin_s"] is None:
            if n == 0:
                if store.finished or not follow:
                    break
                _wait(poll_s, waited_since, timeout_s, out_dir)
                continue
            state["origin_s"] = float(store.column("start_s", 0, 1)[0])
        i = state["closed"]
        t0 = state["origin_s"] + i * step
        t1 = t0 + window_s
        done = state["rows"] >= n
        if store.finished and done:
            break
        closes = store.finished or (last is not None and last >= t1)
        if not closes:
            if not follow:
                break
            _wait(poll_s, waited_since, timeout_s, out_dir)
            continue
        started = time.perf_counter()
        lo, hi = store.rows_between(t0, t1)
        first_new = state["rows"]  # rows before this were closed by earlier windows
        if first_new < lo:
            raise RuntimeError(f"stream {out_dir}: rows {first_new}..{lo} fell between windows (overlap too small)")
        known = np.zeros(0, np.int64)
        if first_new > lo:
            with np.load(_window_file(out_dir, i - 1)) as prev:
                prev_rows, prev_gids = prev["rows"], prev["gids"]
            if not len(prev_rows) or prev_rows[0] > lo:
                raise RuntimeError(f"stream {out_dir}: window {i} overlaps rows before window {i - 1} (window_s < 2 overlap_s?)")
            known = prev_gids[lo - prev_rows[0] : first_new - prev_rows[0]]
        table = store.table(lo, hi)
        too_long = int(np.sum(table.end_s - table.start_s > max_tracklet_s))
        if too_long and not warned_long:
            log.warning("stream %s: %d tracklets of window %d last longer than max_tracklet_s %.0f s: links from their "
                        "start may be missed at a window boundary", out_dir, too_long, i, max_tracklet_s)
            warned_long = True
        win_details: dict = {}
        labels = associate_table(table, cfg, links, labelled, progress=False, details=win_details, score=score)
        first_gid = int(state["next_gid"])
        gid_of, next_gid = _carry_ids(labels, known, first_gid)
        rows = np.arange(first_new, hi, dtype=np.int64)
        gids = gid_of[labels[first_new - lo:]] if len(labels) else np.zeros(0, np.int64)
        _write_atomic(_window_file(out_dir, i), lambda f: np.savez(f, rows=rows, gids=gids))
        state.update(closed=i + 1, next_gid=int(next_gid), rows=int(hi))
        _write_atomic(state_path, lambda f: f.write(json.dumps(state, indent=1).encode()))
        seconds = time.perf_counter() - started
        result.windows_closed += 1
        result.seconds.append(seconds)
        result.window_rows.append(hi - lo)
        info = {"window": i, "t0": t0, "t1": t1, "rows": (lo, hi), "new_rows": hi - first_new, "store_rows": n,
                "store_finished": store.finished, "ids": int(len(gid_of)), "seconds": seconds, "knn_idx": win_details.get("knn_idx")}
        if on_window is not None:
            on_window(info, table)
        if details is not None:
            details.append(info)
        del table, win_details, info
        log.info("stream window %d [%.0f, %.0f) s: %d rows (%d new) -> %d ids (%d new) in %.1f s",
                 i, t0, t1, hi - lo, hi - first_new, len(gid_of), next_gid - first_gid, seconds)
        waited_since = time.monotonic()
    result.rows = int(state["rows"])
    result.global_ids = int(state["next_gid"]) - 1
    return result


def _wait(poll_s: float, since: float, timeout_s: float | None, out_dir: Path) -> None:
    if timeout_s is not None and time.monotonic() - since > timeout_s:
        raise TimeoutError(f"stream {out_dir}: no window closed for {timeout_s} s (is the writer alive?)")
    time.sleep(poll_s)


def read_stream_ids(out_dir: str | Path) -> np.ndarray:
    """``(N,) int64`` the global id of each store row closed so far (row order), from the
    window files listed in ``stream.json``."""
    out_dir = Path(out_dir)
    state = json.loads((out_dir / STATE).read_text())
    parts = []
    for i in range(state["closed"]):
        with np.load(_window_file(out_dir, i)) as z:
            parts.append(z["gids"])
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)
