"""SUPIR's restoration-guided EDM sampler (``RestoreEDMSampler`` / ``TiledRestoreEDMSampler`` of
sgm as shipped in Fanghua-Yu/SUPIR @bda91af, with ``SUPIR_v0.yaml``'s denoiser and guider),
re-implemented here. Facts carried over:

* schedule (``LegacyDDPMDiscretization``): scaled-linear betas 0.00085 -> 0.012 over 1000
  steps (float64), ``steps`` timesteps ``linspace(999, 0, steps, endpoint=False)`` (int,
  ascending), sigma = sqrt of the float32 ``(1 - a) / a``, descending, then a final 0;
* denoiser (``DiscreteDenoiserWithControl``, eps scaling): sigma is snapped to the nearest of
  the 1000 training sigmas; the network sees ``x / sqrt(1 + s^2)`` and the timestep index;
  ``D = x - s * eps``;
* guider (``LinearCFG``): ``u + g * (c - u)`` with ``g = (scale - scale_min) * sigma / 14.6146
  + scale_min``; test.py's ``--linear_CFG`` gives ``scale = spt_linear_CFG`` (1.0) and
  ``scale_min = s_cfg`` (4.0);
* step (Euler with churn, Karras et al. 2022): ``gamma = min(s_churn / steps, sqrt 2 - 1)``;
  ``x += s_noise * n * sqrt(s_hat^2 - s^2)`` with ``s_hat = s (1 + gamma)``; restoration
  guidance when ``restore_cfg > 0`` and the next sigma > 0.05: ``D -= (D - z_center) *
  (s / 14.6146) ** restore_cfg``; ``x += (x - D) / s_hat * (s_next - s_hat)``;
* start: ``x = noise * sqrt(1 + sigma_0^2)``;
* tiled: every step splits the latent into ``tile``-sized windows (stride ``stride``, last one
  flush with the edge), runs the step per window with that window's share of one full-size
  noise draw, and blends with a fixed Gaussian window (variance 0.01; upstream centres its
  rows at ``h / 2`` and its columns at ``(w - 1) / 2``, kept).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SIGMA_MAX = 14.6146  # the constant upstream divides by (LinearCFG, restoration guidance)
RESTORE_CFG_S_TMIN = 0.05


def training_sigmas():
    """The 1000 discrete sigmas, ascending (index = training timestep), float32."""
    import torch

    from carbench.methods.sd.edm import scaled_linear_betas

    ac = np.cumprod(1.0 - scaled_linear_betas())
    return torch.tensor((1 - ac) / ac, dtype=torch.float32) ** 0.5


def sampling_sigmas(steps: int):
    """``steps + 1`` sigmas, descending, last 0 (``LegacyDDPMDiscretization(steps)``)."""
    import torch

    from carbench.methods.sd.edm import scaled_linear_betas

    ac = np.cumprod(1.0 - scaled_linear_betas())
    if steps < len(ac):
        ac = ac[np.linspace(len(ac) - 1, 0, steps, endpoint=False).astype(int)[::-1]]
    sig = torch.tensor((1 - ac) / ac, dtype=torch.float32) ** 0.5
    return torch.cat([sig.flip(0), sig.new_zeros(1)])


@dataclass(frozen=True)
class SamplerOptions:
    """test.py's defaults."""

    steps: int = 50
    cfg: float = 4.0  # s_cfg (LinearCFG scale_min)
    cfg_start: float = 1.0  # spt_linear_CFG (LinearCFG scale); = cfg without linear CFG
    s_churn: float = 5.0
    s_noise: float = 1.01
    restore_cfg: float = -1.0  # s_stage1 (<= 0: off)
    control_scale: float = 1.0  # s_stage2
    control_scale_start: float = 0.0  # spt_linear_s_stage2
    linear_control_scale: bool = False  # linear_s_stage2
    tile: int = 0  # latent tile (0: whole latent); upstream's tiled sampler: 128
    stride: int = 64


def guided_denoiser(model: Callable, opts: SamplerOptions) -> Callable:
    """``denoise_cfg(x, sigma_hat, control_scale, window)`` from ``model(x_in, t_index,
    control_scale, window) -> eps`` of the batch ``[uncond; cond]`` (``x_in`` is ``x`` twice):
    the discrete eps denoiser on both branches, combined by :func:`linear_cfg`."""
    import torch

    table = training_sigmas()

    def denoise(x, sigma_hat, control_scale, window):
        tab = table.to(x.device)
        idx = (sigma_hat - tab).abs().argmin()
        s = tab[idx]
        x2 = torch.cat([x, x])
        eps = model(x2 * (1 / (s**2 + 1.0) ** 0.5), idx, control_scale, window)
        uncond, cond = (x2 - s * eps).chunk(2)
        return linear_cfg(uncond, cond, sigma_hat, opts)

    return denoise


def gaussian_window(h: int, w: int):
    """Upstream's ``gaussian_weights`` (float64): rows centred at ``h / 2``, columns at
    ``(w - 1) / 2``, variance 0.01 of the normalised offset."""
    import torch

    def probs(n: int, mid: float) -> np.ndarray:
        x = np.arange(n)
        return np.exp(-((x - mid) ** 2) / (n * n) / (2 * 0.01)) / np.sqrt(2 * np.pi * 0.01)

    return torch.from_numpy(np.outer(probs(h, h / 2), probs(w, (w - 1) / 2)))


def windows(h: int, w: int, tile: int, stride: int) -> list[tuple[int, int, int, int]]:
    """Upstream's ``_sliding_windows``: (top, bottom, left, right) of every tile."""

    def starts(n: int) -> list[int]:
        s = list(range(0, n - tile + 1, stride))
        return s + [n - tile] if (n - tile) % stride else s

    return [(t, t + tile, le, le + tile) for t in starts(h) for le in starts(w)]


def sample(
    denoise_cfg: Callable,
    noise,
    z_center,
    opts: SamplerOptions,
    generator,
    progress: Callable[[int], None] | None = None,
):
    """Run the sampler from ``noise`` (standard normal, the latent's shape).

    ``denoise_cfg(x, sigma_hat, control_scale, window)`` is the guided denoiser: both branches
    of the network on the latent window ``window`` (``None``: the whole latent) combined by
    :func:`linear_cfg`. Churn noise is drawn from ``generator`` once per step."""
    import torch

    sigmas = sampling_sigmas(opts.steps).to(noise.device)
    x = noise * torch.sqrt(1.0 + sigmas[0] ** 2)
    n = len(sigmas) - 1
    gamma = min(opts.s_churn / n, 2**0.5 - 1)
    _, _, h, w = x.shape
    tiled = 0 < opts.tile < max(h, w)
    tile_list = windows(h, w, opts.tile, opts.stride) if tiled else [None]
    weight = gaussian_window(opts.tile, opts.tile).to(x.device) if tiled else None  # float64
    for i in range(n):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        eps = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
        eps = eps.to(x.device)
        scale = opts.control_scale
        if opts.linear_control_scale:
            scale = float(sigma) / SIGMA_MAX * (opts.control_scale_start - scale) + scale
        if not tiled:
            x = _step(denoise_cfg, x, sigma, nxt, gamma, eps, z_center, scale, None, opts)
        else:
            acc, count = torch.zeros_like(x), torch.zeros_like(x)
            for win in tile_list:
                t, b, le, r = win
                part = _step(
                    denoise_cfg,
                    x[..., t:b, le:r],
                    sigma,
                    nxt,
                    gamma,
                    eps[..., t:b, le:r],
                    z_center[..., t:b, le:r],
                    scale,
                    win,
                    opts,
                )
                acc[..., t:b, le:r] += part * weight
                count[..., t:b, le:r] += weight
            x = acc / count
        if progress is not None:
            progress(i)
    return x


def _step(denoise_cfg, x, sigma, nxt, gamma, eps, z_center, control_scale, win, opts):
    sigma_hat = sigma * (gamma + 1.0)
    if gamma > 0:
        x = x + eps * opts.s_noise * (sigma_hat**2 - sigma**2) ** 0.5
    denoised = denoise_cfg(x, sigma_hat, control_scale, win)
    if nxt > RESTORE_CFG_S_TMIN and opts.restore_cfg > 0:
        denoised = denoised - (denoised - z_center) * (sigma / SIGMA_MAX) ** opts.restore_cfg
    d = (x - denoised) / sigma_hat
    return x + d * (nxt - sigma_hat)


def linear_cfg(uncond, cond, sigma, opts: SamplerOptions):
    """LinearCFG: guidance rising linearly from ``cfg`` at sigma 0 to ``cfg_start`` at
    sigma 14.6146."""
    g = (opts.cfg_start - opts.cfg) * sigma / SIGMA_MAX + opts.cfg
    return uncond + g * (cond - uncond)
