"""DiffBIR v2 pipeline end to end with tiny components (random, seeded), and its sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from carbench import methods
from carbench.core.errors import BenchError, WeightsMissingError
from carbench.degradations import Jpeg
from carbench.methods.base import Sample
from carbench.methods.diffbir import ZSNR_FILE, SpacedSchedule, space_timesteps
from carbench.methods.nets.ircontrolnet import ControlNet
from carbench.methods.sd import model as sd_model


def test_respacing_matches_guided_diffusion_rule():
    steps = space_timesteps(1000, 50)
    assert len(steps) == 50 and steps[:5] == [0, 20, 41, 61, 82] and steps[-1] == 999
    assert space_timesteps(1000, 1000) == list(range(1000))


def test_full_schedule_is_plain_ddpm():
    ac = sd_model.alphas_cumprod().double().numpy()
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
    with pytest.raises(WeightsMissingError) as e:
        methods.get("diffbir:version=v2.1").load()
    for name in ("DiffBIR_v2.1.pt", "realesrgan_s4_swinir_100k.pth", ZSNR_FILE):
        assert f"{name}: get https://huggingface.co/lxq007/DiffBIR-v2/resolve/main/{name}" in str(
            e.value
        )
    with pytest.raises(BenchError, match="`version` of diffbir takes one of: v2, v2.1, got 'v3'"):
        methods.get("diffbir:version=v3")


def test_version_defaults_are_upstreams():
    v2, v21 = methods.get("diffbir"), methods.get("diffbir:version=v2.1")
    assert (v2.steps, v2.cfg, v2.spec.sampler, v2.pos_prompt) == (50, 4.0, "spaced", "")
    assert (v21.steps, v21.cfg, v21.spec.sampler) == (10, 6.0, "edm_dpm++_3m_sde")
    assert (v21.spec.parameterization, v21.spec.zero_snr, v21.spec.cleaner) == ("v", True, "swinir")
    assert v21.pos_prompt.startswith("Cinematic, High Contrast") and v21.neg_prompt.endswith(
        "jpeg artifacts, deformed, lowres, over-smooth."
    )
    assert methods.get("diffbir:version=v2.1,steps=4,cfg=1").steps == 4
    # README v2 commands: --precision fp32; v2.1: inference.py's default fp16
    assert (v2.auto_dtype("cuda"), v21.auto_dtype("cuda"), v21.auto_dtype("cpu")) == (
        "fp32",
        "fp16",
        "fp32",
    )


def test_v2_without_any_sd_names_both_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.delenv("BENCH_SD21_PATH", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for f in ("v2.pth", "scunet_color_real_psnr.pth"):
        (tmp_path / "diffbir").mkdir(exist_ok=True)
        (tmp_path / "diffbir" / f).write_bytes(b"x")
    with pytest.raises(WeightsMissingError) as e:
        methods.get("diffbir")._stable_diffusion()
    text = str(e.value)
    assert "v2-1_512-ema-pruned.ckpt: get https://huggingface.co/stabilityai/" in text
    assert "\nor, instead:\n  Stable Diffusion 2.1-base not found" in text


class _Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape[-2:]))
        return x * 2


@pytest.mark.parametrize(
    ("version", "size", "seen", "out"),
    [
        # v2.1: short side to 512 first (long side truncated), zero pad to 64, crop back
        ("v2.1", (300, 500), [(512, 896)], (512, 853)),
        ("v2.1", (640, 600), [(640, 640)], (640, 600)),
        # v2: SCUNet on the input as it is, then the short side to 512
        ("v2", (300, 500), [(300, 500)], (512, 853)),
        ("v2", (600, 700), [(600, 700)], (600, 700)),
    ],
)
def test_stage1_geometry(version, size, seen, out):
    m = methods.get(f"diffbir:version={version}")
    m.cleaner = _Recorder()
    cond = m.clean(torch.rand(1, 3, *size) * 0.6)
    assert m.cleaner.shapes == seen and tuple(cond.shape[-2:]) == out
    assert float(cond.max()) > 1.0  # stage-1 output is not clamped (upstream)


@pytest.fixture(scope="module")
def tiny_diffbir():
    from transformers import CLIPTextConfig, CLIPTextModel

    from tests.test_diffusion import TINY_UNET, TINY_VAE

    torch.manual_seed(0)
    unet = sd_model.build_unet(dict(TINY_UNET, norm_num_groups=32, cross_attention_dim=64)).eval()
    vae = sd_model.build_vae(TINY_VAE).eval()
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

    out = {}
    for version in ("v2", "v2.1"):
        m = methods.get(f"diffbir:version={version},steps=3")
        m.device, m.dtype = "cpu", "fp32"
        m.set_components(unet, vae, control, None, text, Tok())
        out[version] = m
    return out


@pytest.mark.slow
@pytest.mark.parametrize("version", ["v2", "v2.1"])
def test_pipeline_end_to_end(tiny_diffbir, coffee, version):
    m = tiny_diffbir[version]
    img = coffee[:40, :60]
    s = Sample("x", Jpeg(10).apply(img).decoded, None, "jpeg-q10", {"qf": 10})
    a = m.restore(s)
    assert a.shape == img.shape and a.dtype == np.uint8
    assert np.array_equal(a, m.restore(s))  # seeded: deterministic
    m.seed = 5
    try:
        assert not np.array_equal(a, m.restore(s))
    finally:
        m.seed = 231


def test_v21_reads_stable_diffusion_from_its_single_file(tmp_path, monkeypatch):
    """The zero-terminal-SNR SD comes from sd2.1-base-zsnr-laionaes5.ckpt (LDM layout), here
    a tiny one written by the test's own LDM mapping."""
    from carbench.methods.sd import model as sd_model
    from carbench.methods.sd import single_file as sd_single_file
    from tests.test_diffusion import TINY_UNET, TINY_VAE
    from tests.test_sd_single_file import TINY_TEXT, _ldm_file

    torch.manual_seed(0)
    unet, vae = sd_model.build_unet(TINY_UNET), sd_model.build_vae(TINY_VAE)
    text = sd_single_file.build_text_encoder(TINY_TEXT)
    path, _ = _ldm_file(unet, vae, text, tmp_path, TINY_UNET, TINY_VAE)
    folder = tmp_path / "w" / "diffbir"
    folder.mkdir(parents=True)
    path.rename(folder / ZSNR_FILE)
    for f in ("DiffBIR_v2.1.pt", "realesrgan_s4_swinir_100k.pth"):
        (folder / f).write_bytes(b"x")
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setattr(sd_model, "UNET_CONFIG", TINY_UNET)
    monkeypatch.setattr(sd_model, "VAE_CONFIG", TINY_VAE)
    monkeypatch.setattr(sd_single_file, "TEXT_CONFIG", TINY_TEXT)
    sd, paths = methods.get("diffbir:version=v2.1")._stable_diffusion()
    assert paths == [folder / ZSNR_FILE]
    assert isinstance(sd["tokenizer"], sd_single_file.OpenClipTokenizer)
    for k, v in unet.state_dict().items():
        assert torch.equal(sd["unet"].state_dict()[k], v)


# Upstream's own samplers (XPixelGroup/DiffBIR @3f8b530: EDMSampler "edm_dpm++_3m_sde" on the
# zero-SNR v-prediction schedule, 10 steps, cfg 6; SpacedSampler on the eps schedule, 4 steps,
# cfg 4) on a toy model, recorded by tests/reference/diffbir_toy_upstream.py. Bounds: float32
# loops doing the same steps in another operation order; measured max |diff| 2.1e-5 (v2.1,
# values up to 2.2) and 1.5e-5 (v2, values up to 34).
TOY_ATOL = {"v2.1": 5e-5, "v2": 4e-5}


@pytest.mark.parametrize("version", ["v2.1", "v2"])
def test_sampler_matches_upstream_on_a_toy_model(version):
    from tests.conftest import upstream_arrays
    from tests.reference.diffbir_toy_upstream import A_COND, A_UNCOND, SHAPE

    ref = upstream_arrays("diffbir_toy.npz")
    key = version.replace(".", "")
    m = methods.get(f"diffbir:version={version},steps={int(ref[key + '_steps'])}")
    m._model = lambda x, t, c_txt, c_img: torch.tanh(x) * c_txt + 1e-3 * t
    g = torch.Generator().manual_seed(231)
    with torch.no_grad():
        z = m._sample(torch.tensor(A_COND), torch.tensor(A_UNCOND), torch.zeros(SHAPE), g)
    np.testing.assert_allclose(z.numpy(), ref[key + "_z"], rtol=0, atol=TOY_ATOL[version])
