"""EDM-form sampling of a discrete-time (DDPM-trained) diffusion model, as DiffBIR v2.1 runs it:
zero-terminal-SNR betas, v- or eps-prediction wrapped as a denoiser D(x, sigma), and the
DPM-Solver++(3M) SDE solver (Lu et al. 2022, in k-diffusion's multistep form).

Facts from XPixelGroup/DiffBIR @3f8b530 (diffbir/sampler/edm_sampler.py, k_diffusion.py,
model/gaussian_diffusion.py), re-implemented here:

* schedule: ``steps`` training timesteps ``linspace(T-1, 0, steps, endpoint=False)`` (int),
  sigma = sqrt((1 - a) / a) of their alphas_cumprod with the first a clipped to 1e-8 (it is 0
  under zero terminal SNR), then a final sigma 0 at timestep 0;
* denoiser: x_in = x / sqrt(1 + sigma^2); eps: D = x - sigma * eps; v:
  D = x / (1 + sigma^2) - sigma / sqrt(1 + sigma^2) * v; the model's timestep is the schedule
  timestep whose sigma is nearest;
* start: x = noise * sqrt(1 + sigma_0^2); solver noise from a Brownian tree (torchsde) over
  [sigma_min, sigma_max], so the noise of a step depends on the interval, not on call order.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np


def zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Rescale betas so the last alphas_cumprod is exactly 0 and the first is unchanged
    (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps Are Flawed", Alg. 1:
    shift sqrt(alphas_cumprod) by its last value, scale it back to its first), float64."""
    import torch

    root = torch.cumprod(1 - torch.from_numpy(np.asarray(betas, np.float64)), 0).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    ac = ((root - last) * (first / (first - last))) ** 2
    return (1 - torch.cat([ac[:1], ac[1:] / ac[:-1]])).numpy()


def scaled_linear_betas(start: float = 0.00085, end: float = 0.012, n: int = 1000) -> np.ndarray:
    """LDM's "linear" schedule: betas linear in sqrt, float64."""
    return np.linspace(start**0.5, end**0.5, n, dtype=np.float64) ** 2


def edm_schedule(train_alphas_cumprod: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(sigmas, timesteps), both of length ``steps + 1`` (last sigma 0, timestep 0)."""
    n = len(train_alphas_cumprod)
    timesteps = np.linspace(n - 1, 0, steps, endpoint=False).astype(int)
    ac = np.asarray(train_alphas_cumprod, np.float64)[timesteps].copy()
    ac[0] = 1e-8
    sigmas = np.append(((1 - ac) / ac) ** 0.5, 0.0)
    return sigmas, np.append(timesteps, 0)


def make_denoiser(model: Callable, sigmas, timesteps, parameterization: str = "v") -> Callable:
    """D(x, sigma) from ``model(x_in, t) -> eps | v`` (batch-shared sigma). ``sigmas`` and
    ``timesteps`` are the schedule tensors (on the sampling device)."""
    import torch

    if parameterization not in ("eps", "v"):
        raise ValueError(f"parameterization must be eps or v, got {parameterization!r}")

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s2 = sigma**2 + 1.0
        c_in = s2**-0.5
        t = timesteps[(sigma - sigmas).abs().argmin()]
        out = model(x * c_in, int(t))
        if parameterization == "eps":
            return x - sigma * out
        return x / s2 - sigma * c_in * out

    return denoise


def brownian_noise(x, sigma_min: float, sigma_max: float, seed: int) -> Callable:
    """Standard-normal increments of one torchsde Brownian tree over [sigma_min, sigma_max]
    (shape of ``x``): ``noise(sigma, sigma_next)``."""
    import torch
    import torchsde

    tree = torchsde.BrownianTree(
        torch.as_tensor(sigma_min), torch.zeros_like(x), torch.as_tensor(sigma_max), entropy=seed
    )

    def noise(sigma, sigma_next):
        lo, hi = sorted((torch.as_tensor(sigma), torch.as_tensor(sigma_next)))
        sign = 1.0 if sigma < sigma_next else -1.0
        with warnings.catch_warnings():  # torchsde rounds the tree's ends; queries at them warn
            warnings.filterwarnings("ignore", message="Should have ta>=t0")
            w = tree(lo, hi)
        return w * sign / (hi - lo).abs().sqrt()

    return noise


def sample_dpmpp_3m_sde(
    denoise: Callable,
    x,
    sigmas,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise: Callable | None = None,
    progress: Callable[[int], None] | None = None,
):
    """DPM-Solver++(3M) SDE from ``x`` at ``sigmas[0]`` down to ``sigmas[-1]`` (= 0): multistep
    exponential integrator in log-sigma with up to two previous denoised values; stochastic
    part ``eta`` (0 = the deterministic ODE solver). ``noise(sigma, sigma_next)`` gives
    standard-normal noise (default: a seeded-by-caller ``torch.randn_like``)."""
    import torch

    if noise is None:

        def noise(_s, _n):
            return torch.randn_like(x)

    d_prev1 = d_prev2 = h_prev1 = h_prev2 = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoise(x, sigma)
        if progress is not None:
            progress(i)
        if sigma_next == 0:
            x = denoised
            h = None
        else:
            h = sigma.log() - sigma_next.log()
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x - torch.expm1(-h_eta) * denoised
            phi_2 = torch.expm1(-h_eta) / h_eta + 1
            if h_prev2 is not None:
                r0, r1 = h_prev1 / h, h_prev2 / h
                d1_0 = (denoised - d_prev1) / r0
                d1_1 = (d_prev1 - d_prev2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                x = x + phi_2 * d1 - (phi_2 / h_eta - 0.5) * d2
            elif h_prev1 is not None:
                x = x + phi_2 * (denoised - d_prev1) / (h_prev1 / h)
            if eta:
                scale = sigma_next * torch.sqrt(-torch.expm1(-2 * h * eta)) * s_noise
                x = x + noise(sigma, sigma_next) * scale
        d_prev1, d_prev2 = denoised, d_prev1
        h_prev1, h_prev2 = h, h_prev1
    return x
