"""Double JPEG against the FBCNN procedure written with OpenCV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from carbench.degradations.double_jpeg import DoubleJpeg


def fbcnn_double(img: np.ndarray, q1: int, q2: int, dy: int, dx: int) -> np.ndarray:
    """FBCNN's gray double-JPEG test: encode, decode, drop rows/cols, encode, decode (OpenCV)."""
    flag = cv2.IMREAD_UNCHANGED
    _, b1 = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q1])
    x = cv2.imdecode(b1, flag)[dy:, dx:]
    _, b2 = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, q2])
    return cv2.imdecode(b2, flag)


@pytest.mark.parametrize(
    ("q1", "q2", "shift"), [(10, 30, 4), (50, 10, 4), (30, 30, 0), (10, 90, 8)]
)
def test_gray_equals_fbcnn_procedure(camera, q1, q2, shift):
    out = DoubleJpeg(q1, q2, shift, shift).apply(camera)
    assert np.array_equal(out.decoded, fbcnn_double(camera, q1, q2, shift, shift))
    assert np.array_equal(out.gt, camera[shift:, shift:])
    assert out.gt_changed == bool(shift)


def test_color_unequal_shift(coffee):
    bgr = cv2.cvtColor(coffee, cv2.COLOR_RGB2BGR)
    ref = cv2.cvtColor(fbcnn_double(bgr, 5, 95, 4, 0), cv2.COLOR_BGR2RGB)
    out = DoubleJpeg(5, 95, dy=4, dx=0).apply(coffee)
    assert np.array_equal(out.decoded, ref)
    assert out.gt.shape == (396, 600, 3)


def test_ids_and_grid_labels():
    assert DoubleJpeg(5, 95).id == "jpeg2-q5-q95"
    assert DoubleJpeg(10, 30, 4, 4).id == "jpeg2-q10-q30-s4x4"
    assert DoubleJpeg(10, 30, 4, 0, "444").id == "jpeg2-q10-q30-s4x0-444"
    assert DoubleJpeg(5, 95).grid() == "aligned"
    assert DoubleJpeg(5, 95, 4, 4).grid() == "misaligned"
    assert DoubleJpeg(5, 95, 8, 8).grid() == "luma-aligned"  # 4:2:0 chroma MCU is 16 px
    assert DoubleJpeg(5, 95, 8, 8, "444").grid() == "aligned"
    assert DoubleJpeg(5, 95, 16, 16).grid() == "aligned"


def test_shift_larger_than_image_is_a_clear_error():
    img = np.zeros((7 + 8, 16), np.uint8)
    with pytest.raises(ValueError, match=r"a shift of 8x8 .* leaves 7x8 pixels of a 15x16 image"):
        DoubleJpeg(10, 30, 8, 8).apply(img)


@pytest.mark.parametrize(
    "kw", [{"q1": 0, "q2": 10}, {"q1": 10, "q2": 101}, {"q1": 10, "q2": 10, "dy": -1}]
)
def test_bad_parameters(kw):
    with pytest.raises(ValueError):
        DoubleJpeg(**kw)
