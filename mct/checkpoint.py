"""Reading torch checkpoint files with errors a user can act on.

``torch.load`` reports a damaged file with messages meant for the people who write
checkpoints, not for those who load them ("Re-running torch.load with weights_only set to
False will likely succeed", which would run whatever code the file holds). Here every
unreadable file is one ``ValueError`` that names the file, what is wrong with it and the
config key that chooses it. Files are always read with ``weights_only=True``: tensors and
plain Python values only.
"""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["load_checkpoint_file"]


def _reason(exc: BaseException) -> str:
    """What is wrong with the file, in a few words, from torch's (long) error message."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError):
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if found:
            return (f"it holds a Python object ({found.group(1)}) besides tensors and plain values, "
                    "which is never loaded (a file from another program?)")
        found = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
        detail = found.group(1).split(". ")[0].rstrip(".") if found else type(exc).__name__
        return f"its contents are damaged ({detail})"
    if isinstance(exc, EOFError):
        return "it is empty or cut short"
    first = text.strip().split(". ")[0].strip().rstrip(".") if text.strip() else type(exc).__name__
    return f"it is damaged or not a torch checkpoint ({first})"


def load_checkpoint_file(path: str | Path, key: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU.

    Args:
        path: the checkpoint file (must exist; the caller reports a missing one).
        key: the config key that names the file (``reid.weights``), for the message.

    Raises:
        ValueError: the file cannot be read; the message names ``path``, the reason and ``key``.
    """
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for one cause: a bad file
        log.debug("%s: torch.load failed: %s: %s", path, type(exc).__name__, exc)
        reason = _reason(exc)
    raise ValueError(f"{path}: cannot load this checkpoint: {reason}; replace the file (copy it again or "
                     f"train it again) or set {key} to another one")
