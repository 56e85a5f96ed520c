"""Progress bars for a run: one per running camera (frames) and one overall (cameras).

tqdm bars on stderr; ``TQDM_DISABLE=1`` (``mct --quiet``) turns them off, leaving logs.
"""

from __future__ import annotations

import logging
from typing import Any

from tqdm.auto import tqdm

from mct.run.camera_job import CameraResult

log = logging.getLogger(__name__)

__all__ = ["RunProgress"]


class RunProgress:
    """Receives executor callbacks; draws bars; logs each camera that finished well."""

    def __init__(self, total_cameras: int, enabled: bool = True, desc: str = "cameras") -> None:
        self.enabled = enabled
        self.overall = tqdm(total=total_cameras, desc=desc, unit="cam", position=0, disable=not enabled, leave=True)
        self.bars: dict[str, Any] = {}
        self._free_positions: list[int] = []  # rows of finished bars, reused
        self._next_position = 1

    def on_progress(self, key: str, done: int, total: int | None, stage: str) -> None:
        if not self.enabled:
            return
        bar = self.bars.get(key)
        if bar is None:
            if self._free_positions:
                position = self._free_positions.pop(0)
            else:
                position = self._next_position
                self._next_position += 1
            bar = tqdm(total=total, desc=f"{key} {stage}", unit="frame", position=position, leave=False)
            self.bars[key] = bar
        if bar.total != total:
            bar.total = total
        bar.set_description_str(f"{key} {stage}", refresh=False)
        bar.n = done
        bar.refresh()

    def on_result(self, result: CameraResult) -> None:
        bar = self.bars.pop(result.key, None)
        if bar is not None:
            self._free_positions.append(bar.pos if isinstance(bar.pos, int) else abs(int(bar.pos)))
            self._free_positions.sort()
            bar.close()
        self.overall.update(1)
        if result.status == "ok":
            computed = [s for s, e in result.stages.items() if e.get("status") == "computed"]
            log.info("camera %s done: %d frames, %d tracklets, %.1f s (computed: %s)", result.key, result.frames,
                     result.num_tracklets, result.seconds, ", ".join(computed) or "nothing, all cached")
        else:
            # the failure was logged where it happened (the camera job, or the executor for a
            # dead worker or a failed Ray task); logging it here too showed every error twice
            log.debug("camera %s failed: %s", result.key, result.error)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
        self.overall.close()
