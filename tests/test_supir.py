"""SUPIR: key layout of the SUPIR checkpoint (derived from upstream's classes, full size, meta
device), loading, the sampler and the whole pipeline against upstream's recorded stages on
seeded stand-in weights (tests/reference/supir_upstream.py, tests/data/upstream/README.md)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from carbench.methods.nets.supir_net import GLVControl, SupirUNet, UNetConfig  # noqa: E402
from tests.reference.standin import fill_standin, layout_digest  # noqa: E402

DATA = Path(__file__).parent / "data"
REF = DATA / "upstream" / "supir.npz"
GAIN = 0.5
TINY = UNetConfig(
    model_channels=32,
    transformer_depth=(1, 1, 1),
    num_head_channels=16,
    context_dim=64,
    adm_in_channels=80,
)
TINY_VAE = dict(
    act_fn="silu",
    block_out_channels=[32] * 4,
    down_block_types=["DownEncoderBlock2D"] * 4,
    in_channels=3,
    latent_channels=4,
    layers_per_block=1,
    norm_num_groups=32,
    out_channels=3,
    up_block_types=["UpDecoderBlock2D"] * 4,
)


def _layout() -> dict:
    with gzip.open(DATA / "supir_ckpt_keys.json.gz", "rt") as f:
        return json.load(f)


def _shapes(prefix: str, module) -> dict:
    return {prefix + k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.slow
def test_supir_checkpoint_layout_full_size():
    """carbench's GLVControl + connector UNet + denoise encoder have exactly the names and
    shapes of upstream's modules (1034 SUPIR keys, 1,332,339,912 parameters; SDXL UNet 1680)."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    from carbench.methods.sd import model as sd_model
    from carbench.methods.supir import SDXL_VAE_CONFIG
    from carbench.methods.torch_utils import strict_load

    lay = _layout()
    with torch.device("meta"):
        control, unet = GLVControl(), SupirUNet()
        vae = sd_model.build_vae(SDXL_VAE_CONFIG)
    mine = {**_shapes("model.control_model.", control), **_shapes("model.diffusion_model.", unet)}
    want = {**lay["supir_ckpt"], **lay["sdxl_unet"]}
    denoise = {k: v for k, v in want.items() if ".denoise_encoder." in k}
    assert len(lay["supir_ckpt"]) == 1034
    assert sum(int(np.prod(s)) for s in lay["supir_ckpt"].values()) == 1_332_339_912
    assert {k: v for k, v in want.items() if k not in denoise} == mine
    # the denoise encoder converts to diffusers' VAE encoder and loads strictly
    ldm = {
        k.replace(".denoise_encoder.", ".encoder."): torch.empty(s, device="meta")
        for k, s in denoise.items()
    }
    enc = convert_ldm_vae_checkpoint(ldm, SDXL_VAE_CONFIG)
    strict_load(vae.encoder, {k[8:]: v for k, v in enc.items() if k.startswith("encoder.")}, "x")


class _Params:
    """Named zero tensors of a state-dict layout (``name:[shape]`` lines), for fill_standin."""

    def __init__(self, lines) -> None:
        self.p = {}
        for line in lines:
            name, _, shape = str(line).partition(":")
            self.p[name] = torch.zeros(json.loads(shape))

    def named_parameters(self):
        return self.p.items()


def _ref():
    return np.load(REF)


def _tiny_supir(ref, **options):
    """The adapter on the tiny config with the same stand-in weights as upstream's run."""
    from carbench.methods.supir import Supir, load_parts

    control, unet = GLVControl(TINY), SupirUNet(TINY)
    assert layout_digest(control) == str(ref["control_layout"])
    assert layout_digest(unet) == str(ref["unet_layout"])
    fill_standin(control, 41, GAIN)
    fill_standin(unet, 42, GAIN)
    vae = _Params(ref["vae_keys"])
    fill_standin(vae, 43, GAIN)
    enc = _Params([k[len("denoise_encoder.") :] for k in ref["vae_keys"] if "denoise_" in k])
    fill_standin(enc, 44, GAIN)
    vae.p.update({"denoise_encoder." + k: v for k, v in enc.p.items()})
    sdxl = {
        "model.diffusion_model." + k: v for k, v in unet.state_dict().items() if "project" not in k
    }
    sdxl.update({"first_stage_model." + k: v for k, v in vae.p.items() if "denoise" not in k})
    ckpt = {"model.control_model." + k: v for k, v in control.state_dict().items()}
    ckpt.update(
        {"model.diffusion_model." + k: v for k, v in unet.state_dict().items() if "project" in k}
    )
    ckpt.update({"first_stage_model." + k: v for k, v in vae.p.items() if "denoise" in k})
    parts = load_parts(sdxl, ckpt, "stand-in", TINY, TINY_VAE, "none")
    m = Supir(**{"steps": "4", **options})
    m.set_components(**parts)
    conds = {}
    for side in ("c", "uc"):
        conds[side] = {k: torch.from_numpy(ref[f"{side}_{k}"]) for k in ("crossattn", "vector")}
    pos = m.a_prompt
    m.text = lambda text: conds["c" if text == pos else "uc"]
    return m


def test_supir_stages_match_upstream():
    """Stage by stage. Bounds: about 2.5-3x the largest max difference measured (on the
    recording machine / here): z_lq 1e-7 / 1.4e-7, x_stage1 1.7e-5 / 1.4e-5 (diffusers' vs
    sgm's VAE decoder attention, fp32 rounding), z_center 2e-6 / 2.3e-6, output 1.3e-6 /
    1.6e-6."""
    ref = _ref()
    m = _tiny_supir(ref)
    x = torch.from_numpy(ref["x"])
    with torch.no_grad():
        z_lq, x_stage1 = m.encode_lq(x)
        # fp32 rounding of the same encoder: measured 1.4e-7
        np.testing.assert_allclose(z_lq.numpy(), ref["z_lq"], rtol=0, atol=4e-7)
        # diffusers' decoder attention vs sgm's (fp32, other kernel): measured 1.7e-5
        np.testing.assert_allclose(x_stage1.numpy(), ref["x_stage1"], rtol=0, atol=5e-5)
        z_c = m.encode_center(x_stage1, torch.Generator().manual_seed(1234))
        # the decoder's difference through the encoder again: measured 2.3e-6
        np.testing.assert_allclose(z_c.numpy(), ref["z_center"], rtol=0, atol=6e-6)
        out = m.restore_tensor(x)
    # 4 sampler steps and the decoder on those inputs (fp32): measured 1.6e-6
    np.testing.assert_allclose(out.numpy(), ref["out"], rtol=0, atol=4e-6)


def test_supir_tiled_sampler_matches_upstream():
    """TiledRestoreEDMSampler (tile 4, stride 2 on the 8x8 latent), restoration guidance
    s_stage1 = 2, linear s_stage2 from 0.5 (max difference measured 1.6e-5 on the recording
    machine, 1.2e-5 here: the VAE decoder's attention kernel, fp32)."""
    ref = _ref()
    m = _tiny_supir(ref, tile="4", stride="2", stage1="2", linear_stage2="1", stage2_start="0.5")
    with torch.no_grad():
        out = m.restore_tensor(torch.from_numpy(ref["x"]))
    np.testing.assert_allclose(out.numpy(), ref["tiled_out"], rtol=0, atol=4.5e-5)  # 2.8x


def test_missing_weights_name_each_file_source_and_place(tmp_path, monkeypatch):
    from carbench import methods
    from carbench.core.errors import WeightsMissingError

    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path))
    for spec, ckpt in (("supir", "SUPIR-v0Q.ckpt"), ("supir:variant=v0F", "SUPIR-v0F.ckpt")):
        with pytest.raises(WeightsMissingError) as e:
            methods.get(spec).load()
        text = str(e.value)
        assert (
            f"{ckpt}: download it by hand from the Google Drive folder "
            "https://drive.google.com/drive/folders/1yELzm5SvAi9e7kPcO_jPp2XkTs4vK6aR" in text
        )
        assert f"put it at {tmp_path / 'supir' / ckpt}" in text
        sdxl = "sd_xl_base_1.0_0.9vae.safetensors"
        assert (
            f"{sdxl}: get https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/"
            f"resolve/main/{sdxl}" in text
        )
        assert f"put it at {tmp_path / sdxl}" in text


def test_options_defaults_and_id():
    from carbench import methods
    from carbench.core.errors import BenchError

    m = methods.get("supir")
    s = m.sampler
    assert (s.steps, s.cfg, s.cfg_start, s.s_churn, s.s_noise) == (50, 4.0, 1.0, 5.0, 1.01)
    assert (s.restore_cfg, s.control_scale, s.tile, m.seed, m.min_size) == (-1, 1.0, 0, 1234, 1024)
    assert m.color_fix == "Wavelet" and m.auto_dtype("cuda") == "fp16" and m.id == "supir"
    assert m.a_prompt.startswith("Cinematic") and m.n_prompt.endswith("lowres, over-smooth")
    m = methods.get("supir:variant=v0F,steps=20,tile=128")
    assert m.id == "supir:steps=20,tile=128,variant=v0F" and m.sampler.tile == 128
    with pytest.raises(BenchError, match="`variant` of supir takes one of: v0Q, v0F, got 'v1'"):
        methods.get("supir:variant=v1")
    with pytest.raises(BenchError, match="`color_fix` of supir takes one of: Wavelet, AdaIn"):
        methods.get("supir:color_fix=x")


def test_licence_in_weight_registry_and_report_footnote():
    import pandas as pd

    from carbench.methods.supir import Supir
    from carbench.reports.build import provenance_note

    for files in Supir.weights.values():
        assert "non-commercial" in files[0].licence
    row = dict(protocol="p", variant="psnr", implementation="x", carbench="0", degradation="q")
    with_supir = pd.DataFrame([{**row, "method": "supir:steps=20"}, {**row, "method": "jpeg"}])
    assert "Licences: SUPIR weights: SUPIR Software License Agreement, non-commercial" in (
        provenance_note(with_supir)
    )
    assert "Licences" not in provenance_note(pd.DataFrame([{**row, "method": "jpeg"}]))


def test_geometry_is_upstreams():
    from carbench.methods.supir import sampling_size

    # short side to >= 1024, both sides rounded to a multiple of 64
    assert sampling_size(512, 768) == (1024, 1536)
    assert sampling_size(481, 321) == (1536, 1024)  # 481 * 1024 / 321 = 1534.5
    assert sampling_size(1100, 1300) == (1088, 1280)


def test_restore_end_to_end_on_cpu(tmp_path):
    """The adapter's restore() on a tiny stand-in config (geometry, caption file, uint8)."""
    from carbench.methods.base import Sample

    ref = _ref()
    (tmp_path / "img1.txt").write_text("a photo. ")
    m = _tiny_supir(ref, min_size="64", captions=str(tmp_path), steps="2")
    seen = []
    text = m.text
    m.text = lambda t: seen.append(t) or text(t)
    img = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    out = m.restore(Sample("img1", img, tmp_path / "x.jpg", "jpeg-q10"))
    assert out.shape == (40, 50, 3) and out.dtype == np.uint8
    assert seen[0] == "a photo." + m.a_prompt  # joined as upstream joins caption and a_prompt


def test_sampler_schedule_and_steps_match_upstream():
    """LegacyDDPMDiscretization(50), the denoiser's 1000 sigmas, and single restoration-guided
    Euler steps (restore_cfg 2, gamma 0.1, LinearCFG 1 -> 4) at next sigmas around 0.05."""
    from carbench.methods.sd import supir_sampler as S

    ref = _ref()
    np.testing.assert_array_equal(S.sampling_sigmas(50).numpy(), ref["sigmas50"])
    np.testing.assert_array_equal(S.training_sigmas().numpy(), ref["train_sigmas"])
    opts = S.SamplerOptions(restore_cfg=2.0)
    t = {k: torch.from_numpy(ref[f"step_{k}"]) for k in ("x", "center", "eps", "kc", "ku")}

    def denoise_cfg(x, sigma, cs, win):
        return S.linear_cfg(0.5 * x + cs * t["ku"], 0.5 * x + cs * t["kc"], sigma, opts)

    for (s, n), want in zip(ref["step_pairs"], ref["step_out"], strict=True):
        s, n = torch.tensor(s), torch.tensor(n)
        got = S._step(denoise_cfg, t["x"], s, n, 0.1, t["eps"], t["center"], 0.7, None, opts)
        # same fp32 arithmetic: measured 0.0 on values up to 8.6 (2 ulps there: 2e-6)
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=2e-6)


def test_text_conditioning_matches_upstream():
    """Against sgm's embedders on test.py's prompts and one with '!' (OpenCLIP id 0): the
    OpenCLIP bigG tower (penultimate layer + pooled projection, loaded from OpenCLIP names
    through the converter), CLIP ViT-L (hidden layer 11; upstream tokenises with the Hugging
    Face tokenizer, carbench with OpenCLIP's BPE padded with <|endoftext|>) and the sizes."""
    from transformers import CLIPTextModel

    from carbench.methods.supir import A_PROMPT, CLIP_G_PREFIX, CLIP_L_PREFIX, N_PROMPT, load_text

    ref = _ref()
    g = _Params(ref["clip_g_keys"])
    fill_standin(g, 45, 1.0)
    cfg_l = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=12, num_attention_heads=2)
    cfg_l.update(vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu")
    cfg_g = dict(hidden_size=32, intermediate_size=128, num_hidden_layers=3, num_attention_heads=2)
    cfg_g.update(vocab_size=49408, projection_dim=16, hidden_act="gelu", eos_token_id=49407)
    from transformers import CLIPTextConfig

    clip_l = CLIPTextModel(CLIPTextConfig(**cfg_l))
    fill_standin(clip_l, 46, 1.0)
    sd = {CLIP_G_PREFIX + k: v for k, v in g.p.items()}
    sd.update(
        {
            CLIP_L_PREFIX + "text_model." + k.removeprefix("text_model."): v
            for k, v in clip_l.state_dict().items()
        }
    )
    sd[CLIP_L_PREFIX + "text_model.embeddings.position_ids"] = torch.arange(77)[None]
    text = load_text(sd, "stand-in", (cfg_l, cfg_g), size_dim=8)
    assert list(ref["prompts"][:2]) == [A_PROMPT, N_PROMPT]
    for i, prompt in enumerate(ref["prompts"]):
        with torch.no_grad():
            c = text(str(prompt))
        # transformers' / OpenCLIP's attention kernels vs upstream's calls (fp32): measured
        # max 1.7e-6 (penultimate), 1.6e-6 (pooled), 3.8e-6 (CLIP-L hidden, values to 12)
        g_hidden, g_pooled = c["crossattn"][0, :, 32:], c["vector"][0, :16]
        np.testing.assert_allclose(g_hidden, ref["clip_g_penultimate"][i], rtol=0, atol=5e-6)
        np.testing.assert_allclose(g_pooled, ref["clip_g_pooled"][i], rtol=0, atol=4.5e-6)
        np.testing.assert_array_equal(c["vector"][0, 16:], ref["size_emb"][0])
        l_hidden = c["crossattn"][0, :, :32]
        np.testing.assert_allclose(l_hidden, ref["clip_l_hidden"][i], rtol=0, atol=1e-5)
        assert c["crossattn"].shape == (1, 77, 64)


def test_load_refuses_unknown_supir_keys_and_missing_ones():
    from carbench.core.errors import BenchError
    from carbench.methods.supir import load_parts

    with pytest.raises(BenchError, match="SUPIR checkpoint keys no network has"):
        load_parts({}, {"model.other.weight": torch.zeros(1)}, "x", TINY, TINY_VAE, "none")
    with pytest.raises(BenchError, match=r"x \(unet\)"):
        load_parts({}, {}, "x", TINY, TINY_VAE, "none")


def test_half_precision_path_runs_near_fp32():
    """bf16 weights (the CUDA VAE dtype; here on CPU for every part): casts in place, the
    result within 0.05 of upstream's fp32 reference (bf16's 8-bit mantissa through the whole
    run: measured 0.019 on the recording machine, 0.017 here)."""
    ref = _ref()
    m = _tiny_supir(ref)
    text = m.text
    m.set_components(m.unet, m.control, m.vae, m.denoise_encoder, None, dtype="bf16")
    m.text = text
    assert m.unet.dtype == torch.bfloat16 and next(m.vae.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        out = m.restore_tensor(torch.from_numpy(ref["x"]))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), ref["out"], atol=0.05)


@pytest.mark.slow
def test_full_size_two_file_load_on_meta():
    """The SDXL file's layout plus the SUPIR checkpoint's (both derived from upstream's
    classes) load strictly into every full-size network through ``load_parts`` (meta device:
    names and shapes only)."""
    from carbench.methods.supir import load_parts

    lay = _layout()

    def meta(d: dict) -> dict:
        return {k: torch.empty(s, device="meta") for k, s in d.items()}

    sdxl = meta({**lay["sdxl_unet"], **lay["sdxl_other"]})
    sdxl["conditioner.embedders.0.transformer.text_model.embeddings.position_ids"] = torch.empty(
        1, 77, device="meta"
    )
    with torch.device("meta"):
        parts = load_parts(sdxl, meta(lay["supir_ckpt"]), "full-size layout")
    assert sum(p.numel() for p in parts["unet"].parameters()) == 2_567_463_684 + sum(
        int(np.prod(s)) for k, s in lay["supir_ckpt"].items() if "project_modules" in k
    )
    assert parts["text"].clip_g.config.num_hidden_layers == 32


def test_bench_run_without_weights_stops_before_work(ws, tmp_path, monkeypatch, capsys):
    from tests.conftest import run_cli

    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "weights"))
    code = run_cli("run", "-w", ws, "--methods", "supir", "-g", "jpeg-q10", "--no-progress")
    assert code == 1
    err = capsys.readouterr().err
    assert "SUPIR-v0Q.ckpt: download it by hand from the Google Drive folder https://" in err
    assert "sd_xl_base_1.0_0.9vae.safetensors: get https://huggingface.co/" in err
    assert not (ws / "sets").exists() and not (ws / "results").exists()
