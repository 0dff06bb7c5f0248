"""Tiling in latent space and of the VAE: Gaussian-blended latent tiles (CODiff/OSEDiff
``_gaussian_weights`` / ``tiled`` forward), the upstream ``vaehook`` tiled VAE (the default of
codiff/osediff, also SUPIR's ``tilevae``) and carbench's pooled-statistics VAE tiling
(``vae_tiling=pooled``). Image-space tiling of CNNs is ``methods.tiling``.
"""

from __future__ import annotations

import math

import numpy as np

# -- tiling -----------------------------------------------------------------------------------


def gaussian_tile_weights(width: int, height: int):
    """The official latent-tile weights: Gaussian with variance 0.01 of the normalised
    position; x is centred at (w - 1) / 2 and y at h / 2, as upstream does."""
    import torch

    var = 0.01

    def probs(n: int, mid: float) -> np.ndarray:
        x = np.arange(n)
        return np.exp(-((x - mid) ** 2) / (n * n) / (2 * var)) / math.sqrt(2 * math.pi * var)

    return torch.tensor(np.outer(probs(height, height / 2), probs(width, (width - 1) / 2)))


def tile_offsets(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts as upstream: stride tile - overlap, the last tile flush with the end."""
    if overlap >= tile:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile {tile}")
    n, cur = 0, 0
    while cur < length:
        cur = max(n * tile - overlap * n, 0) + tile
        n += 1
    return [max(i * tile - overlap * i, 0) if i < n - 1 else length - tile for i in range(n)]


def tiled_latent_apply(fn, latent, tile: int = 96, overlap: int = 32):
    """``fn`` over latent tiles with Gaussian blending when the latent has more than
    ``tile * tile`` positions (CODiff/OSEDiff defaults 96/32); otherwise one call.

    Tiles shrink to the latent's short side as upstream; where that leaves them no larger than
    the overlap (a latent side <= 32, i.e. <= 256 px, with more than 96 x 96 positions) upstream
    loops forever; there the overlap becomes half the tile instead. As upstream, the tiled
    result is float32 (its accumulators), each tile's output times the float64 weights."""
    import torch

    _, c, h, w = latent.shape
    if h * w <= tile * tile:
        return fn(latent)
    tile = min(tile, h, w)
    if overlap >= tile:
        overlap = tile // 2
    weights = gaussian_tile_weights(tile, tile).to(latent.device)  # float64
    out = torch.zeros(latent.shape, device=latent.device, dtype=torch.float32)
    total = torch.zeros(latent.shape, device=latent.device, dtype=torch.float32)
    for x0 in tile_offsets(w, tile, overlap):
        for y0 in tile_offsets(h, tile, overlap):
            pred = fn(latent[:, :, y0 : y0 + tile, x0 : x0 + tile])
            out[:, :, y0 : y0 + tile, x0 : x0 + tile] += pred * weights
            total[:, :, y0 : y0 + tile, x0 : x0 + tile] += weights
    return out / total


def tiled_vae(fn, x, tile: int, scale: float, overlap: int, module=None):
    """Run a VAE encoder/decoder over overlapping tiles of ``x`` and blend them linearly
    (carbench's own scheme, ``vae_tiling=pooled``; upstream's is :func:`vaehook_tiled`).

    ``scale``: output pixels per input pixel (1/8 encoder, 8 decoder). Only used when the input
    is larger than ``tile``. With ``module`` given, every GroupNorm inside it normalises all
    tiles with statistics pooled over all tiles (the exact mean and variance of the union of
    the tiles; upstream instead averages per-tile variances), so tiles agree with a single pass
    up to the attention and border effects; each tile runs in its own thread and the GroupNorms
    meet at a barrier. Self-attention stays per tile, which is what bounds the memory.
    """
    import torch

    _, _, h, w = x.shape
    if max(h, w) <= tile:
        return fn(x)
    boxes = [(top, left) for top in _starts(h, tile, overlap) for left in _starts(w, tile, overlap)]
    patches = [x[:, :, t : t + tile, lf : lf + tile] for t, lf in boxes]
    outs = (
        _synced_group_norm(fn, module, patches) if module is not None else [fn(p) for p in patches]
    )
    oh, ow = int(round(h * scale)), int(round(w * scale))
    out = torch.zeros(
        outs[0].shape[0], outs[0].shape[1], oh, ow, device=x.device, dtype=outs[0].dtype
    )
    weight = torch.zeros(1, 1, oh, ow, device=x.device, dtype=outs[0].dtype)
    for (top, left), y in zip(boxes, outs, strict=True):
        ramp = _ramp(y.shape[-2], y.shape[-1], int(overlap * scale), y)
        t, lf = int(round(top * scale)), int(round(left * scale))
        out[:, :, t : t + y.shape[-2], lf : lf + y.shape[-1]] += y * ramp
        weight[:, :, t : t + y.shape[-2], lf : lf + y.shape[-1]] += ramp
    return out / weight


def _synced_group_norm(fn, module, patches, stats: str = "pooled"):
    """``fn`` on every patch at once (one thread each), GroupNorms synchronised across patches:
    ``pooled`` (mean and variance of all patches' values together) or ``tile_mean`` (each
    patch's own biased variance and mean per group, averaged with weights = the patch's share
    of the pixels, as upstream's vaehook ``GroupNormParam``)."""
    import threading

    import torch

    n = len(patches)
    barrier = threading.Barrier(n)
    lock = threading.Lock()
    pools: dict = {}
    local = threading.local()
    norms = [m for m in module.modules() if isinstance(m, torch.nn.GroupNorm)]
    saved = {id(m): m.forward for m in norms}

    def make(gn):
        def forward(xt):
            calls = local.__dict__.setdefault("calls", {})
            key = (id(gn), calls.get(id(gn), 0))
            calls[id(gn)] = key[1] + 1
            b, c = xt.shape[:2]
            g = xt.float().reshape(b, gn.num_groups, -1)
            if stats == "tile_mean":
                v, m = torch.var_mean(g, dim=-1, unbiased=False)
                pixels = xt[0, 0].numel()
                with lock:
                    pools.setdefault(key, {})[local.index] = (v, m, pixels)
                barrier.wait()
                entries = [pools[key][i] for i in sorted(pools[key])]
                share = torch.tensor([e[2] for e in entries], dtype=torch.float32)
                share = share / share.max()
                share = (share / share.sum()).to(g.device)
                var = sum(e[0] * w for e, w in zip(entries, share, strict=True))
                mean = sum(e[1] * w for e, w in zip(entries, share, strict=True))
            else:
                with lock:
                    acc = pools.setdefault(key, [0.0, 0.0, 0])
                    acc[0] = acc[0] + g.sum(-1)
                    acc[1] = acc[1] + (g * g).sum(-1)
                    acc[2] += g.shape[-1]
                barrier.wait()
                total, sq, cnt = pools[key]
                mean = total / cnt
                var = (sq / cnt - mean * mean).clamp_min(0)
            y = (g - mean[..., None]) / (var[..., None] + gn.eps).sqrt()
            y = y.reshape(xt.shape).to(xt.dtype)
            if gn.affine:
                shape = (1, c) + (1,) * (xt.ndim - 2)
                y = y * gn.weight.reshape(shape) + gn.bias.reshape(shape)
            return y

        return forward

    results: list = [None] * n
    errors: list = []

    def work(i):
        local.index = i
        try:
            results[i] = fn(patches[i])
        except BaseException as e:  # release the others
            errors.append(e)
            barrier.abort()

    for m in norms:
        m.forward = make(m)
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for m in norms:
            m.forward = saved[id(m)]
    if errors:
        raise errors[0]
    return results


#: upstream vaehook's tile padding (context around each core tile, cropped away afterwards)
VAEHOOK_PAD_ENCODER, VAEHOOK_PAD_DECODER = 32, 11


def _vaehook_core_size(lower: int, upper: int) -> int:
    """Round a core tile side up to a multiple of 32, 16, ..., 2 not above ``upper``."""
    div = 32
    while div >= 2:
        if lower % div == 0:
            return lower
        cand = lower - lower % div + div
        if cand <= upper:
            return cand
        div //= 2
    return lower


def vaehook_boxes(h: int, w: int, tile: int, pad: int, scale: float):
    """Tiles as upstream's VAEHook.split_tiles: the area inside a ``pad`` margin is cut into
    ceil((side - 2 pad) / tile) core tiles per side, shrunk to equal size (rounded as
    :func:`_vaehook_core_size`); each tile is run on its core plus ``pad`` on every side and its
    core (extended to the image border for border tiles) is kept. Returns ``(input box,
    output box)`` pairs ``(x1, x2, y1, y2)``, output boxes in output pixels."""
    ny, nx = max(math.ceil((h - 2 * pad) / tile), 1), max(math.ceil((w - 2 * pad) / tile), 1)
    th = _vaehook_core_size(math.ceil((h - 2 * pad) / ny), tile)
    tw = _vaehook_core_size(math.ceil((w - 2 * pad) / nx), tile)

    def out(v: int) -> int:
        return v * 8 if scale > 1 else v // 8

    boxes = []
    for i in range(ny):
        for j in range(nx):
            x1, x2 = pad + j * tw, min(pad + (j + 1) * tw, w)
            y1, y2 = pad + i * th, min(pad + (i + 1) * th, h)
            core = (
                x1 if x1 > pad else 0,
                x2 if x2 < w - pad else w,
                y1 if y1 > pad else 0,
                y2 if y2 < h - pad else h,
            )
            inp = (max(0, x1 - pad), min(w, x2 + pad), max(0, y1 - pad), min(h, y2 + pad))
            boxes.append((inp, tuple(out(v) for v in core)))
    return boxes


def vaehook_tiled(fn, x, tile: int, pad: int, scale: float, module):
    """Upstream's tiled VAE (CODiff/OSEDiff ``my_utils/vaehook.py``, re-implemented): used when
    the longer side exceeds ``tile + 2 pad``; tiles from :func:`vaehook_boxes`, every GroupNorm
    of ``module`` normalises each tile with the pixel-weighted average of the tiles' own
    means and variances, each tile's core is cropped and placed without blending."""
    import torch

    _, _, h, w = x.shape
    if max(h, w) <= tile + 2 * pad:
        return fn(x)
    boxes = vaehook_boxes(h, w, tile, pad, scale)
    patches = [x[:, :, y1:y2, x1:x2] for (x1, x2, y1, y2), _ in boxes]
    outs = _synced_group_norm(fn, module, patches, stats="tile_mean")
    oh, ow = (h * 8, w * 8) if scale > 1 else (h // 8, w // 8)
    res = torch.zeros(
        outs[0].shape[0], outs[0].shape[1], oh, ow, device=x.device, dtype=outs[0].dtype
    )
    for (inp, (ox1, ox2, oy1, oy2)), y in zip(boxes, outs, strict=True):
        px1, py1 = (inp[0] * 8, inp[2] * 8) if scale > 1 else (inp[0] // 8, inp[2] // 8)
        dy, dx = oy1 - py1, ox1 - px1
        res[:, :, oy1:oy2, ox1:ox2] = y[:, :, dy : dy + oy2 - oy1, dx : dx + ox2 - ox1]
    return res


def _starts(n: int, tile: int, overlap: int) -> list[int]:
    if n <= tile:
        return [0]
    stride = tile - overlap
    return list(range(0, n - tile, stride)) + [n - tile]


def _ramp(h: int, w: int, edge: int, like):
    import torch

    def r(n):
        v = torch.ones(n, dtype=like.dtype, device=like.device)
        k = max(1, min(edge, n // 2))
        v[:k] = torch.linspace(1.0 / k, 1.0, k, dtype=like.dtype, device=like.device)
        v[-k:] = torch.minimum(v[-k:], v[:k].flip(0))
        return v

    return (r(h)[:, None] * r(w)[None, :])[None, None]
