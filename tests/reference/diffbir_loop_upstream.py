"""Record DiffBIR's VAE, sampler loops and final image from the official code (stand-in weights).

Usage: python tests/reference/diffbir_loop_upstream.py /path/to/DiffBIR-checkout [out.npz]

Upstream XPixelGroup/DiffBIR @3f8b530. Two parts, written to tests/data/upstream/diffbir_loop.npz:

* ``toy_*``: the samplers' loops alone, 4 steps each, on a cheap closed-form stand-in for the
  ControlLDM (``tests.reference.standin.toy_denoiser``): ``SpacedSampler.sample`` (v2: eps,
  ``configs/inference/diffusion.yaml``, cfg 4) and ``EDMSampler("edm_dpm++_3m_sde", ...)``
  (v2.1: v-prediction, zero terminal SNR, ``diffusion_v2.1.yaml``, cfg 6) with inference.py's
  default s_churn 0, s_tmin 0, s_tmax 300, s_noise 1, eta 1, order 1. The start noise and every
  noise the samplers draw come from the global RNG seeded 231 (inference.py's seed) right
  before ``torch.randn`` of the start point, as ``Pipeline.apply_cldm`` draws it.
* ``v2_*`` / ``v21_*``: the whole ``SCUNetPipeline.run`` / ``SwinIRPipeline.run`` (stage 1,
  resize to 512, padding to 64, VAE encode (posterior mode x 0.18215), latent padding, start
  noise, 4 sampler steps, crop, VAE decode, crop, wavelet colour fix, bicubic resize back,
  x255 clamp truncation) on small-width stand-in networks: the stage-1 nets, ControlNet and
  ControlledUnetModel of tests/reference/diffbir_upstream.py, and upstream's ``AutoencoderKL``
  with ch 32, ch_mult [1, 1, 2, 2] (the released ddconfig otherwise). The text encoder is not
  run: ``clip.encode`` returns stored contexts for the two prompts. fp32, no autocast (the
  ``--precision fp32`` path), untiled (inference.py's default).

* ``text_*``: ``FrozenOpenCLIPEmbedder(layer="penultimate")`` (``clip_cfg``'s options) with a
  small text tower (width 32, 2 heads, 3 layers, the released vocabulary and 77 tokens) on
  the prompts carbench's versions use: v2's from the README's denoise command (positive empty),
  v2.1's inference.py defaults (read from the files, stored as ``text_prompts``).

Two changes to the environment, not the code: ``torch.Tuple`` is set to ``typing.Tuple``
before the import (see diffbir_upstream.py), and ``diffbir.pipeline.VRAMPeakMonitor`` (a
memory report around each stage that calls ``torch.cuda``) is replaced by a null context.
"""

from __future__ import annotations

import contextlib
import os
import sys
import typing
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.reference.diffbir_upstream import (  # noqa: E402
    CONTEXT,
    CONTROL,
    GAINS,
    SCUNET,
    SEEDS,
    SWINIR,
    UNET,
    crop,
)
from tests.reference.standin import fill_standin, toy_denoiser  # noqa: E402

LOOP_CROP = ((100, 164), (200, 270))  # 64x70: stage 1 gives 512x560, padded to 512x576
VAE_DDCONFIG = dict(
    double_z=True,
    z_channels=4,
    resolution=256,
    in_channels=3,
    out_ch=3,
    ch=32,
    ch_mult=[1, 1, 2, 2],
    num_res_blocks=2,
    attn_resolutions=[],
    dropout=0.0,
)
VAE_SEED, VAE_GAIN = 36, 1.0
SCALE_FACTOR = 0.18215
SEED = 231  # inference.py --seed
STEPS = 4
PROMPTS = ("pos", "neg")
CONTEXT_SEED = 37
TOY_LATENT = (1, 4, 16, 16)
TOY_SEED = 38
# sampler, diffusion config, cfg of carbench's v2 / v2.1 defaults; the EDM hyper-parameters
# are inference.py's defaults
RUNS = {
    "v2": ("spaced", "configs/inference/diffusion.yaml", 4.0),
    "v21": ("edm_dpm++_3m_sde", "configs/inference/diffusion_v2.1.yaml", 6.0),
}
EDM_ARGS = dict(s_churn=0.0, s_tmin=0.0, s_tmax=300.0, s_noise=1.0, eta=1.0, order=1)
# stored parts (the whole arrays would be ~4 MB): image patches rows 0:32, columns 496:560 (the
# last 64 kept, next to the padding that is cropped off), latents rows 0:32 (of 64)
PATCH = (slice(None), slice(0, 32), slice(496, 560))
LATENT_ROWS = (slice(None), slice(0, 32))


TEXT_CFG = dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=3)
VISION_CFG = dict(image_size=32, layers=1, width=32, head_width=16, patch_size=16)  # deleted
TEXT_SEED, TEXT_GAIN = 39, 1.0


def _prompts(upstream: str) -> list[str]:
    """[v2 pos, v2 neg, v2.1 pos, v2.1 neg] as upstream's README / inference.py give them."""
    import ast
    import re

    tree = ast.parse(Path(upstream, "inference.py").read_text())
    const = {
        t.id: ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name) and t.id.startswith("DEFAULT_")
    }
    readme = Path(upstream, "README.md").read_text()
    block = re.search(
        r"--task denoise \\\n--upscale 1 \\\n--version v2 \\\n(.*?)\n\n", readme, re.S
    )
    pos, neg = (
        re.search(rf"--{k}_prompt '([^']*)'", block.group(1)).group(1) for k in ("pos", "neg")
    )
    return [pos, neg, const["DEFAULT_POS_PROMPT"], const["DEFAULT_NEG_PROMPT"]]


def _text(upstream: str, arrays: dict) -> None:
    from diffbir.model.clip import FrozenOpenCLIPEmbedder

    clip = FrozenOpenCLIPEmbedder(32, VISION_CFG, TEXT_CFG, layer="penultimate").eval()
    fill_standin(clip, TEXT_SEED, TEXT_GAIN)
    arrays["text_keys"] = np.array([f"{k}:{tuple(v.shape)}" for k, v in clip.named_parameters()])
    prompts = _prompts(upstream)
    arrays["text_prompts"] = np.array(prompts)
    arrays["text_out"] = np.concatenate([clip.encode([p]).numpy() for p in prompts])


def _diffusion(upstream: str, config: str):
    from diffbir.utils.common import instantiate_from_config
    from omegaconf import OmegaConf

    return instantiate_from_config(OmegaConf.load(os.path.join(upstream, config)))


def _sampler(name: str, diffusion):
    from diffbir.sampler import EDMSampler, SpacedSampler

    if name == "spaced":
        return SpacedSampler(diffusion.betas, diffusion.parameterization, False)
    return EDMSampler(diffusion.betas, diffusion.parameterization, False, name, *EDM_ARGS.values())


class _Clip(nn.Module):
    """Stands in for FrozenOpenCLIPEmbedder: the stored context of each prompt."""

    def __init__(self, contexts: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.contexts = contexts

    def encode(self, txt: list[str]) -> torch.Tensor:
        return torch.cat([self.contexts[t] for t in txt])


def _toy_loops(upstream: str, arrays: dict) -> None:
    g = torch.Generator().manual_seed(TOY_SEED)
    c_img = torch.randn(TOY_LATENT, generator=g)
    c_txt, u_txt = torch.randn(CONTEXT, generator=g), torch.randn(CONTEXT, generator=g)
    arrays.update(toy_c_img=c_img.numpy(), toy_c_txt=c_txt.numpy(), toy_u_txt=u_txt.numpy())

    def model(x, t, cond):
        return toy_denoiser(x, float(t[0]), cond["c_txt"], cond["c_img"])

    for run, (name, config, cfg) in RUNS.items():
        sampler = _sampler(name, _diffusion(upstream, config))
        torch.manual_seed(SEED)
        x_t = torch.randn(TOY_LATENT, dtype=torch.float32)
        z = sampler.sample(
            model=model,
            device="cpu",
            steps=STEPS,
            x_size=TOY_LATENT,
            cond={"c_txt": c_txt, "c_img": c_img},
            uncond={"c_txt": u_txt, "c_img": c_img},
            cfg_scale=cfg,
            x_T=x_t,
            progress=False,
        )
        arrays[f"toy_{run}_z"] = z.numpy()


def _ldm(arrays: dict):
    from diffbir.model.cldm import ControlLDM
    from diffbir.model.controlnet import ControlledUnetModel, ControlNet
    from diffbir.model.vae import AutoencoderKL

    g = torch.Generator().manual_seed(CONTEXT_SEED)
    contexts = {p: torch.randn(CONTEXT, generator=g) for p in PROMPTS}
    for p, c in contexts.items():
        arrays[f"context_{p}"] = c.numpy()
    ldm = ControlLDM.__new__(ControlLDM)  # its own __init__ would build the full-size CLIP
    nn.Module.__init__(ldm)
    ldm.unet = ControlledUnetModel(**UNET).eval()
    ldm.vae = AutoencoderKL(VAE_DDCONFIG, 4).eval()
    ldm.controlnet = ControlNet(**CONTROL).eval()
    ldm.clip = _Clip(contexts)
    ldm.scale_factor = SCALE_FACTOR
    ldm.control_scales = [1.0] * 13
    fill_standin(ldm.unet, SEEDS["unet"], GAINS["unet"])
    fill_standin(ldm.controlnet, SEEDS["control"], GAINS["control"])
    fill_standin(ldm.vae, VAE_SEED, VAE_GAIN)
    arrays["vae_keys"] = np.array(
        [f"{k}:{tuple(v.shape)}" for k, v in ldm.vae.state_dict().items()]
    )
    return ldm


def _pipeline_runs(upstream: str, arrays: dict) -> None:
    from diffbir import pipeline
    from diffbir.model.scunet import SCUNet
    from diffbir.model.swinir import SwinIR
    from diffbir.pipeline import SCUNetPipeline, SwinIRPipeline

    pipeline.VRAMPeakMonitor = lambda tag: contextlib.nullcontext()  # it calls torch.cuda
    ldm = _ldm(arrays)
    lq = crop(LOOP_CROP)
    arrays["loop_lq"] = lq
    cleaners = {"v2": (SCUNetPipeline, SCUNet(**SCUNET), "scunet")}
    cleaners["v21"] = (SwinIRPipeline, SwinIR(**SWINIR), "swinir")
    for run, (cls, net, seed_name) in cleaners.items():
        fill_standin(net.eval(), SEEDS[seed_name], GAINS[seed_name])
        name, config, cfg = RUNS[run]
        pipe = cls(net, ldm, _diffusion(upstream, config), None, "cpu")
        seen: dict[str, torch.Tensor] = {}
        _record(pipe, ldm, seen)
        torch.manual_seed(SEED)
        out = pipe.run(
            lq[None], STEPS, 1.0, False, 512, 256, False, 256, False, 256, False, 512, 256,
            *PROMPTS, cfg, "noise", name, 0, False, *EDM_ARGS.values(),
        )  # fmt: skip
        del ldm.vae_encode, ldm.vae_decode
        arrays[f"{run}_cond_img"] = seen["cond_img"][0][PATCH].numpy()
        arrays[f"{run}_c_img"] = seen["c_img"][0][LATENT_ROWS].numpy()
        arrays[f"{run}_z"] = seen["z"][0][LATENT_ROWS].numpy()
        arrays[f"{run}_decoded"] = seen["decoded"][0][PATCH].numpy()
        arrays[f"{run}_shapes"] = np.array([seen[k].shape for k in ("cond_img", "c_img", "z")])
        arrays[f"{run}_out"] = out[0]


def _record(pipe, ldm, seen: dict) -> None:
    """Keep the stage-1 output, the condition latent, the final latent and the decoded image."""
    cleaner, encode, decode = pipe.apply_cleaner, ldm.vae_encode, ldm.vae_decode

    def apply_cleaner(*a, **k):
        seen["cond_img"] = cleaner(*a, **k)
        return seen["cond_img"]

    def vae_encode(*a, **k):
        seen["c_img"] = encode(*a, **k)
        return seen["c_img"]

    def vae_decode(z, *a, **k):
        seen["z"] = z
        seen["decoded"] = decode(z, *a, **k)
        return seen["decoded"]

    pipe.apply_cleaner, ldm.vae_encode, ldm.vae_decode = apply_cleaner, vae_encode, vae_decode


def main(upstream: str, out: str) -> None:
    sys.path.insert(0, upstream)
    torch.Tuple = typing.Tuple  # noqa: UP006 - an annotation in diffbir/sampler/edm_sampler.py
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    arrays: dict[str, np.ndarray] = {}
    with torch.no_grad():
        _toy_loops(upstream, arrays)
        _text(upstream, arrays)
        _pipeline_runs(upstream, arrays)
    for k, v in arrays.items():
        std = float(np.std(v.astype(np.float64))) if v.dtype.kind in "fu" else ""
        print(k, v.shape, v.dtype, std)
    np.savez_compressed(out, **arrays)
    print(out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    default = str(ROOT / "tests/data/upstream/diffbir_loop.npz")
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else default)
