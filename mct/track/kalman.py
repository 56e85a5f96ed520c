"""The Deep SORT motion model: a constant-velocity Kalman filter on boxes.

State ``(x, y, a, h, vx, vy, va, vh)``: box centre (pixels), aspect ratio ``a = w / h``,
height ``h`` (pixels) and their velocities per frame; measurement ``(x, y, a, h)`` (the
``xyah`` box format). One step is one frame. Noise scales with the box height (Wojke et
al. 2017): with ``wp = std_weight_position`` (1/20) and ``wv = std_weight_velocity``
(1/160),

* process noise std ``(wp h, wp h, 1e-2, wp h, wv h, wv h, 1e-5, wv h)``,
* measurement noise std ``(wp h, wp h, 1e-1, wp h)``,
* a new track: velocities 0, std ``(2 wp h, 2 wp h, 1e-2, 2 wp h, 10 wv h, 10 wv h, 1e-5, 10 wv h)``,

where ``h`` is the height of the current state mean (the measured height for a new track).

Two implementations that give the same numbers (``tests/unit/test_track_kalman.py``
checks it to 1e-9):

* :class:`FilterpyTrackFilter`: one filterpy ``KalmanFilter`` per track, the readable
  reference (used by :mod:`mct.track.reference`).
* :class:`BatchKalman`: the same equations on stacked arrays ``mean (N, 8)``,
  ``cov (N, 8, 8)`` for all tracks at once (used by :class:`mct.track.deep_sort.DeepSortTracker`).
  The update uses filterpy's Joseph form ``P = (I - KH) P (I - KH)^T + K R K^T``.
"""

from __future__ import annotations

import numpy as np
from filterpy.kalman import KalmanFilter

__all__ = ["BatchKalman", "FilterpyTrackFilter", "motion_matrix", "measurement_matrix"]

_NDIM = 4
#: fixed noise std of the aspect ratio and its velocity (reference values; not height-scaled).
_STD_ASPECT = 1e-2
_STD_ASPECT_VELOCITY = 1e-5
_STD_ASPECT_MEASUREMENT = 1e-1


def motion_matrix() -> np.ndarray:
    """``(8, 8) float64`` constant-velocity transition for one frame."""
    f = np.eye(2 * _NDIM)
    f[:_NDIM, _NDIM:] = np.eye(_NDIM)
    return f


def measurement_matrix() -> np.ndarray:
    """``(4, 8) float64``: the measurement is the first four state entries."""
    return np.eye(_NDIM, 2 * _NDIM)


class BatchKalman:
    """The Deep SORT Kalman filter on all tracks at once.

    Args:
        std_weight_position: position noise per pixel of height (reference 1/20).
        std_weight_velocity: velocity noise per pixel of height (reference 1/160).

    Arrays: ``mean (N, 8) float64``, ``cov (N, 8, 8) float64``, measurements
    ``xyah (N, 4) float64``. Every method returns new arrays and leaves its inputs alone.
    """

    def __init__(self, std_weight_position: float = 1.0 / 20.0, std_weight_velocity: float = 1.0 / 160.0):
        self.std_weight_position = float(std_weight_position)
        self.std_weight_velocity = float(std_weight_velocity)
        self._f = motion_matrix()
        self._ft = self._f.T.copy()
        self._diag8 = np.arange(2 * _NDIM)
        self._diag4 = np.arange(_NDIM)

    # ------------------------------------------------------------------ noise
    def initial_std(self, h: np.ndarray) -> np.ndarray:
        """``(N, 8)`` std of a new track with measured heights ``h (N,)``."""
        wp, wv = self.std_weight_position, self.std_weight_velocity
        one = np.ones_like(h)
        return np.stack(
            [2 * wp * h, 2 * wp * h, 1e-2 * one, 2 * wp * h, 10 * wv * h, 10 * wv * h, 1e-5 * one, 10 * wv * h],
            axis=-1,
        )

    def process_std(self, h: np.ndarray) -> np.ndarray:
        """``(N, 8)`` process noise std for state heights ``h (N,)``."""
        wp, wv = self.std_weight_position, self.std_weight_velocity
        one = np.ones_like(h)
        return np.stack(
            [wp * h, wp * h, _STD_ASPECT * one, wp * h, wv * h, wv * h, _STD_ASPECT_VELOCITY * one, wv * h],
            axis=-1,
        )

    def measurement_std(self, h: np.ndarray) -> np.ndarray:
        """``(N, 4)`` measurement noise std for state heights ``h (N,)``."""
        wp = self.std_weight_position
        return np.stack([wp * h, wp * h, _STD_ASPECT_MEASUREMENT * np.ones_like(h), wp * h], axis=-1)

    # ------------------------------------------------------------------ filter
    def initiate(self, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from measurements ``xyah (N, 4)``: zero velocity, height-scaled std."""
        xyah = np.asarray(xyah, dtype=np.float64).reshape(-1, _NDIM)
        n = len(xyah)
        mean = np.zeros((n, 2 * _NDIM))
        mean[:, :_NDIM] = xyah
        cov = np.zeros((n, 2 * _NDIM, 2 * _NDIM))
        cov[:, self._diag8, self._diag8] = np.square(self.initial_std(xyah[:, 3]))
        return mean, cov

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead: ``mean' = F mean``, ``cov' = F cov F^T + Q(h)``."""
        q = np.square(self.process_std(mean[:, 3]))
        new_mean = mean @ self._ft
        new_cov = self._f @ cov @ self._ft
        new_cov[:, self._diag8, self._diag8] += q
        return new_mean, new_cov

    def project(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Into measurement space: ``(N, 4)`` mean and ``(N, 4, 4)`` innovation covariance."""
        r = np.square(self.measurement_std(mean[:, 3]))
        proj_cov = cov[:, :_NDIM, :_NDIM].copy()
        proj_cov[:, self._diag4, self._diag4] += r
        return mean[:, :_NDIM].copy(), proj_cov

    def update(self, mean: np.ndarray, cov: np.ndarray, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct track ``i`` with measurement ``xyah[i]`` (filterpy's equations, Joseph form)."""
        xyah = np.asarray(xyah, dtype=np.float64).reshape(-1, _NDIM)
        r = np.square(self.measurement_std(mean[:, 3]))
        s = cov[:, :_NDIM, :_NDIM].copy()
        s[:, self._diag4, self._diag4] += r
        pht = cov[:, :, :_NDIM]  # P H^T: (N, 8, 4)
        gain = pht @ np.linalg.inv(s)  # (N, 8, 4), as filterpy: K = P H^T S^-1
        innovation = xyah - mean[:, :_NDIM]
        new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        i_kh = np.broadcast_to(np.eye(2 * _NDIM), cov.shape).copy()
        i_kh[:, :, :_NDIM] -= gain
        krk = (gain * r[:, None, :]) @ gain.transpose(0, 2, 1)
        new_cov = i_kh @ cov @ i_kh.transpose(0, 2, 1) + krk
        return new_mean, new_cov

    def gating_distance(self, mean: np.ndarray, cov: np.ndarray, xyah: np.ndarray) -> np.ndarray:
        """``(N, M)`` squared Mahalanobis distance of each measurement to each projected track."""
        xyah = np.asarray(xyah, dtype=np.float64).reshape(-1, _NDIM)
        if len(mean) == 0 or len(xyah) == 0:
            return np.zeros((len(mean), len(xyah)))
        proj_mean, proj_cov = self.project(mean, cov)
        inv = np.linalg.inv(proj_cov)  # (N, 4, 4)
        d = xyah.T[None, :, :] - proj_mean[:, :, None]  # (N, 4, M)
        return np.sum((inv @ d) * d, axis=1)


class FilterpyTrackFilter:
    """One track's filter as a filterpy ``KalmanFilter`` with the Deep SORT noise model.

    Args:
        xyah: ``(4,)`` first measurement.
        std_weight_position, std_weight_velocity: as :class:`BatchKalman`.
    """

    def __init__(self, xyah: np.ndarray, std_weight_position: float = 1.0 / 20.0, std_weight_velocity: float = 1.0 / 160.0):
        self._model = BatchKalman(std_weight_position, std_weight_velocity)
        mean, cov = self._model.initiate(np.asarray(xyah, dtype=np.float64)[None])
        self.kf = KalmanFilter(dim_x=2 * _NDIM, dim_z=_NDIM)
        self.kf.F = motion_matrix()
        self.kf.H = measurement_matrix()
        self.kf.x = mean[0][:, None].copy()
        self.kf.P = cov[0].copy()

    @property
    def mean(self) -> np.ndarray:
        """``(8,)`` state mean."""
        return self.kf.x[:, 0].copy()

    @property
    def cov(self) -> np.ndarray:
        """``(8, 8)`` state covariance."""
        return self.kf.P.copy()

    def predict(self) -> None:
        h = self.kf.x[3:4, 0]
        self.kf.predict(Q=np.diag(np.square(self._model.process_std(h)[0])))

    def project(self) -> tuple[np.ndarray, np.ndarray]:
        """``(4,)`` projected mean and ``(4, 4)`` innovation covariance ``H P H^T + R``."""
        h = self.kf.x[3:4, 0]
        r = np.diag(np.square(self._model.measurement_std(h)[0]))
        return (self.kf.H @ self.kf.x)[:, 0], self.kf.H @ self.kf.P @ self.kf.H.T + r

    def update(self, xyah: np.ndarray) -> None:
        h = self.kf.x[3:4, 0]
        r = np.diag(np.square(self._model.measurement_std(h)[0]))
        self.kf.update(np.asarray(xyah, dtype=np.float64).reshape(_NDIM, 1), R=r)

    def gating_distance(self, xyah: np.ndarray) -> np.ndarray:
        """``(M,)`` squared Mahalanobis distances of measurements ``xyah (M, 4)`` (Cholesky, as the reference)."""
        xyah = np.asarray(xyah, dtype=np.float64).reshape(-1, _NDIM)
        proj_mean, proj_cov = self.project()
        chol = np.linalg.cholesky(proj_cov)
        # (scipy's solve_triangular gives the same numbers but was ~100x slower here)
        z = np.linalg.solve(chol, (xyah - proj_mean).T)
        return np.sum(z * z, axis=0)
