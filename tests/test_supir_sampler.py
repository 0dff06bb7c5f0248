"""SUPIR's restoration-guided EDM sampler at its default 50 steps against upstream's own
``RestoreEDMSampler`` / ``TiledRestoreEDMSampler`` (tests/data/upstream/supir_edm50.npz,
recorded by tests/reference/supir_sampler_upstream.py with a closed-form toy network): the
schedule, the churn gamma ``min(s_churn / steps, sqrt 2 - 1)`` at 50 steps (0.1, below the cap),
the churn noise order, linear CFG and the denoiser's sigma snapping over a whole run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from carbench.methods.sd import supir_sampler as S  # noqa: E402
from tests.conftest import upstream_arrays  # noqa: E402
from tests.reference.supir_sampler_upstream import SEED, VECTOR, toy_eps  # noqa: E402


def _run(opts: S.SamplerOptions, ref: dict) -> np.ndarray:
    lq = torch.from_numpy(ref["lq"])
    vector = torch.tensor([VECTOR["uc"], VECTOR["c"]])  # batch [uncond; cond], as upstream

    def model(x_in, idx, control_scale, window):
        control = lq if window is None else lq[..., window[0] : window[1], window[2] : window[3]]
        return toy_eps(x_in, idx, torch.cat([control, control]), vector, control_scale)

    with torch.no_grad():
        out = S.sample(
            S.guided_denoiser(model, opts),
            torch.from_numpy(ref["noise"]),
            torch.from_numpy(ref["center"]),
            opts,
            torch.Generator().manual_seed(SEED),
        )
    return out.numpy()


def test_default_50_step_run_matches_upstream():
    """``SamplerOptions()``: test.py's defaults (50 steps, churn 5, noise 1.01, linear CFG 1 -> 4,
    no restoration guidance; the adapter's are checked equal in test_supir.py), untiled."""
    ref = upstream_arrays("supir_edm50.npz")
    opts = S.SamplerOptions()
    assert opts.steps == 50 and len(ref["default_gamma"]) == 50
    assert set(ref["default_gamma"].tolist()) == {0.1}  # upstream's gamma: 5 / 50, not capped
    np.testing.assert_array_equal(S.sampling_sigmas(50).numpy(), ref["sigmas50"])
    got = _run(opts, ref)
    # fp32 rounding of the same arithmetic; measured max |diff| 0.0 on this machine and the
    # recording one: 1e-5 allows other CPUs' tanh/cos (a gamma from 51 steps moves it by 1e-2)
    np.testing.assert_allclose(got, ref["default_out"], rtol=0, atol=1e-5)


def test_tiled_50_step_run_matches_upstream():
    """Tiled (tile 4, stride 3 on an 8x10 latent: border tiles flush with the edge), restoration
    guidance s_stage1 2, linear s_stage2 from 0.5."""
    ref = upstream_arrays("supir_edm50.npz")
    opts = dataclasses.replace(
        S.SamplerOptions(),
        tile=4,
        stride=3,
        restore_cfg=2.0,
        linear_control_scale=True,
        control_scale_start=0.5,
    )
    got = _run(opts, ref)
    # same arithmetic per tile; measured max |diff| 0.0; 1e-5 as above
    np.testing.assert_allclose(got, ref["tiled_out"], rtol=0, atol=1e-5)
