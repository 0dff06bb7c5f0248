"""PromptCIR's network (lbc12345/PromptCIR-NTIRE24 @3506b1a ``model.py``, ``MyModel(decoder=True)``)
with upstream's parameter names: a Restormer-style U-Net whose levels mix transposed (channel)
attention, window attention and HAT's overlapping cross-attention, with learned prompts for the
quality. The window helpers are the shared Swin ones (``methods.nets.swin_common``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from carbench.methods.nets.swin_common import (
    from_windows,
    on_default_device,
    relative_position_index,
    shifted_window_mask,
    to_windows,
)

WINDOW = 16
OUTER = WINDOW + WINDOW // 2  # key/value window of the overlapping cross-attention
DIM = 48
DEPTHS = (4, 6, 6, 8)  # blocks at levels 1-4
HEADS = (1, 2, 4, 8)
REFINE_BLOCKS = 4
FFN_EXPANSION = 2.66
NUM_TASKS = 7  # the seven training quality factors
CONV_SCALE = 0.01  # weight of the channel-attention branch in a hybrid block
# prompt bank per decoder level: (feature channels, bases, prompt channels)
PROMPTS = {3: (8 * DIM, 16, 320), 2: (4 * DIM, 32, 128), 1: (2 * DIM, 64, 64)}


def _rel_index_overlap(ws: int, ows: int):
    """Index into the (ws+ows-1)^2 bias table for ws x ws queries against ows x ows keys.

    Kept exactly as trained (HAT's offset): some entries are negative and address the table
    from its end (Python indexing), which the network's forward reproduces with a modulo."""
    qy, qx = (
        t.flatten() for t in torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    )
    ky, kx = (
        t.flatten() for t in torch.meshgrid(torch.arange(ows), torch.arange(ows), indexing="ij")
    )
    dy = ky[None, :] - qy[:, None] + ws - ows + 1
    dx = kx[None, :] - qx[:, None] + ws - ows + 1
    return dy * (ws + ows - 1) + dx


def _bias(table, flat_index, n_query: int):
    """Relative position bias (1, heads, Nq, Nk) gathered from a (entries, heads) table."""
    return (
        table.index_select(0, flat_index)
        .reshape(n_query, -1, table.shape[1])
        .permute(2, 0, 1)
        .contiguous()[None]
    )


def last(x):  # (B, C, H, W) -> (B, H, W, C)
    return x.permute(0, 2, 3, 1)


def first(x):  # (B, H, W, C) -> (B, C, H, W)
    return x.permute(0, 3, 1, 2)


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map (Restormer's WithBias norm)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.LayerNorm(ch)

    def forward(self, x):
        return first(self.body(last(x)))


class GatedFFN(nn.Module):
    """Gated depthwise-conv feed-forward: GELU(a) * b of a 3x3 depthwise expansion."""

    def __init__(self, ch: int, bias: bool) -> None:
        super().__init__()
        hidden = int(ch * FFN_EXPANSION)
        self.project_in = nn.Conv2d(ch, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, 1, 1, groups=2 * hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, ch, 1, bias=bias)

    def forward(self, x):
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class TransposedAttention(nn.Module):
    """Multi-head attention across channels (C x C maps per head, cosine similarity
    scaled by a learned temperature)."""

    def __init__(self, ch: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(ch, 3 * ch, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(3 * ch, 3 * ch, 3, 1, 1, groups=3 * ch, bias=False)
        self.project_out = nn.Conv2d(ch, ch, 1, bias=False)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = (
            t.reshape(b, self.heads, c // self.heads, h * w)
            for t in self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        )
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class RestormerBlock(nn.Module):
    def __init__(self, ch: int, heads: int) -> None:
        super().__init__()
        self.norm1 = ChannelNorm(ch)
        self.attn = TransposedAttention(ch, heads)
        self.norm2 = ChannelNorm(ch)
        self.ffn = GatedFFN(ch, bias=False)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def restormer_stack(ch: int, heads: int, n: int):
    return nn.Sequential(*[RestormerBlock(ch, heads) for _ in range(n)])


class SqueezeExcite(nn.Module):
    """RCAN channel attention: rescale channels by a bottleneck of their means."""

    def __init__(self, ch: int, squeeze: int = 16) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(ch, ch // squeeze, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch // squeeze, ch, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.attention(x)


class ConvBranch(nn.Module):
    """Conv - GELU - conv with channel attention (HAT's CAB, compress ratio 3)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.cab = nn.Sequential(
            nn.Conv2d(ch, ch // 3, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(ch // 3, ch, 3, 1, 1),
            SqueezeExcite(ch),
        )

    def forward(self, x):
        return self.cab(x)


class WindowAttention(nn.Module):
    """Self-attention inside ws x ws windows with a learned relative position bias."""

    def __init__(self, ch: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * WINDOW - 1) ** 2, heads))
        self.qkv = nn.Linear(ch, 3 * ch)
        self.proj = nn.Linear(ch, ch)

    def forward(self, tokens, rel_index, mask=None):
        n_win, n, c = tokens.shape
        qkv = self.qkv(tokens).reshape(n_win, n, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        bias = _bias(self.relative_position_bias_table, rel_index, n)
        if mask is not None:  # (nW, n, n) per window, repeated over the batch
            bias = bias + mask[:, None]
            if n_win != mask.shape[0]:
                bias = bias.repeat(n_win // mask.shape[0], 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(n_win, n, c))


class HybridBlock(nn.Module):
    """(Shifted) window attention + scaled channel-attention conv branch, then a gated
    FFN; works on (B, H, W, C) maps."""

    def __init__(self, ch: int, heads: int, shift: int) -> None:
        super().__init__()
        self.shift = shift
        self.norm1 = nn.LayerNorm(ch)
        self.attn = WindowAttention(ch, heads)
        self.conv_block = ConvBranch(ch)
        self.norm2 = nn.LayerNorm(ch)
        self.ffn = GatedFFN(ch, bias=True)

    def forward(self, x, rel_index, mask):
        _, h, w, _ = x.shape
        y = self.norm1(x)
        local = last(self.conv_block(first(y)))
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(to_windows(y, WINDOW), rel_index, mask if self.shift else None)
        y = from_windows(y, WINDOW, h, w)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), dims=(1, 2))
        x = x + y + local * CONV_SCALE
        return x + last(self.ffn(first(self.norm2(x))))


class OverlapCrossAttention(nn.Module):
    """ws x ws query windows attending to enlarged (1.5 ws) overlapping key/value windows
    (zero-padded at the border), then a gated FFN; works on (B, H, W, C) maps."""

    def __init__(self, ch: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((WINDOW + OUTER - 1) ** 2, heads)
        )
        self.norm1 = nn.LayerNorm(ch)
        self.qkv = nn.Linear(ch, 3 * ch)
        self.proj = nn.Linear(ch, ch)
        self.norm2 = nn.LayerNorm(ch)
        self.ffn = GatedFFN(ch, bias=True)

    def forward(self, x, rel_index):
        b, h, w, c = x.shape
        d, area = c // self.heads, OUTER**2
        qkv = self.qkv(self.norm1(x))
        q = to_windows(qkv[..., :c], WINDOW)  # B*nW, ws*ws, C
        kv = F.unfold(
            first(qkv[..., c:]),
            OUTER,
            padding=(OUTER - WINDOW) // 2,
            stride=WINDOW,
        )  # B, 2C * outer^2, nW
        kv = kv.reshape(b, 2, c, area, -1).permute(1, 0, 4, 3, 2).reshape(2, -1, area, c)
        q = q.reshape(q.shape[0], -1, self.heads, d).transpose(1, 2)
        k, v = (t.reshape(t.shape[0], area, self.heads, d).transpose(1, 2) for t in kv)
        bias = _bias(self.relative_position_bias_table, rel_index, WINDOW * WINDOW)
        bias = bias.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = from_windows(out.transpose(1, 2).reshape(-1, WINDOW * WINDOW, c), WINDOW, h, w)
        x = self.proj(out) + x
        return x + last(self.ffn(first(self.norm2(x))))


class HybridStack(nn.Module):
    def __init__(self, ch: int, heads: int, depth: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [HybridBlock(ch, heads, WINDOW // 2 if i % 2 else 0) for i in range(depth)]
        )
        self.overlap_attn = OverlapCrossAttention(ch, heads)

    def forward(self, x, rel_self, rel_overlap):
        _, h, w, _ = x.shape
        mask = shifted_window_mask(h, w, WINDOW, WINDOW // 2, x.device).to(x.dtype)
        for blk in self.blocks:
            x = blk(x, rel_self, mask)
        return self.overlap_attn(x, rel_overlap)


class HybridGroup(nn.Module):
    """Residual hybrid attention group: blocks + overlapping attention + 3x3 conv, plus
    the input. (B, C, H, W) in and out."""

    def __init__(self, ch: int, heads: int, depth: int) -> None:
        super().__init__()
        self.residual_group = HybridStack(ch, heads, depth)
        self.conv = nn.Conv2d(ch, ch, 3, 1, 1)

    def forward(self, x, rel_self, rel_overlap):
        y = self.residual_group(last(x), rel_self, rel_overlap)
        return self.conv(first(y)) + x


class Resample(nn.Module):
    """3x3 conv then pixel (un)shuffle: halves (down) or doubles (up) the resolution."""

    def __init__(self, ch: int, down: bool) -> None:
        super().__init__()
        if down:
            self.body = nn.Sequential(
                nn.Conv2d(ch, ch // 2, 3, 1, 1, bias=False), nn.PixelUnshuffle(2)
            )
        else:
            self.body = nn.Sequential(
                nn.Conv2d(ch, ch * 2, 3, 1, 1, bias=False), nn.PixelShuffle(2)
            )

    def forward(self, x):
        return self.body(x)


class InputEmbed(nn.Module):
    def __init__(self, cin: int, ch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, ch, 3, 1, 1, bias=False)

    def forward(self, x):
        return self.proj(x)


class TwoLayerMLP(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cin, cout)
        self.fc2 = nn.Linear(cout, cout)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class PromptBank(nn.Module):
    """Per-pixel prompt from a learned bank (tasks x bases x D): softmax weights over the
    bases and over the tasks, both predicted from the features, then a 3x3 conv."""

    def __init__(self, ch: int, n_basis: int, prompt_ch: int) -> None:
        super().__init__()
        self.basis_mlp = TwoLayerMLP(ch, n_basis)
        self.task_mlp = TwoLayerMLP(ch, NUM_TASKS)
        self.prompt = nn.Parameter(torch.rand(1, NUM_TASKS, n_basis, prompt_ch, 1, 1))
        self.conv3x3 = nn.Conv2d(prompt_ch, prompt_ch, 3, 1, 1, bias=False)

    def forward(self, x):
        feats = last(x)
        basis = self.basis_mlp(feats).softmax(dim=-1)  # B, H, W, N
        task = self.task_mlp(feats).softmax(dim=-1)  # B, H, W, T
        bank = self.prompt[0, ..., 0, 0]  # T, N, D
        per_task = torch.einsum("bhwn,tnd->bhwtd", basis, bank)
        return self.conv3x3(torch.einsum("bhwt,bhwtd->bdhw", task, per_task))


class PromptCIRNet(nn.Module):
    """``MyModel(decoder=True)`` of the upstream repository; (1, 3, H, W) in [0,1] with
    H, W multiples of 32 -> restored image (residual added, not clamped)."""

    def __init__(self) -> None:
        super().__init__()
        c1, c2, c3, c4 = DIM, 2 * DIM, 4 * DIM, 8 * DIM
        self.patch_embed_input = InputEmbed(3, c1)
        self.register_buffer(
            "relative_position_index_SA", on_default_device(relative_position_index(WINDOW))
        )
        self.register_buffer("relative_position_index_OCA", _rel_index_overlap(WINDOW, OUTER))
        for level in (1, 2, 3):
            setattr(self, f"prompt{level}", PromptBank(*PROMPTS[level]))
        self.encoder_level1 = HybridGroup(c1, HEADS[0], DEPTHS[0])
        self.down1_2 = Resample(c1, down=True)
        self.encoder_level2 = HybridGroup(c2, HEADS[1], DEPTHS[1])
        self.down2_3 = Resample(c2, down=True)
        self.encoder_level3 = restormer_stack(c3, HEADS[2], DEPTHS[2])
        self.down3_4 = Resample(c3, down=True)
        self.latent = restormer_stack(c4, HEADS[3], DEPTHS[3])
        # the 1x1 convs and fusion blocks keep upstream's channel counts as trained
        self.up4_3 = Resample(c3, down=False)  # c4 -> c3 // 2 after the shuffle
        self.reduce_chan_level3 = nn.Conv2d(c2 + c3, c3, 1, bias=False)
        self.noise_level3 = RestormerBlock(c4 + PROMPTS[3][2], HEADS[2])
        self.reduce_noise_level3 = nn.Conv2d(c4 + PROMPTS[3][2], c3, 1, bias=False)
        self.decoder_level3 = restormer_stack(c3, HEADS[2], DEPTHS[2])
        self.up3_2 = Resample(c3, down=False)
        self.reduce_chan_level2 = nn.Conv2d(c3, c2, 1, bias=False)
        self.noise_level2 = RestormerBlock(c3 + PROMPTS[2][2], HEADS[2])
        self.reduce_noise_level2 = nn.Conv2d(c3 + PROMPTS[2][2], c3, 1, bias=False)
        self.decoder_level2 = HybridGroup(c2, HEADS[1], DEPTHS[1])
        self.up2_1 = Resample(c2, down=False)
        self.noise_level1 = RestormerBlock(c2 + PROMPTS[1][2], HEADS[2])
        self.reduce_noise_level1 = nn.Conv2d(c2 + PROMPTS[1][2], c2, 1, bias=False)
        self.decoder_level1 = HybridGroup(c2, HEADS[0], DEPTHS[0])
        self.refinement = restormer_stack(c2, HEADS[0], REFINE_BLOCKS)
        self.output = nn.Conv2d(c2, 3, 3, 1, 1, bias=False)
        self._init_random()

    def _init_random(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            if isinstance(m, WindowAttention | OverlapCrossAttention):
                nn.init.trunc_normal_(m.relative_position_bias_table, std=0.02)

    def _with_prompt(self, x, level: int):
        """Concatenate the level's prompt, fuse with one block, reduce with a 1x1 conv."""
        x = torch.cat([x, getattr(self, f"prompt{level}")(x)], dim=1)
        fused = getattr(self, f"noise_level{level}")(x)
        return getattr(self, f"reduce_noise_level{level}")(fused)

    def forward(self, img):
        # flat table indices, negative ones wrapped as Python indexing does upstream
        rel = (
            self.relative_position_index_SA.reshape(-1),
            self.relative_position_index_OCA.reshape(-1) % (WINDOW + OUTER - 1) ** 2,
        )
        enc1 = self.encoder_level1(self.patch_embed_input(img), *rel)
        enc2 = self.encoder_level2(self.down1_2(enc1), *rel)
        enc3 = self.encoder_level3(self.down2_3(enc2))
        deep = self._with_prompt(self.latent(self.down3_4(enc3)), 3)
        dec3 = torch.cat([self.up4_3(deep), enc3], dim=1)
        dec3 = self._with_prompt(self.decoder_level3(self.reduce_chan_level3(dec3)), 2)
        dec2 = self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], dim=1))
        dec2 = self._with_prompt(self.decoder_level2(dec2, *rel), 1)
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], dim=1), *rel)
        return self.output(self.refinement(dec1)) + img


def build_promptcir() -> PromptCIRNet:
    """PromptCIR's network with random weights (upstream ``MyModel(decoder=True)``)."""
    return PromptCIRNet()
