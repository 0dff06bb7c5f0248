"""DiffBIR v2.1's sampling core checked against closed forms: the zero-terminal-SNR rescale,
the EDM schedule, the v/eps denoiser with an oracle model, and DPM++(3M) SDE on data whose
denoiser and probability-flow ODE are known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from carbench.methods.sd import edm as E


def test_zero_terminal_snr_rescale():
    betas = E.scaled_linear_betas()
    old = np.sqrt(np.cumprod(1 - betas))
    new = np.sqrt(np.cumprod(1 - E.zero_terminal_snr(betas)))
    assert new[-1] == pytest.approx(0, abs=1e-12) and new[0] == pytest.approx(old[0], rel=1e-12)
    # sqrt(alpha_bar) is shifted by its last value and rescaled to keep the first
    expect = (old - old[-1]) * old[0] / (old[0] - old[-1])
    # float64 rounding of two formulas: measured 2.2e-16 (values <= 1)
    np.testing.assert_allclose(new, expect, rtol=0, atol=1e-15)


def test_schedule_of_ten_steps():
    ac = np.cumprod(1 - E.zero_terminal_snr(E.scaled_linear_betas()))
    sigmas, ts = E.edm_schedule(ac, 10)
    # linspace(999, 0, 10, endpoint=False) = 999, 899.1, 799.2, ..., 99.9 -> truncated
    assert ts.tolist() == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99, 0]
    assert sigmas[0] == pytest.approx(np.sqrt((1 - 1e-8) / 1e-8))
    assert sigmas[5] == pytest.approx(np.sqrt((1 - ac[499]) / ac[499]))
    assert sigmas[-1] == 0 and np.all(np.diff(sigmas) < 0)


@pytest.mark.parametrize("param", ["v", "eps"])
def test_denoiser_recovers_x0_from_an_oracle(param):
    """A model that returns the true v (or eps) of a noised x0 must give D(x, sigma) = x0."""
    ac = np.cumprod(1 - E.scaled_linear_betas())
    sig, ts = E.edm_schedule(ac, 10)
    sigmas, timesteps = torch.tensor(sig), torch.tensor(ts)
    g = torch.Generator().manual_seed(0)
    x0, n = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
    seen = []
    for i in (1, 4, 8):
        sigma = sigmas[i]
        x = x0 + sigma * n  # EDM form; the VP sample is x / sqrt(1 + sigma^2)
        alpha, sd = 1 / torch.sqrt(1 + sigma**2), sigma / torch.sqrt(1 + sigma**2)

        def model(x_in, t, alpha=alpha, sd=sd):
            seen.append(t)
            # float64, the same scaling in another order: measured 8.9e-16 (values to 3.4)
            assert torch.allclose(x_in, alpha * x0 + sd * n, rtol=0, atol=3e-15)
            return alpha * n - sd * x0 if param == "v" else n

        d = E.make_denoiser(model, sigmas, timesteps, param)(x, sigma)
        torch.testing.assert_close(d, x0, rtol=0, atol=5e-15)  # float64: measured 1.8e-15
    assert seen == [int(ts[1]), int(ts[4]), int(ts[8])]


def _gaussian_run(steps: int, eta: float, noise=None):
    s = 0.7  # data ~ N(0, s^2): D(x, sigma) = x s^2 / (s^2 + sigma^2) exactly
    ac = np.cumprod(1 - E.zero_terminal_snr(E.scaled_linear_betas()))
    sig = torch.tensor(E.edm_schedule(ac, steps)[0])
    x_t = torch.randn(4000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = x_t * torch.sqrt(1 + sig[0] ** 2)
    out = E.sample_dpmpp_3m_sde(lambda x, sg: x * s**2 / (s**2 + sg**2), x, sig, eta, noise=noise)
    # the probability-flow ODE scales x by sqrt(s^2 + sigma^2); the last step is D itself
    at_last = x * torch.sqrt(s**2 + sig[-2] ** 2) / torch.sqrt(s**2 + sig[0] ** 2)
    exact = at_last * s**2 / (s**2 + sig[-2] ** 2)
    return float((out - exact).abs().max() / exact.abs().max())


def test_ode_limit_converges_to_the_exact_flow():
    errors = [_gaussian_run(n, eta=0.0) for n in (10, 20, 40, 80)]
    assert errors[0] < 5e-3 and errors[-1] < 1e-4
    assert errors == sorted(errors, reverse=True)


@pytest.mark.slow  # ~5 s idle, 15 s on a loaded 2-core machine (a 200,000-point Brownian tree)
def test_sde_noise_keeps_the_exact_marginals():
    """With data at one point x0 (D = x0) the 3M SDE step maps x0 + sigma N to exactly
    x0 + sigma_next N: check the spread at the last non-zero sigma, Brownian-tree noise."""
    ac = np.cumprod(1 - E.zero_terminal_snr(E.scaled_linear_betas()))
    sig = torch.tensor(E.edm_schedule(ac, 10)[0], dtype=torch.float32)[:-1]  # stop before 0
    x0 = 0.3
    x = torch.randn(200_000, generator=torch.Generator().manual_seed(2)) * sig[0] + x0
    noise = E.brownian_noise(x, float(sig.min()), float(sig.max()), seed=7)
    out = E.sample_dpmpp_3m_sde(lambda x, s: torch.full_like(x, x0), x, sig, 1.0, noise=noise)
    # seeded, so deterministic: the sampling error of these 200,000 draws is measured 0.21%
    # (std; 1/sqrt(2n) = 0.16% expected) and 4.6e-5 (mean; 7.9e-4 expected); bounds 3x
    assert float((out - x0).std()) == pytest.approx(float(sig[-1]), rel=6e-3)
    assert float((out - x0).mean()) == pytest.approx(0, abs=1.4e-4)
    again = E.sample_dpmpp_3m_sde(
        lambda x, s: torch.full_like(x, x0),
        x,
        sig,
        1.0,
        noise=E.brownian_noise(x, float(sig.min()), float(sig.max()), seed=7),
    )
    assert torch.equal(out, again)  # one seed, one path
