"""Evaluation: MTMC IDF1 as the AI City evaluation computes it, per-camera MOT metrics.

* :func:`evaluate_mtmc` (``mct.evaluate.mtmc``): the official multi-camera protocol.
* :func:`evaluate_mot` (``mct.evaluate.mot``): one camera, MOTChallenge style.
* ``mct.evaluate.metrics``: the CLEAR-MOT / IDF1 core; ``mct.evaluate.report``: JSON, PNG.

The names are imported on first use, so that importing the config (``mct.evaluate.config``)
stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate_mtmc", "evaluate_mtmc_rows", "MtmcResult", "evaluate_mot", "MotMetrics"]

_WHERE = {
    "evaluate_mtmc": "mct.evaluate.mtmc",
    "evaluate_mtmc_rows": "mct.evaluate.mtmc",
    "MtmcResult": "mct.evaluate.mtmc",
    "evaluate_mot": "mct.evaluate.mot",
    "MotMetrics": "mct.evaluate.metrics",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'mct.evaluate' has no attribute {name!r}")
