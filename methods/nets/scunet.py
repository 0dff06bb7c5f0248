"""DiffBIR's stage-1 cleaner for the v2 denoise task: SCUNet (Zhang et al., "Practical Blind
Image Denoising via Swin-Conv-UNet and Data Synthesis", MIR 2023), checkpoint
``scunet_color_real_psnr.pth`` of cszn/KAIR release v1.0.

carbench's own implementation of XPixelGroup/DiffBIR ``diffbir/model/scunet.py`` @3f8b530 with
``SCUNet(in_nc=3, config=[4]*7, dim=64)``: a three-level UNet (strided 2x2 convs down,
transposed 2x2 convs up, additive skips) whose stages are Swin-Conv blocks: a 1x1 conv splits
the channels into a residual conv branch and a (shifted-)window transformer branch (head width
32, 8x8 windows), and a second 1x1 conv fuses them. Attribute names follow upstream so the
released state dict loads with strict key matching (540 keys, no buffers).

Input and output ``(B, in_nc, H, W)`` in [0, 1] (output not clamped); the input is
replicate-padded to a multiple of 64 inside and the result cropped back, as upstream. No
stochastic depth (its rate is 0 in the released configuration).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from carbench.methods.nets.swin_common import (
    from_windows,
    relative_position_index,
    shifted_window_blocked,
    to_windows,
)

HEAD_DIM = 32
WINDOW = 8
MULTIPLE = 64  # three 2x downsamplings, then 8x8 windows


class WMSA(nn.Module):
    """Window multi-head self-attention, optionally on windows shifted by half their size
    (``shifted``; upstream's type "SW"), with a learned relative-position bias per head
    (``relative_position_params``: ``(heads, 2*window-1, 2*window-1)``)."""

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.num_heads = dim // head_dim
        self.window = window
        self.shifted = shifted
        params = torch.empty(self.num_heads, 2 * window - 1, 2 * window - 1)
        self.relative_position_params = nn.Parameter(nn.init.trunc_normal_(params, std=0.02))
        self.embedding_layer = nn.Linear(dim, 3 * dim)
        self.linear = nn.Linear(dim, dim)

    def position_bias(self) -> torch.Tensor:
        """``(heads, N, N)`` bias of each query/key token pair of a window."""
        index = relative_position_index(self.window).to(self.relative_position_params.device)
        n = self.window * self.window
        return self.relative_position_params.flatten(1)[:, index.view(-1)].view(-1, n, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, H, W, C)``, H and W multiples of the window size."""
        b, h, w, c = x.shape
        shift = self.window // 2
        if self.shifted:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        n = self.window**2
        tokens = to_windows(x, self.window).view(b, -1, n, c)  # B, nW, N, C
        nw = tokens.shape[1]
        qkv = self.embedding_layer(tokens).view(b, nw, n, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5)  # each B, nW, heads, N, head_dim
        logits = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5 + self.position_bias()
        if self.shifted:
            blocked = shifted_window_blocked(h, w, self.window, shift, device=x.device)
            logits = logits.masked_fill(blocked[:, None], float("-inf"))
        out = logits.softmax(dim=-1) @ v
        out = self.linear(out.transpose(2, 3).reshape(b, nw, n, c))
        out = from_windows(out.view(-1, n, c), self.window, h, w)
        if self.shifted:
            out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
        return out


class Block(nn.Module):
    """Pre-norm window attention and a 4x MLP, each with a residual connection, on
    channel-last ``(B, H, W, C)`` maps."""

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.msa = WMSA(dim, head_dim, window, shifted)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.msa(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ConvTransBlock(nn.Module):
    """Swin-Conv block: ``conv1_1`` -> split into a conv branch (two 3x3 convs with a ReLU,
    residual) and a transformer branch, concatenated -> ``conv1_2``, plus the input."""

    def __init__(
        self, conv_dim: int, trans_dim: int, head_dim: int, window: int, shifted: bool
    ) -> None:
        super().__init__()
        self.split = (conv_dim, trans_dim)
        width = conv_dim + trans_dim
        self.trans_block = Block(trans_dim, head_dim, window, shifted)
        self.conv1_1 = nn.Conv2d(width, width, 1)
        self.conv1_2 = nn.Conv2d(width, width, 1)
        self.conv_block = nn.Sequential(
            nn.Conv2d(conv_dim, conv_dim, 3, 1, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(conv_dim, conv_dim, 3, 1, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv_x, trans_x = torch.split(self.conv1_1(x), self.split, dim=1)
        conv_x = conv_x + self.conv_block(conv_x)
        trans_x = self.trans_block(trans_x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + self.conv1_2(torch.cat((conv_x, trans_x), dim=1))


class SCUNet(nn.Module):
    """Swin-Conv UNet. ``config``: number of Swin-Conv blocks of the 7 stages (down1..3, body,
    up3..1); within a stage the blocks alternate unshifted / shifted windows.
    ``input_resolution`` is upstream's nominal training size: stages whose nominal grid fits in
    one window get no shifted blocks (none for the default 256)."""

    def __init__(
        self,
        in_nc: int = 3,
        config: Sequence[int] = (4,) * 7,
        dim: int = 64,
        input_resolution: int = 256,
    ) -> None:
        super().__init__()
        if len(config) != 7:
            raise ValueError(f"config needs 7 stage depths, got {len(config)}")

        def stage(width: int, depth: int, resolution: int) -> list[nn.Module]:
            half = width // 2
            return [
                ConvTransBlock(
                    half, half, HEAD_DIM, WINDOW, shifted=bool(i % 2) and resolution > WINDOW
                )
                for i in range(depth)
            ]

        def down(width: int) -> nn.Module:
            return nn.Conv2d(width, 2 * width, 2, 2, 0, bias=False)

        def up(width: int) -> nn.Module:
            return nn.ConvTranspose2d(2 * width, width, 2, 2, 0, bias=False)

        r = input_resolution
        self.m_head = nn.Sequential(nn.Conv2d(in_nc, dim, 3, 1, 1, bias=False))
        self.m_down1 = nn.Sequential(*stage(dim, config[0], r), down(dim))
        self.m_down2 = nn.Sequential(*stage(2 * dim, config[1], r // 2), down(2 * dim))
        self.m_down3 = nn.Sequential(*stage(4 * dim, config[2], r // 4), down(4 * dim))
        self.m_body = nn.Sequential(*stage(8 * dim, config[3], r // 8))
        self.m_up3 = nn.Sequential(up(4 * dim), *stage(4 * dim, config[4], r // 4))
        self.m_up2 = nn.Sequential(up(2 * dim), *stage(2 * dim, config[5], r // 2))
        self.m_up1 = nn.Sequential(up(dim), *stage(dim, config[6], r))
        self.m_tail = nn.Sequential(nn.Conv2d(dim, in_nc, 3, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % MULTIPLE, (-w) % MULTIPLE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        x1 = self.m_head(x)
        x2 = self.m_down1(x1)
        x3 = self.m_down2(x2)
        x4 = self.m_down3(x3)
        y = self.m_body(x4)
        y = self.m_up3(y + x4)
        y = self.m_up2(y + x3)
        y = self.m_up1(y + x2)
        y = self.m_tail(y + x1)
        return y[..., :h, :w]


def build_scunet() -> SCUNet:
    """DiffBIR's stage-1 SCUNet (``SCUNet(in_nc=3, config=[4]*7, dim=64)``), random weights."""
    return SCUNet(in_nc=3, config=(4,) * 7, dim=64)
