"""PSNR, SSIM and PSNR-B on uint8 images: pure numpy/OpenCV, float64, exact reference semantics.

Conventions (see the README's metric table):
* PSNR: 10 log10(255^2 / MSE), MSE over all pixels and channels.
* SSIM ``gauss11``: Wang et al., Gaussian 11x11 window sigma 1.5, C1=(0.01*255)^2,
  C2=(0.03*255)^2, valid region (5 pixels dropped per side), mean of the map; colour = mean
  of the per-channel values (FBCNN/KAIR/SwinIR). ``box8``: uniform 8x8 window, stride 1, valid
  region, images in [0,1] with C1=0.01^2, C2=0.03^2, population variances (QGAC/JDEC).
* PSNR-B (Yim & Bovik 2011) ``fbcnn``: BEF on the *test* image (rounded BT.601 Y for colour),
  boundary counts with true division, MSE over all channels, one value (FBCNN/CODiff/JDEC test
  scripts; stored as ``psnrb:kair`` before 0.2). ``swinir``: per channel on [0,1] images, BEF on
  the test image, integer (floor) counts, dB averaged over channels (QGAC; KAIR's and SwinIR's
  ``calculate_psnrb``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from carbench.degradations.color import rgb_to_y, rgb_to_y_uint8

BLOCK = 8


def _check_pair(test: np.ndarray, ref: np.ndarray) -> None:
    if test.shape != ref.shape:
        raise ValueError(f"image sizes differ: test {test.shape} vs reference {ref.shape}")


def crop_border(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:-border, border:-border] if border else img


def to_y(img: np.ndarray, rounded: bool = True) -> np.ndarray:
    """BT.601 studio-range Y of an RGB image (gray images are returned unchanged)."""
    if img.ndim == 2:
        return img
    return rgb_to_y_uint8(img) if rounded else rgb_to_y(img)


def psnr(test: np.ndarray, ref: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB over all pixels and channels (inf for identical images)."""
    _check_pair(test, ref)
    mse = np.mean((test.astype(np.float64) - ref.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10.0 * math.log10(peak**2 / mse)


_GAUSS = cv2.getGaussianKernel(11, 1.5)


def _ssim_gauss_channel(x: np.ndarray, y: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(a, cv2.CV_64F, _GAUSS, _GAUSS)[5:-5, 5:-5]

    mu1, mu2 = blur(x), blur(y)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = blur(x * x) - mu1_sq
    s2 = blur(y * y) - mu2_sq
    s12 = blur(x * y) - mu12
    num = (2 * mu12 + c1) * (2 * s12 + c2)
    den = (mu1_sq + mu2_sq + c1) * (s1 + s2 + c2)
    return float(np.mean(num / den))


def _box_mean(a: np.ndarray, k: int = BLOCK) -> np.ndarray:
    """Mean over every k x k window (stride 1, valid), via an integral image."""
    s = np.zeros((a.shape[0] + 1, a.shape[1] + 1))
    s[1:, 1:] = a.cumsum(0).cumsum(1)
    return (s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]) / (k * k)


def _ssim_box8_channel(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x / 255.0, y / 255.0
    c1, c2 = 0.01**2, 0.03**2
    mu1, mu2 = _box_mean(x), _box_mean(y)
    s1 = _box_mean(x * x) - mu1 * mu1
    s2 = _box_mean(y * y) - mu2 * mu2
    s12 = _box_mean(x * y) - mu1 * mu2
    num = (2 * mu1 * mu2 + c1) * (2 * s12 + c2)
    den = (mu1 * mu1 + mu2 * mu2 + c1) * (s1 + s2 + c2)
    return float(np.mean(num / den))


def ssim(test: np.ndarray, ref: np.ndarray, window: str = "gauss11") -> float:
    """SSIM of uint8 images; colour = mean over channels. ``window``: gauss11 | box8."""
    _check_pair(test, ref)
    fn = {"gauss11": _ssim_gauss_channel, "box8": _ssim_box8_channel}[window]
    min_side = 11 if window == "gauss11" else BLOCK
    if min(test.shape[:2]) < min_side:
        raise ValueError(f"SSIM ({window}) needs images of at least {min_side}x{min_side}")
    x, y = test.astype(np.float64), ref.astype(np.float64)
    if x.ndim == 2:
        return fn(x, y)
    return float(np.mean([fn(x[..., c], y[..., c]) for c in range(x.shape[2])]))


def _boundary_sums(img: np.ndarray) -> tuple[float, float]:
    """Sums of squared differences over block-boundary and other adjacent pixel pairs."""
    dh = np.diff(img, axis=1) ** 2  # pairs (j, j+1), j = 0..W-2
    dv = np.diff(img, axis=0) ** 2  # pairs (i, i+1), i = 0..H-2
    hb = np.arange(BLOCK - 1, img.shape[1] - 1, BLOCK)
    vb = np.arange(BLOCK - 1, img.shape[0] - 1, BLOCK)
    d_b = dh[:, hb].sum() + dv[vb, :].sum()
    return float(d_b), float(dh.sum() + dv.sum() - d_b)


def blocking_effect_factor(img: np.ndarray, integer_counts: bool = False) -> float:
    """BEF of one channel (float64 array), block size 8, grid anchored at the top-left."""
    h, w = img.shape
    if integer_counts:
        n_hb, n_vb = h * (w // BLOCK - 1), w * (h // BLOCK - 1)
    else:
        n_hb, n_vb = h * (w / BLOCK - 1), w * (h / BLOCK - 1)
    n_hbc, n_vbc = h * (w - 1) - n_hb, w * (h - 1) - n_vb
    s_b, s_bc = _boundary_sums(img)
    if n_hb + n_vb <= 0:
        return 0.0
    d_b, d_bc = s_b / (n_hb + n_vb), s_bc / (n_hbc + n_vbc)
    if d_b <= d_bc:
        return 0.0
    return math.log2(BLOCK) / math.log2(min(h, w)) * (d_b - d_bc)


def psnrb(test: np.ndarray, ref: np.ndarray, variant: str = "fbcnn") -> float:
    """PSNR-B in dB (``fbcnn`` or ``swinir`` convention, see the module docstring)."""
    _check_pair(test, ref)
    if min(test.shape[:2]) < BLOCK:
        raise ValueError(f"PSNR-B needs images of at least {BLOCK}x{BLOCK}")
    x, y = test.astype(np.float64), ref.astype(np.float64)
    if variant == "fbcnn":
        bef_img = to_y(test, rounded=True).astype(np.float64)
        mse_b = np.mean((x - y) ** 2) + blocking_effect_factor(bef_img)
        return math.inf if mse_b == 0 else 10.0 * math.log10(255.0**2 / mse_b)
    if variant == "swinir":
        x, y = x / 255.0, y / 255.0
        chans = [(x, y)] if x.ndim == 2 else [(x[..., c], y[..., c]) for c in range(x.shape[2])]
        vals = []
        for xc, yc in chans:
            mse_b = np.mean((xc - yc) ** 2) + blocking_effect_factor(xc, integer_counts=True)
            vals.append(math.inf if mse_b == 0 else 10.0 * math.log10(1.0 / mse_b))
        return float(np.mean(vals))
    raise ValueError(f"unknown PSNR-B variant {variant!r}; known: fbcnn, swinir")
