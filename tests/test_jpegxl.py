"""JPEG XL (libjxl 0.11 via imagecodecs) against Debian's cjxl/djxl 0.7: djxl decodes our
codestreams to within 1 grey level of our decoder (the two libjxl versions round differently);
cjxl at the same quality and effort gives the same size within 10% and PSNR within 0.6 dB."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from PIL import Image

from carbench.bench.metrics.fullref import psnr as _psnr
from carbench.degradations.jpegxl import JpegXl, decode_jxl, encode_jxl, jxl_distance_from_quality
from carbench.degradations.registry import expand, from_id


def test_ids_and_grammar_round_trip():
    degs = expand("jxl:d=1,1.5,q=75,effort=7,9")
    assert [d.id for d in degs] == [
        "jxl-d1",
        "jxl-d1-e9",
        "jxl-d1.5",
        "jxl-d1.5-e9",
        "jxl-q75",
        "jxl-q75-e9",
    ]
    assert all(from_id(d.id) == d for d in degs)
    assert JpegXl("q", 90).params() == {
        "mode": "q",
        "value": 90,
        "distance": 1.0,
        "effort": 7,
        "container": False,
    }


def test_quality_mapping():
    # libjxl JxlEncoderDistanceFromQuality: q>=30: 0.1 + (100-q)*0.09; below: a parabola
    # through (30, 6.4); q=0 -> 25
    assert jxl_distance_from_quality(90) == pytest.approx(1.0)
    assert jxl_distance_from_quality(30) == pytest.approx(6.4)
    assert jxl_distance_from_quality(0) == pytest.approx(25.0)


@pytest.mark.parametrize(
    "spec, msg",
    [
        ("jxl:q=100", "0 to 99"),
        ("jxl:d=30", "`d` of jxl takes float 0.1-25"),
        ("jxl:d=1,speed=3", "unknown option `speed` for jxl"),
        ("jxl:d=1,effort=10", "`effort` of jxl takes int 1-9"),
        ("jxl:effort=4", "needs d"),
        ("jxl:d=x", "`d` of jxl takes float"),
    ],
)
def test_bad_specs(spec, msg):
    with pytest.raises(ValueError, match=msg):
        expand(spec)


def test_distance_orders_size_and_error(codec_rgb):
    sizes = [len(encode_jxl(codec_rgb, d)) for d in (4.0, 2.0, 0.5)]
    assert sizes[0] < sizes[1] < sizes[2]
    psnrs = [_psnr(decode_jxl(encode_jxl(codec_rgb, d)), codec_rgb) for d in (4.0, 2.0, 0.5)]
    assert psnrs[0] < psnrs[1] < psnrs[2]


def test_gray_round_trip_is_gray(codec_gray):
    out = JpegXl("d", 1.0).apply(codec_gray)
    assert out.decoded.shape == codec_gray.shape and _psnr(out.decoded, codec_gray) > 30


@pytest.mark.slow
@pytest.mark.parametrize("q", [30, 60, 90])
def test_against_cjxl_djxl(codec_rgb, q, tmp_path, codec_tool):
    ours = JpegXl("q", q).apply(codec_rgb)
    (tmp_path / "ours.jxl").write_bytes(ours.bitstream)
    subprocess.run(
        [
            codec_tool("djxl"),
            str(tmp_path / "ours.jxl"),
            str(tmp_path / "ours.png"),
            "--num_threads=0",
        ],
        check=True,
        capture_output=True,
    )
    theirs = np.asarray(Image.open(tmp_path / "ours.png").convert("RGB")).astype(int)
    assert np.abs(theirs - ours.decoded).max() <= 1
    Image.fromarray(codec_rgb).save(tmp_path / "in.png")
    subprocess.run(
        [
            codec_tool("cjxl"),
            "-q",
            str(q),
            "-e",
            "7",
            "--num_threads=0",
            str(tmp_path / "in.png"),
            str(tmp_path / "ref.jxl"),
        ],
        check=True,
        capture_output=True,
    )
    ref = (tmp_path / "ref.jxl").read_bytes()
    assert abs(len(ref) - len(ours.bitstream)) <= 0.10 * len(ref)
    assert abs(_psnr(decode_jxl(ref), codec_rgb) - _psnr(ours.decoded, codec_rgb)) < 0.6


def test_report_label():
    from carbench.reports.labels import degradation_label

    assert degradation_label("jxl-d1.5") == "JXL d=1.5"
    assert degradation_label("jxl-q75-e9") == "JXL q=75 e9"
