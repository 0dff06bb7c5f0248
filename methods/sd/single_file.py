"""Original single-file (LDM / CompVis layout) Stable Diffusion 2.x checkpoints, loaded into the
diffusers UNet and VAE and a transformers CLIP text model with diffusers' own key converters.

This is how DiffBIR ships and loads Stable Diffusion (``v2-1_512-ema-pruned.ckpt`` for v2,
``sd2.1-base-zsnr-laionaes5.ckpt`` for v2.1): one state dict whose prefixes name the parts
(``model.diffusion_model.`` UNet, ``first_stage_model.`` VAE, ``cond_stage_model.model.``
OpenCLIP ViT-H text tower). The converted UNet and VAE key sets equal the ``sd21-base-unet`` /
``sd21-base-vae`` manifests; every part is loaded strictly. Text is tokenised with OpenCLIP's
tokenizer (what DiffBIR's ``FrozenOpenCLIPEmbedder`` calls), so no diffusers tokenizer folder is
needed. The SD-2 text encoder stops at the penultimate transformer block: the last block in the
file is dropped, as diffusers does.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from carbench.core.errors import BenchError
from carbench.methods.sd import model as sd_model
from carbench.methods.sd.model import MAX_TOKENS, TEXT_CONFIG

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.model."
log = logging.getLogger(__name__)
#: single-file entries no diffusers part uses (training bookkeeping, CLIP's contrastive head)
_UNUSED = re.compile(
    r"^(betas|alphas_cumprod.*|alphas_cumprod_prev|sqrt_.*|log_one_minus_alphas_cumprod|"
    r"posterior_.*|model_ema\..*|logvar|cond_stage_model\.model\.(logit_scale|text_projection))$"
)


def read_checkpoint(path: Path) -> dict:
    """The flat state dict of a ``.ckpt`` / ``.pt`` (``state_dict`` unwrapped) or
    ``.safetensors`` single file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import pickle

    from carbench.methods.torch_utils import load_state_dict_file

    try:
        sd = load_state_dict_file(path)
    except pickle.UnpicklingError:
        raise BenchError(
            f"{path}: the checkpoint holds Python objects besides tensors, which carbench does "
            "not unpickle (running code from a download is unsafe); use the .safetensors file "
            "of the same weights, or re-save only its state_dict"
        ) from None
    if not isinstance(sd, dict) or not any(k.startswith(UNET_PREFIX) for k in sd):
        raise BenchError(
            f"{path}: not an original single-file Stable Diffusion checkpoint (no "
            f"'{UNET_PREFIX}*' keys)"
        )
    return sd


def _part(sd: dict, prefix: str) -> dict:
    return {k: v for k, v in sd.items() if k.startswith(prefix)}


def unused_keys(sd: dict) -> list[str]:
    """Keys that belong to no part carbench loads and are not known bookkeeping."""
    parts = (UNET_PREFIX, VAE_PREFIX, CLIP_PREFIX)
    return [k for k in sd if not k.startswith(parts) and not _UNUSED.match(k)]


def convert_unet(sd: dict, config: dict) -> dict:
    """``model.diffusion_model.*`` -> diffusers UNet2DConditionModel keys."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    return convert_ldm_unet_checkpoint(_part(sd, UNET_PREFIX), config)


def convert_vae(sd: dict, config: dict) -> dict:
    """``first_stage_model.*`` -> diffusers AutoencoderKL keys (1x1 attention convs become
    linear weights)."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    return convert_ldm_vae_checkpoint(_part(sd, VAE_PREFIX), config)


def convert_text_encoder(sd: dict, config: dict) -> dict:
    """``cond_stage_model.model.*`` (OpenCLIP) -> transformers CLIPTextModel keys; blocks at or
    after ``num_hidden_layers`` (the SD-2 penultimate-layer rule) are dropped."""
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint

    keep = {}
    for k, v in _part(sd, CLIP_PREFIX).items():
        m = re.match(re.escape(CLIP_PREFIX) + r"transformer\.resblocks\.(\d+)\.", k)
        if m and int(m.group(1)) >= config["num_hidden_layers"]:
            continue
        keep[k] = v

    class _Cfg:  # the converter reads hidden_size only when text_projection is absent
        hidden_size = config["hidden_size"]

    class _Model:
        config = _Cfg

    out = convert_open_clip_checkpoint(_Model, keep, prefix=CLIP_PREFIX)
    out.pop("text_projection.weight", None)  # CLIPTextModel has no projection head
    return out


def _match_text_prefix(weights: dict, net) -> dict:
    """diffusers names the text weights ``text_model.*``; transformers >= 5 builds
    CLIPTextModel without that level (and renames at ``from_pretrained``)."""
    if any(k.startswith("text_model.") for k in net.state_dict()):
        return weights
    return {k.removeprefix("text_model."): v for k, v in weights.items()}


def build_text_encoder(config: dict | None = None):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(**(config or TEXT_CONFIG)))


class OpenClipTokenizer:
    """OpenCLIP's BPE tokenizer (lower-cased, ftfy-cleaned, <sot> ... <eot>, zero padded to 77
    tokens), callable like DiffBIR's ``open_clip.tokenize``."""

    def __init__(self, context_length: int = MAX_TOKENS) -> None:
        from open_clip.tokenizer import SimpleTokenizer

        self.context_length = context_length
        self._tok = SimpleTokenizer(context_length=context_length)

    def __call__(self, texts: str | list[str]):
        return self._tok(texts, context_length=self.context_length)


def load_single_file(
    path: Path,
    parts: tuple[str, ...] = ("unet", "vae"),
    unet_config: dict | None = None,
    vae_config: dict | None = None,
    text_config: dict | None = None,
) -> dict:
    """Build and strictly load the asked parts (``unet``, ``vae``, ``text_encoder``,
    ``tokenizer``) from one single-file checkpoint. Configs default to SD-2.1-base."""
    from carbench.methods.torch_utils import strict_load

    sd = read_checkpoint(Path(path))
    if extra := unused_keys(sd):
        log.warning("%s: %d key(s) no part uses, e.g. %s", path, len(extra), extra[:3])
    out: dict = {}
    for part in parts:
        if part == "unet":
            cfg = unet_config or sd_model.UNET_CONFIG
            net, weights = sd_model.build_unet(cfg), convert_unet(sd, cfg)
        elif part == "vae":
            cfg = vae_config or sd_model.VAE_CONFIG
            net, weights = sd_model.build_vae(cfg), convert_vae(sd, cfg)
        elif part == "text_encoder":
            cfg = text_config or TEXT_CONFIG
            net, weights = build_text_encoder(cfg), convert_text_encoder(sd, cfg)
            weights = _match_text_prefix(weights, net)
        elif part == "tokenizer":
            out[part] = OpenClipTokenizer()
            continue
        else:
            raise ValueError(part)
        strict_load(net, weights, f"{path} ({part})")
        out[part] = net.eval()
    return out
