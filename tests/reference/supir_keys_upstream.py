"""Derive the key layout of the SUPIR checkpoint (``SUPIR-v0Q.ckpt`` / ``SUPIR-v0F.ckpt``) from
upstream's code: the modules SUPIR adds to SDXL, built with upstream's own classes and the real
``options/SUPIR_v0.yaml`` config on the meta device (no weights, no memory).

Usage: python tests/reference/supir_keys_upstream.py /path/to/SUPIR-checkout [out.json.gz]

Upstream (Fanghua-Yu/SUPIR) loads the SDXL single file and then the SUPIR checkpoint into one
``SUPIRModel`` with ``strict=False``; the SUPIR checkpoint holds what SDXL lacks:
``model.control_model.*`` (GLVControl), ``model.diffusion_model.project_modules.*`` (the ZeroSFT /
ZeroCrossAttn connectors of LightGLVUNet) and ``first_stage_model.denoise_encoder.*`` (the
degradation-robust encoder, a copy of the VAE encoder). The SDXL UNet part of
``model.diffusion_model.*`` is recorded too (section ``sdxl_unet``), and the SDXL file's VAE
and text towers (section ``sdxl_other``), for the network and loading tests.
Upstream: Fanghua-Yu/SUPIR @bda91af2000042f8bedfec8897d92917e67c1d88.
Environment and command: ``python -m tests.reference.rebuild --show supir_ckpt_keys.json.gz``.
"""

from __future__ import annotations

import gzip
import json
import sys
import types
from pathlib import Path


def stub_packages(root: Path) -> None:
    """Make ``sgm`` and its sub-packages importable without running their ``__init__`` files
    (they import the training stack: lightning, open_clip, kornia, ...)."""
    for name in ("sgm", "sgm.modules", "sgm.modules.diffusionmodules", "SUPIR", "SUPIR.modules"):
        mod = types.ModuleType(name)
        mod.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = mod
    sys.path.insert(0, str(root))


def prefixed(prefix: str, module) -> dict[str, list[int]]:
    return {prefix + k: list(v.shape) for k, v in module.state_dict().items()}


def sdxl_other(cfg) -> dict[str, list[int]]:
    """The rest of the SDXL single file as SUPIRModel names it: the autoencoder (sgm
    ``Encoder`` / ``Decoder`` of ``first_stage_config`` plus AutoencoderKL's two 1x1 convs,
    ``2 z -> 2 embed_dim`` and ``embed_dim -> z``) and the two text towers of
    ``conditioner_config``: ``FrozenCLIPEmbedder`` (transformers ``CLIPTextModel`` with
    openai/clip-vit-large-patch14's text config; the file stores it with the ``text_model.``
    level) and ``FrozenOpenCLIPEmbedder2`` (OpenCLIP ``ViT-bigG-14`` with its visual tower
    deleted, as the embedder does)."""
    import open_clip
    import torch
    from sgm.modules.diffusionmodules.model import Decoder, Encoder
    from transformers import CLIPTextConfig, CLIPTextModel

    dd = cfg.first_stage_config.params.ddconfig
    z, e = dd.z_channels, cfg.first_stage_config.params.embed_dim
    with torch.device("meta"):
        ae = torch.nn.Module()
        ae.encoder, ae.decoder = Encoder(**dd), Decoder(**dd)
        ae.quant_conv = torch.nn.Conv2d(2 * z, 2 * e, 1)
        ae.post_quant_conv = torch.nn.Conv2d(e, z, 1)
        clip_l = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                projection_dim=768,
                hidden_act="quick_gelu",
            )
        )
        clip_g = open_clip.model.CLIP(**open_clip.get_model_config("ViT-bigG-14"))
    del clip_g.visual
    l_sd = {
        "text_model." + k.removeprefix("text_model."): v for k, v in clip_l.state_dict().items()
    }
    return {
        **prefixed("first_stage_model.", ae),
        **{"conditioner.embedders.0.transformer." + k: list(v.shape) for k, v in l_sd.items()},
        **prefixed("conditioner.embedders.1.model.", clip_g),
    }


def main(root: Path, out: Path) -> None:
    import torch
    from omegaconf import OmegaConf

    stub_packages(root)
    from sgm.modules.diffusionmodules.model import Encoder
    from SUPIR.modules.SUPIR_v0 import GLVControl, LightGLVUNet

    cfg = OmegaConf.load(root / "options/SUPIR_v0.yaml").model.params
    with torch.device("meta"):
        control = GLVControl(**cfg.control_stage_config.params)
        unet = LightGLVUNet(**cfg.network_config.params)
        encoder = Encoder(**cfg.first_stage_config.params.ddconfig)
    unet_sd = prefixed("model.diffusion_model.", unet)
    supir = {
        **prefixed("model.control_model.", control),
        **{k: v for k, v in unet_sd.items() if ".project_modules." in k},
        **prefixed("first_stage_model.denoise_encoder.", encoder),
    }
    sdxl_unet = {k: v for k, v in unet_sd.items() if ".project_modules." not in k}
    data = {
        "supir_ckpt": dict(sorted(supir.items())),
        "sdxl_unet": dict(sorted(sdxl_unet.items())),
        "sdxl_other": dict(sorted(sdxl_other(cfg).items())),
    }
    with gzip.open(out, "wt") as f:
        json.dump(data, f, separators=(",", ":"))
    for name, d in data.items():
        n = sum(int(torch.Size(s).numel()) for s in d.values())
        print(f"{name}: {len(d)} keys, {n:,} parameters")


if __name__ == "__main__":
    here = Path(__file__).resolve().parents[2]
    main(
        Path(sys.argv[1]),
        Path(sys.argv[2]) if len(sys.argv) > 2 else here / "tests/data/supir_ckpt_keys.json.gz",
    )
