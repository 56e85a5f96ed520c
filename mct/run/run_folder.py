"""The run folder: layout, atomic writes, stage fingerprints and completion records.

Layout of ``runs/<name>/`` (see ``docs/running.md``)::

    config.yaml            the resolved config (mct.config.dump_config)
    manifest.json          versions, seed, command, host, start time
    summary.json           status of every camera and stage, timings, metrics
    cameras/<S>_<cam>/     the camera's current outputs (hard links into cache/)
        detections.npz  embeddings.npy  tracklets.npz  tracks.txt  status.json  [error.txt]
    association/           assignment.csv, submission.txt (links into cache/)
    eval/metrics.json
    cache/<stage>/<key>/<fingerprint>/   content-addressed stage outputs + done.json

Every file is written under a temporary name (``*.tmp-*``) and renamed into place, so
an interrupted run leaves whole files or none. A stage is finished when its folder holds
``done.json`` whose fingerprint matches; the fingerprint hashes exactly the config
sections the stage depends on plus the fingerprint of the stage before it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from mct.atomic import TMP_MARK, atomic_path

if TYPE_CHECKING:
    from mct.types import Camera, Tracklet

log = logging.getLogger(__name__)

__all__ = [
    "TMP_MARK",
    "atomic_path",
    "write_text_atomic",
    "write_json_atomic",
    "read_json",
    "link_atomic",
    "remove_temp_files",
    "LockedError",
    "exclusive_lock",
    "fingerprint",
    "stage_is_done",
    "mark_stage_done",
    "camera_dirname",
    "RunFolder",
    "package_versions",
]

#: Packages whose versions are recorded in the manifest.
_PACKAGES = (
    "mct", "numpy", "scipy", "pandas", "torch", "torchvision", "opencv-python-headless", "faiss-cpu",
    "filterpy", "pydantic", "pyyaml", "ray", "matplotlib",
)


# ---------------------------------------------------------------------------- atomic files
def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (Path, tuple, set)):
        return str(value) if isinstance(value, Path) else list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc


def link_atomic(src: str | Path, dst: str | Path) -> None:
    """Make ``dst`` the same file as ``src`` (hard link; a copy across file systems), atomically."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and os.path.samefile(src, dst):
        return  # already linked (renaming a link onto itself would leave the temp name behind)
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def remove_temp_files(root: str | Path, skip: Sequence[str] = ()) -> int:
    """Delete every temporary file under ``root`` (left by a killed process), except below
    folders named in ``skip`` (those a camera job owns under its lock); returns the count."""
    root = Path(root)
    if not root.is_dir():
        return 0
    n = 0
    for p in root.rglob(f"*{TMP_MARK}*"):
        if skip and any(part in skip for part in p.relative_to(root).parts[:-1]):
            continue
        if p.is_file():
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
    if n:
        log.info("removed %d unfinished temporary file(s) under %s", n, root)
    return n


# ---------------------------------------------------------------------------- locks
class LockedError(RuntimeError):
    """Another live process holds the lock (``holder``: its pid, when it wrote one)."""

    def __init__(self, message: str, holder: int | None) -> None:
        super().__init__(message)
        self.holder = holder


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def exclusive_lock(path: str | Path, timeout_s: float = 60.0, what: str = "") -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``path`` (created if needed) for the block.

    The kernel releases the lock when its holder dies, however it dies, so a lock is never
    stale. While another process holds it we wait (a killed run's worker still stopping),
    up to ``timeout_s`` seconds, then raise :class:`LockedError` naming the holder's pid.
    The holder's pid is written into the file. No-op where ``fcntl`` does not exist.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if time.monotonic() >= deadline:
                    raise LockedError(f"{what or path} is in use by process {holder} (another mct run on this "
                                      f"folder?); waited {timeout_s:.0f} s for {path}", holder) from None
                if not waited:
                    log.info("waiting for process %s to finish with %s", holder, what or path)
                    waited = True
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


# ---------------------------------------------------------------------------- fingerprints
def fingerprint(*parts: Any) -> str:
    """A stable hex digest of JSON-serialisable ``parts`` (dict key order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def files_signature(*paths: str | Path | None) -> list[Any]:
    """``[path, size, mtime_ns]`` of each existing file (a folder: of the files in it).

    Part of the fingerprints of stages that read input files (videos, detection files,
    model weights, topology files), so that replacing one invalidates what was made from it.
    Missing paths contribute nothing (a stage that needs them fails on its own).
    """
    out: list[Any] = []
    for path in paths:
        if not path:
            continue
        p = Path(path)
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else ([p] if p.is_file() else [])
        out += [[str(q), q.stat().st_size, q.stat().st_mtime_ns] for q in files]
    return out


def stage_is_done(stage_dir: str | Path, fp: str) -> bool:
    """True when ``stage_dir/done.json`` records ``fp`` and every output it lists exists."""
    done = Path(stage_dir) / "done.json"
    if not done.is_file():
        return False
    try:
        record = read_json(done)
    except ValueError:
        return False
    if record.get("fingerprint") != fp:
        return False
    return all((Path(stage_dir) / name).is_file() for name in record.get("outputs", ()))


def mark_stage_done(stage_dir: str | Path, fp: str, outputs: Sequence[str], info: Mapping[str, Any]) -> dict[str, Any]:
    """Record a finished stage (written last, so its presence means every output is whole);
    returns the record."""
    record = {"fingerprint": fp, "outputs": list(outputs), "finished": _now(), **dict(info)}
    write_json_atomic(Path(stage_dir) / "done.json", record)
    return record


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- the folder
#: folders whose files belong to camera jobs and stages (cleaned by them, under their lock)
CAMERA_OWNED = ("cameras", "cache")

def camera_dirname(scenario: str, camera_id: str) -> str:
    return f"{scenario}_{camera_id}"


def load_run_tracklets(run_dir: str | Path, cameras: Sequence[Camera]) -> list[Tracklet]:
    """The tracklets of ``cameras`` in a finished run folder (``cameras/<S>_<cam>/tracklets.npz``),
    camera by camera; a camera without the file (it failed, or was not in the run) is left
    out with a warning naming the file."""
    from mct.track.tracklets import load_tracklets

    out: list[Tracklet] = []
    for cam in cameras:
        path = Path(run_dir) / "cameras" / camera_dirname(cam.scenario, cam.camera_id) / "tracklets.npz"
        if not path.is_file():
            log.warning("%s: no tracklets, camera %s/%s left out", path, cam.scenario, cam.camera_id)
            continue
        out += load_tracklets(path)
    return out


def package_versions(names: Sequence[str] = _PACKAGES) -> dict[str, str | None]:
    """Installed versions (``None`` when a package is absent)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


class RunFolder:
    """Paths of one run folder; ``cache_root`` may be shared by several runs (a sweep)."""

    def __init__(self, root: str | Path, cache_root: str | Path | None = None) -> None:
        self.root = Path(root).resolve()
        self.cache_root = Path(cache_root).resolve() if cache_root is not None else self.root / "cache"

    # paths
    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def summary_path(self) -> Path:
        return self.root / "summary.json"

    @property
    def association_dir(self) -> Path:
        return self.root / "association"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    def camera_dir(self, scenario: str, camera_id: str) -> Path:
        return self.root / "cameras" / camera_dirname(scenario, camera_id)

    def lock_path(self, key: str) -> Path:
        """The lock a camera job holds while it works on camera ``key`` (in the cache, which
        sweep variants share)."""
        return self.cache_root / "locks" / f"{key}.lock"

    def stage_dir(self, stage: str, key: str, fp: str) -> Path:
        """Content-addressed output folder of one stage of one camera (or ``key="all"``)."""
        return self.cache_root / stage / key / fp

    # writing
    def prepare(self, config_yaml: str, seed: int, argv: Sequence[str] | None = None) -> None:
        """Create the folder, remove leftovers of a killed run, write config and manifest.

        Temporary files of cameras and stages are left alone here: a camera job removes
        its own under its lock, so a rerun never deletes the files of a worker still alive.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        remove_temp_files(self.root, skip=CAMERA_OWNED)
        write_text_atomic(self.config_path, config_yaml)
        manifest = {
            "started": _now(),
            "seed": seed,
            "command": list(argv if argv is not None else sys.argv),
            "cwd": os.getcwd(),
            "host": socket.gethostname(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": package_versions(),
            "cache": str(self.cache_root),
        }
        write_json_atomic(self.manifest_path, manifest)
