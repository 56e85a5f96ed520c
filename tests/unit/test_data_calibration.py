"""calibration.txt: parse, write, project ground <-> image, and the promised errors."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from mct.data.calibration import Calibration, CalibrationError, read_calibration, write_calibration
from tests.helpers import TINY_HOMOGRAPHY

# the layout of a CityFlowV2 file (values made up): scientific notation, ';' between rows
CITYFLOW_STYLE = (
    "Homography matrix: 2.0000000000e+00 0.0 4.0;0.0 2.0 4.0;0.0 0.0 1.0\n"
    "Reprojection error: 1.340000\n"
)
FISHEYE_STYLE = (
    "Intrinsic parameter matrix: 100.000000 0.000000 50.000000;0.000000 100.000000 40.000000;0 0 1\n"
    "Distortion coefficients: -0.200000 0.000000 0.000000 0.000000\n"
    "Homography matrix: 20 0 50;0 20 40;0 0 1\n"
    "Reprojection error: 0.5\n"
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calibration.txt"
    path.write_text(text)
    return path


def test_read_cityflow_style(tmp_path: Path) -> None:
    cal = read_calibration(write(tmp_path, CITYFLOW_STYLE))
    np.testing.assert_array_equal(cal.homography, TINY_HOMOGRAPHY)
    assert cal.intrinsics is None and cal.distortion is None
    assert cal.reprojection_error == pytest.approx(1.34)


def test_known_points_map_both_ways() -> None:
    cal = Calibration(TINY_HOMOGRAPHY)
    ground = np.array([[0.0, 0.0], [1.0, 2.0], [-2.0, 0.5]])
    # 2 px per metre, origin at pixel (4, 4)
    pixels = np.array([[4.0, 4.0], [6.0, 8.0], [0.0, 5.0]])
    np.testing.assert_allclose(cal.ground_to_image(ground), pixels)
    np.testing.assert_allclose(cal.image_to_ground(pixels), ground)
    assert cal.image_to_ground(np.zeros((0, 2))).shape == (0, 2)
    np.testing.assert_allclose(cal.ground_to_image([1.0, 2.0]), [[6.0, 8.0]])


def test_perspective_round_trip_and_horizon() -> None:
    # a tilted camera: w depends on y, the horizon is the image row where w -> 0
    h = np.array([[800.0, 0.0, 640.0], [0.0, 100.0, 300.0], [0.0, 0.05, 1.0]])
    cal = Calibration(h)
    ground = np.array([[1.0, 5.0], [-3.0, 40.0], [0.0, 0.0]])
    np.testing.assert_allclose(cal.image_to_ground(cal.ground_to_image(ground)), ground, atol=1e-9)
    # ground y = -20 maps to w = 0: at the horizon -> NaN, not inf
    out = cal.ground_to_image(np.array([[0.0, -20.0], [0.0, 1.0]]))
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


def test_distortion_round_trip(tmp_path: Path) -> None:
    cal = read_calibration(write(tmp_path, FISHEYE_STYLE))
    assert cal.has_distortion and cal.distortion.shape == (4,)
    ground = np.array([[0.0, 0.0], [1.5, -1.0], [-2.0, 1.5]])
    pixels = cal.ground_to_image(ground)
    # the principal point (ground 0,0 -> pixel 50,40) does not move under radial distortion
    np.testing.assert_allclose(pixels[0], [50.0, 40.0], atol=1e-6)
    # off-centre points move inwards (k1 < 0: barrel)
    undistorted = Calibration(cal.homography).ground_to_image(ground)
    assert np.linalg.norm(pixels[1] - [50, 40]) < np.linalg.norm(undistorted[1] - [50, 40])
    np.testing.assert_allclose(cal.image_to_ground(pixels), ground, atol=1e-3)


def test_write_read_round_trip(tmp_path: Path) -> None:
    h = np.array([[1.23456789e-4, -2.0, 3.5], [4.0, 5.0e6, -6.0], [7.0e-7, 8.0, 1.0]])
    k = np.array([[1000.0, 0, 640], [0, 1000.0, 360], [0, 0, 1]])
    d = np.array([-0.3, 0.1, 0.0, 0.0, 0.01])
    path = write_calibration(tmp_path / "c001" / "calibration.txt", h, intrinsics=k, distortion=d, reprojection_error=2.5)
    assert path.read_text().startswith("Homography matrix: 1.2345678900e-04 -2.0000000000e+00")
    back = read_calibration(path)
    np.testing.assert_allclose(back.homography, h, rtol=1e-10)
    np.testing.assert_allclose(back.intrinsics, k)
    np.testing.assert_allclose(back.distortion, d)
    assert back.reprojection_error == 2.5
    # a Calibration object writes the same file
    again = write_calibration(tmp_path / "again.txt", back)
    assert again.read_text() == path.read_text()
    # homography only: one line
    only = write_calibration(tmp_path / "only.txt", TINY_HOMOGRAPHY)
    assert only.read_text().count("\n") == 1 and read_calibration(only).intrinsics is None


def test_unknown_key_is_warned_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, CITYFLOW_STYLE + "GPS origin: 42.5 -90.6\n")
    with caplog.at_level(logging.WARNING, logger="mct.data.calibration"):
        read_calibration(path)
    assert f"{path}:3: unknown key 'GPS origin' ignored" in caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Reprojection error: 1.0\n", "no 'Homography matrix:' line"),
        ("Homography matrix: 1 0 0;0 1 0\n", "1: Homography matrix: expected 3 rows of 3 values separated by ';', got 2 rows of 3, 3 values"),
        ("Homography matrix: 1 0 0;0 1;0 0 1\n", "1: Homography matrix: expected 3 rows of 3 values separated by ';', got 3 rows of 3, 2, 3 values"),
        ("\nHomography matrix: 1 0 0;0 x 0;0 0 1\n", "2: Homography matrix: could not convert string to float: 'x'"),
        ("Homography matrix: 1 0 0;0 1 0;0 0 1\nHomography matrix: 1 0 0;0 1 0;0 0 1\n",
         "2: 'Homography matrix' given twice (first on line 1)"),
        ("Homography matrix: 1 0 0;0 1 0;0 0 1\nReprojection error: big\n", "2: Reprojection error: expected a number, got 'big'"),
        ("this line has no key\n", "1: expected 'Key: values', got 'this line has no key'"),
        ("Homography matrix: 0 0 0;0 0 0;0 0 0\n", "1: homography: the matrix is singular (determinant 0)"),
        ("Homography matrix: 1 2 3;2 4 6;0 0 1\n", "1: homography: the matrix is singular (determinant 0)"),
        ("Homography matrix: 1 0 0;0 1 0;0 0 1\nDistortion coefficients: 0.1 0 0 0\n",
         "2: distortion coefficients need an intrinsic parameter matrix"),
        ("Homography matrix: 1 0 0;0 1 0;0 0 1\nIntrinsic parameter matrix: 800 0 320;0 800 180;0 0 1\n"
         "Distortion coefficients: 0.1 0 0\n", "3: distortion: expected 4, 5, 8, 12 or 14 coefficients, got 3"),
        ("Reprojection error: 1.0\nHomography matrix: 1 0 0;0 nan 0;0 0 1\n", "2: Homography matrix: values must be finite"),
        ("Homography matrix:\n", "1: Homography matrix: expected 3 rows of 3 values separated by ';', got 1 rows of 0 values"),
        ("Homography matrix: 1 0 0;0 1 0;0 0 1\nDistortion coefficients:\n", "2: Distortion coefficients: no values"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    sep = "" if message.startswith(":") else ": " if message.startswith("no ") else ":"
    with pytest.raises(CalibrationError, match=re.escape(f"{path}{sep}{message}")):
        read_calibration(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="calibration file not found"):
        read_calibration(tmp_path / "calibration.txt")
