"""HEIF (libheif 1.23 + x265 4.3 via pillow-heif) at an x265 QP, against Debian's libheif 1.15
heif-enc/heif-convert (libheif-examples) and the ffmpeg ``hevc-qpN`` route: heif-convert decodes
our files to within 1 level; ``heif-enc -p x265:qp=Q`` gives the same size within 15% and PSNR
within 0.5 dB; ``hevc-qpN`` (Debian x265 3.5, no container) PSNR within 0.5 dB."""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pytest
from PIL import Image
from skimage import data

from carbench.bench.metrics.fullref import psnr as _psnr
from carbench.degradations.heif import Heif, decode_heif, encode_heif
from carbench.degradations.registry import expand, from_id


def test_ids_and_grammar_round_trip():
    degs = expand("heif:qp=30,40,chroma=420,444")
    assert [d.id for d in degs] == ["heif-qp30", "heif-qp30-444", "heif-qp40", "heif-qp40-444"]
    assert all(from_id(d.id) == d for d in degs)
    assert Heif(30).params()["qp"] == 30 and Heif(30).params()["preset"] == "veryslow"


@pytest.mark.parametrize(
    "spec, msg",
    [
        ("heif:qp=52", "`qp` of heif takes int 0-51"),
        ("heif:qp=30,q=50", "unknown option `q` for heif"),
        ("heif:qp=30,chroma=422", "`chroma` of heif takes one of: 420, 444"),
        ("heif:chroma=444", "needs qp"),
    ],
)
def test_bad_specs(spec, msg):
    with pytest.raises(ValueError, match=msg):
        expand(spec)


def test_qp_is_what_controls_the_encoder(codec_rgb):
    import pillow_heif

    def encode_at(quality: int) -> bytes:
        f = pillow_heif.from_bytes(mode="RGB", size=(160, 128), data=codec_rgb.tobytes())
        buf = io.BytesIO()
        f.save(buf, quality=quality, chroma=420, enc_params={"x265:qp": "30"})
        return buf.getvalue()

    assert encode_at(10) == encode_at(90)  # quality ignored once x265:qp is set
    sizes = [len(encode_heif(codec_rgb, qp)) for qp in (45, 35, 25)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_gray_and_odd_size():
    gray = np.ascontiguousarray(data.camera()[:63, :95])
    out = Heif(30).apply(gray)
    assert out.decoded.shape == gray.shape and _psnr(out.decoded, gray) > 30


@pytest.mark.slow
@pytest.mark.ffmpeg
def test_close_to_ffmpeg_hevc_route(codec_rgb):
    from carbench.degradations.hevc import Hevc

    for qp in (30, 40):
        ours, theirs = Heif(qp).apply(codec_rgb), Hevc(qp).apply(codec_rgb)
        assert abs(_psnr(ours.decoded, codec_rgb) - _psnr(theirs.decoded, codec_rgb)) < 0.5


@pytest.mark.slow
@pytest.mark.parametrize("qp", [25, 35, 45])
def test_against_heif_enc_convert(codec_rgb, qp, tmp_path, codec_tool):
    ours = Heif(qp).apply(codec_rgb)
    (tmp_path / "ours.heic").write_bytes(ours.bitstream)
    subprocess.run(
        [codec_tool("heif-convert"), str(tmp_path / "ours.heic"), str(tmp_path / "ours.png")],
        check=True,
        capture_output=True,
    )
    theirs = np.asarray(Image.open(tmp_path / "ours.png").convert("RGB")).astype(int)
    assert np.abs(theirs - ours.decoded).max() <= 1
    Image.fromarray(codec_rgb).save(tmp_path / "in.png")
    subprocess.run(
        [
            codec_tool("heif-enc"),
            "-p",
            f"x265:qp={qp}",
            "-p",
            "preset=veryslow",
            "-p",
            "tune=ssim",
            "-o",
            str(tmp_path / "ref.heic"),
            str(tmp_path / "in.png"),
        ],
        check=True,
        capture_output=True,
    )
    ref = (tmp_path / "ref.heic").read_bytes()
    assert abs(len(ref) - len(ours.bitstream)) <= 0.15 * len(ref)
    assert abs(_psnr(decode_heif(ref), codec_rgb) - _psnr(ours.decoded, codec_rgb)) < 0.5


def test_report_label():
    from carbench.reports.labels import degradation_label

    assert degradation_label("heif-qp30") == "QP=30 (HEIF)"
    assert degradation_label("heif-qp30-444") == "QP=30 (HEIF) (444)"
