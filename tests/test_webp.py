"""WebP (libwebp via Pillow) against Debian's cwebp/dwebp: dwebp decodes our files to the same
pixels; cwebp at the same quality/method gives the same size within 10% and PSNR within 0.5 dB
(the two libwebp builds differ in version, so bytes may differ)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from PIL import Image

from carbench.bench.metrics.fullref import psnr as _psnr
from carbench.degradations.registry import expand, from_id
from carbench.degradations.webp import Webp, decode_webp, encode_webp


def test_ids_and_grammar_round_trip():
    degs = expand("webp:q=10,50,method=4,6")
    assert [d.id for d in degs] == ["webp-q10", "webp-q10-m6", "webp-q50", "webp-q50-m6"]
    assert all(from_id(d.id) == d for d in degs)
    assert Webp(50).params() == {"quality": 50, "method": 4, "preset": "default", "lossless": False}


@pytest.mark.parametrize(
    "spec, msg",
    [
        ("webp:q=101", "`q` of webp takes int 0-100"),
        ("webp:q=50,speed=3", "unknown option `speed` for webp"),
        ("webp:q=50,method=7", "`method` of webp takes int 0-6"),
        ("webp:method=4", "needs q"),
    ],
)
def test_bad_specs(spec, msg):
    with pytest.raises(ValueError, match=msg):
        expand(spec)


def test_quality_orders_size_and_error(codec_rgb):
    sizes = [len(encode_webp(codec_rgb, q)) for q in (5, 50, 95)]
    assert sizes[0] < sizes[1] < sizes[2]
    psnrs = [_psnr(decode_webp(encode_webp(codec_rgb, q)), codec_rgb) for q in (5, 50, 95)]
    assert psnrs[0] < psnrs[1] < psnrs[2]


def test_gray_round_trip_is_gray(codec_gray):
    out = Webp(50).apply(codec_gray)
    assert out.decoded.shape == codec_gray.shape and _psnr(out.decoded, codec_gray) > 25


@pytest.mark.parametrize("q", [10, 50, 90])
def test_against_cwebp_dwebp(codec_rgb, q, tmp_path, codec_tool):
    ours = Webp(q).apply(codec_rgb)
    (tmp_path / "ours.webp").write_bytes(ours.bitstream)
    subprocess.run(
        [
            codec_tool("dwebp"),
            "-quiet",
            str(tmp_path / "ours.webp"),
            "-ppm",
            "-o",
            str(tmp_path / "ours.ppm"),
        ],
        check=True,
    )
    assert np.array_equal(np.asarray(Image.open(tmp_path / "ours.ppm")), ours.decoded)
    Image.fromarray(codec_rgb).save(tmp_path / "in.png")
    subprocess.run(
        [
            codec_tool("cwebp"),
            "-quiet",
            "-q",
            str(q),
            "-m",
            "4",
            str(tmp_path / "in.png"),
            "-o",
            str(tmp_path / "ref.webp"),
        ],
        check=True,
    )
    ref = (tmp_path / "ref.webp").read_bytes()
    assert abs(len(ref) - len(ours.bitstream)) <= 0.10 * len(ref)
    assert abs(_psnr(decode_webp(ref), codec_rgb) - _psnr(ours.decoded, codec_rgb)) < 0.5


def test_report_label():
    from carbench.reports.labels import degradation_label

    assert degradation_label("webp-q50") == "WebP q=50"
    assert degradation_label("webp-q50-m6") == "WebP q=50 m6"
