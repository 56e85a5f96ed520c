"""The batched Kalman path gives filterpy's numbers; the noise model is the reference's."""

import numpy as np
import pytest

from mct.track.kalman import BatchKalman, FilterpyTrackFilter


def _random_boxes(rng, n):
    # centre x, centre y, aspect w/h, height (pixels)
    return np.column_stack(
        [rng.uniform(0, 1920, n), rng.uniform(0, 1080, n), rng.uniform(0.5, 2.5, n), rng.uniform(20, 300, n)]
    )


def test_new_track_std_is_height_scaled_as_the_reference():
    kf = BatchKalman()
    mean, cov = kf.initiate(np.array([[100.0, 200.0, 1.5, 80.0]]))
    np.testing.assert_array_equal(mean[0], [100, 200, 1.5, 80, 0, 0, 0, 0])
    h = 80.0
    want = np.array([2 * h / 20, 2 * h / 20, 1e-2, 2 * h / 20, 10 * h / 160, 10 * h / 160, 1e-5, 10 * h / 160])
    full = BatchKalman.full_covariance(cov)[0]
    np.testing.assert_allclose(np.diag(full), want**2)
    assert np.count_nonzero(full - np.diag(np.diag(full))) == 0


def test_predict_moves_by_velocity_and_adds_process_noise():
    kf = BatchKalman()
    mean = np.array([[10.0, 20.0, 1.0, 100.0, 3.0, -2.0, 0.0, 1.0]])
    cov = np.zeros((1, 3, 4))
    new_mean, new_cov = kf.predict(mean, cov)
    np.testing.assert_allclose(new_mean[0], [13, 18, 1, 101, 3, -2, 0, 1])
    h = 100.0  # noise uses the height before the step
    want = np.array([h / 20, h / 20, 1e-2, h / 20, h / 160, h / 160, 1e-5, h / 160]) ** 2
    np.testing.assert_allclose(np.diag(BatchKalman.full_covariance(new_cov)[0]), want)
    np.testing.assert_array_equal(mean[0], [10.0, 20.0, 1.0, 100.0, 3.0, -2.0, 0.0, 1.0])  # input untouched


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_path_agrees_with_filterpy(seed):
    rng = np.random.default_rng(seed)
    n = 6
    first = _random_boxes(rng, n)
    batch = BatchKalman(1 / 20, 1 / 160)
    mean, cov = batch.initiate(first)
    singles = [FilterpyTrackFilter(b, 1 / 20, 1 / 160) for b in first]
    for step in range(12):
        mean, cov = batch.predict(mean, cov)
        for s in singles:
            s.predict()
        # project and gating distances agree
        probe = _random_boxes(rng, 5)
        pm, pc = batch.project(mean, cov)
        gd = batch.gating_distance(mean, cov, probe)
        for i, s in enumerate(singles):
            sm, sc = s.project()
            np.testing.assert_allclose(pm[i], sm, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(np.diag(pc[i]), sc, rtol=1e-9, atol=1e-9)  # S is diagonal
            np.testing.assert_allclose(gd[i], s.gating_distance(probe), rtol=1e-9)
        # every other frame, a subset of tracks is measured
        if step % 2 == 0:
            rows = np.flatnonzero(rng.random(n) < 0.7)
            z = mean[rows, :4] + rng.normal(scale=[3, 3, 0.05, 3], size=(len(rows), 4))
            mean[rows], cov[rows] = batch.update(mean[rows], cov[rows], z)
            for r, zz in zip(rows, z):
                singles[r].update(zz)
        for i, s in enumerate(singles):
            np.testing.assert_allclose(mean[i], s.mean, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(BatchKalman.full_covariance(cov)[i], s.cov, rtol=1e-9, atol=1e-9)


def test_gating_distance_is_zero_at_the_prediction_and_grows_with_offset():
    kf = BatchKalman()
    mean, cov = kf.initiate(np.array([[500.0, 500.0, 1.0, 100.0]]))
    mean, cov = kf.predict(mean, cov)
    d = kf.gating_distance(mean, cov, np.array([[500.0, 500, 1, 100], [510, 500, 1, 100], [900, 500, 1, 100]]))
    assert d[0, 0] == pytest.approx(0.0)
    assert 0 < d[0, 1] < 9.4877 < d[0, 2]


def test_empty_inputs():
    kf = BatchKalman()
    mean, cov = kf.initiate(np.zeros((0, 4)))
    assert mean.shape == (0, 8) and cov.shape == (0, 3, 4)
    m2, c2 = kf.predict(mean, cov)
    assert m2.shape == (0, 8) and c2.shape == (0, 3, 4)
    assert kf.gating_distance(mean, cov, np.ones((3, 4))).shape == (0, 3)
