"""Record the tiled VAE of CODiff/OSEDiff (``my_utils/vaehook.py``) on a small SD-style VAE.

Usage: python tests/reference/vaehook_upstream.py /path/to/CODiff-checkout [out.npz]
(BENCH_DATA_ROOT points at the test sets). Imports ``diffusion/my_utils/vaehook.py`` from the
checkout (jp-guo/CODiff @86e2f04; OSEDiff @fcc4f09 ships the same scheme, differing only in
its imports and prints) and runs its ``VAEHook`` (fast modes off, as both pipelines call it) on
the encoder and the decoder of a diffusers ``AutoencoderKL`` built from ``VAE_CONFIG`` below,
filled by ``tests/reference/standin.py``. Small tile sizes make small inputs tile.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.reference.standin import fill_standin, layout_digest  # noqa: E402

#: upstream's task queue assumes two resnets per encoder level, three per decoder level and
#: 32 GroupNorm groups (SD's layout), so the small VAE keeps those and narrows the channels
VAE_CONFIG = dict(
    block_out_channels=[32, 32, 64, 64],
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    layers_per_block=2,
    norm_num_groups=32,
    latent_channels=4,
    in_channels=3,
    out_channels=3,
    sample_size=64,
)
SEED, GAIN = 21, 1.0
IMAGE, ROWS, COLS = "LIVE1/bikes.png", (100, 268), (200, 400)  # 168 x 200
ENC_TILE, DEC_TILE = 64, 6  # upstream's paddings 32 / 11 stay; 2x3 tiles each
LATENT_SHAPE, LATENT_SEED = (1, 4, 30, 36), 5


def build_vae():
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(**VAE_CONFIG).eval()
    fill_standin(vae, SEED, GAIN)
    return vae


def inputs() -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """The image crop (uint8), it in [-1,1] (1x3xHxW) and the seeded decoder latent."""
    from PIL import Image

    img = Image.open(Path(os.environ["BENCH_DATA_ROOT"]) / IMAGE).convert("RGB")
    crop = np.asarray(img)[ROWS[0] : ROWS[1], COLS[0] : COLS[1]].copy()
    x = torch.from_numpy(crop.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    z = torch.randn(LATENT_SHAPE, generator=torch.Generator().manual_seed(LATENT_SEED))
    return crop, x, z


def main(upstream: str, out: str) -> None:
    sys.path.insert(0, str(Path(upstream) / "diffusion" / "my_utils"))
    import devices  # upstream's device helper, imported by vaehook
    from vaehook import VAEHook

    devices.device = torch.device("cpu")  # it assumes CUDA; this machine has none
    torch.set_num_threads(1)
    vae = build_vae()
    crop, x, z = inputs()
    arrays = {"image": crop, "latent": z.numpy(), "layout": np.array(layout_digest(vae))}
    for part, inp, tile, is_dec in (("enc", x, ENC_TILE, False), ("dec", z, DEC_TILE, True)):
        net = vae.decoder if is_dec else vae.encoder
        net.original_forward = net.forward
        hook = VAEHook(net, tile, is_dec, False, False, False, to_gpu=False)
        with torch.no_grad():
            tiled = hook(inp)
            whole = net.original_forward(inp)
        diff = (tiled - whole).abs().max().item()
        print(part, tuple(tiled.shape), "max |tiled - untiled|", diff)
        arrays[f"{part}_tiled"] = tiled[0].numpy().astype(np.float16 if is_dec else np.float32)
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    default = str(ROOT / "tests/data/upstream/vaehook.npz")
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else default)
