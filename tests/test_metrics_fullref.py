"""PSNR / SSIM / PSNR-B against published per-image values, scikit-image and hand calculations."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from carbench.bench.metrics import fullref, fullref_torch
from carbench.bench.metrics.registry import parse_metric, parse_metrics
from carbench.bench.metrics.scorers import build_scorer
from carbench.degradations import Jpeg

FBCNN_DIR = "published/FBCNN/LIVE1_color_fbcnn_color/10"


def _log_rows(path):
    pat = re.compile(r"(\w+)\.bmp - PSNR: ([\d.]+) dB; SSIM: ([\d.]+); PSNRB: ([\d.]+) dB")
    return [m.groups() for m in map(pat.search, path.read_text().splitlines()) if m]


def test_fbcnn_published_log_every_digit(data_root):
    """The authors' per-image log (RGB PSNR, mean-RGB SSIM, PSNR-B with Y blocking term)."""
    folder = data_root / FBCNN_DIR
    rows = _log_rows(folder / "LIVE1_color_fbcnn_color_qf_10.log")
    assert len(rows) == 5
    for name, p, s, pb in rows:
        out = np.asarray(Image.open(folder / f"{name}.png"))
        gt = np.asarray(Image.open(data_root / "LIVE1" / f"{name}.png"))
        assert f"{fullref.psnr(out, gt):.2f}" == p, name
        assert f"{fullref.ssim(out, gt):.3f}" == s, name
        assert f"{fullref.psnrb(out, gt):.2f}" == pb, name


def test_psnr_equals_scikit_image(coffee):
    out = Jpeg(10).apply(coffee).decoded
    assert fullref.psnr(out, coffee) == pytest.approx(
        peak_signal_noise_ratio(coffee, out, data_range=255), abs=1e-10
    )


@pytest.mark.parametrize("gray", [False, True])
def test_ssim_gauss11_equals_scikit_image(coffee, gray):
    ref = coffee[..., 1] if gray else coffee
    out = Jpeg(10).apply(ref).decoded
    sk = structural_similarity(
        ref,
        out,
        data_range=255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        channel_axis=None if gray else 2,
    )
    assert fullref.ssim(out, ref) == pytest.approx(sk, abs=1e-9)


def test_box8_ssim_by_hand():
    a = np.full((16, 24), 100, np.uint8)
    b = np.full((16, 24), 120, np.uint8)
    x, y = 100 / 255, 120 / 255
    want = (2 * x * y + 0.01**2) / (x * x + y * y + 0.01**2)  # no variance: luminance term only
    assert fullref.ssim(a, b, "box8") == pytest.approx(want, abs=1e-12)
    assert fullref.ssim(a, a, "box8") == pytest.approx(1.0)


def test_box8_higher_than_gauss_on_jpeg(astronaut):
    """QGAC-style box SSIM is systematically higher on JPEG data (conventions B4)."""
    out = Jpeg(10).apply(astronaut).decoded
    assert fullref.ssim(out, astronaut, "box8") > fullref.ssim(out, astronaut, "gauss11")


def test_psnrb_block_edge_by_hand():
    """16x16: left 8 columns 100, right 8 columns 120, compared with itself.

    Only the 16 pairs across column 7|8 differ, by 20: D_B = 16*400 / (16+16) = 200,
    D_Bc = 0, eta = log2(8)/log2(16) = 0.75, BEF = 150, PSNR-B = 10 log10(255^2/150).
    """
    img = np.full((16, 16), 100, np.uint8)
    img[:, 8:] = 120
    assert fullref.blocking_effect_factor(img.astype(float)) == pytest.approx(150.0)
    assert fullref.psnrb(img, img) == pytest.approx(10 * math.log10(255**2 / 150), abs=1e-12)
    assert math.isinf(fullref.psnr(img, img))


def test_psnrb_counts_float_vs_integer():
    """16x20: float counts give H*(20/8-1) = 24 horizontal boundary pairs, integer ones 16;
    vertical ones W*(16/8-1) = 20 either way."""
    img = np.zeros((16, 20))
    img[:, 8:16] = 10.0  # boundaries at columns 7|8 and 15|16 both jump by 10
    s_b = 2 * 16 * 100.0  # horizontal pairs only; no vertical edges, no other differences
    f_db = s_b / (24 + 20)
    i_db = s_b / (16 + 20)
    eta = 3 / math.log2(16)
    assert fullref.blocking_effect_factor(img) == pytest.approx(eta * f_db)
    assert fullref.blocking_effect_factor(img, integer_counts=True) == pytest.approx(eta * i_db)


def test_psnrb_variants_agree_on_gray_multiple_of_8(camera):
    out = Jpeg(10).apply(camera).decoded
    assert fullref.psnrb(out, camera, "fbcnn") == pytest.approx(
        fullref.psnrb(out, camera, "swinir"), abs=1e-9
    )


def test_psnrb_not_above_psnr(astronaut):
    out = Jpeg(5).apply(astronaut).decoded
    assert fullref.psnrb(out, astronaut) < fullref.psnr(out, astronaut)


@pytest.mark.parametrize("metric", ["psnr", "ssim", "ssim:box8", "psnrb", "psnrb:swinir"])
def test_torch_implementation_agrees(chelsea, metric):
    ref = chelsea
    out = Jpeg(10).apply(ref).decoded
    cpu = build_scorer(parse_metric(metric), "cpu")
    spec = parse_metric(metric)
    dev = torch.device("cpu")
    if spec.name == "psnr":
        t = fullref_torch.psnr(out, ref, dev)
    elif spec.name == "ssim":
        t = fullref_torch.ssim(out, ref, dev, "box8" if spec.variant == "box8" else "gauss11")
    else:
        t = fullref_torch.psnrb(out, ref, dev, spec.variant)
    assert t == pytest.approx(cpu(out, ref), abs=1e-9)


@pytest.fixture
def chelsea():
    import skimage.data

    return skimage.data.chelsea()


def test_y_variants(coffee):
    out = Jpeg(10).apply(coffee).decoded
    y = build_scorer(parse_metric("psnr:y"))(out, coffee)
    yf = build_scorer(parse_metric("psnr:y-float"))(out, coffee)
    assert y != yf and abs(y - yf) < 0.05
    assert y == pytest.approx(fullref.psnr(fullref.to_y(out), fullref.to_y(coffee)))
    gray = coffee[..., 0]
    g_out = Jpeg(10).apply(gray).decoded
    assert build_scorer(parse_metric("psnr:y"))(g_out, gray) == fullref.psnr(g_out, gray)


def test_border_crop(coffee):
    out = Jpeg(10).apply(coffee).decoded
    spec = parse_metric("psnr:y@4")
    assert spec.id == "psnr:y@4" and spec.border == 4
    want = fullref.psnr(fullref.to_y(out)[4:-4, 4:-4], fullref.to_y(coffee)[4:-4, 4:-4])
    assert build_scorer(spec)(out, coffee) == pytest.approx(want)


def test_pyiqa_psnr_and_ycbcr_ssim_agree(coffee):
    import pyiqa

    out = Jpeg(10).apply(coffee).decoded

    def t(a):
        return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255

    p = float(pyiqa.create_metric("psnr", device="cpu")(t(out), t(coffee)))
    assert p == pytest.approx(fullref.psnr(out, coffee), abs=1e-3)
    s = float(pyiqa.create_metric("ssim", device="cpu", color_space="ycbcr")(t(out), t(coffee)))
    assert s == pytest.approx(build_scorer(parse_metric("ssim:gauss11-y"))(out, coffee), abs=2e-3)


def test_metric_names():
    assert [m.id for m in parse_metrics("psnr,ssim,psnrb")[0]] == [
        "psnr:rgb",
        "ssim:gauss11",
        "psnrb:fbcnn",
    ]
    specs, lenient = parse_metrics("available")
    assert lenient and "lpips:alex-v0.1" in [m.id for m in specs]
    assert parse_metric("lpips").higher_better is False and parse_metric("musiq").kind == "NR"
    from carbench.core.errors import BenchError

    with pytest.raises(BenchError, match="unknown metric 'psnrx'"):
        parse_metric("psnrx")
    with pytest.raises(BenchError, match="`variant` of metric ssim takes one of: gauss11, "):
        parse_metric("ssim:y")
    with pytest.raises(BenchError, match="border crop"):
        parse_metric("lpips@4")


def test_size_mismatch_is_clear(coffee):
    with pytest.raises(ValueError, match="image sizes differ"):
        fullref.psnr(coffee[:-1], coffee)
