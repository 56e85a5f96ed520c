"""The hard rules (only the impossible) and the kNN search plan they allow.

Everything that is merely unlikely is evidence in the pair score (:mod:`mct.associate.score`).
What is impossible, and refuses a pair and any merge that would put it in one global id:

* two scenarios (two clocks, two places);
* one camera seeing both at once, beyond a short handover at the ends
  (``association.same_camera_max_overlap_s``): one vehicle is one box in a view;
* a gap shorter than the camera link's ``min_gap_s``: faster than any vehicle.

The pair kernel (:func:`mct.associate.score.pair_log_lr`) applies them (``-inf``); this
module holds the array forms used before scoring: :func:`same_camera_concurrent` (the known
negatives the appearance calibration is fitted on) and the search plan
(:func:`camera_reach`, :func:`search_blocks`, :func:`within_reach`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence as SequenceABC
from typing import Iterator, Sequence

import numpy as np

from mct.associate.table import TrackletTable

__all__ = ["camera_reach", "camera_adjacency", "handover", "same_camera_concurrent", "search_blocks", "SearchBlocks", "within_reach"]

log = logging.getLogger(__name__)

#: a link's plausible gaps reach this many edge widths beyond its window (the Gaussian edge
#: is below exp(-4.5) = 1 % of the window's density there).
EDGE_WIDTHS = 3.0


def handover(si: np.ndarray, ei: np.ndarray, sj: np.ndarray, ej: np.ndarray, handover_s: float) -> np.ndarray:
    """``bool`` (broadcast, seconds): two tracklets of one camera seen from ``si`` to ``ei``
    and from ``sj`` to ``ej`` overlap only as a handover: one starts and ends after the
    other and they share at most ``handover_s`` (consecutive fragments of one vehicle)."""
    si, ei, sj, ej = np.broadcast_arrays(si, ei, sj, ej)
    if handover_s <= 0:
        return np.zeros(si.shape, bool)
    overlap = (si <= ej) & (sj <= ei)
    consecutive = ((sj >= si) & (ej >= ei)) | ((si >= sj) & (ei >= ej))
    shared = -np.maximum(sj - ei, si - ej)
    return overlap & consecutive & (shared <= handover_s + 1e-6)  # float clock


def same_camera_concurrent(table: TrackletTable, i: np.ndarray, j: np.ndarray, handover_s: float) -> np.ndarray:
    """``(P,) bool``: rows ``i[p]``, ``j[p]`` are two tracklets of one camera seen at once
    (not as a handover): two different vehicles for certain."""
    i, j = np.asarray(i, np.int64), np.asarray(j, np.int64)
    si, ei, sj, ej = table.start_s[i], table.end_s[i], table.start_s[j], table.end_s[j]
    same = (table.camera[i] == table.camera[j]) & (i != j) & (si <= ej) & (sj <= ei)
    return same & ~handover(si, ei, sj, ej, handover_s)


def camera_reach(table: TrackletTable, links: object, unknown_reach_s: float) -> np.ndarray:
    """``(C,) float64`` per camera code: the longest gap (seconds) worth searching from or to
    it: ``hi + 3 spread_s`` of its known links, ``unknown_reach_s`` where a link is unknown.

    ``links`` is a :class:`mct.associate.links.LinkArrays` of ``table``.
    """
    n_c = len(table.camera_keys)
    out = np.zeros(n_c)
    if n_c == 0:
        return out
    hi = np.asarray(links.hi, np.float64) + EDGE_WIDTHS * np.asarray(links.spread_s, np.float64)  # type: ignore[attr-defined]
    known = np.asarray(links.known, bool)  # type: ignore[attr-defined]
    forbidden = _forbidden(links)
    cam_scen = np.array([table.scenarios.index(s) for s, _ in table.camera_keys], np.int64)
    for c in range(n_c):
        s = cam_scen[c]
        same_s = cam_scen == s
        both = np.concatenate([np.where(known[s, c] & same_s, hi[s, c], np.nan), np.where(known[s, :, c] & same_s, hi[s, :, c], np.nan)])
        unknown = np.concatenate([~known[s, c] & same_s, ~known[s, :, c] & same_s])
        allowed = np.concatenate([~forbidden[s, c] & same_s, ~forbidden[s, :, c] & same_s])
        vals = both[allowed & np.isfinite(both)]
        r = float(vals.max()) if len(vals) else 0.0
        if (unknown & allowed).any():
            r = max(r, unknown_reach_s)
        out[c] = max(r, 0.0)
    return out


def _forbidden(links: object) -> np.ndarray:
    """``(S, C, C) bool``: known links no vehicle can take (``min_gap_s`` of ``+inf``)."""
    return np.asarray(links.known, bool) & (np.asarray(links.min_gap_s, np.float64) == np.inf)  # type: ignore[attr-defined]


def camera_adjacency(table: TrackletTable, links: object) -> list[np.ndarray]:
    """Per camera code, the camera codes of its scenario it may share a vehicle with (itself
    included): every camera but those whose links in both directions are forbidden."""
    forbidden = _forbidden(links)
    cam_scen = np.array([table.scenarios.index(s) for s, _ in table.camera_keys], np.int64)
    out = []
    for c in range(len(table.camera_keys)):
        s = cam_scen[c]
        ok = (cam_scen == s) & ~(forbidden[s, c] & forbidden[s, :, c])
        ok[c] = True
        out.append(np.flatnonzero(ok))
    return out


def within_reach(table: TrackletTable, reach: np.ndarray, q: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``bool`` (broadcast of ``q``, ``j``): row ``j`` lies within the reach of row ``q``'s camera in time."""
    r = reach[table.camera[q]]
    return (table.start_s[j] <= table.end_s[q] + r) & (table.end_s[j] >= table.start_s[q] - r)


# ---------------------------------------------------------------------------- search plan
#: durations above this quantile are "long" tracklets, searched one by one, so that one
#: parked car does not widen every slice's base.
LONG_TRACKLET_QUANTILE = 0.999


class SearchBlocks(SequenceABC):
    """The ``(query_rows, base_rows)`` blocks of :func:`search_blocks`: the queries are
    planned at once, each block's base rows are gathered when the block is visited
    (iterating or indexing), so one base is in memory at a time (all bases at once were 50M
    row numbers, 0.32 GB of small arrays at 1M tracklets, which freeing did not give back)."""

    def __init__(self) -> None:
        # per block: the query rows, and the base rows or the arguments of _base
        self._blocks: list[tuple[np.ndarray, "np.ndarray | tuple"]] = []

    def _add(self, q: np.ndarray, base: "np.ndarray | tuple") -> None:
        self._blocks.append((q, base))

    def __len__(self) -> int:
        return len(self._blocks)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        q, base = self._blocks[i]
        return q, base if isinstance(base, np.ndarray) else _base(*base)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for q, base in self._blocks:
            yield q, base if isinstance(base, np.ndarray) else _base(*base)


def search_blocks(
    table: TrackletTable, reach: np.ndarray, adjacency: Sequence[np.ndarray], slice_s: float
) -> SearchBlocks:
    """Plan the kNN search: ``(query_rows, base_rows)`` blocks covering every row once as a query.

    Queries are grouped by camera and cut into time slices of ``slice_s`` seconds by start;
    each block's base holds the tracklets of the cameras in ``adjacency`` (its own camera
    included: the known negatives of the appearance calibration come from there) whose
    interval may lie within the camera's ``reach`` (seconds, ``(C,)``) in time. The base is
    a superset of what each query reaches (callers filter with :func:`within_reach`). With
    ``slice_s == 0`` or an infinite reach a scenario is one block (all against all, through
    an approximate index if large). The blocks come as a :class:`SearchBlocks`: a sequence
    whose bases are gathered when visited.
    """
    blocks = SearchBlocks()
    if len(table) == 0:
        return blocks
    start, end = table.start_s, table.end_s
    dur = end - start
    order = np.lexsort((start, table.camera))
    cam_sorted = table.camera[order]
    n_c = len(table.camera_keys)
    cam_lo = np.searchsorted(cam_sorted, np.arange(n_c), "left")
    cam_hi = np.searchsorted(cam_sorted, np.arange(n_c), "right")
    cam_maxdur = np.zeros(n_c)
    np.maximum.at(cam_maxdur, table.camera, dur)

    for s_code in range(len(table.scenarios)):
        rows_s = np.flatnonzero(table.scenario == s_code)
        if len(rows_s) == 0:
            continue
        cams_s = np.unique(table.camera[rows_s])
        if slice_s <= 0 or not np.all(np.isfinite(reach[cams_s])):
            blocks._add(rows_s, rows_s)
            continue
        long_min_dur = max(float(np.quantile(dur[rows_s], LONG_TRACKLET_QUANTILE)), slice_s)
        for c in cams_s:
            chans = [(order[cam_lo[b] : cam_hi[b]], start[order[cam_lo[b] : cam_hi[b]]], float(cam_maxdur[b])) for b in adjacency[c]]
            chan_rows = [rows for rows, _, _ in chans]
            q_sorted = order[cam_lo[c] : cam_hi[c]]
            r = float(reach[c])
            if len(q_sorted) == 0:
                continue
            is_long = dur[q_sorted] > long_min_dur
            normal = q_sorted[~is_long]
            if len(normal):
                qs = start[normal]
                edges = np.searchsorted(qs, np.arange(qs[0], qs[-1] + slice_s, slice_s), "left")
                edges = np.unique(np.append(edges, len(normal)))
                t0 = start[normal[edges[:-1]]]
                t1 = np.maximum.reduceat(end[normal], edges[:-1])
                lo, hi = _base_ranges(chans, t0, t1, r)
                for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
                    blocks._add(normal[a:b], (chan_rows, lo[:, k], hi[:, k]))
            longs = q_sorted[is_long]
            if len(longs):
                lo, hi = _base_ranges(chans, start[longs], end[longs], r)
                for k, q in enumerate(longs):
                    blocks._add(np.array([q]), (chan_rows, lo[:, k], hi[:, k]))
    return blocks


def _base_ranges(
    chans: list[tuple[np.ndarray, np.ndarray, float]], t0: np.ndarray, t1: np.ndarray, reach: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)``, ``(channels, blocks)``: each channel's rows ``rows[lo:hi]`` (by start)
    whose interval may meet ``[t0 - reach, t1 + reach]`` of each block (all of a camera's
    blocks in one search per channel: one search per block and channel was most of the
    planning's time at 1M tracklets)."""
    lo = np.zeros((len(chans), len(t0)), np.int64)
    hi = np.zeros((len(chans), len(t0)), np.int64)
    for k, (_, starts, maxdur) in enumerate(chans):
        lo[k] = np.searchsorted(starts, t0 - reach - maxdur, "left")
        hi[k] = np.searchsorted(starts, t1 + reach, "right")
    return lo, hi


def _base(chan_rows: list[np.ndarray], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A block's base rows: ``chan_rows[k][lo[k]:hi[k]]`` of each channel, concatenated."""
    parts = [rows[a:b] for rows, a, b in zip(chan_rows, lo.tolist(), hi.tolist()) if b > a]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


# ---------------------------------------------------------------------------- space-time candidates
def linked_windows(table: TrackletTable, links: object) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The space-time windows of each linked camera pair ``c -> d``, unenumerated:
    ``(rows_c, rows_d, first, last)`` with ``rows_c``, ``rows_d`` the two cameras' rows by
    start time and tracklet ``rows_c[i]``'s window mates ``rows_d[first[i]:last[i]]`` (none
    where ``last[i] <= first[i]``).

    For every known link ``c -> d`` (``c != d``, not forbidden) and every tracklet ``a`` of
    ``c``, the tracklets ``b`` of ``d`` that start no earlier than ``a`` and whose gap
    ``start(b) - end(a)`` lies in the window with its soft edges
    (``[lo - EDGE_WIDTHS * spread_s, hi + EDGE_WIDTHS * spread_s]``) and above the hard bound.
    These are the pairs the space-time terms can vouch for whatever their cosine: with a weak
    re-ID model, a vehicle's view in the next camera may rank far down its appearance
    neighbours behind look-alikes from other times. ``links`` is a
    :class:`mct.associate.links.LinkArrays` of ``table``.
    """
    n_c = len(table.camera_keys)
    if len(table) == 0 or n_c == 0:
        return
    known = np.asarray(links.known, bool)  # type: ignore[attr-defined]
    lo = np.asarray(links.lo, np.float64) - EDGE_WIDTHS * np.asarray(links.spread_s, np.float64)  # type: ignore[attr-defined]
    hi = np.asarray(links.hi, np.float64) + EDGE_WIDTHS * np.asarray(links.spread_s, np.float64)  # type: ignore[attr-defined]
    lo = np.maximum(lo, np.asarray(links.min_gap_s, np.float64))  # type: ignore[attr-defined]
    usable = known & ~_forbidden(links) & (hi >= lo)
    start, end = table.start_s, table.end_s
    order = np.lexsort((start, table.camera))
    cam_sorted = table.camera[order]
    cam_lo = np.searchsorted(cam_sorted, np.arange(n_c), "left")
    cam_hi = np.searchsorted(cam_sorted, np.arange(n_c), "right")
    cam_scen = np.array([table.scenarios.index(s) for s, _ in table.camera_keys], np.int64)
    for c in range(n_c):
        rows_c = order[cam_lo[c] : cam_hi[c]].astype(np.int64)
        if len(rows_c) == 0:
            continue
        s = cam_scen[c]
        for d in np.flatnonzero(usable[s, c, :n_c]):
            if d == c or cam_scen[d] != s:
                continue
            rows_d = order[cam_lo[d] : cam_hi[d]].astype(np.int64)
            if len(rows_d) == 0:
                continue
            starts_d = start[rows_d]
            # b starts in [end(a) + lo, end(a) + hi] and not before a
            first = np.searchsorted(starts_d, np.maximum(end[rows_c] + lo[s, c, d], start[rows_c]), "left")
            last = np.searchsorted(starts_d, end[rows_c] + hi[s, c, d], "right")
            if (last > first).any():
                yield rows_c, rows_d, first.astype(np.int64), last.astype(np.int64)


def linked_in_time_blocks(table: TrackletTable, links: object) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The pairs of :func:`linked_windows`, enumerated: one block ``(a, b)`` per linked
    camera pair, ``a``-major and each ``a``'s mates by start time.

    A pair can come twice (from ``c -> d`` and ``d -> c`` where two views start together);
    blocks keep memory to one camera pair's windows, whatever the size of the day.
    """
    for rows_c, rows_d, first, last in linked_windows(table, links):
        count = np.maximum(last - first, 0)
        n_pairs = int(count.sum())
        offset = np.arange(n_pairs) - np.repeat(np.cumsum(count) - count, count)
        yield np.repeat(rows_c, count), rows_d[np.repeat(first, count) + offset]


def linked_in_time(table: TrackletTable, links: object) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of :func:`linked_in_time_blocks` at once, each once, ``a`` seen first."""
    blocks = list(linked_in_time_blocks(table, links))
    if not blocks:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return first_seen_first(table, np.concatenate([a for a, _ in blocks]), np.concatenate([b for _, b in blocks]))


def first_seen_first(table: TrackletTable, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unordered pairs ``(a, b)`` once each, the tracklet seen first as ``a``."""
    start, end = table.start_s, table.end_s
    # a pair found from both cameras' links (views overlapping, equal starts) once
    key = np.unique(np.minimum(a, b) * len(table) + np.maximum(a, b))
    x, y = key // len(table), key % len(table)
    swap = (start[y] < start[x]) | ((start[y] == start[x]) & (end[y] < end[x]))
    return np.where(swap, y, x), np.where(swap, x, y)
