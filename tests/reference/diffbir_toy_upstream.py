"""Record DiffBIR's two samplers on a toy model from the official code (tests/test_diffbir.py).

Usage: python tests/reference/diffbir_toy_upstream.py /path/to/DiffBIR-checkout [out.npz]
(environment ``cnn`` of tests/reference/rebuild.py: torch 2.14.1 CPU, omegaconf 2.3.0).

Upstream: XPixelGroup/DiffBIR @3f8b5304245ba0ffd6f1995e51c27c3c72d7618f, ``diffbir.sampler``'s
``EDMSampler("edm_dpm++_3m_sde", s_churn 0, s_tmin 0, s_tmax 300, s_noise 1, eta 1, order 1)``
(inference.py's defaults) on ``configs/inference/diffusion_v2.1.yaml`` (zero terminal SNR,
v-prediction), 10 steps, cfg 6 (carbench's v2.1 default); ``SpacedSampler`` on
``configs/inference/diffusion.yaml`` (eps), 4 steps, cfg 4 (v2). The model is the closed form
``tanh(x) * a + 1e-3 * t`` with ``a`` = 0.7 for the prompt and -0.3 without (the condition
latent is zeros and unused); ``x_T = torch.randn(1, 4, 8, 8)`` right after
``torch.manual_seed(231)`` (inference.py's seed), and the Brownian-tree seed / step noises from
the same global stream. Arrays: ``v21_z`` / ``v2_z`` (the final latents) and ``v21_steps`` /
``v2_steps``. Formerly typed into the test as ``UPSTREAM_TOY`` (every 37th value).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.reference.diffbir_loop_upstream import EDM_ARGS, SEED  # noqa: E402

SHAPE = (1, 4, 8, 8)
A_COND, A_UNCOND = 0.7, -0.3
RUNS = {  # name: (sampler, diffusion config, steps, cfg)
    "v21": ("edm_dpm++_3m_sde", "configs/inference/diffusion_v2.1.yaml", 10, 6.0),
    "v2": ("spaced", "configs/inference/diffusion.yaml", 4, 4.0),
}


def toy_model(x, t, cond):
    """``tanh(x) * a + 1e-3 * t`` (both sides)."""
    return torch.tanh(x) * cond["c_txt"] + 1e-3 * t


def main(upstream: str, out: str) -> None:

    torch.set_num_threads(1)
    torch.Tuple = tuple  # an annotation upstream uses, gone from torch 2.14
    sys.path.insert(0, upstream)
    from diffbir.sampler import EDMSampler, SpacedSampler
    from diffbir.utils.common import instantiate_from_config
    from omegaconf import OmegaConf

    arrays = {}
    zeros = torch.zeros(SHAPE)
    for run, (name, config, steps, cfg) in RUNS.items():
        diffusion = instantiate_from_config(OmegaConf.load(Path(upstream) / config))
        if name == "spaced":
            sampler = SpacedSampler(diffusion.betas, diffusion.parameterization, False)
        else:
            sampler = EDMSampler(
                diffusion.betas, diffusion.parameterization, False, name, *EDM_ARGS.values()
            )
        torch.manual_seed(SEED)
        x_t = torch.randn(SHAPE, dtype=torch.float32)
        z = sampler.sample(
            model=toy_model,
            device="cpu",
            steps=steps,
            x_size=SHAPE,
            cond={"c_txt": torch.tensor(A_COND), "c_img": zeros},
            uncond={"c_txt": torch.tensor(A_UNCOND), "c_img": zeros},
            cfg_scale=cfg,
            x_T=x_t,
            progress=False,
        )
        arrays[f"{run}_z"] = z.numpy()
        arrays[f"{run}_steps"] = np.array(steps)
        print(run, z.flatten()[::37].tolist())
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    default = str(ROOT / "tests/data/upstream/diffbir_toy.npz")
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else default)
