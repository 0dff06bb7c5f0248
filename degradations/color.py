"""Colour conversions used by the protocols and metrics (pure numpy)."""

from __future__ import annotations

import numpy as np

# MATLAB rgb2ycbcr / BT.601 studio range: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64)


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma (16-235) of a uint8 RGB image, as float64 (not rounded).

    Operation order as in KAIR/BasicSR (dot product, then /255, then +16), so that rounding
    afterwards gives the same integers as their ``rgb2ycbcr`` on uint8 input.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb_to_y expects an HxWx3 image, got shape {rgb.shape}")
    return rgb.astype(np.float64) @ _Y_WEIGHTS / 255.0 + 16.0


def rgb_to_y_uint8(rgb: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma rounded to uint8, as MATLAB/KAIR do for uint8 input."""
    return np.clip(np.round(rgb_to_y(rgb)), 0, 255).astype(np.uint8)


# MATLAB rgb2ycbcr's matrix (rows Y, Cb, Cr) on the 0-255 scale, and its offsets
_YCBCR = (
    np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]])
    / 255.0
)
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` (BT.601 studio range) of uint8 RGB, float64 on the 0-255 scale
    (not rounded)."""
    return rgb.astype(np.float64) @ _YCBCR.T + _YCBCR_OFFSET


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """MATLAB ``ycbcr2rgb`` of a 0-255 scale YCbCr image, rounded to uint8."""
    rgb = (ycc - _YCBCR_OFFSET) @ np.linalg.inv(_YCBCR).T
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
