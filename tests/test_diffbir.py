"""DiffBIR v2 pipeline end to end with tiny components (random, seeded), and its sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import methods
from bench.errors import BenchError, WeightsMissingError
from degradations import Jpeg
from methods import sd_core
from methods.base import Sample
from methods.diffbir import SpacedSchedule, space_timesteps
from methods.diffbir_controlnet import ControlNet


def test_respacing_matches_guided_diffusion_rule():
    steps = space_timesteps(1000, 50)
    assert len(steps) == 50 and steps[:5] == [0, 20, 41, 61, 82] and steps[-1] == 999
    assert space_timesteps(1000, 1000) == list(range(1000))


def test_full_schedule_is_plain_ddpm():
    ac = sd_core.alphas_cumprod().double().numpy()
    s = SpacedSchedule(ac, 1000)
    t = 500
    beta = 1 - ac[t] / ac[t - 1]
    assert s.coef1[t] == pytest.approx(beta * np.sqrt(ac[t - 1]) / (1 - ac[t]), rel=1e-12)
    assert s.var[t] == pytest.approx(beta * (1 - ac[t - 1]) / (1 - ac[t]), rel=1e-12)


def test_api_networks_and_versions(tmp_path, monkeypatch):
    m = methods.get("diffbir")
    with torch.device("meta"):
        assert sum(p.numel() for p in m.build_network("ircontrolnet").parameters()) == 363153280
    with pytest.raises(BenchError, match="diffbir networks: ircontrolnet, stage1-swinir"):
        m.build_network("unet")
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsMissingError, match=r"v2.pth: get https://huggingface.co/lxq007"):
        m.load()
    with pytest.raises(BenchError, match="diffbir v2.1 .* is not implemented in carbench yet"):
        methods.get("diffbir:version=v2.1").load()


@pytest.fixture(scope="module")
def tiny_diffbir():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=[32, 64],
        down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
        layers_per_block=1,
        attention_head_dim=8,
        norm_num_groups=32,
        cross_attention_dim=64,
        sample_size=16,
        use_linear_projection=True,
    ).eval()
    vae = AutoencoderKL(
        block_out_channels=[8, 8, 16, 16],
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        layers_per_block=1,
        norm_num_groups=4,
        latent_channels=4,
    ).eval()
    control = ControlNet(
        model_channels=32,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(1,),
        num_head_channels=8,
        context_dim=64,
    ).eval()
    with torch.no_grad():  # zero convs start at zero: make them act
        for p in control.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.02)
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=100,
            hidden_size=64,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            max_position_embeddings=77,
        )
    ).eval()

    class Tok:
        model_max_length = 77

        def __call__(self, prompt, **kw):
            ids = [1] + [2 + (ord(c) % 90) for c in prompt][:75] + [0]
            ids += [0] * (77 - len(ids))

            class R:
                input_ids = torch.tensor([ids])

            return R()

    m = methods.get("diffbir:steps=3")
    m.device, m.dtype = "cpu", "fp32"
    m.set_components(unet, vae, control, None, text, Tok())
    return m


def test_pipeline_end_to_end(tiny_diffbir, coffee):
    img = coffee[:40, :60]
    s = Sample("x", Jpeg(10).apply(img).decoded, None, "jpeg-q10", {"qf": 10})
    a = tiny_diffbir.restore(s)
    assert a.shape == img.shape and a.dtype == np.uint8
    assert np.array_equal(a, tiny_diffbir.restore(s))  # seeded: deterministic
    tiny_diffbir.seed = 5
    try:
        assert not np.array_equal(a, tiny_diffbir.restore(s))
    finally:
        tiny_diffbir.seed = 231
