"""SUPIR's networks with the official parameter names: the SDXL UNet with SUPIR's connectors
(``LightGLVUNet``: ZeroSFT and ZeroCrossAttn ``project_modules``) and the ``GLVControl``
adaptor (a trainable copy of the SDXL encoder half whose first block also receives a
zero-initialised projection of the low-quality latent).

carbench's own implementation of ``SUPIR/modules/SUPIR_v0.py`` and the sgm ``UNetModel`` of
Fanghua-Yu/SUPIR @bda91af with ``options/SUPIR_v0.yaml`` (facts carried over: the layer
layout, the connector channel lists of mode ``XL-base``, the order in which connectors are
applied). Building blocks (residual blocks, spatial transformers, attention) are those of
:mod:`methods.nets.ircontrolnet`, which use the same LDM/sgm names; the SDXL file's
``model.diffusion_model.*`` keys load into :class:`SupirUNet` without conversion, the SUPIR
checkpoint's ``model.control_model.*`` into :class:`GLVControl`.

Numerics as upstream with PyTorch's scaled-dot-product attention (upstream's path without
xformers); group norms in float32 as sgm's ``GroupNorm32``. The working dtype is that of the
weights (upstream runs fp32 weights under CUDA autocast; carbench casts the weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from carbench.methods.nets.ircontrolnet import (
    ConditionedSequential,
    CrossAttention,
    Downsample,
    Float32GroupNorm,
    ResBlock,
    SpatialTransformer,
    timestep_features,
    zeroed,
)


@dataclass(frozen=True)
class UNetConfig:
    """The UNet / GLVControl options SUPIR sets (``network_config`` / ``control_stage_config``
    of options/SUPIR_v0.yaml); defaults are SDXL base's."""

    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4, 2)
    transformer_depth: tuple[int, ...] = (1, 2, 10)
    transformer_depth_middle: int | None = None  # None: the last level's depth
    num_head_channels: int = 64
    context_dim: int = 2048
    adm_in_channels: int = 2816
    project_channel_scale: float = 2.0
    extra: dict = field(default_factory=dict)

    @property
    def middle_depth(self) -> int:
        if self.transformer_depth_middle is None:
            return self.transformer_depth[-1]
        return self.transformer_depth_middle


SDXL = UNetConfig()


class Upsample(nn.Module):
    """Nearest-neighbour 2x, then a 3x3 conv (``conv``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class _Encoder(nn.Module):
    """``time_embed``, ``label_emb`` and the encoder half (``input_blocks``, ``middle_block``)
    shared by the UNet and GLVControl."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mc = cfg.model_channels
        emb = 4 * mc
        self.time_embed = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.label_emb = nn.Sequential(
            nn.Sequential(nn.Linear(cfg.adm_in_channels, emb), nn.SiLU(), nn.Linear(emb, emb))
        )
        blocks = [ConditionedSequential(nn.Conv2d(cfg.in_channels, mc, 3, 1, 1))]
        self.widths = [mc]  # output width of each input block
        ch, ds = mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb, mult * mc, 0.0)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(self._transformer(ch, cfg.transformer_depth[level]))
                blocks.append(ConditionedSequential(*layers))
                self.widths.append(ch)
            if level < len(cfg.channel_mult) - 1:
                blocks.append(ConditionedSequential(Downsample(ch)))
                self.widths.append(ch)
                ds *= 2
        self.input_blocks = nn.ModuleList(blocks)
        self.middle_block = ConditionedSequential(
            ResBlock(ch, emb, ch, 0.0),
            self._transformer(ch, cfg.middle_depth),
            ResBlock(ch, emb, ch, 0.0),
        )
        self._ch, self._ds = ch, ds

    def _transformer(self, ch: int, depth: int) -> SpatialTransformer:
        heads = ch // self.cfg.num_head_channels
        return SpatialTransformer(
            ch, heads, self.cfg.num_head_channels, depth, self.cfg.context_dim
        )

    @property
    def dtype(self) -> torch.dtype:
        return self.input_blocks[0][0].weight.dtype

    def embedding(self, timesteps: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Timestep embedding plus the ``y`` vector's (sizes and pooled text) embedding."""
        t = timestep_features(timesteps, self.cfg.model_channels).to(self.dtype)
        return self.time_embed(t) + self.label_emb(y.to(self.dtype))


class GLVControl(_Encoder):
    """``forward(x, timesteps, xt, context, y)`` -> the encoder features (one per input block,
    then the middle block's). ``x`` is the low-quality latent, added through the zero conv
    ``input_hint_block`` after the first block; ``xt`` the noisy latent."""

    def __init__(self, cfg: UNetConfig = SDXL) -> None:
        super().__init__(cfg)
        conv = zeroed(nn.Conv2d(cfg.in_channels, cfg.model_channels, 3, 1, 1))
        self.input_hint_block = ConditionedSequential(conv)

    def forward(self, x, timesteps, xt, context, y) -> list[torch.Tensor]:
        dt = self.dtype
        x, xt, context = x.to(dt), xt.to(dt), context.to(dt)
        emb = self.embedding(timesteps, y)
        hint = self.input_hint_block(x, emb, context)
        hs = []
        h = xt
        for i, block in enumerate(self.input_blocks):
            h = block(h, emb, context)
            if i == 0:
                h = h + hint
            hs.append(h)
        hs.append(self.middle_block(h, emb, context))
        return hs


class ZeroSFT(nn.Module):
    """Spatial feature transform from a control feature ``c``: ``h + zero_conv(c)`` (after the
    UNet feature ``h_ori`` is concatenated in front, when given), group-normalised and modulated
    by ``1 + zero_mul(a)`` and ``zero_add(a)`` with ``a = mlp_shared(c)``; blended with the
    unmodified input by ``control_scale``."""

    def __init__(self, label_nc: int, norm_nc: int, concat_channels: int = 0) -> None:
        super().__init__()
        hidden = 128
        self.param_free_norm = Float32GroupNorm(norm_nc + concat_channels)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, 3, 1, 1), nn.SiLU())
        self.zero_mul = zeroed(nn.Conv2d(hidden, norm_nc + concat_channels, 3, 1, 1))
        self.zero_add = zeroed(nn.Conv2d(hidden, norm_nc + concat_channels, 3, 1, 1))
        self.zero_conv = zeroed(nn.Conv2d(label_nc, norm_nc, 1))
        self.pre_concat = concat_channels != 0

    def forward(self, c, h, h_ori=None, control_scale: float = 1.0):
        concat = h_ori is not None and self.pre_concat
        h_raw = torch.cat([h_ori, h], dim=1) if concat else h
        h = h + self.zero_conv(c)
        if concat:
            h = torch.cat([h_ori, h], dim=1)
        actv = self.mlp_shared(c)
        h = self.param_free_norm(h) * (self.zero_mul(actv) + 1) + self.zero_add(actv)
        if h_ori is not None and not self.pre_concat:
            h = torch.cat([h_ori, h], dim=1)
        return h * control_scale + h_raw * (1 - control_scale)


class ZeroCrossAttn(nn.Module):
    """Cross-attention of the (group-normalised) UNet feature to the control feature, added
    times ``control_scale``. ``context_dim`` is the control's width, ``query_dim`` the UNet's."""

    def __init__(self, context_dim: int, query_dim: int) -> None:
        super().__init__()
        self.attn = CrossAttention(query_dim, query_dim // 64, 64, context_dim=context_dim)
        self.norm1 = Float32GroupNorm(query_dim)
        self.norm2 = Float32GroupNorm(context_dim)

    def forward(self, context, x, control_scale: float = 1.0):
        b, c, h, w = x.shape
        q = self.norm1(x).flatten(2).transpose(1, 2)
        kv = self.norm2(context).flatten(2).transpose(1, 2)
        out = self.attn(q, kv).transpose(1, 2).reshape(b, c, h, w)
        return x + out * control_scale


def connector_channels(cfg: UNetConfig) -> tuple[list[int], list[int], list[int], list[int]]:
    """(control widths, projected widths, concatenated UNet widths, cross-attention positions)
    of LightGLVUNet mode ``XL-base``, written for any width with three levels (SDXL's lists
    at ``model_channels=320``)."""
    if len(cfg.channel_mult) != 3 or cfg.num_res_blocks != 2:
        raise ValueError("SUPIR's connectors are laid out for 3 levels of 2 residual blocks")
    m = [cfg.model_channels * k for k in cfg.channel_mult]
    cond = [m[0]] * 4 + [m[1]] * 3 + [m[2]] * 3
    project = [int(c // 2 * cfg.project_channel_scale) for c in cond]
    concat = [m[0]] * 2 + [m[1]] * 3 + [m[2]] * 4 + [0]
    return cond, project, concat, [6, 3]


class SupirUNet(_Encoder):
    """SDXL's UNet (``input_blocks``, ``middle_block``, ``output_blocks``, ``out``) with the
    ``project_modules`` through which GLVControl's features steer the decoder half.

    ``forward(x, timesteps, context, y, control, control_scale)`` -> the eps prediction."""

    def __init__(self, cfg: UNetConfig = SDXL) -> None:
        super().__init__(cfg)
        mc, emb = cfg.model_channels, 4 * cfg.model_channels
        widths = list(self.widths)
        ch, ds = self._ch, self._ds
        out_blocks = []
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers: list[nn.Module] = [ResBlock(ch + widths.pop(), emb, mc * mult, 0.0)]
                ch = mc * mult
                if ds in cfg.attention_resolutions:
                    layers.append(self._transformer(ch, cfg.transformer_depth[level]))
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                out_blocks.append(ConditionedSequential(*layers))
        self.output_blocks = nn.ModuleList(out_blocks)
        self.out = nn.Sequential(
            Float32GroupNorm(ch), nn.SiLU(), zeroed(nn.Conv2d(mc, cfg.out_channels, 3, 1, 1))
        )
        cond, project, concat, insert_at = connector_channels(cfg)
        modules: list[nn.Module] = [
            ZeroSFT(p, c, concat_channels=k) for c, p, k in zip(cond, project, concat, strict=True)
        ]
        for i in insert_at:
            modules.insert(i, ZeroCrossAttn(cond[i], concat[i]))
        self.project_modules = nn.ModuleList(modules)

    def forward(self, x, timesteps, context, y, control: Sequence[torch.Tensor], control_scale=1.0):
        dt = control[0].dtype
        x, context = x.to(dt), context.to(dt)
        emb = self.embedding(timesteps, y)
        hs = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb, context)
            hs.append(h)
        adapters = iter(reversed(self.project_modules))
        controls = list(control)
        h = self.middle_block(h, emb, context)
        h = next(adapters)(controls.pop(), h, control_scale=control_scale)
        for block in self.output_blocks:
            c = controls.pop()
            h = next(adapters)(c, hs.pop(), h, control_scale=control_scale)
            if isinstance(block[-1], Upsample):
                h = block[:-1](h, emb, context)
                h = next(adapters)(c, h, control_scale=control_scale)
                h = block[-1](h)
            else:
                h = block(h, emb, context)
        return self.out(h.to(x.dtype))
