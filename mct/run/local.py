"""Local executor: camera jobs in worker processes, ``run.workers`` at a time.

One process per camera job (not a shared pool): when a process dies (a segfault in a
native library, the OOM killer), we know exactly which camera it was running, that camera
fails with the exit code in its message, and the other cameras carry on. Progress, log
records and results come back over one multiprocessing queue.

Ctrl-C: every worker gets SIGINT (same process group) or SIGTERM from us; both raise
``KeyboardInterrupt`` in the worker, whose atomic writers remove their temporary files.

Workers die with their parent: ``kill -9`` of ``mct run`` leaves no worker computing on
its own. On Linux each worker asks the kernel for SIGTERM when its parent dies
(``prctl(PR_SET_PDEATHSIG)``); everywhere, a worker also checks between batches of frames
that its parent is still the one it started with, and stops if not.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import sys
import time
from typing import Any, Callable, Sequence

from mct.run.camera_job import CameraJob, CameraResult, run_camera_job

log = logging.getLogger(__name__)

__all__ = ["run_local", "ResultFn", "ProgressCb"]

ProgressCb = Callable[[str, int, "int | None", str], None]
ResultFn = Callable[[CameraResult], None]

#: seconds a worker gets to clean up after SIGTERM before it is killed
_TERMINATE_GRACE_S = 10.0


class _QueueLogHandler(logging.Handler):
    """Sends a worker's log records to the parent (formatted: args may not pickle)."""

    def __init__(self, q: Any) -> None:
        super().__init__()
        self.q = q

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.msg = record.getMessage()
            record.args = None
            if record.exc_info:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
                record.exc_info = None
            self.q.put(("log", record))
        except Exception:  # pragma: no cover - logging must never kill a job
            self.handleError(record)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


#: ``prctl`` option: the signal this process gets when its parent dies (linux/prctl.h)
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
                log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError):  # pragma: no cover - no usable libc
            log.debug("prctl unavailable; relying on the liveness check between batches")
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        raise KeyboardInterrupt("the parent process is gone")


class _ParentWatch:
    """Between batches: is the parent still the process that started this worker?"""

    def __init__(self) -> None:
        self.parent = os.getppid()

    def alive(self) -> bool:
        return os.getppid() == self.parent


def _worker_main(job: CameraJob, q: Any, log_level: int, parent_pid: int | None = None) -> None:
    """Entry point of a worker process: run one camera job, report over ``q``.

    ``parent_pid``: the pid of the process that started this one (``None`` when the start
    method puts another process in between, e.g. forkserver).
    """
    signal.signal(signal.SIGTERM, _raise_interrupt)
    watch = _ParentWatch()
    root = logging.getLogger()
    root.handlers = [_QueueLogHandler(q)]
    root.setLevel(log_level)

    def progress(key: str, done: int, total: int | None, stage: str) -> None:
        if not watch.alive():
            raise KeyboardInterrupt("the parent process is gone")
        q.put(("progress", key, done, total, stage))

    try:
        _die_with_parent(parent_pid if parent_pid is not None else watch.parent)
        result = run_camera_job(job, progress)
        q.put(("result", job.key, result.to_dict()))
    except KeyboardInterrupt:
        if watch.alive():
            q.put(("interrupted", job.key, None))
        else:  # nobody reads the queue any more: do not wait for it at exit
            q.cancel_join_thread()


def _failed(job: CameraJob, message: str) -> CameraResult:
    return CameraResult(job.camera.scenario, job.camera.camera_id, status="failed", error=message)


def _exit_message(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"worker process was killed by signal {name} (out of memory, or a crash in native code)"
    return f"worker process exited with code {code} without a result"


def run_local(
    jobs: Sequence[CameraJob],
    workers: int,
    start_method: str = "spawn",
    on_progress: ProgressCb | None = None,
    on_result: ResultFn | None = None,
) -> list[CameraResult]:
    """Run ``jobs`` in at most ``workers`` worker processes; results in the order of ``jobs``."""
    ctx = mp.get_context(start_method)
    q = ctx.Queue()
    pending = list(jobs)
    running: dict[str, tuple[Any, CameraJob]] = {}
    results: dict[str, CameraResult] = {}
    level = logging.getLogger().getEffectiveLevel()

    def handle(msg: tuple[str, Any, Any] | tuple[str, Any, Any, Any, Any]) -> None:
        kind = msg[0]
        if kind == "log":
            record = msg[1]
            logging.getLogger(record.name).handle(record)
        elif kind == "progress":
            if on_progress is not None:
                on_progress(msg[1], msg[2], msg[3], msg[4])
        elif kind == "result":
            result = CameraResult.from_dict(msg[2])
            results[msg[1]] = result
            if on_result is not None:
                on_result(result)
        elif kind == "interrupted":
            log.warning("camera %s was interrupted", msg[1])

    def drain(timeout: float) -> None:
        try:
            handle(q.get(timeout=timeout))
            while True:
                handle(q.get_nowait())
        except queue_mod.Empty:
            pass

    try:
        while pending or running:
            while pending and len(running) < workers:
                job = pending.pop(0)
                parent = os.getpid() if start_method in ("spawn", "fork") else None
                proc = ctx.Process(target=_worker_main, args=(job, q, level, parent), name=f"mct-{job.key}",
                                   daemon=False)
                proc.start()
                running[job.key] = (proc, job)
                log.debug("started camera %s in process %s", job.key, proc.pid)
            drain(0.1)
            for key, (proc, job) in list(running.items()):
                if proc.is_alive():
                    continue
                proc.join()
                if key not in results:
                    # the result may still be in the pipe: give the queue a moment
                    deadline = time.monotonic() + 1.0
                    while key not in results and time.monotonic() < deadline:
                        drain(0.05)
                if key not in results:
                    result = _failed(job, _exit_message(proc.exitcode))
                    log.error("camera %s failed: %s", key, result.error)
                    results[key] = result
                    if on_result is not None:
                        on_result(result)
                del running[key]
    except KeyboardInterrupt:
        log.warning("interrupted: stopping %d running camera job(s)", len(running))
        for proc, _ in running.values():
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + _TERMINATE_GRACE_S
        for proc, _ in running.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        raise
    finally:
        q.close()
    return [results[j.key] for j in jobs]
