"""PSNR, SSIM and PSNR-B in torch (float64), for scoring on a GPU.

Same conventions as ``bench.metrics.fullref`` (the reference, numpy/OpenCV); the test suite
checks both agree. Inputs are uint8 numpy images; work happens on ``device``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from carbench.bench.metrics.fullref import BLOCK, to_y


def _t(img: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 HxW[xC] -> float64 tensor 1xCxHxW."""
    t = torch.from_numpy(np.array(img)).to(device=device, dtype=torch.float64)
    return t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]


def psnr(test: np.ndarray, ref: np.ndarray, device: torch.device) -> float:
    mse = float(torch.mean((_t(test, device) - _t(ref, device)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _gauss_kernel(device: torch.device) -> torch.Tensor:
    x = torch.arange(11, dtype=torch.float64, device=device) - 5
    g = torch.exp(-(x**2) / (2 * 1.5**2))
    return g / g.sum()


def ssim(test: np.ndarray, ref: np.ndarray, device: torch.device, window: str = "gauss11") -> float:
    x, y = _t(test, device), _t(ref, device)
    c = x.shape[1]
    if window == "gauss11":
        g = _gauss_kernel(device)
        kh = g.view(1, 1, 11, 1).repeat(c, 1, 1, 1)
        kw = g.view(1, 1, 1, 11).repeat(c, 1, 1, 1)

        def blur(a: torch.Tensor) -> torch.Tensor:
            return F.conv2d(F.conv2d(a, kh, groups=c), kw, groups=c)

        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    elif window == "box8":
        x, y = x / 255.0, y / 255.0
        k = torch.full((c, 1, BLOCK, BLOCK), 1.0 / BLOCK**2, dtype=torch.float64, device=device)

        def blur(a: torch.Tensor) -> torch.Tensor:
            return F.conv2d(a, k, groups=c)

        c1, c2 = 0.01**2, 0.03**2
    else:
        raise ValueError(f"unknown SSIM window {window!r}")
    mu1, mu2 = blur(x), blur(y)
    s1 = blur(x * x) - mu1 * mu1
    s2 = blur(y * y) - mu2 * mu2
    s12 = blur(x * y) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 * mu1 + mu2 * mu2 + c1) * (s1 + s2 + c2))
    return float(m.mean(dim=(2, 3)).mean())


def _bef(img: torch.Tensor, integer_counts: bool) -> torch.Tensor:
    """BEF per channel of a 1xCxHxW tensor."""
    h, w = img.shape[-2:]
    dh = (img[..., :, 1:] - img[..., :, :-1]) ** 2
    dv = (img[..., 1:, :] - img[..., :-1, :]) ** 2
    hb = torch.arange(BLOCK - 1, w - 1, BLOCK, device=img.device)
    vb = torch.arange(BLOCK - 1, h - 1, BLOCK, device=img.device)
    s_b = dh[..., hb].sum(dim=(-2, -1)) + dv[..., vb, :].sum(dim=(-2, -1))
    s_bc = dh.sum(dim=(-2, -1)) + dv.sum(dim=(-2, -1)) - s_b
    div = (lambda a, b: a // b) if integer_counts else (lambda a, b: a / b)
    n_hb, n_vb = h * (div(w, BLOCK) - 1), w * (div(h, BLOCK) - 1)
    n_hbc, n_vbc = h * (w - 1) - n_hb, w * (h - 1) - n_vb
    d_b, d_bc = s_b / (n_hb + n_vb), s_bc / (n_hbc + n_vbc)
    eta = math.log2(BLOCK) / math.log2(min(h, w))
    return torch.where(d_b > d_bc, eta * (d_b - d_bc), torch.zeros_like(d_b))


def psnrb(test: np.ndarray, ref: np.ndarray, device: torch.device, variant: str = "fbcnn") -> float:
    x, y = _t(test, device), _t(ref, device)
    if variant == "fbcnn":
        bef = _bef(_t(to_y(test), device), integer_counts=False)[0, 0]
        mse_b = float(torch.mean((x - y) ** 2) + bef)
        return math.inf if mse_b == 0 else 10.0 * math.log10(255.0**2 / mse_b)
    if variant == "swinir":
        x, y = x / 255.0, y / 255.0
        mse_b = ((x - y) ** 2).mean(dim=(2, 3)) + _bef(x, integer_counts=True)
        return float(torch.mean(10.0 * torch.log10(1.0 / mse_b)))
    raise ValueError(f"unknown PSNR-B variant {variant!r}; known: fbcnn, swinir")
