"""JDEC: official checkpoint layout, coefficient reading, upstream numerics, end to end."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from carbench.core.errors import BenchError, WeightsMissingError
from carbench.degradations import decode_jpeg, encode_jpeg, read_quant_tables
from carbench.methods.base import Sample
from carbench.methods.jdec import (
    CONSTRUCTOR_ARGS,
    GDRIVE_ID,
    JDEC,
    mirror_blocks,
    network_inputs,
    padded_grid,
    read_coefficients,
)
from carbench.methods.nets.jdec_net import JDECNet, dct_matrix
from carbench.methods.nets.swin_common import shifted_window_mask


def test_network_matches_official_manifest(manifests):
    man = json.loads((manifests / "jdec.json").read_text())
    with torch.device("meta"):
        net = JDEC().build_network()
    sd = net.state_dict()
    shapes = {k: list(v.shape) for k, v in sd.items()}
    assert list(shapes) == list(man["shapes"])  # same keys in the same order
    assert shapes == man["shapes"]
    assert {k: str(v.dtype).removeprefix("torch.") for k, v in sd.items()} == man["dtypes"]
    assert len(sd) == man["state_dict_key_count"] == 740
    assert sum(p.numel() for p in net.parameters()) == man["param_count"] == 38_912_035
    assert sorted(k for k, _ in net.named_buffers()) == sorted(man["buffers"])
    assert all(v.device.type == "meta" for v in sd.values())


def _idct_plane(blocks: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Pixels (level-shifted back by 128) of de-quantised blocks ``(r, c, 8, 8)``."""
    d = dct_matrix(8).numpy()
    px = d.T @ (blocks.astype(np.float64) * table) @ d + 128
    return px.transpose(0, 2, 1, 3).reshape(blocks.shape[0] * 8, blocks.shape[1] * 8)


def _write_jpeg(path, img, qf, chroma="420"):
    data = encode_jpeg(img, qf, chroma)
    path.write_bytes(data)
    return data


def test_coefficients_match_an_independent_decode(tmp_path, astronaut):
    """IDCT of the de-quantised Y coefficients equals libjpeg's decoded Y (Pillow, no colour
    conversion) within its integer IDCT's rounding: at most 1 grey level, observed on ~1% of
    pixels. Chroma (upsampled by libjpeg with a triangle filter) is compared against 2x2 means
    of Pillow's planes: mean difference ~0.4 (a swapped Cb/Cr gives ~30)."""
    data = _write_jpeg(tmp_path / "a.jpg", astronaut, 50)
    c = read_coefficients(tmp_path / "a.jpg")
    assert (c.height, c.width) == (512, 512)
    assert c.y.shape == (64, 64, 8, 8) and c.cb.shape == c.cr.shape == (32, 32, 8, 8)
    tables = read_quant_tables(data)  # Pillow's reading of the DQT segments
    assert np.array_equal(c.qt_y, tables[0]) and np.array_equal(c.qt_cb, tables[1])
    assert np.array_equal(c.qt_cr, tables[1])
    with Image.open(io.BytesIO(data)) as im:
        im.draft("YCbCr", im.size)
        ycc = np.asarray(im).astype(np.float64)
    y = np.clip(np.round(_idct_plane(c.y, c.qt_y)), 0, 255)
    diff = np.abs(y - ycc[..., 0])
    assert diff.max() <= 1 and (diff > 0).mean() < 0.03
    for k, (blocks, table) in enumerate(((c.cb, c.qt_cb), (c.cr, c.qt_cr)), start=1):
        means = ycc[..., k].reshape(256, 2, 256, 2).mean(axis=(1, 3))
        assert np.abs(_idct_plane(blocks, table) - means).mean() < 1.0


def test_mirror_padding_is_pixel_mirroring(tmp_path, coffee):
    """Whole-block mirroring in the DCT domain equals symmetric padding of the pixels, also
    when the padding is longer than the image (periodic mirroring)."""
    _write_jpeg(tmp_path / "a.jpg", coffee[:77, :101], 10)
    c = read_coefficients(tmp_path / "a.jpg")
    assert c.y.shape[:2] == (10, 13) and c.cb.shape[:2] == (5, 7)
    assert padded_grid(c) == (14, 14)
    for blocks, rows, cols in ((c.y, 14, 14), (c.cb, 7, 7), (c.y[:3, :2], 14, 28)):
        ext = _idct_plane(mirror_blocks(blocks, rows, cols), c.qt_y)
        r, w = blocks.shape[:2]
        pad = ((0, 8 * (rows - r)), (0, 8 * (cols - w)))
        ref = np.pad(_idct_plane(blocks, c.qt_y), pad, mode="symmetric")
        assert np.allclose(ext, ref, atol=1e-9)


def test_network_inputs_follow_the_official_preprocessing(tmp_path, coffee):
    _write_jpeg(tmp_path / "a.jpg", coffee[:77, :101], 10)
    c = read_coefficients(tmp_path / "a.jpg")
    y, cbcr, qmap = network_inputs(c)
    assert y.shape == (1, 1, 14, 14, 8, 8) and cbcr.shape == (1, 2, 7, 7, 8, 8)
    assert qmap.shape == (1, 2, 8, 8) and y.dtype == torch.float32

    def unit(v):  # clamp to [-1024, 1016], map to [-1, 1]
        return (np.clip(v, -1024, 1016) + 1024) / 2040 * 2 - 1

    assert np.allclose(y[0, 0, :10, :13].numpy(), unit(c.y * c.qt_y), atol=1e-6)
    assert np.allclose(cbcr[0, 1, :5, :7].numpy(), unit(c.cr * c.qt_cr), atol=1e-6)
    assert np.allclose(qmap[0].numpy(), unit(np.stack([c.qt_y, c.qt_cb])), atol=1e-6)
    assert y.min() >= -1 and y.max() <= 1


def _fill(net: torch.nn.Module) -> None:
    """Deterministic weights from parameter names (the same for any implementation)."""
    g = torch.Generator().manual_seed(0)
    params = dict(net.named_parameters())
    with torch.no_grad():
        for k in sorted(params):
            params[k].copy_(torch.randn(params[k].shape, generator=g) * 0.2)


def test_small_network_matches_upstream_numbers():
    """A small configuration (emb 32, 2 heads, hidden 16) with weights from ``_fill`` on a
    14x28-block grid (shifted-window masks computed on the fly). The expected values were
    computed once with upstream's implementation (WooKyoungHan/JDEC@e9fe835, ``.cuda()``
    removed) on the same weights and inputs; carbench's output differs by < 3e-4 (float32
    rounding and upstream's inexact sub-pixel coordinates)."""
    net = JDECNet(emb_size=32, num_heads=(2,) * 5, hidden_dim=16, hidden_list=(16, 16)).eval()
    _fill(net)
    g = torch.Generator().manual_seed(1)
    y = torch.rand(1, 1, 14, 28, 8, 8, generator=g) * 0.4 - 0.2
    cbcr = torch.rand(1, 2, 7, 14, 8, 8, generator=g) * 0.2 - 0.1
    qmap = torch.rand(1, 2, 8, 8, generator=g) * 0.2 - 1
    net.band_elements = 4096  # many bands: banding must not change the result
    with torch.no_grad():
        out = net(y, cbcr, qmap)
    assert out.shape == (1, 3, 112, 224)
    expected = {
        (0, 0): [-0.082671, -0.42426, 0.049552],
        (57, 101): [-0.357965, -1.234871, -0.123832],
        (111, 223): [-1.204283, -1.340503, 0.766386],
        (3, 200): [-0.581859, -1.306413, -0.260441],
    }
    for (r, c), want in expected.items():
        assert np.allclose(out[0, :, r, c].numpy(), want, atol=1e-3), (r, c)
    assert out.mean().item() == pytest.approx(-0.448596, abs=1e-3)
    assert out.std().item() == pytest.approx(0.942055, abs=1e-3)


def test_decoder_is_the_continuous_cosine_formulation():
    """Pixel (4t+k, 4s+u) gets MLP(amp * cos(pi fv (2k+1)/8) * cos(pi fh (2u+1)/8)) of its
    sub-block (t, s), whatever the band size."""
    net = JDECNet(emb_size=32, num_heads=(2,) * 5, hidden_dim=16, hidden_list=(16,)).eval()
    g = torch.Generator().manual_seed(2)
    amp, fv, fh = (torch.randn(1, 16, 3, 5, generator=g) for _ in range(3))
    with torch.no_grad():
        full = net.decode(amp, fv, fh)
        net.band_elements = 1
        banded = net.decode(amp, fv, fh)
        t, s, k, u = 2, 3, 1, 3
        x = amp[..., t, s] * torch.cos(math.pi * fv[..., t, s] * (2 * k + 1) / 8)
        x = x * torch.cos(math.pi * fh[..., t, s] * (2 * u + 1) / 8)
        pixel = net.dequantizator(x[..., None, None])[..., 0, 0]
    assert full.shape == (1, 3, 12, 20)
    assert torch.allclose(full, banded, atol=1e-6)
    assert torch.allclose(full[..., 4 * t + k, 4 * s + u], pixel, atol=1e-5)


def test_stored_attention_masks_are_the_shifted_window_masks():
    with torch.device("meta"):
        meta = JDEC().build_network()
    assert meta.encoder_dct.layers[0].blocks[1].attn_mask.shape == (64, 49, 49)
    mask = shifted_window_mask(56, 56, 7, 3)
    assert mask.shape == (64, 49, 49) and set(mask.unique().tolist()) == {-100.0, 0.0}
    assert (mask[0] == 0).all() and (mask[-1] != 0).any()  # only edge windows are split


@pytest.fixture(scope="module")
def random_state_dict():
    """JDEC from a seeded random init (stands in for the released weights)."""
    torch.manual_seed(0)
    return JDEC().build_network().state_dict()


def _sample(path, data) -> Sample:
    return Sample("x", decode_jpeg(data), path, "jpeg-q10", {"qf": 10})


def test_end_to_end_with_official_checkpoint_format(
    random_state_dict, tmp_path, monkeypatch, coffee
):
    """Official checkpoint layout, odd size (77x101: coefficient grid padded to 14x14 blocks,
    output cropped). Random weights: the values are not quality results."""
    folder = tmp_path / "weights" / "jdec"
    folder.mkdir(parents=True)
    args = json.loads(json.dumps(CONSTRUCTOR_ARGS))
    args["encoder_spec"]["args"]["device"] = "cuda"  # upstream's default, changes nothing
    ckpt = {"model": {"name": "jdec", "args": args, "sd": random_state_dict}, "epoch": 1}
    torch.save(ckpt, folder / "jdec.pth")
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "weights"))
    m = JDEC()
    m.load("cpu", "fp32", kinds=("rgb",))
    assert len(m.weights_sha256()) == 64
    img = coffee[:77, :101]
    data = _write_jpeg(tmp_path / "x.jpg", img, 10)
    out = m.restore(_sample(tmp_path / "x.jpg", data))
    assert out.shape == (77, 101, 3) and out.dtype == np.uint8
    assert out.std() > 0
    loaded = m._net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in random_state_dict.items())

    # a plain state dict and upstream's old registry name load too
    torch.save(random_state_dict, folder / "jdec.pth")
    JDEC().load()
    old = {"model": {"name": "IPEC-decoder_dctform-rgb-share-size4", "args": args, "sd": {}}}
    torch.save(old, folder / "jdec.pth")
    with pytest.raises(BenchError, match="not the expected checkpoint layout: 740 missing"):
        JDEC().load()  # args accepted; the empty state dict is refused


def test_checkpoint_args_are_checked(tmp_path, monkeypatch):
    folder = tmp_path / "weights" / "jdec"
    folder.mkdir(parents=True)
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "weights"))
    args = json.loads(json.dumps(CONSTRUCTOR_ARGS))
    args["hidden_dim"] = 256
    args["encoder_spec"]["args"]["num_heads"] = [6] * 5
    torch.save({"model": {"name": "jdec", "args": args, "sd": {}}}, folder / "jdec.pth")
    with pytest.raises(BenchError) as e:
        JDEC().load()
    msg = str(e.value)
    assert "jdec.pth: checkpoint args describe a different JDEC configuration" in msg
    assert "hidden_dim: file 256 vs expected 512" in msg
    assert "encoder_spec.args.num_heads: file [6, 6, 6, 6, 6] vs expected [8, 8, 8, 8, 8]" in msg
    torch.save({"model": {"name": "lte", "args": {}, "sd": {}}}, folder / "jdec.pth")
    with pytest.raises(BenchError, match="checkpoint is for model 'lte', not JDEC"):
        JDEC().load()


@pytest.mark.parametrize(
    "kind, match",
    [
        ("gray", "needs a 3-component YCbCr 4:2:0 JPEG, this is a gray \\(1-component\\)"),
        ("444", "only supports 4:2:0 .* this file has \\[\\[1, 1\\], \\[1, 1\\], \\[1, 1\\]\\]"),
        ("422", "only supports 4:2:0"),
        ("garbage", "cannot read the JPEG coefficients"),
    ],
)
def test_unsupported_inputs_name_the_file(tmp_path, coffee, kind, match):
    path = tmp_path / f"input-{kind}.jpg"
    if kind == "gray":
        _write_jpeg(path, coffee[:40, :40, 0], 50)
    elif kind == "garbage":
        path.write_bytes(b"not a jpeg")
    else:
        _write_jpeg(path, coffee[:40, :40], 50, chroma=kind)
    with pytest.raises(BenchError, match=f"{path}: JDEC .*{match}"):
        JDEC().restore(Sample("x", None, path, "jpeg-q50"))


def test_missing_weights_say_what_and_where(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "nothing"))
    with pytest.raises(WeightsMissingError) as e:
        JDEC().load()
    msg = str(e.value)
    assert f"jdec.pth: get Google Drive id {GDRIVE_ID}" in msg
    assert str(tmp_path / "nothing" / "jdec" / "jdec.pth") in msg
