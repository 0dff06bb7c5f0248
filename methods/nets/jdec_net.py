"""The JDEC network (CVPR 2024): a SwinV2 encoder on grouped DCT spectra, continuous cosine
formulation, per-pixel MLP decoder.

carbench's own implementation of WooKyoungHan/JDEC (models/JDEC.py, models/swinirv2.py,
models/mlp.py @e9fe835, BSD-3-Clause) for the configuration of configs/train_JDEC.yaml. Module
attribute names follow upstream so that the released state dict loads with strict key matching
(740 keys: 704 parameters, 18 ``attn_mask``, 18 ``relative_coords_table``, 18
``relative_position_index`` buffers). Differences from upstream that do not change the weights:

* everything runs on the input's device (upstream moves tensors to CUDA inside ``forward``);
* the sub-pixel coordinates are the exact (2k+1)/8, k = 0..3 (upstream derives them from a
  float32 [-1, 1] grid: within 1.5e-5 of these up to 1120 px, wrong at some rows from 2240 px);
* the per-pixel decoder (cosine bases x amplitudes -> 1x1-conv MLP) runs over bands of rows to
  bound memory; each pixel's computation is unchanged.

Inputs of ``forward``: de-quantised Y coefficients ``(B, 1, h, w, 8, 8)``, CbCr coefficients
``(B, 2, h/2, w/2, 8, 8)`` (4:2:0), both mapped from [-1024, 1016] to [-1, 1], and the Y and
chroma quantisation tables ``(B, 2, 8, 8)`` mapped the same way. ``2h`` and ``2w`` must be
multiples of the window size 7 (so ``h``, ``w`` multiples of 14 blocks, 112 pixels). Output:
``(B, 3, 8h, 8w)``, RGB minus 0.5.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from carbench.methods.nets.swin_common import (
    Mlp,
    TokenNorm,
    cpu_shifted_window_mask,
    from_windows,
    init_swin_weights,
    on_default_device,
    relative_position_index,
    shifted_window_mask,
    to_windows,
)

EMBED = 256  # encoder width (emb_size)
DEPTHS = (6, 6, 6, 6, 6)  # hard-coded upstream, whatever the config's ``depth``
HEADS = (8, 8, 8, 8, 8)
WINDOW = 7
MLP_RATIO = 2.0
TRAIN_RES = 56  # upstream's fixed "input resolution" (224 // 4): sets the stored attn_mask
HIDDEN = 512  # hidden_dim: amplitude channels; frequencies get twice as many
DECODER_HIDDEN = (512, 512, 512)


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix (float64): row k is the k-th basis vector over n samples."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    m = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (m + 0.5) * k / n) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def subblock_matrix(size: int) -> torch.Tensor:
    """``M`` such that ``M.T @ X @ M`` turns an 8x8 DCT block into the DCTs of its
    ``size`` x ``size`` sub-blocks, laid out as the sub-blocks are (float64)."""
    small = torch.block_diag(*[dct_matrix(size)] * (8 // size))
    return dct_matrix(8) @ small.T


@functools.cache
def relative_position_tables(window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SwinV2's ``(1, 2W-1, 2W-1, 2)`` log-spaced offset table (offsets -(W-1)..W-1 scaled to
    [-8, 8], then sign * log2(1 + |x|) / 3) and the ``(W², W²)`` index of each token pair's
    offset in it (CPU tensors, computed once)."""
    span = torch.arange(1 - window, window, dtype=torch.float32, device="cpu") / (window - 1) * 8
    grid = torch.stack(torch.meshgrid(span, span, indexing="ij"), dim=-1)[None]
    table = torch.sign(grid) * torch.log2(grid.abs() + 1.0) / math.log2(8)
    return table, relative_position_index(window)


class CosineWindowAttention(nn.Module):
    """SwinV2 window attention: scaled cosine similarity plus a continuous (log-spaced)
    relative position bias from a small MLP, bounded by 16 * sigmoid."""

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.window = window
        self.num_heads = heads
        self.logit_scale = nn.Parameter(torch.full((heads, 1, 1), math.log(10.0)))
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        table, index = relative_position_tables(window)
        self.register_buffer("relative_coords_table", on_default_device(table))
        self.register_buffer("relative_position_index", on_default_device(index))
        self.cpb_mlp = nn.Sequential(
            nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, heads, bias=False)
        )
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def position_bias(self) -> torch.Tensor:
        """``(heads, N, N)`` relative position bias."""
        n = self.window * self.window
        per_offset = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        bias = per_offset[self.relative_position_index.view(-1)].view(n, n, self.num_heads)
        return 16 * torch.sigmoid(bias.permute(2, 0, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        bw, n, c = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).view(bw, n, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1) * scale
        attn = attn + self.position_bias()[None]
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.num_heads, n, n) + mask[None, :, None]
            attn = attn.view(bw, self.num_heads, n, n)
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out)


class SwinV2Block(nn.Module):
    """(Shifted-)window attention and MLP, each followed by its LayerNorm (res-post-norm).

    The stored ``attn_mask`` is for the ``resolution`` given at construction (upstream's fixed
    56x56); other token grids get their mask computed on the fly."""

    def __init__(self, dim: int, resolution: int, heads: int, window: int, shift: int) -> None:
        super().__init__()
        if resolution <= window:  # one window covers everything: nothing to shift
            window, shift = resolution, 0
        self.resolution = (resolution, resolution)
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CosineWindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * MLP_RATIO))
        mask = None
        if shift:
            mask = on_default_device(cpu_shifted_window_mask(resolution, resolution, window, shift))
        self.register_buffer("attn_mask", mask)
        self._masks: dict[tuple, torch.Tensor] = {}  # other grid sizes, computed once

    def mask_for(self, size: tuple[int, int], like: torch.Tensor) -> torch.Tensor | None:
        """The shifted-window mask for a token grid, on ``like``'s device and dtype."""
        if not self.shift:
            return None
        if tuple(size) == self.resolution:
            return self.attn_mask.to(device=like.device, dtype=like.dtype)
        key = (tuple(size), like.device, like.dtype)
        if key not in self._masks:
            mask = shifted_window_mask(*size, self.window, self.shift, device=like.device)
            self._masks = {key: mask.to(like.dtype)}  # keep only the latest size
        return self._masks[key]

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h, w = size
        b, _, c = x.shape
        grid = x.view(b, h, w, c)
        if self.shift:
            grid = torch.roll(grid, (-self.shift, -self.shift), dims=(1, 2))
        mask = self.mask_for(size, x)
        out = from_windows(self.attn(to_windows(grid, self.window), mask), self.window, h, w)
        if self.shift:
            out = torch.roll(out, (self.shift, self.shift), dims=(1, 2))
        x = x + self.norm1(out.reshape(b, h * w, c))
        return x + self.norm2(self.mlp(x))


class SwinV2Stage(nn.Module):
    """``depth`` blocks alternating plain and shifted windows."""

    def __init__(self, dim: int, resolution: int, depth: int, heads: int, window: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinV2Block(dim, resolution, heads, window, 0 if i % 2 == 0 else window // 2)
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, size)
        return x


class ResidualSwinGroup(nn.Module):
    """A stage, a 3x3 conv on its output grid, plus the input (SwinIR's RSTB)."""

    def __init__(self, dim: int, resolution: int, depth: int, heads: int, window: int) -> None:
        super().__init__()
        self.residual_group = SwinV2Stage(dim, resolution, depth, heads, window)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return tokens(self.conv(grid_of(self.residual_group(x, size), size))) + x


def grid_of(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Tokens ``(B, H*W, C)`` -> feature map ``(B, C, H, W)``."""
    return x.transpose(1, 2).reshape(x.shape[0], -1, size[0], size[1])


def tokens(x: torch.Tensor) -> torch.Tensor:
    """Feature map ``(B, C, H, W)`` -> tokens ``(B, H*W, C)``."""
    return x.flatten(2).transpose(1, 2)


class GroupSpectraEmbedding(nn.Module):
    """Group spectra embedding: each 8x8 Y block becomes 2x2 tokens and each 8x8 chroma block
    4x4 tokens, so one token per 4x4 luma pixels, carrying sub-block DCT coefficients (16 of Y,
    4 of Cb, 4 of Cr), projected linearly to ``dim`` and normalised.

    Upstream re-expresses each block in sub-block DCTs (``M.T X M``), then splits each 8-wide
    axis as (coefficient, token) with the token index varying fastest; this is kept exactly
    since the projection's weights depend on it."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.projection = nn.Sequential(nn.Linear(16 + 2 * 4, dim), nn.Flatten(1, 2))
        self.norm = nn.LayerNorm(dim)
        self._mats: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _matrices(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (like.device, like.dtype)
        if key not in self._mats:
            self._mats[key] = tuple(
                subblock_matrix(s).to(device=like.device, dtype=like.dtype) for s in (4, 2)
            )
        return self._mats[key]

    @staticmethod
    def _split(coeffs: torch.Tensor, mat: torch.Tensor, size: int) -> torch.Tensor:
        """``(B, C, h, w, 8, 8)`` -> ``(B, h*s, w*s, C*size*size)`` with s = 8 // size."""
        b, c, h, w = coeffs.shape[:4]
        s = 8 // size
        sub = mat.T @ coeffs @ mat
        sub = sub.view(b, c, h, w, size, s, size, s)  # (coefficient, token) on each axis
        sub = sub.permute(0, 2, 5, 3, 7, 1, 4, 6)  # b, h, token_r, w, token_c, c, k_r, k_c
        return sub.reshape(b, h * s, w * s, c * size * size)

    def forward(self, y: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
        my, mc = self._matrices(y)
        feats = torch.cat((self._split(y, my, 4), self._split(cbcr, mc, 2)), dim=-1)
        return self.norm(self.projection(feats))


class SpectraEncoder(nn.Module):
    """Upstream ``SwinTransformerV2_Ycbcr_ir_2``: embedding, one SwinV2 stage, shared norm,
    five residual Swin groups, shared norm, 3x3 conv, plus a long skip from the first stage.
    Returns ``(B, H*W, dim)`` tokens on the grid of 4x4-pixel sub-blocks."""

    def __init__(self, dim: int = EMBED, heads: tuple[int, ...] = HEADS) -> None:
        super().__init__()
        if len(heads) != len(DEPTHS):
            raise ValueError(f"num_heads needs {len(DEPTHS)} entries, got {list(heads)}")
        self.dim = dim
        self.patch_embed = GroupSpectraEmbedding(dim)
        self.patch_embed_deep = TokenNorm(dim)
        self.layers = nn.ModuleList([SwinV2Stage(dim, TRAIN_RES, DEPTHS[0], heads[0], WINDOW)])
        self.layers_RSTB = nn.ModuleList(
            ResidualSwinGroup(dim, TRAIN_RES, d, h, WINDOW)
            for d, h in zip(DEPTHS, heads, strict=True)
        )
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = nn.Conv2d(dim, dim, 3, 1, 1)
        self.apply(init_swin_weights)
        for blk in self.layers[0].blocks:  # res-post-norm starts at zero in the first stage
            for norm in (blk.norm1, blk.norm2):
                nn.init.zeros_(norm.weight)
                nn.init.zeros_(norm.bias)

    def forward(self, y: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
        size = (y.shape[2] * 2, y.shape[3] * 2)
        x = self.patch_embed(y, cbcr)
        for stage in self.layers:
            x = stage(x, size)
        skip = x = self.norm(x)
        for group in self.layers_RSTB:
            x = group(x, size)
        x = self.conv_after_body(grid_of(self.norm(x), size))
        return tokens(x) + skip


class PixelMLP(nn.Module):
    """Upstream ``mlp_1dconv``: 1x1 convolutions with ReLU in between."""

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Conv2d(in_dim, width, 1), nn.ReLU()]
            in_dim = width
        layers.append(nn.Conv2d(in_dim, out_dim, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _subpixel_positions(device, dtype) -> torch.Tensor:
    """Normalised centre positions of the 4 pixels of a sub-block side: (2k+1)/8."""
    return ((2 * torch.arange(4, device=device, dtype=torch.float64) + 1) / 8).to(dtype)


class JDECNet(nn.Module):
    """JDEC: encoder features on the sub-block grid give per-sub-block amplitudes (scaled by a
    projection of the quantisation tables) and vertical/horizontal frequencies; each pixel's
    input is amplitude * cos(pi f_v y) * cos(pi f_h x) at its position inside the sub-block,
    decoded to RGB by a per-pixel MLP."""

    def __init__(
        self,
        emb_size: int = EMBED,
        num_heads: tuple[int, ...] = HEADS,
        hidden_dim: int = HIDDEN,
        hidden_list: tuple[int, ...] = DECODER_HIDDEN,
        out_dim: int = 3,
    ) -> None:
        super().__init__()
        self.encoder_dct = SpectraEncoder(emb_size, tuple(num_heads))
        self.coef = nn.Sequential(
            nn.Conv2d(emb_size, hidden_dim, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(hidden_dim, hidden_dim, 3, 1, 1),
        )
        self.freq = nn.Sequential(
            nn.Conv2d(emb_size, hidden_dim * 2, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(hidden_dim * 2, hidden_dim * 2, 3, 1, 1),
        )
        self.qmapp = nn.Conv2d(128, hidden_dim, 1)
        self.dequantizator = PixelMLP(hidden_dim, out_dim, tuple(hidden_list))
        #: pixel-level elements per decoder band (bounds memory; results do not depend on it)
        self.band_elements = 1 << 25

    def features(self, y, cbcr, qmap) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Amplitudes ``(B, D, H, W)`` and the two frequency maps on the sub-block grid."""
        b, _, h, w = y.shape[:4]
        if y.shape[1:] != (1, h, w, 8, 8) or cbcr.shape[1:] != (2, h // 2, w // 2, 8, 8):
            raise ValueError(
                f"JDEC needs Y (B,1,h,w,8,8) and CbCr (B,2,h/2,w/2,8,8) coefficients, got "
                f"{tuple(y.shape)} and {tuple(cbcr.shape)}"
            )
        if (2 * h) % WINDOW or (2 * w) % WINDOW or h % 2 or w % 2:
            raise ValueError(f"JDEC needs a block grid that is a multiple of 14, got {h}x{w}")
        feat = grid_of(self.encoder_dct(y, cbcr), (2 * h, 2 * w))
        amp = self.coef(feat) * self.qmapp(qmap.reshape(b, -1, 1, 1))
        fv, fh = self.freq(feat).chunk(2, dim=1)
        return amp, fv, fh

    def decode(self, amp: torch.Tensor, fv: torch.Tensor, fh: torch.Tensor) -> torch.Tensor:
        """Per-pixel stage on the sub-block grid's features -> ``(B, out, 4H, 4W)``."""
        b, d, hs, ws = amp.shape
        pos = _subpixel_positions(amp.device, amp.dtype)
        rows = max(1, self.band_elements // (d * 16 * ws * b))
        out = []
        for r in range(0, hs, rows):
            sl = slice(r, r + rows)
            cos_v = torch.cos(math.pi * fv[:, :, sl, None, :, None] * pos[:, None, None])
            cos_h = torch.cos(math.pi * fh[:, :, sl, None, :, None] * pos)
            x = cos_v * cos_h * amp[:, :, sl, None, :, None]  # b, d, rows, 4, ws, 4
            out.append(self.dequantizator(x.reshape(b, d, -1, ws * 4)))
        return torch.cat(out, dim=2)

    def forward(self, y: torch.Tensor, cbcr: torch.Tensor, qmap: torch.Tensor) -> torch.Tensor:
        return self.decode(*self.features(y, cbcr, qmap))
