"""A tiny moving-boxes world for tracker tests and benchmarks (not the synthetic dataset).

Boxes move at constant velocity with jitter; each identity has a random unit feature and
each observation a noisy copy of it; detections are missed at random and a few false
positives appear. Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

from mct.types import Detections

__all__ = ["toy_frames"]


def toy_frames(
    num_frames: int,
    num_objects: int,
    seed: int = 0,
    embedding_dim: int = 128,
    frame_size: tuple[int, int] = (1920, 1080),
    miss_rate: float = 0.05,
    false_positives: float = 0.5,
    feature_noise: float = 0.1,
    jitter_px: float = 2.0,
    wrap: bool = True,
) -> tuple[list[Detections], list[np.ndarray]]:
    """Frames ``1 .. num_frames`` of ``num_objects`` boxes.

    With ``wrap`` a box leaving the frame re-enters on the other side (a jump that ends its
    track); without, boxes drive on beyond the frame edges (the tracker does not care).

    Returns:
        ``(detections, truth)``: per frame a :class:`Detections` with ``embeddings (N, D)``,
        and ``truth[f] (N,) int64`` the identity of each detection (-1 = false positive).
    """
    rng = np.random.default_rng(seed)
    width, height = frame_size
    size = rng.uniform([60, 40], [200, 140], size=(num_objects, 2))
    pos = rng.uniform([0, 0], [width, height], size=(num_objects, 2))
    vel = rng.uniform(-8, 8, size=(num_objects, 2))
    ident = rng.normal(size=(num_objects, embedding_dim))
    ident /= np.linalg.norm(ident, axis=1, keepdims=True)
    frames: list[Detections] = []
    truth: list[np.ndarray] = []
    for f in range(1, num_frames + 1):
        centre = pos + vel * (f - 1)
        if wrap:
            centre = np.mod(centre, [width, height])
        centre = centre + rng.normal(scale=jitter_px, size=pos.shape)
        seen = rng.random(num_objects) >= miss_rate
        n_fp = rng.poisson(false_positives)
        fp_centre = rng.uniform([0, 0], [width, height], size=(n_fp, 2))
        fp_size = rng.uniform([40, 30], [120, 90], size=(n_fp, 2))
        c = np.concatenate([centre[seen], fp_centre])
        s = np.concatenate([size[seen], fp_size])
        xyxy = np.concatenate([c - s / 2, c + s / 2], axis=1)
        emb = np.concatenate([ident[seen], rng.normal(size=(n_fp, embedding_dim))])
        emb = emb + rng.normal(scale=feature_noise / np.sqrt(embedding_dim), size=emb.shape)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        ids = np.concatenate([np.flatnonzero(seen), -np.ones(n_fp, dtype=np.int64)])
        order = rng.permutation(len(ids))
        scores = rng.uniform(0.5, 1.0, size=len(ids))
        frames.append(Detections(f, xyxy[order], scores[order], embeddings=emb[order].astype(np.float32)))
        truth.append(ids[order].astype(np.int64))
    return frames, truth
