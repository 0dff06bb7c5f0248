"""DiffBIR's stage-1 cleaner SwinIR (the v2.1 ``realesrgan_s4_swinir_100k.pth`` and the v1
``general_swinir_v1.ckpt`` / ``face_swinir_v1.ckpt`` share this layout).

carbench's own implementation of the network in XPixelGroup/DiffBIR ``diffbir/model/swinir.py``
@3f8b530 (itself derived from SwinIR, Liang et al., ICCV-W 2021), for the configuration of
``configs/inference/swinir.yaml``: the image is pixel-unshuffled by 8 (3 -> 192 channels), run
through 8 residual Swin groups of 6 blocks (width 180, 6 heads, 8x8 windows, MLP ratio 2) and
brought back to full size with three nearest-neighbour x2 upsamplings, each followed by a conv.
The module attribute names follow upstream, so the released state dicts load with strict key
matching (732 keys: 660 parameters, 48 ``relative_position_index`` and 24 ``attn_mask``
buffers).
The same class, with ``upsampler=""``, is SwinIR's own JPEG/denoising network (no resampling,
the output is the input plus a residual); ``methods.swinir`` builds it for the CAR models.

Behaviour as upstream, except where noted:

* the input is reflect-padded to a multiple of the window size (8) and the result cropped back;
  after the x8 unshuffle the feature map must tile into 8x8 windows, so the padded sides must be
  multiples of 64 (DiffBIR pads to 64 before calling the cleaner). Other sizes raise
  ``ValueError`` here instead of failing inside a reshape;
* the output is cropped to the input size. Upstream crops with ``H * sf`` although the unshuffle
  cancels the x8 upsampling, so for sides that are not multiples of 8 it returns the padded
  size; for multiples of 8 (every call DiffBIR makes) both agree;
* the RGB mean is a constant made on the input's device rather than a tensor attribute, so the
  network can be built on the meta device;
* no gradient checkpointing, dropout or stochastic depth (inference only; all are zero or off in
  the released configuration).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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

RGB_MEAN = (0.4488, 0.4371, 0.4040)
HIDDEN_FEATURES = 64  # width of the reconstruction (upsampling) convolutions

# configs/inference/swinir.yaml
DIFFBIR_SWINIR = dict(
    img_size=64,
    in_chans=3,
    embed_dim=180,
    depths=(6,) * 8,
    num_heads=(6,) * 8,
    window_size=8,
    mlp_ratio=2.0,
    sf=8,
    img_range=1.0,
    unshuffle_scale=8,
)


# --------------------------------------------------------------------------------------------
# Swin transformer parts
# --------------------------------------------------------------------------------------------


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, plus a learned bias per relative offset
    (``relative_position_bias_table``, indexed by the ``relative_position_index`` buffer)."""

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.window = window
        self.num_heads = heads
        self.scale = (dim // heads) ** -0.5
        table = torch.empty((2 * window - 1) ** 2, heads)
        self.relative_position_bias_table = nn.Parameter(nn.init.trunc_normal_(table, std=0.02))
        self.register_buffer(
            "relative_position_index", on_default_device(relative_position_index(window))
        )
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def position_bias(self) -> torch.Tensor:
        """``(heads, N, N)`` bias of each query/key token pair of a window."""
        n = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(B, nW, N, C)`` window tokens; ``mask``: additive ``(nW, N, N)`` or None."""
        b, nw, n, c = x.shape
        q, k, v = self.qkv(x).view(b, nw, n, 3, self.num_heads, -1).permute(3, 0, 1, 4, 2, 5)
        logits = (q * self.scale) @ k.transpose(-2, -1)  # B, nW, heads, N, N
        logits = logits + self.position_bias()
        if mask is not None:
            logits = logits + mask[:, None].to(logits.dtype)
        out = logits.softmax(dim=-1) @ v  # B, nW, heads, N, C/heads
        return self.proj(out.transpose(2, 3).reshape(b, nw, n, c))


class SwinTransformerBlock(nn.Module):
    """Pre-norm (shifted-)window attention and MLP, each with a residual connection.

    ``attn_mask`` (shifted blocks only) is stored for the construction-time token grid
    ``resolution``; for other grids the mask is computed on the fly."""

    def __init__(
        self, dim: int, resolution: int, heads: int, window: int, shift: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        if resolution <= window:  # a single window covers the grid: no shift
            window, shift = resolution, 0
        self.resolution = (resolution, resolution)
        self.window = window
        self.shift = shift
        mask = None
        if shift:
            mask = on_default_device(cpu_shifted_window_mask(resolution, resolution, window, shift))
        self.register_buffer("attn_mask", mask)
        self._other_mask: tuple[tuple, torch.Tensor] | None = None  # latest other grid size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def mask_for(self, size: tuple[int, int], device: torch.device) -> torch.Tensor | None:
        """The additive shifted-window mask for a token grid of ``size`` (None if unshifted)."""
        if not self.shift:
            return None
        if tuple(size) == self.resolution:
            return self.attn_mask
        key = (tuple(size), device)
        if self._other_mask is None or self._other_mask[0] != key:
            mask = shifted_window_mask(*size, self.window, self.shift, device=device)
            self._other_mask = (key, mask)
        return self._other_mask[1]

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``x``: ``(B, H*W, C)`` tokens of an ``size = (H, W)`` grid."""
        h, w = size
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = to_windows(y, self.window).view(b, -1, self.window**2, c)  # B, nW, N, C
        y = self.attn(y, self.mask_for(size, x.device))
        y = from_windows(y.view(-1, self.window**2, c), self.window, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class BasicLayer(nn.Module):
    """``depth`` Swin blocks, alternately unshifted and shifted by half a window."""

    def __init__(
        self, dim: int, resolution: int, depth: int, heads: int, window: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, resolution, heads, window, (i % 2) * window // 2, mlp_ratio)
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, size)
        return x


def tokens_to_image(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, H*W, C)`` -> ``(B, C, H, W)``."""
    return x.transpose(1, 2).unflatten(2, size)


def image_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, H*W, C)``."""
    return x.flatten(2).transpose(1, 2)


class RSTB(nn.Module):
    """Residual Swin Transformer Block: a group of Swin blocks, a 3x3 conv on the image-shaped
    result, and a skip connection around both."""

    def __init__(
        self, dim: int, resolution: int, depth: int, heads: int, window: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.residual_group = BasicLayer(dim, resolution, depth, heads, window, mlp_ratio)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        y = tokens_to_image(self.residual_group(x, size), size)
        return x + image_to_tokens(self.conv(y))


class SwinIR(nn.Module):
    """SwinIR with one of two reconstructions (upstream's ``upsampler``):

    * ``"nearest+conv"`` (DiffBIR's cleaner): the input is pixel-unshuffled by ``sf`` and
      brought back with ``log2(sf)`` nearest x2 upsamplings, so the output has the input's size;
    * ``""`` (SwinIR's denoising / JPEG models): no resampling, ``sf`` must be 1; one 3x3 conv
      turns the features into a residual that is added to the input.

    Input and output: ``(B, in_chans, H, W)`` images in [0, 1] (the output is not clamped);
    ``img_range`` scales the mean-subtracted input inside the network (1 or 255).
    """

    def __init__(
        self,
        img_size: int = 64,
        in_chans: int = 3,
        embed_dim: int = 180,
        depths: Sequence[int] = (6,) * 8,
        num_heads: Sequence[int] = (6,) * 8,
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        sf: int = 8,
        img_range: float = 1.0,
        unshuffle_scale: int = 8,
        upsampler: str = "nearest+conv",
    ) -> None:
        super().__init__()
        if upsampler not in ("nearest+conv", ""):
            raise ValueError(f"upsampler must be 'nearest+conv' or '', got {upsampler!r}")
        if upsampler and (sf & (sf - 1) or sf < 2):
            raise ValueError(f"sf must be a power of two >= 2, got {sf}")
        if not upsampler and sf != 1:
            raise ValueError(f"without an upsampler sf must be 1, got {sf}")
        if len(depths) != len(num_heads):
            raise ValueError("depths and num_heads must have the same length")
        self.sf = sf
        self.upsampler = upsampler
        self.img_range = img_range
        self.window_size = window_size
        self.mean = RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        # upstream unshuffles by ``sf`` while sizing the conv from ``unshuffle_scale``
        self.unshuffle_factor = sf
        if upsampler:
            self.conv_first = nn.Sequential(
                nn.PixelUnshuffle(sf), nn.Conv2d(in_chans * unshuffle_scale**2, embed_dim, 3, 1, 1)
            )
        else:
            self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = TokenNorm(embed_dim)
        self.layers = nn.ModuleList(
            RSTB(embed_dim, img_size, depth, heads, window_size, mlp_ratio)
            for depth, heads in zip(depths, num_heads, strict=True)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        if upsampler:
            self._build_upsampler(in_chans)
        else:
            self.conv_last = nn.Conv2d(embed_dim, in_chans, 3, 1, 1)
        self.apply(init_swin_weights)

    def _build_upsampler(self, out_chans: int) -> None:
        embed_dim = self.conv_after_body.out_channels
        self.conv_before_upsample = nn.Sequential(
            nn.Conv2d(embed_dim, HIDDEN_FEATURES, 3, 1, 1), nn.LeakyReLU(inplace=True)
        )
        self.num_up = int(math.log2(self.sf))
        for i in range(1, self.num_up + 1):  # conv_up1, conv_up2, ...
            setattr(self, f"conv_up{i}", nn.Conv2d(HIDDEN_FEATURES, HIDDEN_FEATURES, 3, 1, 1))
        self.conv_hr = nn.Conv2d(HIDDEN_FEATURES, HIDDEN_FEATURES, 3, 1, 1)
        self.conv_last = nn.Conv2d(HIDDEN_FEATURES, out_chans, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def deep_features(self, x: torch.Tensor) -> torch.Tensor:
        """The transformer trunk on a ``(B, C, h, w)`` feature map (without the outer skip)."""
        size = (x.shape[-2], x.shape[-1])
        tokens = self.patch_embed(image_to_tokens(x))
        for layer in self.layers:
            tokens = layer(tokens, size)
        return tokens_to_image(self.norm(tokens), size)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        """Features -> image: nearest x2 + conv + LeakyReLU(0.2), ``log2(sf)`` times."""
        x = self.conv_before_upsample(x)
        for i in range(1, self.num_up + 1):
            conv = getattr(self, f"conv_up{i}")
            x = self.lrelu(conv(F.interpolate(x, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % self.window_size, (-w) % self.window_size
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        tile = self.unshuffle_factor * self.window_size
        if x.shape[-2] % tile or x.shape[-1] % tile:
            raise ValueError(
                f"SwinIR input {h}x{w}: padded to {x.shape[-2]}x{x.shape[-1]}, which is not a "
                f"multiple of {tile} (unshuffle {self.unshuffle_factor} x window "
                f"{self.window_size}); pad the image to a multiple of {tile} first"
            )
        mean = x.new_tensor(self.mean).view(1, -1, 1, 1)
        x = (x - mean) * self.img_range
        feat = self.conv_first(x)
        feat = self.conv_after_body(self.deep_features(feat)) + feat
        out = self.upsample(feat) if self.upsampler else x + self.conv_last(feat)
        out = out / self.img_range + mean
        return out[..., :h, :w]


def build_swinir() -> SwinIR:
    """DiffBIR's stage-1 SwinIR (configs/inference/swinir.yaml), random weights."""
    return SwinIR(**DIFFBIR_SWINIR)
