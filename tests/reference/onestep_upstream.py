"""Record CODiff/OSEDiff's colour fixes and one-step update from the official code.

Usage: python tests/reference/onestep_upstream.py /path/to/CODiff-checkout [out.npz]
(BENCH_DATA_ROOT points at the test sets). Imports ``diffusion/my_utils/wavelet_color_fix.py``
from the checkout (jp-guo/CODiff @86e2f04; cswry/OSEDiff @fcc4f09 has the identical file) and
calls its ``adain_color_fix`` / ``wavelet_color_fix`` on PIL images as the test scripts do; the
one-step update is upstream's call ``DDPMScheduler.step`` after ``set_timesteps(1)`` at t = 499
(CODiff) and t = 999 (OSEDiff), with SD-2.1-base's published scheduler config (below), on a
seeded latent and epsilon.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from carbench.degradations.jpeg import decode_jpeg, encode_jpeg  # noqa: E402

#: stabilityai/stable-diffusion-2-1-base scheduler/scheduler_config.json (published values)
SCHEDULER_CONFIG = dict(
    beta_end=0.012,
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    clip_sample=False,
    num_train_timesteps=1000,
    prediction_type="epsilon",
    set_alpha_to_one=False,
    skip_prk_steps=True,
    steps_offset=1,
    trained_betas=None,
)
IMAGE, ROWS, COLS, QF = "LIVE1/bikes.png", (100, 164), (200, 280), 10  # 64 x 80
SHIFT = (7, 11)  # the "restored" image is the ground truth crop moved by these rows/cols
LATENT_SHAPE, SEED = (1, 4, 8, 10), 3


def images() -> tuple[np.ndarray, np.ndarray]:
    """(JPEG input, a stand-in restored image): both 64 x 80 uint8 RGB."""
    from PIL import Image

    img = np.asarray(Image.open(Path(os.environ["BENCH_DATA_ROOT"]) / IMAGE).convert("RGB"))
    gt = img[ROWS[0] : ROWS[1], COLS[0] : COLS[1]].copy()
    lq = decode_jpeg(encode_jpeg(gt, QF))
    r, c = ROWS[0] + SHIFT[0], COLS[0] + SHIFT[1]
    out = img[r : r + gt.shape[0], c : c + gt.shape[1]] // 2 + 40  # other colours
    return lq, out.astype(np.uint8)


def latents() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(SEED)
    return torch.randn(LATENT_SHAPE, generator=g), torch.randn(LATENT_SHAPE, generator=g)


def main(upstream: str, out: str) -> None:
    from diffusers import DDPMScheduler
    from PIL import Image

    sys.path.insert(0, str(Path(upstream) / "diffusion" / "my_utils"))
    from torchvision.transforms import ToTensor
    from wavelet_color_fix import (
        adain_color_fix,
        adaptive_instance_normalization,
        wavelet_color_fix,
        wavelet_reconstruction,
    )

    lq, restored = images()
    src, tgt = Image.fromarray(lq), Image.fromarray(restored)
    arrays = {
        "lq": lq,
        "restored": restored,
        "adain": np.asarray(adain_color_fix(target=tgt, source=src)),
        "wavelet": np.asarray(wavelet_color_fix(target=tgt, source=src)),
    }
    t_tgt, t_src = ToTensor()(tgt)[None], ToTensor()(src)[None]  # what the fixes convert to
    arrays["adain_float"] = adaptive_instance_normalization(t_tgt, t_src)[0].numpy()
    arrays["wavelet_float"] = wavelet_reconstruction(t_tgt, t_src)[0].numpy()
    z, eps = latents()
    for t in (499, 999):
        sched = DDPMScheduler.from_config(SCHEDULER_CONFIG)
        sched.set_timesteps(1)
        # diffusers 0.25 (upstream's pin) takes prev_t = t - 1000 < 0 for a timestep outside
        # set_timesteps' list; 0.42 looks t up in the list, so it is made the list's only entry
        # (same branch: the final step, alpha_prev = 1)
        sched.timesteps = torch.tensor([t]).long()
        ts = torch.tensor([t]).long()
        g = torch.Generator().manual_seed(0)  # its variance noise is scaled by 1e-10
        arrays[f"x0_t{t}"] = sched.step(eps, ts, z, generator=g).prev_sample.numpy()
    for k in ("adain", "wavelet"):
        print(k, "mean |fixed - restored|", np.abs(arrays[k].astype(int) - restored).mean())
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    default = str(ROOT / "tests/data/upstream/onestep.npz")
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else default)
