"""One camera job, in process, with fake stages: caching, invalidation, skipping, faults."""

from __future__ import annotations

import numpy as np
import pytest

from mct.run.camera_job import CameraJob, camera_fingerprints, run_camera_job
from mct.run.storage import StoredDetections
from tests.e2e.fakes import FakeStages, fake_config, make_layout


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return make_layout(tmp_path_factory.mktemp("data"), cameras=("c001", "c002"), num_frames=12)


def _job(layout, run_dir, *overrides, force=False, camera="c001"):
    cfg = fake_config(layout, "run.batch_frames=5", *overrides)
    stages = FakeStages()
    cams, _, _, _ = stages.load_dataset(cfg.dataset)
    cam = next(c for c in cams if c.camera_id == camera)
    return CameraJob(cam, cfg, str(run_dir), str(run_dir / "cache"), force, stages)


def _statuses(result):
    return {s: e["status"] for s, e in result.stages.items()}


# which stages a change of one config key must redo (the rest are reused)
INVALIDATION = [
    ("detector.min_score=0.5", {"detect", "embed", "track"}),
    ("dataset.max_frames=7", {"detect", "embed", "track"}),
    ("reid.crop_height=128", {"embed", "track"}),
    ("seed=3", {"embed", "track"}),
    ("tracker.max_age=5", {"track"}),
    ("tracker.output=filtered", {"track"}),  # other boxes written: the tracklets change
    ("tracklets.min_length=2", {"track"}),
    ("association.k=3", set()),
    ("evaluation.iou_threshold=0.6", set()),
    ("run.workers=1", set()),
    ("dataset.cameras=[c001]", set()),  # selecting cameras must not redo the ones done
]


@pytest.mark.parametrize("override, redone", INVALIDATION)
def test_fingerprints_change_exactly_for_the_dependent_stages(layout, tmp_path, override, redone):
    base = _job(layout, tmp_path)
    changed = _job(layout, tmp_path, override)
    a, b = camera_fingerprints(base.camera, base.config), camera_fingerprints(changed.camera, changed.config)
    assert {s for s in a if a[s] != b[s]} == redone


def test_first_run_computes_rerun_reuses_and_config_change_redoes_only_tracking(layout, tmp_path):
    r1 = run_camera_job(_job(layout, tmp_path))
    assert r1.status == "ok", r1.error
    assert _statuses(r1) == {"detect": "computed", "embed": "computed", "track": "computed"}
    assert r1.frames == 12 and r1.num_tracklets == 2  # the two fake cars
    cam_dir = tmp_path / "cameras" / "S01_c001"
    assert {p.name for p in cam_dir.iterdir()} >= {"detections.npz", "embeddings.npy", "tracklets.pkl", "tracks.txt",
                                                  "status.json"}
    dets = list(StoredDetections(cam_dir / "detections.npz"))
    assert [d.frame for d in dets] == list(range(1, 13)) and all(len(d) == 2 for d in dets)
    assert np.load(cam_dir / "embeddings.npy").shape == (24, 4)
    # tracks.txt: MOT format, one line per (frame, track), frames 1-based
    lines = (cam_dir / "tracks.txt").read_text().splitlines()
    assert len(lines) == 24 and lines[0].split(",")[:2] == ["1", "1"]

    r2 = run_camera_job(_job(layout, tmp_path))
    assert _statuses(r2) == {"detect": "cached", "embed": "cached", "track": "cached"}
    assert r2.num_tracklets == 2

    r3 = run_camera_job(_job(layout, tmp_path, "tracker.max_age=5"))
    assert _statuses(r3) == {"detect": "cached", "embed": "cached", "track": "computed"}

    r4 = run_camera_job(_job(layout, tmp_path, force=True))
    assert _statuses(r4) == {"detect": "computed", "embed": "computed", "track": "computed"}
    assert (cam_dir / "tracks.txt").read_text().splitlines() == lines


def test_reid_off_skips_embedding(layout, tmp_path):
    r = run_camera_job(_job(layout, tmp_path, "reid.enabled=false"))
    assert r.status == "ok", r.error
    assert r.stages["embed"]["status"] == "skipped"
    assert not (tmp_path / "cameras" / "S01_c001" / "embeddings.npy").exists()


def test_motion_only_tracking_still_embeds_for_association_and_shares_the_embeddings(layout, tmp_path):
    # the ablation "appearance vs motion-only tracking" changes the tracker only: the
    # tracklets still need appearance features for cross-camera association
    base = _job(layout, tmp_path)
    motion = _job(layout, tmp_path, "tracker.mode=motion_only")
    a, b = camera_fingerprints(base.camera, base.config), camera_fingerprints(motion.camera, motion.config)
    assert a["embed"] == b["embed"] and a["track"] != b["track"]
    r = run_camera_job(motion)
    assert r.status == "ok", r.error
    assert r.stages["embed"]["status"] == "computed"
    assert (tmp_path / "cameras" / "S01_c001" / "embeddings.npy").exists()


def test_max_frames_limits_the_frames_read(layout, tmp_path):
    r = run_camera_job(_job(layout, tmp_path, "dataset.max_frames=7"))
    assert r.frames == 7
    dets = list(StoredDetections(tmp_path / "cameras" / "S01_c001" / "detections.npz"))
    assert [d.frame for d in dets] == list(range(1, 8))


def test_corrupt_video_fails_the_camera_with_a_message_naming_the_file(layout, tmp_path):
    job = _job(layout, tmp_path)
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"this is not a video" * 10)
    import dataclasses

    job = dataclasses.replace(job, camera=dataclasses.replace(job.camera, video_path=bad))
    r = run_camera_job(job)
    assert r.status == "failed"
    assert "bad.avi" in r.error
    cam_dir = tmp_path / "cameras" / "S01_c001"
    assert "Traceback" in (cam_dir / "error.txt").read_text()
    assert not any("tmp-" in p.name for p in tmp_path.rglob("*"))
    # the video is fixed: the camera runs, and its old error goes away
    r = run_camera_job(_job(layout, tmp_path))
    assert r.status == "ok" and not (cam_dir / "error.txt").exists()


def test_missing_video_fails_clearly(layout, tmp_path):
    import dataclasses

    job = _job(layout, tmp_path)
    job = dataclasses.replace(job, camera=dataclasses.replace(job.camera, video_path=tmp_path / "nope" / "vdo.avi"))
    r = run_camera_job(job)
    assert r.status == "failed" and "vdo.avi" in r.error and "not found" in r.error


def test_turning_reid_on_later_embeds_the_cached_detections(layout, tmp_path):
    r = run_camera_job(_job(layout, tmp_path, "reid.enabled=false"))
    assert _statuses(r) == {"detect": "computed", "embed": "skipped", "track": "computed"}
    r = run_camera_job(_job(layout, tmp_path))
    assert _statuses(r) == {"detect": "cached", "embed": "computed", "track": "computed"}
    assert np.load(tmp_path / "cameras" / "S01_c001" / "embeddings.npy").shape == (24, 4)
    # the same embeddings as computing both stages in one pass
    fresh = run_camera_job(_job(layout, tmp_path / "fresh"))
    assert fresh.status == "ok"
    np.testing.assert_array_equal(np.load(tmp_path / "cameras" / "S01_c001" / "embeddings.npy"),
                                  np.load(tmp_path / "fresh" / "cameras" / "S01_c001" / "embeddings.npy"))


def test_replacing_the_reid_weights_file_redoes_embedding_and_tracking(layout, tmp_path):
    # the weights path stays the same; only the file behind it changes (a retrained model)
    weights = tmp_path / "reid.pt"
    weights.write_bytes(b"first model")
    job = _job(layout, tmp_path, f"reid.weights={weights}")
    before = camera_fingerprints(job.camera, job.config)
    weights.write_bytes(b"retrained model, other size")
    after = camera_fingerprints(job.camera, job.config)
    assert {s for s in before if before[s] != after[s]} == {"embed", "track"}


def test_replacing_the_video_redoes_every_camera_stage(layout, tmp_path):
    job = _job(layout, tmp_path)
    before = camera_fingerprints(job.camera, job.config)
    video = job.camera.video_path
    original = video.read_bytes()
    try:
        video.write_bytes(original + b"\0")
        after = camera_fingerprints(job.camera, job.config)
    finally:
        video.write_bytes(original)
    assert {s for s in before if before[s] != after[s]} == {"detect", "embed", "track"}


def test_replacing_repo_relative_detector_weights_redoes_detection_from_any_folder(layout, tmp_path, monkeypatch):
    # The detector finds a relative weights path in the working directory, else in the
    # repository (shipped models). The fingerprint must follow the same file: here the run
    # starts in another folder, and replacing the repository's file must redo detection.
    import mct.detect.config as detect_config

    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    weights = repo / "models" / "det.pt"
    weights.write_bytes(b"first detector")
    monkeypatch.setattr(detect_config, "REPO_ROOT", repo)
    monkeypatch.chdir(tmp_path)
    job = _job(layout, tmp_path, "detector.source=maskrcnn", "detector.weights=models/det.pt")
    before = camera_fingerprints(job.camera, job.config)
    weights.write_bytes(b"retrained detector, other size")
    after = camera_fingerprints(job.camera, job.config)
    assert {s for s in before if before[s] != after[s]} == {"detect", "embed", "track"}


class _CountingStages(FakeStages):
    def __init__(self) -> None:
        super().__init__()
        self.released = 0

    def release_heap(self) -> None:
        self.released += 1


def test_the_heap_is_released_after_every_batch_of_frames(layout, tmp_path):
    # 12 frames in batches of 5: three batches, so RSS cannot creep between them
    job = _job(layout, tmp_path)
    stages = _CountingStages()
    result = run_camera_job(CameraJob(job.camera, job.config, job.run_root, job.cache_root, False, stages))
    assert result.status == "ok", result.error
    assert stages.released == 3


class _FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def fake_libc(monkeypatch):
    from mct.run import stages

    libc = _FakeLibc()
    monkeypatch.setattr(stages, "_libc", lambda: libc)
    monkeypatch.delenv("MCT_MMAP_THRESHOLD", raising=False)
    monkeypatch.delenv("MCT_MALLOC_TRIM", raising=False)
    return libc


def test_workers_fix_a_large_mmap_threshold_not_glibcs_128k(fake_libc, monkeypatch):
    # at 128 KiB every network activation was a fresh mmap: the detector ran at 10.7 instead
    # of 17.2 frames/s; the threshold must stay above the activations of the demo models
    from mct.run.stages import MMAP_THRESHOLD_BYTES, Stages

    Stages().prepare_worker(0, 1)
    assert fake_libc.calls == [("mallopt", -3, MMAP_THRESHOLD_BYTES)]
    assert MMAP_THRESHOLD_BYTES >= 16 << 20
    monkeypatch.setenv("MCT_MMAP_THRESHOLD", "0")  # 0: leave glibc's dynamic threshold alone
    fake_libc.calls.clear()
    Stages().prepare_worker(0, 1)
    assert fake_libc.calls == []


def test_release_heap_trims_unless_turned_off(fake_libc, monkeypatch):
    from mct.run.stages import Stages

    Stages().release_heap()
    assert fake_libc.calls == [("malloc_trim", 0)]
    monkeypatch.setenv("MCT_MALLOC_TRIM", "0")
    Stages().release_heap()
    assert fake_libc.calls == [("malloc_trim", 0)]


class _KilledAt(FakeStages):
    """The detector dies (as a kill would stop it) when it reaches ``frame``."""

    def __init__(self, frame: int) -> None:
        super().__init__()
        self.frame = frame

    def detector(self, cfg, camera):
        inner = super().detector(cfg, camera)
        stop_at = self.frame

        class Dying:
            needs_frames = True

            def detect(self, numbers, frames):
                if max(numbers) >= stop_at:
                    raise KeyboardInterrupt("killed")
                return inner.detect(numbers, frames)

        return Dying()


class _Counting(FakeStages):
    """Records which frames the detector is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[int] = []

    def detector(self, cfg, camera):
        inner, seen = super().detector(cfg, camera), self.frames

        class Counting:
            needs_frames = True

            def detect(self, numbers, frames):
                seen.extend(numbers)
                return inner.detect(numbers, frames)

        return Counting()


def _files(run_dir):
    cam = run_dir / "cameras" / "S01_c001"
    return {name: (cam / name).read_bytes() for name in ("detections.npz", "embeddings.npy", "tracks.txt")}


def test_a_job_stopped_mid_video_resumes_from_its_last_saved_chunk(layout, tmp_path):
    # 12 frames, batches of 2; chunk_frames 3 is rounded up to whole batches: chunks of 4
    settings = ("run.batch_frames=2", "run.chunk_frames=3")
    fresh = run_camera_job(_job(layout, tmp_path / "fresh", *settings))
    assert fresh.status == "ok", fresh.error
    job = _job(layout, tmp_path / "run", *settings)
    # frames 1-8 done (chunks 1 and 2 saved), then the job dies in the batch of frames 9-10
    with pytest.raises(KeyboardInterrupt):
        run_camera_job(CameraJob(job.camera, job.config, job.run_root, job.cache_root, False, _KilledAt(9)))
    counting = _Counting()
    r = run_camera_job(CameraJob(job.camera, job.config, job.run_root, job.cache_root, False, counting))
    assert r.status == "ok", r.error
    assert counting.frames == [9, 10, 11, 12]  # only the frames after the last saved chunk
    assert r.stages["detect"]["resumed_after_frames"] == 8 and r.frames == 12
    assert _files(tmp_path / "run") == _files(tmp_path / "fresh")  # the same bytes


def test_chunks_of_another_size_are_dropped_not_mixed(layout, tmp_path):
    job = _job(layout, tmp_path / "run", "run.batch_frames=2", "run.chunk_frames=4")
    with pytest.raises(KeyboardInterrupt):
        run_camera_job(CameraJob(job.camera, job.config, job.run_root, job.cache_root, False, _KilledAt(9)))
    # the rerun saves chunks of 6 frames: the 4-frame chunks cannot be reused
    rerun = _job(layout, tmp_path / "run", "run.batch_frames=2", "run.chunk_frames=6")
    counting = _Counting()
    r = run_camera_job(CameraJob(rerun.camera, rerun.config, rerun.run_root, rerun.cache_root, False, counting))
    assert r.status == "ok" and counting.frames == list(range(1, 13))
    fresh = run_camera_job(_job(layout, tmp_path / "fresh", "run.batch_frames=2"))
    assert fresh.status == "ok" and _files(tmp_path / "run") == _files(tmp_path / "fresh")
