"""Pieces shared by carbench's three Swin transformers (DiffBIR's SwinIR, JDEC's SwinV2 encoder,
RAM's Swin-L): the MLP, window partitioning, the relative-position index and the shifted-window
attention mask. Module attribute names are upstream's, so checkpoints load by name."""

from __future__ import annotations

import functools

import torch
from torch import nn

MASK_FILL = -100.0  # additive bias between tokens of different regions of a shifted window


class Mlp(nn.Module):
    """Two linear layers with a GELU between them (``fc1``, ``act``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TokenNorm(nn.Module):
    """Holds a LayerNorm applied to tokens, as ``<name>.norm`` (upstream's patch-embedding
    modules whose convolution lives elsewhere or is unused keep only this)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


def init_swin_weights(m: nn.Module) -> None:
    """Upstream Swin initialisation (``module.apply``): truncated-normal linear weights
    (std 0.02), zero biases, unit LayerNorms."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def on_default_device(t: torch.Tensor) -> torch.Tensor:
    """A private copy of a CPU constant on the current default device (``with torch.device``
    included, so buffers get their shapes on the meta device without computing there)."""
    return t.to(torch.get_default_device(), copy=True)


def to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """``(B, H, W, C)`` -> ``(B * nW, window², C)``: windows row-major per image, tokens
    row-major per window."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).transpose(2, 3)
    return x.reshape(-1, window * window, c)


def from_windows(x: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`to_windows`: ``(B * nW, window², C)`` -> ``(B, H, W, C)``."""
    c = x.shape[-1]
    x = x.view(-1, h // window, w // window, window, window, c).transpose(2, 3)
    return x.reshape(-1, h, w, c)


@functools.cache
def relative_position_index(window: int) -> torch.Tensor:
    """``(window², window²)`` int64 index into a ``(2*window-1)²`` table of relative offsets:
    entry (q, k) is ``(dy + window-1) * (2*window-1) + (dx + window-1)`` with ``(dy, dx)`` the
    offset of token q from token k. Cached CPU tensor: copy it before registering."""
    ticks = torch.arange(window, device="cpu")
    rows = ticks.repeat_interleave(window)  # row of each token
    cols = ticks.repeat(window)  # column of each token
    dy = rows[:, None] - rows[None, :] + (window - 1)
    dx = cols[:, None] - cols[None, :] + (window - 1)
    return dy * (2 * window - 1) + dx


def shifted_window_blocked(h: int, w: int, window: int, shift: int, device=None) -> torch.Tensor:
    """``(nW, window², window²)`` bool for a grid cyclically shifted by ``-shift``: True between
    tokens the shift brought together (the last ``shift`` rows / columns came from the opposite
    border), which must not attend to each other."""
    rows = torch.arange(h, device=device) >= h - shift
    cols = torch.arange(w, device=device) >= w - shift
    labels = (rows[:, None].long() * 2 + cols[None, :].long()).float()
    per_window = to_windows(labels[None, :, :, None], window)[..., 0]  # nW, N
    return per_window[:, :, None] != per_window[:, None, :]


def shifted_window_mask(h: int, w: int, window: int, shift: int, device=None) -> torch.Tensor:
    """:func:`shifted_window_blocked` as an additive mask: 0, or ``MASK_FILL`` where blocked."""
    blocked = shifted_window_blocked(h, w, window, shift, device)
    return torch.zeros(blocked.shape, device=device).masked_fill(blocked, MASK_FILL)


@functools.cache
def cpu_shifted_window_mask(h: int, w: int, window: int, shift: int) -> torch.Tensor:
    """:func:`shifted_window_mask` on the CPU, computed once per geometry (copy before use)."""
    return shifted_window_mask(h, w, window, shift, device="cpu")
