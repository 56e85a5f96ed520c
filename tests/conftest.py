"""Shared fixtures. Tests run on the CPU with tiny inputs; nothing here downloads."""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TQDM_DISABLE", "1")
