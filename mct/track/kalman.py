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

Options beyond the reference (``BatchKalman`` only): ``state="xywh"`` (BoT-SORT's filter:
state ``(x, y, w, h, ...)``, the x and w noise scaled by the width, y and h by the height,
no fixed aspect terms) and ``update(..., scores=...)`` (StrongSORT's NSA: measurement noise
std times ``1 - score``).

Two implementations that give the same numbers (``tests/unit/test_track_kalman.py``
checks it to 1e-9):

* :class:`FilterpyTrackFilter`: one filterpy ``KalmanFilter`` per track, the readable
  reference (used by :mod:`mct.track.reference`).
* :class:`BatchKalman`: the same equations on stacked arrays for all tracks at once
  (used by :class:`mct.track.deep_sort.DeepSortTracker`), with the covariance stored
  compactly (the model decouples per coordinate, see the class). The update uses
  filterpy's Joseph form ``P = (I - KH) P (I - KH)^T + K R K^T``.
"""

from __future__ import annotations

import numpy as np

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
    """The Deep SORT Kalman filter on all tracks at once, in a compact covariance form.

    Every matrix of this model is "per coordinate": F couples each measured coordinate
    ``i`` (x, y, a, h) only with its own velocity ``i + 4``, and Q, R and the initial
    covariance are diagonal. So the 8 x 8 covariance never has other non-zero entries
    (filterpy's products keep those entries exactly 0) and the filter is four independent
    2-state filters whose noise levels share the height ``h``. This class stores only the
    non-zero entries, ``cov (N, 3, 4)``: ``cov[:, 0, i] = P[i, i]``,
    ``cov[:, 1, i] = P[i, i+4]``, ``cov[:, 2, i] = P[i+4, i+4]``; the innovation covariance
    is diagonal, so gating and the gain need no matrix inverse. :meth:`full_covariance`
    gives the 8 x 8 matrices. ``tests/unit/test_track_kalman.py`` checks mean and full
    covariance against a filterpy ``KalmanFilter`` to 1e-9.

    Args:
        std_weight_position: position noise per pixel of height (reference 1/20).
        std_weight_velocity: velocity noise per pixel of height (reference 1/160).

    Arrays: ``mean (N, 8) float64``, ``cov (N, 3, 4) float64``, measurements
    ``xyah (N, 4) float64``. Every method returns new arrays and leaves its inputs alone.
    """

    def __init__(
        self,
        std_weight_position: float = 1.0 / 20.0,
        std_weight_velocity: float = 1.0 / 160.0,
        state: str = "xyah",
    ):
        self.std_weight_position = float(std_weight_position)
        self.std_weight_velocity = float(std_weight_velocity)
        if state not in ("xyah", "xywh"):
            raise ValueError(f"BatchKalman: state must be 'xyah' or 'xywh', got {state!r}")
        self.state = state
        wp, wv = self.std_weight_position, self.std_weight_velocity
        if state == "xyah":
            # std = scale * h + constant, per coordinate (x, y, a, h): the aspect entries
            # are the reference's fixed values, the others are height-scaled
            self._pos_scale = np.array([wp, wp, 0.0, wp])
            self._pos_const = np.array([0.0, 0.0, _STD_ASPECT, 0.0])
            self._vel_scale = np.array([wv, wv, 0.0, wv])
            self._vel_const = np.array([0.0, 0.0, _STD_ASPECT_VELOCITY, 0.0])
            self._meas_const = np.array([0.0, 0.0, _STD_ASPECT_MEASUREMENT, 0.0])
        else:
            # BoT-SORT's xywh filter: x and w scale with the width, y and h with the height
            self._pos_scale = np.full(4, wp)
            self._pos_const = np.zeros(4)
            self._vel_scale = np.full(4, wv)
            self._vel_const = np.zeros(4)
            self._meas_const = np.zeros(4)

    def _size(self, box_or_h: np.ndarray) -> np.ndarray:
        """``(N, 4)`` the size each coordinate's noise scales with: ``h`` (xyah) or ``(w, h, w, h)`` (xywh).

        Takes state boxes ``(N, 4)`` (the first four state entries), or heights ``(N,)`` for
        the xyah state.
        """
        x = np.asarray(box_or_h, dtype=np.float64)
        if x.ndim == 1:
            if self.state != "xyah":
                raise ValueError("BatchKalman(state='xywh') needs (N, 4) boxes, not heights")
            return np.repeat(x[:, None], 4, axis=1)
        if self.state == "xyah":
            return np.repeat(x[:, 3:4], 4, axis=1)
        return x[:, [2, 3, 2, 3]]

    # ------------------------------------------------------------------ noise
    def initial_std(self, h: np.ndarray) -> np.ndarray:
        """``(N, 8)`` std of a new track with measured heights ``h (N,)`` (or measured boxes ``(N, 4)``)."""
        size = self._size(h)
        pos = 2 * self._pos_scale * size + self._pos_const
        vel = 10 * self._vel_scale * size + self._vel_const
        return np.concatenate([pos, vel], axis=1)

    def process_std(self, h: np.ndarray) -> np.ndarray:
        """``(N, 8)`` process noise std for state heights ``h (N,)`` (or state boxes ``(N, 4)``)."""
        size = self._size(h)
        return np.concatenate([self._pos_scale * size + self._pos_const, self._vel_scale * size + self._vel_const], axis=1)

    def measurement_std(self, h: np.ndarray) -> np.ndarray:
        """``(N, 4)`` measurement noise std for state heights ``h (N,)`` (or state boxes ``(N, 4)``)."""
        return self._pos_scale * self._size(h) + self._meas_const

    # ------------------------------------------------------------------ filter
    def initiate(self, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from measurements ``xyah (N, 4)``: zero velocity, height-scaled std."""
        xyah = np.asarray(xyah, dtype=np.float64).reshape(-1, _NDIM)
        n = len(xyah)
        mean = np.zeros((n, 2 * _NDIM))
        mean[:, :_NDIM] = xyah
        var = np.square(self.initial_std(xyah if self.state == "xywh" else xyah[:, 3]))
        cov = np.zeros((n, 3, _NDIM))
        cov[:, 0] = var[:, :_NDIM]
        cov[:, 2] = var[:, _NDIM:]
        return mean, cov

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead: ``mean' = F mean``, ``cov' = F cov F^T + Q(h)`` (h before the step)."""
        q = np.square(self.process_std(self._noise_size(mean)))
        new_mean = mean.copy()
        new_mean[:, :_NDIM] += mean[:, _NDIM:]
        p, c, v = cov[:, 0], cov[:, 1], cov[:, 2]
        new_cov = np.empty_like(cov)
        new_cov[:, 0] = p + 2 * c + v + q[:, :_NDIM]
        new_cov[:, 1] = c + v
        new_cov[:, 2] = v + q[:, _NDIM:]
        return new_mean, new_cov

    def project(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Into measurement space: ``(N, 4)`` mean and ``(N, 4)`` innovation variances
        (the diagonal of ``H P H^T + R``; the off-diagonal entries are 0)."""
        r = np.square(self.measurement_std(self._noise_size(mean)))
        return mean[:, :_NDIM].copy(), cov[:, 0] + r

    def _noise_size(self, mean: np.ndarray) -> np.ndarray:
        return mean[:, 3] if self.state == "xyah" else mean[:, :_NDIM]

    def update(
        self, mean: np.ndarray, cov: np.ndarray, xyah: np.ndarray, scores: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct track ``i`` with measurement ``xyah[i]`` (filterpy's equations, Joseph form).

        ``scores (N,)``: detection confidences in [0, 1] for StrongSORT's NSA Kalman: the
        measurement noise std is scaled by ``1 - score`` (a confident box moves the state
        more). ``None`` (the reference) leaves it unscaled.
        """
        xyah = np.asarray(xyah, dtype=np.float64).reshape(-1, _NDIM)
        r = np.square(self.measurement_std(self._noise_size(mean)))
        if scores is not None:
            # floor: a score of 1 would make the measurement exact and the gain singular
            r = r * np.square(np.maximum(1.0 - np.asarray(scores, dtype=np.float64), 1e-3))[:, None]
        p, c, v = cov[:, 0], cov[:, 1], cov[:, 2]
        s = p + r
        k_pos, k_vel = p / s, c / s  # gain K = P H^T S^-1, per coordinate
        innovation = xyah - mean[:, :_NDIM]
        new_mean = mean.copy()
        new_mean[:, :_NDIM] += k_pos * innovation
        new_mean[:, _NDIM:] += k_vel * innovation
        # Joseph form P' = (I - KH) P (I - KH)^T + K R K^T, per 2 x 2 block
        a = 1.0 - k_pos
        new_cov = np.empty_like(cov)
        new_cov[:, 0] = a * a * p + k_pos * k_pos * r
        new_cov[:, 1] = a * (c - k_vel * p) + k_pos * k_vel * r
        new_cov[:, 2] = v - 2 * k_vel * c + k_vel * k_vel * p + k_vel * k_vel * r
        return new_mean, new_cov

    def gating_distance(self, mean: np.ndarray, cov: np.ndarray, xyah: np.ndarray) -> np.ndarray:
        """``(N, M)`` squared Mahalanobis distance of each measurement to each projected track."""
        xyah = np.asarray(xyah, dtype=np.float64).reshape(-1, _NDIM)
        if len(mean) == 0 or len(xyah) == 0:
            return np.zeros((len(mean), len(xyah)))
        proj_mean, proj_var = self.project(mean, cov)
        d = xyah[None, :, :] - proj_mean[:, None, :]  # (N, M, 4)
        return np.einsum("nmi,ni->nm", d * d, 1.0 / proj_var)

    @staticmethod
    def full_covariance(cov: np.ndarray) -> np.ndarray:
        """``(N, 8, 8)`` covariance matrices of the compact ``cov (N, 3, 4)``."""
        n = len(cov)
        full = np.zeros((n, 2 * _NDIM, 2 * _NDIM))
        i = np.arange(_NDIM)
        full[:, i, i] = cov[:, 0]
        full[:, i, i + _NDIM] = cov[:, 1]
        full[:, i + _NDIM, i] = cov[:, 1]
        full[:, i + _NDIM, i + _NDIM] = cov[:, 2]
        return full


class FilterpyTrackFilter:
    """One track's filter as a filterpy ``KalmanFilter`` with the Deep SORT noise model.

    Args:
        xyah: ``(4,)`` first measurement.
        std_weight_position, std_weight_velocity: as :class:`BatchKalman`.
    """

    def __init__(self, xyah: np.ndarray, std_weight_position: float = 1.0 / 20.0, std_weight_velocity: float = 1.0 / 160.0):
        from filterpy.kalman import KalmanFilter  # imported here: ~1.3 s, and the tracker does not need it

        self._model = BatchKalman(std_weight_position, std_weight_velocity)
        mean, cov = self._model.initiate(np.asarray(xyah, dtype=np.float64)[None])
        self.kf = KalmanFilter(dim_x=2 * _NDIM, dim_z=_NDIM)
        self.kf.F = motion_matrix()
        self.kf.H = measurement_matrix()
        self.kf.x = mean[0][:, None].copy()
        self.kf.P = BatchKalman.full_covariance(cov)[0]

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
