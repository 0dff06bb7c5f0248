"""LoRA checkpoints in the CODiff/OSEDiff ``.pkl`` format, loaded with peft, and the official
selection rule of their target modules (for new checkpoints and tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from carbench.core.errors import BenchError

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
