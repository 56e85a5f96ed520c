"""Importing the association index logs nothing about faiss's instruction-set fallbacks."""

from __future__ import annotations

import subprocess
import sys


def test_faiss_loader_fallbacks_are_not_logged_at_info():
    # a fresh interpreter (faiss imports once per process), logging at INFO as `mct run` does
    code = ("import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(name)s %(message)s'); "
            "import mct.associate.index as index, numpy as np; "
            "print('knn', index.exact_knn(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), 1)[1].ravel().tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "faiss.loader" not in out and "swigfaiss" not in out, out
    # faiss still works
    assert "knn [0, 1, 2]" in out, out
