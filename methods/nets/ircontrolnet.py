"""DiffBIR's IRControlNet (checkpoints ``v2.pth`` and ``DiffBIR_v2.1.pt``; v1 shares the class).

carbench's own implementation of class ``ControlNet`` of XPixelGroup/DiffBIR
``diffbir/model/controlnet.py`` @3f8b530 with ``controlnet_cfg`` of ``configs/inference/cldm.yaml``.
It is a trainable copy of the encoder half of the Stable Diffusion 2.1 UNet (LDM naming:
``time_embed``, ``input_blocks``, ``middle_block``) whose first conv takes the noisy latent and
the condition latent concatenated along the channels (4 + 4), plus one zero-initialised 1x1 conv
per encoder output (``zero_convs``, ``middle_block_out``). ``forward`` returns those 13 control
residuals, to be added to the skip connections and the middle block of the frozen UNet.
Attribute names follow upstream so the released state dicts load with strict key matching
(324 keys, 363,153,280 parameters).

Configuration: width 320, channel multipliers (1, 2, 4, 4), two residual blocks per level,
spatial transformers (depth 1, linear in/out projections, 64-channel heads, cross-attention to a
1024-d text context) at the first three levels and in the middle block, strided-conv
downsampling, no scale-shift norm. Numerics as upstream with PyTorch's scaled-dot-product
attention (upstream's default on PyTorch >= 2 without xformers); the residual blocks' group
norms run in float32 whatever the working dtype (upstream keeps them in float32 when it casts the
model to half precision). The working dtype is that of the input blocks' weights; the timestep
embedding is computed in float32 and fed to ``time_embed`` in its weights' dtype. No gradient
checkpointing (inference only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

# configs/inference/cldm.yaml, controlnet_cfg
DIFFBIR_CONTROLNET = dict(
    in_channels=4,
    hint_channels=4,
    model_channels=320,
    channel_mult=(1, 2, 4, 4),
    num_res_blocks=2,
    attention_resolutions=(4, 2, 1),
    num_head_channels=64,
    transformer_depth=1,
    context_dim=1024,
)
NUM_GROUPS = 32


def timestep_features(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0):
    """Sinusoidal features ``(N, dim)`` of ``N`` (possibly fractional) timesteps, float32:
    ``[cos(t * f_i), sin(t * f_i)]`` with ``f_i = max_period ** (-i / (dim // 2))``."""
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    freqs = torch.exp(-math.log(max_period) * exponent)
    angles = timesteps.float()[:, None] * freqs[None]
    out = torch.cat((torch.cos(angles), torch.sin(angles)), dim=-1)
    if dim % 2:
        out = F.pad(out, (0, 1))
    return out


def zeroed(module: nn.Module) -> nn.Module:
    """``module`` with every parameter set to zero (the ControlNet "zero" layers)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class Float32GroupNorm(nn.GroupNorm):
    """GroupNorm (32 groups) evaluated in float32, result cast back to the input dtype."""

    def __init__(self, channels: int) -> None:
        super().__init__(NUM_GROUPS, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        y = F.group_norm(x.float(), self.num_groups, weight, bias, self.eps)
        return y.to(x.dtype)


class ResBlock(nn.Module):
    """Residual block conditioned on the timestep embedding (added after the first conv);
    a 1x1 ``skip_connection`` when the width changes. The last conv starts at zero."""

    def __init__(self, channels: int, emb_dim: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(
            Float32GroupNorm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, 1, 1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_channels))
        self.out_layers = nn.Sequential(
            Float32GroupNorm(out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            zeroed(nn.Conv2d(out_channels, out_channels, 3, 1, 1)),
        )
        if out_channels == channels:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Downsample(nn.Module):
    """3x3 convolution with stride 2 (``op``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class CrossAttention(nn.Module):
    """Multi-head attention of the tokens ``x`` to ``context`` (to themselves if None)."""

    def __init__(
        self, query_dim: int, heads: int, head_dim: int, context_dim: int | None = None
    ) -> None:
        super().__init__()
        inner = heads * head_dim
        kv_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(kv_dim, inner, bias=False)
        self.to_v = nn.Linear(kv_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        source = x if context is None else context

        def heads_first(t: torch.Tensor) -> torch.Tensor:  # B, L, H*D -> B, H, L, D
            return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)

        q, k, v = (
            heads_first(self.to_q(x)),
            heads_first(self.to_k(source)),
            heads_first(self.to_v(source)),
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).flatten(2))


class GEGLU(nn.Module):
    """Linear projection to twice the width; one half gates the other through a GELU."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, 2 * dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward with 4x inner width."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(dropout), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Self-attention, cross-attention to the context, feed-forward; pre-LayerNorm residuals.
    (Attribute order ``attn1, ff, attn2, norm1..3`` is upstream's state-dict order.)"""

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int) -> None:
        super().__init__()
        self.attn1 = CrossAttention(dim, heads, head_dim)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, heads, head_dim, context_dim=context_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """GroupNorm, linear projection of the pixels to tokens, transformer blocks, zero-initialised
    linear projection back, residual around everything."""

    def __init__(
        self, channels: int, heads: int, head_dim: int, depth: int, context_dim: int
    ) -> None:
        super().__init__()
        inner = heads * head_dim
        self.norm = nn.GroupNorm(NUM_GROUPS, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, head_dim, context_dim) for _ in range(depth)
        )
        self.proj_out = zeroed(nn.Linear(inner, channels))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.proj_in(self.norm(x).flatten(2).transpose(1, 2))
        for block in self.transformer_blocks:
            tokens = block(tokens, context)
        out = self.proj_out(tokens).transpose(1, 2).reshape(b, c, h, w)
        return x + out


class ConditionedSequential(nn.Sequential):
    """Runs its layers in order, giving residual blocks the timestep embedding and
    transformers the context."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


def zero_conv(channels: int) -> nn.Sequential:
    """A zero-initialised 1x1 conv, wrapped like upstream (``<name>.0.weight``)."""
    return nn.Sequential(zeroed(nn.Conv2d(channels, channels, 1)))


class ControlNet(nn.Module):
    """IRControlNet: ``forward(x, hint, timesteps, context)`` -> 13 control residuals.

    ``x`` is the noisy latent ``(B, in_channels, h, w)``, ``hint`` the condition latent
    ``(B, hint_channels, h, w)`` (in DiffBIR: the VAE encoding of the stage-1 output times the
    latent scale), ``timesteps`` ``(B,)`` (a scalar is broadcast), ``context`` the text tokens
    ``(B, L, context_dim)``. ``h`` and ``w`` must be divisible by ``2 ** (len(channel_mult)-1)``.
    """

    def __init__(
        self,
        in_channels: int = 4,
        hint_channels: int = 4,
        model_channels: int = 320,
        channel_mult: Sequence[int] = (1, 2, 4, 4),
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (4, 2, 1),
        num_head_channels: int = 64,
        transformer_depth: int = 1,
        context_dim: int = 1024,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.model_channels = model_channels
        emb_dim = 4 * model_channels

        def transformer(ch: int) -> SpatialTransformer:
            heads = ch // num_head_channels
            return SpatialTransformer(ch, heads, num_head_channels, transformer_depth, context_dim)

        self.time_embed = nn.Sequential(
            nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        first = nn.Conv2d(in_channels + hint_channels, model_channels, 3, 1, 1)
        blocks: list[ConditionedSequential] = [ConditionedSequential(first)]
        widths = [model_channels]  # output width of each input block
        ch, scale = model_channels, 1  # current width and downsampling factor
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb_dim, mult * model_channels, dropout)]
                ch = mult * model_channels
                if scale in attention_resolutions:
                    layers.append(transformer(ch))
                blocks.append(ConditionedSequential(*layers))
                widths.append(ch)
            if level < len(channel_mult) - 1:
                blocks.append(ConditionedSequential(Downsample(ch)))
                widths.append(ch)
                scale *= 2
        self.input_blocks = nn.ModuleList(blocks)
        self.zero_convs = nn.ModuleList(zero_conv(width) for width in widths)
        self.middle_block = ConditionedSequential(
            ResBlock(ch, emb_dim, ch, dropout),
            transformer(ch),
            ResBlock(ch, emb_dim, ch, dropout),
        )
        self.middle_block_out = zero_conv(ch)

    @property
    def output_channels(self) -> list[int]:
        """Channels of the 13 control residuals, in ``forward``'s order."""
        convs = [*self.zero_convs, self.middle_block_out]
        return [conv[0].out_channels for conv in convs]

    def forward(
        self,
        x: torch.Tensor,
        hint: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
    ) -> list[torch.Tensor]:
        dtype = self.input_blocks[0][0].weight.dtype
        timesteps = torch.as_tensor(timesteps, device=x.device)
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(x.shape[0])
        t_feat = timestep_features(timesteps, self.model_channels)
        emb = self.time_embed(t_feat.to(self.time_embed[0].weight.dtype)).to(dtype)
        h = torch.cat((x, hint), dim=1).to(dtype)
        context = context.to(dtype)
        controls = []
        for block, conv in zip(self.input_blocks, self.zero_convs, strict=True):
            h = block(h, emb, context)
            controls.append(conv(h))
        h = self.middle_block(h, emb, context)
        controls.append(self.middle_block_out(h))
        return controls


def build_ircontrolnet() -> ControlNet:
    """DiffBIR's IRControlNet (controlnet_cfg of configs/inference/cldm.yaml), random weights
    (PyTorch default init; the zero convs, the residual blocks' last convs and the
    transformers' output projections start at zero, as upstream)."""
    return ControlNet(**DIFFBIR_CONTROLNET)
