"""Record DiffBIR reference outputs from the official code on seeded stand-in weights.

Usage: python tests/reference/diffbir_upstream.py /path/to/DiffBIR-checkout [out.npz]
Imports ``diffbir.model.{controlnet,scunet,swinir}`` and ``diffbir.sampler.spaced_sampler`` from
the checkout (XPixelGroup/DiffBIR @3f8b530) and records, on small-width configs that keep every
structural option of the released ones (same classes, same flags; fewer/narrower blocks):

* ``scunet_*``: stage 1 of v2 (``SCUNet``), config ``[2]*7`` (W and SW blocks), dim 64,
  on a 64x64 crop;
* ``swinir_*``: stage 1 of v2.1 (``SwinIR`` with ``configs/inference/swinir.yaml``'s options:
  pixel-unshuffle 8, ``nearest+conv`` x8, window 8, img_size 64) with embed 48, depths/heads
  ``[2, 2]``, on the same crop;
* ``control_*``: the 13-style list of IRControlNet residuals (``ControlNet`` with
  ``controlnet_cfg``'s flags: spatial transformer, linear projections, legacy False) with width
  32, channel_mult [1, 2], one residual block per level, attention at both levels, 16-channel
  heads, context 32; inputs: a seeded noisy latent, hint and context (stored), timestep 501;
* ``cfg_*``: upstream's classifier-free guidance combination (``SpacedSampler.apply_model``)
  applied to two stored model outputs (a stand-in for the UNet: the cond/uncond outputs are
  given explicitly, so both sides combine the same arrays) at cfg 4.

``torch.Tuple`` (an annotation in upstream's edm_sampler.py that torch 2.14 no longer has) is set
to ``typing.Tuple`` before the import.

Inputs that upstream would draw at random (the latent noise) are drawn here with a seeded
``torch.Generator`` and stored, so both sides get the same values.
"""

from __future__ import annotations

import os
import sys
import types
import typing
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from carbench.degradations.jpeg import decode_jpeg, encode_jpeg  # noqa: E402
from tests.reference.standin import fill_standin, layout_digest  # noqa: E402

QF = 10
GAIN = 0.5
# SwinIR: gain 1 (at 0.5 its attention is so flat that a 0.2% change of the scale moves the
# output by ~1e-7)
GAINS = {"scunet": GAIN, "swinir": 1.0, "control": GAIN, "unet": GAIN}
CROP = ((100, 164), (200, 264))  # LIVE1/bikes.png, 64x64
SCUNET = dict(in_nc=3, config=[2] * 7, dim=64)  # dim 64: the smallest with >= 1 head
SWINIR = dict(
    img_size=64,
    patch_size=1,
    in_chans=3,
    embed_dim=48,
    depths=[2, 2],
    num_heads=[2, 2],
    window_size=8,
    mlp_ratio=2,
    sf=8,
    img_range=1.0,
    upsampler="nearest+conv",
    resi_connection="1conv",
    unshuffle=True,
    unshuffle_scale=8,
)
CONTROL = dict(
    image_size=32,
    in_channels=4,
    hint_channels=4,
    model_channels=32,
    attention_resolutions=[1, 2],
    num_res_blocks=1,
    channel_mult=[1, 2],
    num_head_channels=16,
    use_spatial_transformer=True,
    use_linear_in_transformer=True,
    transformer_depth=1,
    context_dim=32,
    legacy=False,
)
LATENT = (1, 4, 16, 16)
UNET = dict(CONTROL, out_channels=4)
del UNET["hint_channels"]
CONTROL_SCALES = [1.0] * 5  # control strength 1 (DiffBIR's default), one per residual
CONTEXT = (1, 7, 32)
TIMESTEP = 501
CFG = 4.0
SEEDS = {"scunet": 31, "swinir": 32, "control": 33, "inputs": 34, "unet": 35}


def crop(box=CROP) -> np.ndarray:
    """``box`` ((r0, r1), (c0, c1)) of LIVE1/bikes.png through JPEG QF 10, decoded."""
    from PIL import Image

    img = Image.open(Path(os.environ["BENCH_DATA_ROOT"]) / "LIVE1/bikes.png").convert("RGB")
    (r0, r1), (c0, c1) = box
    return decode_jpeg(encode_jpeg(np.asarray(img)[r0:r1, c0:c1].copy(), QF))


def main(upstream: str, out: str) -> None:
    sys.path.insert(0, upstream)
    torch.Tuple = typing.Tuple  # noqa: UP006 - an annotation in diffbir/sampler/edm_sampler.py (old torch)
    from diffbir.model.cldm import ControlLDM
    from diffbir.model.controlnet import ControlledUnetModel, ControlNet
    from diffbir.model.scunet import SCUNet
    from diffbir.model.swinir import SwinIR
    from diffbir.sampler.spaced_sampler import SpacedSampler

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    lq = crop()
    x = torch.from_numpy(lq.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()
    arrays: dict[str, np.ndarray] = {"lq": lq}
    g = torch.Generator().manual_seed(SEEDS["inputs"])
    latent = torch.randn(LATENT, generator=g)
    hint = torch.randn(LATENT, generator=g)
    context = torch.randn(CONTEXT, generator=g)
    cond, uncond = torch.randn(LATENT, generator=g), torch.randn(LATENT, generator=g)
    arrays.update(latent=latent.numpy(), hint=hint.numpy(), context=context.numpy())
    arrays.update(cfg_cond=cond.numpy(), cfg_uncond=uncond.numpy())
    with torch.no_grad():
        for name, net in (("scunet", SCUNet(**SCUNET)), ("swinir", SwinIR(**SWINIR))):
            net.eval()
            fill_standin(net, SEEDS[name], GAINS[name])
            arrays[f"{name}_out"] = net(x)[0].numpy()
            arrays[f"{name}_layout"] = np.array(layout_digest(net))
        control = ControlNet(**CONTROL).eval()
        fill_standin(control, SEEDS["control"], GAINS["control"])
        outs = control(latent, hint, torch.tensor([TIMESTEP]), context)
        arrays["control_layout"] = np.array(layout_digest(control))
        for i, o in enumerate(outs):
            arrays[f"control_{i:02d}"] = o[0].numpy()
        model = {id(c): v for c, v in ((cond, cond), (uncond, uncond))}
        guided = SpacedSampler.apply_model(
            None,
            lambda x_, t_, c: model[id(c)],
            latent,
            torch.tensor([TIMESTEP]),
            cond,
            uncond,
            CFG,
        )
        arrays["cfg_out"] = guided.numpy()
        # one denoiser call with guidance: ControlLDM.forward (controlnet -> scaled residuals ->
        # ControlledUnetModel) on cond / uncond text, combined by SpacedSampler.apply_model
        unet = ControlledUnetModel(**UNET).eval()
        fill_standin(unet, SEEDS["unet"], GAINS["unet"])
        arrays["unet_keys"] = np.array(
            [f"{k}:{tuple(v.shape)}" for k, v in unet.state_dict().items()]
        )
        ldm = types.SimpleNamespace(controlnet=control, unet=unet, control_scales=CONTROL_SCALES)
        u_context = torch.randn(CONTEXT, generator=g)
        arrays["u_context"] = u_context.numpy()
        t = torch.tensor([TIMESTEP])
        arrays["eps_cond"] = ControlLDM.forward(
            ldm, latent, t, {"c_txt": context, "c_img": hint}
        ).numpy()
        arrays["eps_guided"] = SpacedSampler.apply_model(
            None,
            lambda x_, t_, c: ControlLDM.forward(ldm, x_, t_, c),
            latent,
            t,
            {"c_txt": context, "c_img": hint},
            {"c_txt": u_context, "c_img": hint},
            CFG,
        ).numpy()
    for k, v in arrays.items():
        print(
            k, v.shape, v.dtype, float(np.std(v.astype(np.float64))) if v.dtype.kind == "f" else ""
        )
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    default = str(ROOT / "tests/data/upstream/diffbir.npz")
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else default)
