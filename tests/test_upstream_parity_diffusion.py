"""carbench's one-step diffusion pieces (CODiff / OSEDiff) against outputs recorded from the
official code (tests/data/upstream/README.md names repository, commit and command of each)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from carbench import methods
from carbench.methods.sd import color as sd_color
from carbench.methods.sd import model as sd_model
from carbench.methods.sd import tiling as sd_tiling
from conftest import upstream_arrays
from tests.reference import vaehook_upstream as vh
from tests.reference.standin import layout_digest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def hook_ref() -> dict[str, np.ndarray]:
    return upstream_arrays("vaehook.npz")


@pytest.fixture(scope="module")
def small_vae(hook_ref):
    vae = vh.build_vae()
    assert layout_digest(vae) == str(hook_ref["layout"])
    return vae


def _x(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]


def test_vaehook_tiles_as_upstream():
    """Tile boxes of the recorded cases, worked out by hand from upstream's split_tiles: the
    168 x 200 image with tile 64 / pad 32 gives core tiles of ceil(104/2) = 52 -> 64 rows and
    ceil(136/3) = 46 -> 64 columns; the 30 x 36 latent with tile 6 / pad 11 gives cores of
    4 rows and ceil(14/3) = 5 -> 6 columns."""
    assert (sd_tiling.VAEHOOK_PAD_ENCODER, sd_tiling.VAEHOOK_PAD_DECODER) == (32, 11)
    enc = sd_tiling.vaehook_boxes(168, 200, 64, 32, 1 / 8)
    assert [b[0] for b in enc[:3]] == [(0, 128, 0, 128), (64, 192, 0, 128), (128, 200, 0, 128)]
    assert enc[0][1] == (0, 96 // 8, 0, 96 // 8) and enc[5][1] == (160 // 8, 25, 96 // 8, 21)
    dec = sd_tiling.vaehook_boxes(30, 36, 6, 11, 8)
    assert [b[0] for b in dec[:3]] == [(0, 28, 0, 26), (6, 34, 0, 26), (12, 36, 0, 26)]
    assert [b[1] for b in dec[3:]] == [
        (0, 17 * 8, 15 * 8, 240),
        (17 * 8, 23 * 8, 15 * 8, 240),
        (23 * 8, 288, 15 * 8, 240),
    ]


@pytest.mark.slow  # ~4 s: six encoder tiles of a 168 x 200 crop through a small VAE, twice
def test_vaehook_encoder_matches_upstream(hook_ref, small_vae):
    """Upstream's VAEHook (CODiff @86e2f04) vs ``sd_tiling.vaehook_tiled`` on the encoder. The same
    convolutions on the same tiles; the group norm is computed differently (upstream:
    var_mean + batch_norm, carbench: var_mean + explicit formula), so float32 rounding noise
    (measured 3.2e-6 on the recording CPU, 3.9e-6 here) is allowed (1.1e-5); a changed padding
    or statistic moves values by > 0.05."""
    enc = small_vae.encoder
    x = _x(hook_ref["image"])
    m = methods.get("codiff")
    with torch.no_grad():  # the adapter's path and padding, upstream's tile size of the record
        got = m._vae_part(enc, x, vh.ENC_TILE, m.vae_encoder_tile[1], 1 / 8)[0].numpy()
        pooled = sd_tiling.tiled_vae(enc, x, vh.ENC_TILE, 1 / 8, 32, module=enc)[0].numpy()
    ref = hook_ref["enc_tiled"]
    assert float(ref.std()) > 0.1
    assert np.abs(got - ref).max() < 1.1e-5
    assert np.abs(pooled - ref).max() > 0.05  # carbench's pooled scheme is another scheme


@pytest.mark.slow  # ~3 s: six decoder tiles to a 240 x 288 image
def test_vaehook_decoder_matches_upstream(hook_ref, small_vae):
    """Decoder side (padding 11, no blending). The reference is stored as float16 (size), so
    the tolerance is float16's rounding of values of magnitude ~1-4 (half a step: <= 2e-3;
    measured 9.8e-4) plus fp32 noise."""
    dec = small_vae.decoder
    z = torch.from_numpy(hook_ref["latent"])
    m = methods.get("osediff:tagger=none")
    with torch.no_grad():
        got = m._vae_part(dec, z, vh.DEC_TILE, m.vae_decoder_tile[1], 8)[0].numpy()
    ref = hook_ref["dec_tiled"].astype(np.float32)
    assert float(ref.std()) > 0.1
    assert np.abs(got - ref).max() < 2.5e-3


@pytest.mark.slow  # builds the small VAE (diffusers import: ~20 s on a loaded machine)
def test_vaehook_untiled_below_threshold(small_vae):
    """Upstream tiles only above tile + 2 pad: at or below it the plain forward runs."""
    enc = small_vae.encoder
    x = torch.zeros(1, 3, 32, 40)
    with torch.no_grad():
        assert torch.equal(sd_tiling.vaehook_tiled(enc, x, 8, 16, 1 / 8, enc), enc(x))


def test_vae_tiling_option_and_id():
    """The upstream scheme is the default and hidden in the id; pooled is named."""
    assert methods.get("codiff").vae_tiling == "hook"
    assert methods.get("codiff").id == "codiff"
    assert methods.get("codiff:vae_tiling=pooled").id == "codiff:vae_tiling=pooled"
    assert methods.get("osediff:vae_tiling=pooled,tagger=none").vae_tiling == "pooled"
    from carbench.core.errors import BenchError

    with pytest.raises(BenchError, match="vae_tiling"):
        methods.get("codiff:vae_tiling=blend")


# ------------------------------------------------------------------ precision (--dtype auto)
@pytest.mark.parametrize(
    ("spec", "device", "want"),
    [
        ("codiff", "cuda", "fp16"),  # main_test_codiff.py: --mixed_precision fp16
        ("codiff", "cuda:1", "fp16"),
        ("codiff", "cpu", "fp32"),
        ("osediff:tagger=none", "cuda", "fp16"),  # test_osediff.py: --mixed_precision fp16
        ("osediff:tagger=none", "mps", "fp32"),
        ("diffbir:version=v2.1", "cuda", "fp16"),  # inference.py: --precision fp16
        ("fbcnn", "cuda", "fp32"),
    ],
)
def test_dtype_auto_is_the_official_precision(spec, device, want):
    m = methods.get(spec)
    assert m.resolve_dtype(device, "auto") == want
    assert m.resolve_dtype(device, "bf16") == "bf16"  # an explicit dtype is kept


def test_rows_record_the_resolved_dtype(tmp_path):
    """A run with --dtype auto loads each method in its resolved precision and every row
    names it (here a stand-in whose official precision is bf16 everywhere)."""
    from PIL import Image

    from carbench.bench.datasets import resolve
    from carbench.bench.metrics.registry import parse_metrics
    from carbench.bench.metrics.runner import MetricRunner
    from carbench.bench.protocols import get_protocol
    from carbench.bench.run import run
    from carbench.bench.store import ResultStore
    from carbench.core.workspace import Workspace
    from carbench.degradations import expand_all
    from tests.fake_methods import Flaky

    class Half(Flaky):
        def auto_dtype(self, device: str) -> str:
            return "bf16"

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (16, 24, 3), dtype=np.uint8)).save(folder / "a.png")
    ws = tmp_path / "ws"
    specs, _ = parse_metrics("psnr")
    runner = MetricRunner(specs, "cpu", cache_dir=ws / "cache" / "metrics")
    half = Half()
    try:
        run(
            Workspace(ws),
            [resolve(str(folder), ws)],
            get_protocol("fbcnn"),
            expand_all(["jpeg-q10"]),
            [half, methods.get("jpeg")],
            runner,
            progress=False,
        )
    finally:
        runner.close()
    df = ResultStore(ws / "results").load()
    assert half.dtype == "bf16"
    assert dict(zip(df.method, df.dtype, strict=True)) == {"flaky": "bf16", "jpeg": "fp32"}


# ------------------------------------------------------------------ OSEDiff input size
def test_osediff_enlarges_small_inputs_as_upstream():
    """test_osediff.py (upscale 1, process_size 512): 100 x 130 (h x w) -> scale 5.12 ->
    int(665.6) x 512 = 665 wide, then Lanczos to multiples of 8: 664 x 512; 600 x 520 is
    left alone except the width to 520 (already a multiple of 8) -> unchanged; 700 x 300 ->
    scale 512/300 -> 1194 x 512 (int(1194.67)) -> 1192 x 512."""
    from PIL import Image

    from carbench.methods.osediff import upstream_resize

    rng = np.random.default_rng(1)
    small = rng.integers(0, 255, (100, 130, 3), dtype=np.uint8)
    assert upstream_resize(small).shape == (512, 664, 3)
    want = (
        Image.fromarray(small).resize((665, 512), Image.BICUBIC).resize((664, 512), Image.LANCZOS)
    )
    assert np.array_equal(upstream_resize(small), np.asarray(want))
    big = rng.integers(0, 255, (600, 520, 3), dtype=np.uint8)
    assert np.array_equal(upstream_resize(big), big)
    assert upstream_resize(np.zeros((300, 700, 3), np.uint8)).shape == (512, 1192, 3)


@pytest.mark.parametrize(("opts", "shape"), [("", (512, 664, 3)), (",keep_size=1", (100, 130, 3))])
def test_osediff_output_size_and_id(opts, shape, monkeypatch):
    """Default as upstream: the output keeps the enlarged size; keep_size=1 keeps the input's.
    Both are in the id. The pipeline is replaced by the identity (nofix) so only the sizing
    is tested."""
    m = methods.get(f"osediff:tagger=none,colorfix=nofix{opts}")
    assert m.id == f"osediff:colorfix=nofix,keep_size={'1' if opts else '0'}"
    monkeypatch.setattr(m, "restore_tensor", lambda x: x)
    img = np.random.default_rng(2).integers(0, 255, (100, 130, 3), dtype=np.uint8)
    from carbench.methods.base import Sample

    out = m.restore(Sample("a", img, None, "jpeg-q10", {}))
    assert out.shape == shape
    if opts:
        # identity pipeline: x / 255 * 255 truncated twice (ToPILImage) loses at most 1 level
        assert np.abs(out.astype(int) - img).max() <= 1


# ------------------------------------------------------------------ colour fixes, one step
@pytest.fixture(scope="module")
def onestep_ref() -> dict[str, np.ndarray]:
    return upstream_arrays("onestep.npz")


def _t01(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]


@pytest.mark.parametrize("fix", ["adain", "wavelet"])
def test_colour_fix_matches_upstream(fix, onestep_ref):
    """my_utils/wavelet_color_fix.py (CODiff @86e2f04 = OSEDiff @fcc4f09) on PIL images vs
    carbench's fixes (methods.sd.color) + ToPILImage-style truncation: the same float32
    operations in the same order, so the uint8 results are equal (measured: no differing value)."""
    out, ref = _t01(onestep_ref["restored"]), _t01(onestep_ref["lq"])
    fn = sd_color.adain_color_fix if fix == "adain" else sd_color.wavelet_color_fix
    got = sd_color.to_uint8_truncate(fn(out, ref))
    want = onestep_ref[fix]
    assert np.abs(want.astype(int) - onestep_ref["restored"]).mean() > 10  # the fix acts
    assert np.array_equal(got, want)
    # before the clamp and truncation (upstream's float result): rounding noise only, measured
    # 0; an eps of 1.1e-5 instead of 1e-5 moves it by ~5e-6
    raw = fn(out, ref, clamp=False)
    assert np.abs(raw[0].numpy() - onestep_ref[f"{fix}_float"]).max() < 5e-7


@pytest.mark.parametrize("t", [499, 999])
def test_one_step_x0_matches_upstream_scheduler(t, onestep_ref):
    """DDPMScheduler.step at CODiff's t = 499 / OSEDiff's t = 999 (SD-2.1-base schedule) vs
    sd_model.one_step_x0 and the adapters' timesteps: float32, another operation order
    (measured <= 1.2e-10); t = 498 instead of 499 moves x0 by ~1e-2."""
    from tests.reference.onestep_upstream import latents

    z, eps = latents()
    name = {499: "codiff", 999: "osediff:tagger=none"}[t]
    assert methods.get(name).timestep == t
    got = sd_model.one_step_x0(eps, z, methods.get(name).timestep).numpy()
    assert np.abs(got - onestep_ref[f"x0_t{t}"]).max() < 1e-6


@pytest.mark.slow  # builds a small UNet and VAE (diffusers import ~20 s on a loaded machine)
def test_codiff_chain_matches_diffusers_calls(small_vae, onestep_ref):
    """restore_tensor with latent=mean against the chain upstream's CODiff_test.forward makes
    with diffusers' own calls: vae.encode(...).latent_dist.mean * vae.config.scaling_factor,
    one UNet call at t = 499, DDPMScheduler.step (as recorded above), vae.decode(x0 / scaling)
    clamped. Untiled (below the tile sizes), float32, the same operations: measured equal
    (0.0); a scaling factor changed by 1e-5 moves the image by 1.4e-4."""
    from diffusers import DDPMScheduler

    from tests.reference.onestep_upstream import SCHEDULER_CONFIG
    from tests.reference.standin import fill_standin
    from tests.test_diffusion import TINY_UNET

    unet = sd_model.build_unet(TINY_UNET).eval()
    fill_standin(unet, 31, 0.5)
    cond = torch.randn((1, 6, 1024), generator=torch.Generator().manual_seed(4))
    m = methods.get("codiff:latent=mean")
    m.set_components(unet, small_vae, None)
    m.condition = lambda x01: cond
    x01 = _t01(onestep_ref["lq"])
    with torch.no_grad():
        got = m.restore_tensor(x01)
        z = small_vae.encode(x01 * 2 - 1).latent_dist.mean * small_vae.config.scaling_factor
        eps = unet(z, torch.tensor([499]), encoder_hidden_states=cond).sample
        sched = DDPMScheduler.from_config(SCHEDULER_CONFIG)
        sched.set_timesteps(1)
        sched.timesteps = torch.tensor([499])
        x0 = sched.step(eps, torch.tensor([499]), z, generator=torch.Generator()).prev_sample
        img = small_vae.decode(x0 / small_vae.config.scaling_factor).sample.clamp(-1, 1)
    want = img * 0.5 + 0.5
    assert float(want.std()) > 0.02
    assert (got - want).abs().max().item() < 1e-6
