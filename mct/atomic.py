"""Atomic file writes, shared by every stage that writes outputs.

A file is written under a temporary name next to it and renamed into place
(``os.replace``), so readers see a whole file or none. Temporary names contain
:data:`TMP_MARK`, which is how the run folder finds and removes the leftovers of a killed
run (``mct.run.run_folder.remove_temp_files``).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator

__all__ = ["TMP_MARK", "tmp_name", "atomic_path"]

TMP_MARK = ".tmp-"


def tmp_name(path: Path) -> Path:
    """A unique temporary name next to ``path`` that keeps its suffix last."""
    # Keep the suffix last: writers such as np.savez append ".npz" to names without it.
    return path.with_name(f"{path.stem}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``.

    On any exception (including ``KeyboardInterrupt``) the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp}: the writer did not create the file for {path}")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
