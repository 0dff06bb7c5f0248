"""Colour fixes (AdaIN and wavelet, as CODiff/OSEDiff/DiffBIR/SUPIR apply them) and the
conversion of a [-1, 1] output to uint8 by truncation, as ToPILImage does.
"""

from __future__ import annotations

import numpy as np

# -- colour fixes -----------------------------------------------------------------------------


def adain_color_fix(out, ref, eps: float = 1e-5, clamp: bool = True):
    """Match each channel's mean and std of ``out`` to ``ref`` (both 1x3xHxW in [0,1]);
    clamped to [0, 1] unless ``clamp`` is false."""

    def stats(t):
        flat = t.reshape(t.shape[0], t.shape[1], -1)
        return flat.mean(2)[..., None, None], (flat.var(2) + eps).sqrt()[..., None, None]

    m_o, s_o = stats(out)
    m_r, s_r = stats(ref)
    res = (out - m_o) / s_o * s_r + m_r
    return res.clamp(0, 1) if clamp else res


def _wavelet_blur(img, radius: int):
    import torch
    import torch.nn.functional as F

    k = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=img.dtype, device=img.device) / 16
    k = k[None, None].repeat(img.shape[1], 1, 1, 1)
    img = F.pad(img, (radius,) * 4, mode="replicate")
    return F.conv2d(img, k, groups=k.shape[0], dilation=radius)


def _wavelet_split(img, levels: int = 5):
    high = 0
    for i in range(levels):
        low = _wavelet_blur(img, 2**i)
        high = high + (img - low)
        img = low
    return high, img


def wavelet_color_fix(out, ref, clamp: bool = True):
    """High frequencies of ``out`` plus the low frequencies of ``ref`` (5-level a-trous),
    clamped to [0, 1] as CODiff/OSEDiff do (DiffBIR clamps only after its final resize)."""
    high, _ = _wavelet_split(out)
    _, low = _wavelet_split(ref)
    return (high + low).clamp(0, 1) if clamp else high + low


def to_uint8_truncate(t) -> np.ndarray:
    """1x3xHxW in [0,1] -> uint8 HxWx3 by x255 and truncation (torchvision ToPILImage's
    ``mul(255).byte()``), in the tensor's own dtype as there: a float16 image (CODiff/OSEDiff's
    fp16 decoder output) is multiplied in float16, which truncates some values one level
    lower than float32 would."""
    import torch

    a = (t[0].clamp(0, 1) * 255).to(dtype=torch.uint8)
    return a.permute(1, 2, 0).cpu().numpy()
