"""Record SUPIR's restoration-guided EDM sampler at its default 50 steps from the official code.

Usage (outside the project, in /work/upstream-envs/supir, see tests/reference/rebuild.py):
    python tests/reference/supir_sampler_upstream.py /path/to/SUPIR-checkout [out.npz]

Upstream: Fanghua-Yu/SUPIR @bda91af2000042f8bedfec8897d92917e67c1d88. Runs its own
``RestoreEDMSampler`` / ``TiledRestoreEDMSampler.__call__`` (bundled sgm,
``sgm/modules/diffusionmodules/sampling.py``), built from ``options/SUPIR_v0.yaml``'s
``sampler_config`` with the parameters ``SUPIRModel.batchify_sample`` sets from test.py's
defaults (50 steps, s_churn 5, s_noise 1.01, linear CFG scale 1.0 -> scale_min 4.0,
restoration guidance off: s_stage1 -1, s_stage2 1), and the yaml's
``DiscreteDenoiserWithControl`` (eps scaling, 1000 sigmas, sigma snapped to the table).

The network is a closed-form toy (no weights), the same on carbench's side
(tests/test_supir_sampler.py)::

    eps = tanh(0.6 x_in + 0.8 control) * (0.5 + t / 1000) + 0.3 vector * cos(x_in)
          + 0.1 control_scale * control

with ``control`` the low-quality latent (sliced per tile by the tiled sampler, as upstream
slices ``cond['control']``), ``vector`` 0.7 for the prompt branch and -0.3 for the negative
one, ``t`` the snapped timestep index. Inputs (stored): ``noise`` (the start noise), ``lq`` (the
control latent) and ``center`` (``x_center``) drawn from ``torch.Generator(8)``; the churn noise
comes from torch's global generator after ``torch.manual_seed(1234)`` (test.py's seed), as in
``batchify_sample``.

Cases: ``default`` (50 steps, untiled, every option at test.py's default; latent 1x4x8x10) and
``tiled`` (50 steps, ``TiledRestoreEDMSampler`` tile 4 stride 3 on the 8x10 latent, so the last
row/column of tiles is flush with the edge; s_stage1 2, linear s_stage2 from 0.5). Arrays:
``<case>_out`` (the sampler's result), ``<case>_gamma`` and ``<case>_sigma`` (the churn gamma
and sigma of every ``sampler_step`` call, first call of each step), ``sigmas50``.

Stubbed imports (not used on this path): ``k_diffusion.sampling``; ``gaussian_weights``
allocates on CUDA, so its module's ``torch`` is wrapped to land on CPU.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (1, 4, 8, 10)
SEED_INPUTS, SEED = 8, 1234
VECTOR = {"c": 0.7, "uc": -0.3}
DEFAULT = dict(
    num_steps=50,
    restoration_scale=-1.0,
    s_churn=5.0,
    s_noise=1.01,
    cfg_scale=4.0,
    cfg_scale_start=1.0,
    control_scale=1.0,
    use_linear_control_scale=False,
    control_scale_start=0.0,
)
TILED = dict(
    DEFAULT,
    restoration_scale=2.0,
    use_linear_control_scale=True,
    control_scale_start=0.5,
    tile_size=4,
    tile_stride=3,
)


def toy_eps(x_in, t, control, vector, control_scale):
    """The toy network (both sides): see the module docstring."""
    t = t.to(x_in.dtype).view(-1, 1, 1, 1)
    vec = vector.view(-1, 1, 1, 1)
    return (
        torch.tanh(0.6 * x_in + 0.8 * control) * (0.5 + t / 1000)
        + 0.3 * vec * torch.cos(x_in)
        + 0.1 * control_scale * control
    )


def inputs() -> dict[str, torch.Tensor]:
    """Start noise, control latent and x_center (``torch.Generator(8)``)."""
    g = torch.Generator().manual_seed(SEED_INPUTS)
    return {k: torch.randn(SHAPE, generator=g) for k in ("noise", "lq", "center")}


def _stubs(root: Path) -> None:
    for name in ("sgm", "sgm.modules", "sgm.modules.diffusionmodules"):
        mod = types.ModuleType(name)
        mod.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = mod
    sys.path.insert(0, str(root))
    kd, kds = types.ModuleType("k_diffusion"), types.ModuleType("k_diffusion.sampling")
    kds.get_sigmas_karras = kds.BrownianTreeNoiseSampler = None
    sys.modules["k_diffusion"], sys.modules["k_diffusion.sampling"] = kd, kds


class _CpuTorch:
    """``torch`` for sgm's sampling module with ``torch.tensor(..., device='cuda')`` on CPU."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def tensor(*args, device=None, **kwargs):
        return torch.tensor(*args, **kwargs)


def run_case(root: Path, kw: dict, x: dict) -> dict[str, np.ndarray]:
    """One sampler call as ``batchify_sample`` sets it up (its lines 101-111, 123-130)."""
    from omegaconf import OmegaConf
    from sgm.modules.diffusionmodules import sampling
    from sgm.util import instantiate_from_config

    sampling.torch = _CpuTorch()
    cfg = OmegaConf.load(root / "options/SUPIR_v0.yaml").model.params
    sc = cfg.sampler_config
    if "tile_size" in kw:
        sc.target = "sgm.modules.diffusionmodules.sampling.TiledRestoreEDMSampler"
        sc.params.tile_size, sc.params.tile_stride = kw["tile_size"], kw["tile_stride"]
    sc.params.device = "cpu"
    sc.params.num_steps = kw["num_steps"]
    sc.params.guider_config.params.scale_min = kw["cfg_scale"]
    sc.params.guider_config.params.scale = kw["cfg_scale_start"]  # use_linear_CFG
    sc.params.restore_cfg = kw["restoration_scale"]
    sc.params.s_churn = kw["s_churn"]
    sc.params.s_noise = kw["s_noise"]
    sampler = instantiate_from_config(sc)
    denoiser_net = instantiate_from_config(cfg.denoiser_config)

    def network(x_in, c_noise, cond, control_scale):
        return toy_eps(x_in, c_noise, cond["control"], cond["vector"], control_scale)

    def denoiser(inp, sigma, c, control_scale):
        return denoiser_net(network, inp, sigma, c, control_scale)

    seen = []
    step = sampler.sampler_step

    def logged(sigma, next_sigma, *args, **kwargs):
        gamma = args[4] if len(args) > 4 else kwargs.get("gamma", 0.0)  # denoiser, x, c, uc, gamma
        seen.append((float(sigma[0]), float(gamma)))
        return step(sigma, next_sigma, *args, **kwargs)

    sampler.sampler_step = logged
    c = {"control": x["lq"].clone(), "vector": torch.full((1, 1), VECTOR["c"])}
    uc = {"control": x["lq"].clone(), "vector": torch.full((1, 1), VECTOR["uc"])}
    torch.manual_seed(SEED)
    with torch.no_grad():
        out = sampler(
            denoiser,
            x["noise"].clone(),
            cond=c,
            uc=uc,
            x_center=x["center"].clone(),
            control_scale=kw["control_scale"],
            use_linear_control_scale=kw["use_linear_control_scale"],
            control_scale_start=kw["control_scale_start"],
        )
    first = {}
    for sigma, gamma in seen:  # tiled: one call per tile and step
        first.setdefault(sigma, gamma)
    return {
        "out": out.numpy(),
        "sigma": np.array(list(first), np.float32),
        "gamma": np.array(list(first.values())),
        "sigmas50": sampler.discretization(50, device="cpu").numpy(),
    }


def main(root: Path, out: Path) -> None:
    torch.set_num_threads(1)
    _stubs(root)
    x = inputs()
    arrays = {k: v.numpy() for k, v in x.items()}
    for case, kw in (("default", DEFAULT), ("tiled", TILED)):
        res = run_case(root, kw, x)
        arrays["sigmas50"] = res.pop("sigmas50")
        arrays.update({f"{case}_{k}": v for k, v in res.items()})
    arrays["versions"] = np.array(f"torch {torch.__version__}")
    np.savez_compressed(out, **arrays)
    print({k: v.shape for k, v in arrays.items()})
    print("gamma per step (default):", sorted(set(arrays["default_gamma"].tolist())))


if __name__ == "__main__":
    main(
        Path(sys.argv[1]),
        Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "tests/data/upstream/supir_edm50.npz",
    )
