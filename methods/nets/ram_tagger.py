"""DAPE: the RAM (Recognize Anything, Swin-L) image tagger with LoRA that writes OSEDiff's prompt.

Upstream: cswry/OSEDiff @fcc4f09 (``ram/models/ram_lora.py`` with ``swin_transformer_lora.py`` and
``bert_lora.py``, Apache-2.0), a LoRA variant of xinyu1205/recognize-anything's RAM. This is
carbench's own implementation of the tagging path only:

    Swin-L (384 px, window 12) -> [mean token, 144 tokens] x 1536 -> image_proj -> 512
    label queries relu(wordvec_proj(label_embed)) (4585 x 768) -> 2 BERT layers with
    cross-attention only (4 heads) over the image tokens -> fc -> one logit per tag
    tag i is kept when sigmoid(logit_i) > threshold_i; tags joined by ", " in list order.

Parameter names and shapes are the official ones, so the released files load by name. RAM's
captioning parts (``tag_encoder``, ``text_decoder``) are not built; their keys are skipped,
except where the official model shares tensors with them (see ``dape_state_dict``). The head's
BERT layers are written out here: upstream runs its own BLIP-derived BERT in a 'tagging' mode
(cross-attention only, self-attention deleted) that transformers' ``BertModel`` does not have.

LoRA (loralib, ``lora_alpha`` 1, so scale 1/8): Swin ``attn.qkv`` gets a rank-8 update on the q
and v thirds (``MergedLinear``, ``enable_lora=[True, False, True]``); the head's cross-attention
``query`` and ``key`` get rank-8 updates. As with loralib in ``eval()``, the updates are merged
into the weights in fp32 before the network is cast to its run dtype.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from carbench.methods.nets.swin_common import (
    Mlp,
    cpu_shifted_window_mask,
    from_windows,
    on_default_device,
    relative_position_index,
    to_windows,
)

#: ImageNet normalisation and input size (test_osediff.py ``ram_transforms``)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: The official bilinear tensor resize ran on torchvision 0.15 (the torch 2.0.1 pin), whose
#: default for tensors is no antialiasing; torchvision >= 0.17 would antialias.
RESIZE_ANTIALIAS = False
#: threshold rule of RAMLora: file values above MAX_THRESHOLD are kept, the others become
#: min(value + ADD_THRESHOLD, MAX_THRESHOLD) (the identity with these defaults)
DEFAULT_THRESHOLD, MAX_THRESHOLD, ADD_THRESHOLD = 0.68, 0.9, 0.0
#: checkpoint prefixes of RAM parts the tagger does not use
UNUSED_PREFIXES = ("tag_encoder.", "text_decoder.")


@dataclass(frozen=True)
class RamConfig:
    """Sizes of the tagging path; defaults: RAM Swin-L at 384 px (config_swinL_384.json,
    q2l_config.json)."""

    image_size: int = 384
    patch_size: int = 4
    embed_dim: int = 192
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (6, 12, 24, 48)
    window_size: int = 12
    hidden_size: int = 768  # tagging head width
    head_heads: int = 4
    head_layers: int = 2
    intermediate_size: int = 3072
    label_dim: int = 512  # label embeddings and image_proj output
    num_classes: int = 4585
    lora_rank: int = 8
    lora_alpha: int = 1

    @property
    def vision_width(self) -> int:
        return self.embed_dim * 2 ** (len(self.depths) - 1)


class LoraLinear(nn.Linear):
    """nn.Linear with loralib-style LoRA on the enabled equal output groups (``groups``):
    weight += (B_g A_g) * alpha / r for each enabled group g. ``merge()`` folds the update into
    ``weight`` (loralib does so in ``eval()``); unmerged, it is added on the fly."""

    def __init__(
        self, n_in: int, n_out: int, rank: int, alpha: int, groups: tuple[bool, ...] = (True,)
    ) -> None:
        super().__init__(n_in, n_out)
        self.groups = groups
        self.scaling = alpha / rank
        self.merged = False
        enabled = sum(groups)
        self.lora_A = nn.Parameter(torch.zeros(rank * enabled, n_in))
        self.lora_B = nn.Parameter(torch.zeros(n_out // len(groups) * enabled, rank))

    def delta(self) -> torch.Tensor:
        """The low-rank update B A (before scaling), in the weight's layout."""
        if len(self.groups) == 1:
            return self.lora_B @ self.lora_A
        rank, size = self.lora_A.shape[0] // sum(self.groups), self.out_features // len(self.groups)
        out = self.lora_B.new_zeros(self.weight.shape)
        j = 0
        for g, on in enumerate(self.groups):
            if on:
                b = self.lora_B[j * size : (j + 1) * size]
                out[g * size : (g + 1) * size] = b @ self.lora_A[j * rank : (j + 1) * rank]
                j += 1
        return out

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.weight += self.delta() * self.scaling
            self.merged = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight if self.merged else self.weight + self.delta() * self.scaling
        return F.linear(x, w, self.bias)


# ----------------------------------------------------------------------------- Swin encoder


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window: int, heads: int, cfg: RamConfig) -> None:
        super().__init__()
        self.window, self.heads = window, heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        index = on_default_device(relative_position_index(window))
        self.register_buffer("relative_position_index", index)
        self.qkv = LoraLinear(dim, 3 * dim, cfg.lora_rank, cfg.lora_alpha, (True, False, True))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    """(Shifted) window attention + MLP, pre-norm; no shift and one window when the feature
    map is not larger than the window."""

    def __init__(self, dim: int, res: int, heads: int, shift: bool, cfg: RamConfig) -> None:
        super().__init__()
        self.res = res
        self.window = min(cfg.window_size, res)
        self.shift = cfg.window_size // 2 if shift and res > cfg.window_size else 0
        mask = None
        if self.shift:
            mask = on_default_device(cpu_shifted_window_mask(res, res, self.window, self.shift))
        self.register_buffer("attn_mask", mask)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, self.window, heads, cfg)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.norm1(x).view(b, self.res, self.res, c)
        if self.shift:
            h = torch.roll(h, shifts=(-self.shift, -self.shift), dims=(1, 2))
        w = self.window
        h = from_windows(self.attn(to_windows(h, w), self.attn_mask), w, self.res, self.res)
        if self.shift:
            h = torch.roll(h, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + h.view(b, n, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbours concatenated (order (0,0), (1,0), (0,1), (1,1)), LayerNorm, Linear 4C->2C."""

    def __init__(self, dim: int, res: int) -> None:
        super().__init__()
        self.res = res
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, self.res, self.res, c)
        parts = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
        return self.reduction(self.norm(torch.cat(parts, -1).view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    def __init__(self, i: int, cfg: RamConfig) -> None:
        super().__init__()
        dim = cfg.embed_dim * 2**i
        res = cfg.image_size // cfg.patch_size // 2**i
        self.blocks = nn.ModuleList(
            SwinBlock(dim, res, cfg.num_heads[i], j % 2 == 1, cfg) for j in range(cfg.depths[i])
        )
        self.downsample = PatchMerging(dim, res) if i < len(cfg.depths) - 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    def __init__(self, cfg: RamConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.embed_dim, cfg.patch_size, stride=cfg.patch_size)
        self.norm = nn.LayerNorm(cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class SwinEncoder(nn.Module):
    """Swin Transformer (no absolute position embedding, patch norm); returns the mean token
    followed by the final tokens, B x (1 + N) x C."""

    def __init__(self, cfg: RamConfig) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(cfg)
        self.layers = nn.ModuleList(SwinStage(i, cfg) for i in range(len(cfg.depths)))
        self.norm = nn.LayerNorm(cfg.vision_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)
        pooled = F.adaptive_avg_pool1d(x.transpose(1, 2), 1).transpose(1, 2)
        return torch.cat([pooled, x], dim=1)


# ----------------------------------------------------------------------------- tagging head


class HeadAttention(nn.Module):
    """Cross-attention projections (BERT ``BertSelfAttention`` names)."""

    def __init__(self, cfg: RamConfig) -> None:
        super().__init__()
        d, r, a = cfg.hidden_size, cfg.lora_rank, cfg.lora_alpha
        self.heads = cfg.head_heads
        self.query = LoraLinear(d, d, r, a)
        self.key = LoraLinear(cfg.label_dim, d, r, a)
        self.value = nn.Linear(cfg.label_dim, d)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:-1], self.heads, -1).permute(0, 2, 1, 3)

    def forward(self, h: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        q = self._split(self.query(h))
        k, v = self._split(self.key(memory)), self._split(self.value(memory))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        ctx = scores.softmax(dim=-1) @ v
        return ctx.permute(0, 2, 1, 3).contiguous().view(*h.shape[:-1], -1)


class AddNorm(nn.Module):
    """dense, residual add, LayerNorm (BERT ``BertSelfOutput`` / ``BertOutput``)."""

    def __init__(self, n_in: int, d: int) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, d)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class CrossAttention(nn.Module):
    def __init__(self, cfg: RamConfig) -> None:
        super().__init__()
        self.self = HeadAttention(cfg)
        self.output = AddNorm(cfg.hidden_size, cfg.hidden_size)

    def forward(self, h: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(h, memory), h)


class Intermediate(nn.Module):
    def __init__(self, cfg: RamConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class HeadLayer(nn.Module):
    """A BERT layer in RAM's 'tagging' mode: its self-attention is deleted upstream."""

    def __init__(self, cfg: RamConfig) -> None:
        super().__init__()
        self.crossattention = CrossAttention(cfg)
        self.intermediate = Intermediate(cfg)
        self.output = AddNorm(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, h: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        a = self.crossattention(h, memory)
        return self.output(self.intermediate(a), a)


class HeadEncoder(nn.Module):
    def __init__(self, cfg: RamConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(HeadLayer(cfg) for _ in range(cfg.head_layers))


class TaggingHead(nn.Module):
    """Query2Label decoder (``tagging_head``): label queries attend to the image tokens."""

    def __init__(self, cfg: RamConfig) -> None:
        super().__init__()
        self.encoder = HeadEncoder(cfg)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        for layer in self.encoder.layer:
            queries = layer(queries, memory)
        return queries


class RamTaggingNet(nn.Module):
    """RAM's tagging path: normalised 384 px image -> one logit per tag."""

    def __init__(self, cfg: RamConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or RamConfig()
        self.cfg = cfg
        self.label_embed = nn.Parameter(torch.zeros(cfg.num_classes, cfg.label_dim))
        self.visual_encoder = SwinEncoder(cfg)
        self.tagging_head = TaggingHead(cfg)
        self.wordvec_proj = (
            nn.Linear(cfg.label_dim, cfg.hidden_size)
            if cfg.hidden_size != cfg.label_dim
            else nn.Identity()
        )
        self.fc = nn.Linear(cfg.hidden_size, 1)
        self.image_proj = nn.Linear(cfg.vision_width, cfg.label_dim)

    def lora_layers(self) -> list[LoraLinear]:
        return [m for m in self.modules() if isinstance(m, LoraLinear)]

    def merge_lora(self) -> None:
        """Fold every LoRA update into its weight (loralib's ``eval()``), in module order."""
        for m in self.lora_layers():
            m.merge()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        labels = F.relu(self.wordvec_proj(self.label_embed))
        image = self.image_proj(self.visual_encoder(x))
        queries = labels.unsqueeze(0).repeat(x.shape[0], 1, 1)
        return self.fc(self.tagging_head(queries, image)).squeeze(-1)


# ----------------------------------------------------------------------------- loading


def _tie_partner(key: str) -> str | None:
    """Official RAM ties every weight of ``tagging_head``'s layers to the same module of
    ``tag_encoder`` (LoRA matrices excepted): the key naming the shared tensor there."""
    if key.startswith("tagging_head.encoder.layer.") and ".lora_" not in key:
        return "tag_encoder." + key[len("tagging_head.") :]
    return None


def _ram_model_dict(ram: Mapping) -> dict:
    """The official RAM checkpoint preprocessing: ``['model']``, buffers dropped, the old
    ``vision_multi`` name mapped to ``tagging_head``."""
    sd = ram.get("model", ram) if isinstance(ram, Mapping) else ram
    out = {}
    for k, v in sd.items():
        if "relative_position_index" in k or "attn_mask" in k:
            continue
        out[k.replace("vision_multi", "tagging_head") if "vision_multi" in k else k] = v
    return out


def dape_state_dict(net: RamTaggingNet, ram: Mapping, dape: Mapping | None) -> dict:
    """``net``'s state dict as the official ``ram(pretrained, pretrained_condition)`` + ``eval()``
    leaves it, before the LoRA merge of ``net`` itself.

    Order of the official loads (both ``strict=False``): the RAM file, then the DAPE file.
    A tied tensor gets the value written last; within one file the ``tag_encoder`` key is
    written before the ``tagging_head`` one. loralib's ``eval()`` then merges ``tag_encoder``'s
    LoRA into the shared query/key weights before ``tagging_head``'s own; the former is
    applied here (it is zero unless the DAPE file trained it). Missing LoRA matrices mean no
    update (loralib initialises B to zero); any other missing tensor is an error (upstream
    would keep its random initialisation)."""
    from carbench.core.errors import BenchError

    own = net.state_dict()
    sources = [("RAM", _ram_model_dict(ram))]
    if dape is not None:
        if not any(k in own or k.startswith(UNUSED_PREFIXES) for k in dape):
            raise BenchError("DAPE file: no key of the RAM model (not a DAPE state dict?)")
        sources.append(("DAPE", dict(dape)))
    state: dict[str, torch.Tensor] = {}
    for name, sd in sources:
        for k, ref in own.items():
            partner = _tie_partner(k)
            for src in (partner, k):
                if src is None or src not in sd:
                    continue
                v = sd[src]
                if tuple(v.shape) != tuple(ref.shape):
                    note = " (another window size: not supported)" if "bias_table" in k else ""
                    raise BenchError(
                        f"{name} file: {src} has shape {tuple(v.shape)}, the model "
                        f"{tuple(ref.shape)}{note}"
                    )
                state[k] = v
    missing = []
    for k, ref in own.items():
        if k in state:
            continue
        if ".lora_" in k or k.endswith(("relative_position_index", "attn_mask")):
            state[k] = torch.zeros_like(ref, device="cpu") if ".lora_" in k else ref
        else:
            missing.append(k)
    if missing:
        raise BenchError(f"RAM/DAPE files lack {len(missing)} tensor(s), e.g. {missing[:3]}")
    _merge_tied_encoder_lora(net, state, [sd for _, sd in sources])
    return state


def _merge_tied_encoder_lora(net: RamTaggingNet, state: dict, sources: list[Mapping]) -> None:
    """Add ``tag_encoder``'s LoRA update of each tied query/key into the shared weight."""
    from carbench.core.errors import BenchError

    for name, mod in net.tagging_head.named_modules(prefix="tagging_head"):
        if not isinstance(mod, LoraLinear):
            continue
        enc = "tag_encoder." + name[len("tagging_head.") :]
        a = b = None
        for sd in sources:
            a = sd.get(f"{enc}.lora_A", a)
            b = sd.get(f"{enc}.lora_B", b)
        if b is None or not bool(b.any()):
            continue  # B still at its zero initialisation: no update
        if a is None:
            raise BenchError(f"{enc}.lora_B is set but {enc}.lora_A is missing")
        w = state[f"{name}.weight"].float()
        state[f"{name}.weight"] = w + (b.float() @ a.float()) * mod.scaling


def read_tag_list(path: Path) -> list[str]:
    return Path(path).read_text(encoding="utf-8").splitlines()


def read_thresholds(path: Path, n: int) -> torch.Tensor:
    """Per-class thresholds (float32), RAMLora's rule applied to the file's values."""
    from carbench.core.errors import BenchError

    values = [float(s.strip()) for s in Path(path).read_text(encoding="utf-8").splitlines()]
    if len(values) != n:
        raise BenchError(f"{path}: {len(values)} thresholds for {n} tags")
    out = torch.ones(n) * DEFAULT_THRESHOLD
    for i, v in enumerate(values):
        out[i] = v if v > MAX_THRESHOLD else min(v + ADD_THRESHOLD, MAX_THRESHOLD)
    return out


def _read_checkpoint(path: Path) -> Mapping:
    """torch.load, tensors only; memory-mapped where the format allows (the RAM file also
    holds optimizer state, several GB that are never read)."""
    from carbench.core.errors import BenchError

    error = None
    for mmap in (True, False):
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as e:  # mmap needs the zip format; anything else fails both times
            error = e
    raise BenchError(f"{path}: not a readable RAM/DAPE checkpoint ({error})") from None


class RamTagger:
    """Network + tag list + thresholds: [0,1] RGB images -> one tag string each."""

    def __init__(self, net: RamTaggingNet, tags: list[str], thresholds: torch.Tensor) -> None:
        if len(tags) != net.cfg.num_classes or thresholds.numel() != net.cfg.num_classes:
            raise ValueError("tag list, thresholds and network disagree on the class count")
        self.net, self.tag_list, self.thresholds = net, tags, thresholds.float()

    @classmethod
    def from_files(
        cls,
        ram_path: Path,
        dape_path: Path | None,
        tag_list_path: Path,
        threshold_path: Path,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        cfg: RamConfig | None = None,
    ) -> RamTagger:
        """Build as test_osediff.py does: RAM, DAPE over it, merge LoRA (fp32), then cast."""
        from carbench.core.errors import BenchError

        net = RamTaggingNet(cfg)
        ram = _read_checkpoint(ram_path)
        dape = _read_checkpoint(dape_path) if dape_path is not None else None
        net.load_state_dict(dape_state_dict(net, ram, dape), strict=True)
        del ram, dape
        net.merge_lora()
        tags = read_tag_list(tag_list_path)
        if len(tags) != net.cfg.num_classes:
            raise BenchError(f"{tag_list_path}: {len(tags)} tags, RAM has {net.cfg.num_classes}")
        return cls(
            net.eval().to(device=device, dtype=dtype),
            tags,
            read_thresholds(threshold_path, len(tags)),
        )

    def prepare(self, x01: torch.Tensor) -> torch.Tensor:
        """B,3,H,W in [0,1] -> bilinear resize to the input size, ImageNet normalisation
        (fp32), then the network's dtype."""
        size = self.net.cfg.image_size
        x = F.interpolate(
            x01.float(),
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=RESIZE_ANTIALIAS,
        )
        mean = torch.tensor(MEAN, device=x.device).view(-1, 1, 1)
        std = torch.tensor(STD, device=x.device).view(-1, 1, 1)
        return ((x - mean) / std).to(next(self.net.parameters()).dtype)

    @torch.no_grad()
    def logits(self, x01: torch.Tensor) -> torch.Tensor:
        return self.net(self.prepare(x01.to(next(self.net.parameters()).device)))

    def select(self, logits: torch.Tensor) -> list[str]:
        """Tags whose sigmoid exceeds their threshold (compared in fp32, as upstream)."""
        keep = torch.sigmoid(logits) > self.thresholds.to(logits.device)
        return [
            ", ".join(self.tag_list[i] for i in row.nonzero().flatten().tolist()) for row in keep
        ]

    def __call__(self, x01: torch.Tensor) -> list[str]:
        return self.select(self.logits(x01))
