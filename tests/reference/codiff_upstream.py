"""Record CODiff's full one-step pipeline from the official code, on small stand-in networks.

Usage: python tests/reference/codiff_upstream.py /path/to/CODiff-checkout [out.npz]
(BENCH_DATA_ROOT points at the test sets; run in an environment with upstream's pins, diffusers
0.25.0 + peft 0.9.0, see tests/data/upstream/README.md). From the checkout (jp-guo/CODiff
@86e2f04) it uses ``diffusion/codiff.py`` (``initialize_unet`` / ``initialize_vae`` to build the
LoRA checkpoint, ``CODiff_train.save_model`` to write it, ``CODiff_test`` to run it, with
upstream's own UNet/VAE classes loaded from a diffusers-layout folder written here),
``cave/cave.py`` (``CaVE``) and ``diffusion/my_utils/wavelet_color_fix.py``, and repeats the
per-image steps of ``main_test_codiff.py`` after its JPEG encoding (CaVE embedding, the model,
ToPILImage, AdaIN colour fix). Upstream places everything on CUDA; :func:`cpu_only` makes those
placements no-ops at run time (no upstream file is changed). Stages are captured with hooks.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from carbench.degradations.jpeg import decode_jpeg, encode_jpeg  # noqa: E402
from tests.reference.onestep_upstream import SCHEDULER_CONFIG  # noqa: E402
from tests.reference.standin import fill_standin, layout_digest  # noqa: E402
from tests.reference.vaehook_upstream import VAE_CONFIG  # noqa: E402

#: SD-2.1-base's unet/config.json with narrow channels (40/80/160/160: 8 channels per head
#: with its head counts 5/10/20/20, 8 GroupNorm groups instead of 32 so they divide 40); every
#: structural option (block types, 2 layers per block, linear projection, cross-attention
#: dim 1024, flip_sin_to_cos, ...) as published
UNET_CONFIG = dict(
    act_fn="silu",
    attention_head_dim=[5, 10, 20, 20],
    block_out_channels=[40, 80, 160, 160],
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
    norm_num_groups=8,
    num_class_embeds=None,
    only_cross_attention=False,
    out_channels=4,
    sample_size=8,
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    upcast_attention=False,
    use_linear_projection=True,
)
RANK = 16  # CODiff's training rank: LoRA scale 8 / 16
#: stand-in seeds and gains: base UNet / VAE (saved as the "SD" folder), the LoRA'ed UNet / VAE
#: whose lora + conv_in tensors make the checkpoint, proj, CaVE (full size)
SEEDS = dict(unet=41, vae=42, lora_unet=43, lora_vae=44, proj=45, cave=46)
GAINS = dict(unet=0.5, vae=1.0, lora_unet=0.5, lora_vae=0.5, proj=1.0, cave=0.5)
IMAGE, QF = "LIVE1/bikes.png", 10
#: (rows, cols, latent tile, latent overlap): untiled 64 x 64 (latent 8 x 8, upstream's
#: default tile 96 / 32), tiled 96 x 128 (latent 12 x 16, tile 8 / overlap 4: 3 x 2 tiles)
CASES = {
    "untiled": ((100, 164), (200, 264), 96, 32),
    "tiled": ((100, 196), (200, 328), 8, 4),
}
LATENT_SEED = 7  # torch.manual_seed right before the model call (the posterior draw)
DTYPE = "fp16"  # upstream's default --mixed_precision (its fp32 path casts proj to fp16 too)


def lq_image(rows, cols) -> np.ndarray:
    """The crop through carbench's ``encode_jpeg`` at QF 10 and back (uint8 RGB)."""
    from PIL import Image

    img = np.asarray(Image.open(Path(os.environ["BENCH_DATA_ROOT"]) / IMAGE).convert("RGB"))
    return decode_jpeg(encode_jpeg(img[rows[0] : rows[1], cols[0] : cols[1]].copy(), QF))


def cpu_only() -> None:
    """Turn upstream's CUDA placements (``.cuda()``, ``.to("cuda")``, ``device="cuda"``) into
    CPU ones for this process."""

    def fix(a):
        if isinstance(a, str) and a.startswith("cuda"):
            return "cpu"
        if isinstance(a, torch.device) and a.type == "cuda":
            return torch.device("cpu")
        return a

    def fixed(fn):
        def call(*a, **k):
            return fn(*map(fix, a), **{n: fix(v) for n, v in k.items()})

        return call

    torch.Tensor.to = fixed(torch.Tensor.to)
    torch.nn.Module.to = fixed(torch.nn.Module.to)
    torch.tensor = fixed(torch.tensor)
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self


def write_sd_folder(folder: Path, unet_cls, vae_cls, seeds=SEEDS, gains=GAINS) -> None:
    """The stand-in "SD-2.1-base": unet/, vae/, scheduler/ in diffusers layout."""
    from diffusers import DDPMScheduler

    unet = unet_cls(**UNET_CONFIG)
    fill_standin(unet, seeds["unet"], gains["unet"])
    unet.save_pretrained(folder / "unet")
    vae = vae_cls(**VAE_CONFIG)
    fill_standin(vae, seeds["vae"], gains["vae"])
    vae.save_pretrained(folder / "vae")
    DDPMScheduler.from_config(SCHEDULER_CONFIG).save_pretrained(folder / "scheduler")


def run_case(folder: Path, pkl: Path, cave, rows, cols, tile, overlap):
    from diffusion.codiff import CODiff_test
    from diffusion.my_utils.wavelet_color_fix import adain_color_fix
    from torchvision import transforms

    args = SimpleNamespace(
        pretrained_model=str(folder),
        codiff_path=str(pkl),
        mixed_precision=DTYPE,
        merge_and_unload_lora=False,
        vae_decoder_tiled_size=224,
        vae_encoder_tiled_size=1024,
        latent_tiled_size=tile,
        latent_tiled_overlap=overlap,
    )
    model = CODiff_test(args)
    rec: dict[str, list] = {"eps": [], "proj": []}
    model.unet.register_forward_hook(lambda m, a, o: rec["eps"].append(o.sample.clone()))
    model.proj.register_forward_hook(lambda m, a, o: rec["proj"].append(o.clone()))
    step = model.noise_scheduler.step

    def spy(*a, **k):
        out = step(*a, **k)
        rec["blended"], rec["z"], rec["x0"] = a[0].clone(), a[2].clone(), out.prev_sample.clone()
        return out

    model.noise_scheduler.step = spy

    img_l = lq_image(rows, cols)  # main_test_codiff.py from here on (after its JPEG step)
    lq_raw = torch.from_numpy(img_l).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
    lq = lq_raw * 2 - 1
    with torch.no_grad():
        tokens = cave.get_visual_embedding(lq_raw)
        qf = cave.pred_qf(lq_raw)
        torch.manual_seed(LATENT_SEED)
        img_e = model(lq, tokens)
    pil = transforms.ToPILImage()(img_e[0].cpu() * 0.5 + 0.5)
    final = np.array(adain_color_fix(target=pil, source=img_l))
    print(f"  {len(rec['eps'])} UNet call(s), qf head {qf.item():.4f}")
    return {
        "lq": img_l,
        "tokens": tokens[0].numpy(),
        "q": qf[0].numpy(),
        "proj": rec["proj"][0][0].float().numpy(),  # before upstream's cast to fp16
        "latent": rec["z"][0].float().numpy(),
        "eps": rec["blended"][0].float().numpy(),  # what the scheduler step gets
        "x0": rec["x0"][0].float().numpy(),
        "decoded": img_e[0].float().numpy(),
        "final": final,
        **({"eps_tiles": torch.cat(rec["eps"]).float().numpy()} if len(rec["eps"]) > 1 else {}),
    }


def main(upstream: str, out: str) -> None:
    up = Path(upstream)
    sys.path[:0] = [str(up), str(up / "diffusion"), str(up / "diffusion" / "my_utils")]
    cpu_only()
    torch.set_num_threads(1)
    import devices  # upstream's device helper (vaehook): assumes CUDA
    import diffusers
    import peft
    from cave.cave import CaVE
    from diffusion.codiff import CODiff_train, initialize_unet, initialize_vae
    from models.autoencoder_kl import AutoencoderKL
    from models.unet_2d_condition import UNet2DConditionModel

    devices.device = torch.device("cpu")
    print("diffusers", diffusers.__version__, "peft", peft.__version__, "torch", torch.__version__)
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sd"
        write_sd_folder(folder, UNet2DConditionModel, AutoencoderKL)
        # the checkpoint: upstream's own LoRA setup and save format, stand-in values
        init = SimpleNamespace(pretrained_model=str(folder), lora_rank=RANK)
        vae, vae_modules = initialize_vae(init)
        unet, enc, dec, oth = initialize_unet(init)
        fill_standin(unet, SEEDS["lora_unet"], GAINS["lora_unet"])
        fill_standin(vae, SEEDS["lora_vae"], GAINS["lora_vae"])
        proj = torch.nn.Linear(512, 1024)
        fill_standin(proj, SEEDS["proj"], GAINS["proj"])
        holder = SimpleNamespace(
            lora_vae_modules_encoder=vae_modules,
            lora_unet_modules_encoder=enc,
            lora_unet_modules_decoder=dec,
            lora_unet_others=oth,
            lora_rank_unet=RANK,
            lora_rank_vae=RANK,
            unet=unet,
            vae=vae,
            proj=proj,
        )
        pkl = Path(tmp) / "codiff.pkl"
        CODiff_train.save_model(holder, pkl)
        saved = torch.load(pkl)
        arrays["unet_layout"] = np.array(layout_digest(unet))
        arrays["vae_layout"] = np.array(layout_digest(vae))
        arrays["modules"] = np.array(
            json.dumps({k: v for k, v in saved.items() if k.endswith("modules")})
        )
        cave = CaVE(in_nc=3, out_nc=3, nc=[64, 128, 256, 512], nb=4, act_mode="BR").eval()
        fill_standin(cave, SEEDS["cave"], GAINS["cave"])
        arrays["cave_layout"] = np.array(layout_digest(cave))
        for case, (rows, cols, tile, overlap) in CASES.items():
            print(case, rows, cols, "latent tile", tile, overlap)
            got = run_case(folder, pkl, cave, rows, cols, tile, overlap)
            arrays.update({f"{case}_{k}": v for k, v in got.items()})
    np.savez_compressed(out, **arrays)
    print("wrote", out, {k: v.shape for k, v in arrays.items()})


if __name__ == "__main__":
    default = str(ROOT / "tests/data/upstream/codiff.npz")
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else default)
