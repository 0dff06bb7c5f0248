"""Tiled inference with overlap and blending, for images larger than a method's tile."""

from __future__ import annotations

from collections.abc import Callable


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with tiles of ``tile`` and at least ``overlap``."""
    if tile >= length:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap} for tile {tile}")
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _window(h: int, w: int, blend: str, device, dtype):
    import torch

    if blend == "uniform":
        return torch.ones(1, 1, h, w, device=device, dtype=dtype)
    if blend == "gaussian":

        def g(n):
            x = torch.arange(n, device=device, dtype=torch.float64) - (n - 1) / 2
            return torch.exp(-0.5 * (x / (0.3 * n)) ** 2)

        return (g(h)[:, None] * g(w)[None, :]).to(dtype)[None, None]
    raise ValueError(f"blend must be uniform or gaussian, got {blend!r}")


def tiled(fn: Callable, x, tile: int, overlap: int, blend: str = "uniform"):
    """Apply ``fn`` (1xCxHxW -> 1xC'xHxW) tile by tile and blend the overlaps.

    ``uniform`` averages overlapping predictions (PromptCIR); ``gaussian`` weights each tile by a
    Gaussian centred on it (CODiff/OSEDiff latent tiling). Without overlap it is a plain split.
    """
    import torch

    _, _, h, w = x.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return fn(x)
    out = weight = None
    for top in tile_starts(h, tile, overlap):
        for left in tile_starts(w, tile, overlap):
            patch = x[..., top : top + tile, left : left + tile]
            y = fn(patch)
            if out is None:
                out = torch.zeros(y.shape[0], y.shape[1], h, w, device=y.device, dtype=y.dtype)
                weight = torch.zeros(1, 1, h, w, device=y.device, dtype=y.dtype)
            win = _window(y.shape[-2], y.shape[-1], blend, y.device, y.dtype)
            out[..., top : top + y.shape[-2], left : left + y.shape[-1]] += y * win
            weight[..., top : top + y.shape[-2], left : left + y.shape[-1]] += win
    return out / weight
