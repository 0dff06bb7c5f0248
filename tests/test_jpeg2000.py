"""JPEG 2000 (OpenJPEG via Pillow) against Debian's opj_compress/opj_decompress: the tool
decodes our codestreams to identical pixels; ``opj_compress -I -r CR`` gives the same size
within 5% and PSNR within 0.3 dB."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from PIL import Image

from carbench.bench.metrics.fullref import psnr as _psnr
from carbench.degradations.jpeg2000 import Jpeg2000
from carbench.degradations.registry import expand, from_id


def test_grammar_and_errors():
    degs = expand("jp2k:cr=10,40,db=35")
    assert [d.id for d in degs] == ["jp2k-cr10", "jp2k-cr40", "jp2k-db35"]
    assert all(from_id(d.id) == d for d in degs)
    for spec, msg in [
        ("jp2k:cr=1", "`cr` of jp2k takes int 2-1000"),
        ("jp2k:q=5", "unknown option `q` for jp2k"),
        ("jp2k:", "needs"),
    ]:
        with pytest.raises(ValueError, match=msg):
            expand(spec)


def test_ratio_orders_size_and_psnr_target(codec_rgb):
    n = codec_rgb.size
    a, b = Jpeg2000("cr", 10).apply(codec_rgb), Jpeg2000("cr", 40).apply(codec_rgb)
    assert len(a.bitstream) > len(b.bitstream) and abs(len(b.bitstream) - n / 40) < 0.1 * n / 40
    assert _psnr(a.decoded, codec_rgb) > _psnr(b.decoded, codec_rgb)
    assert _psnr(Jpeg2000("db", 35).apply(codec_rgb).decoded, codec_rgb) == pytest.approx(
        35, abs=1.5
    )


@pytest.mark.parametrize("cr", [10, 40])
def test_against_opj(codec_rgb, cr, tmp_path, codec_tool):
    ours = Jpeg2000("cr", cr).apply(codec_rgb)
    (tmp_path / "o.j2k").write_bytes(ours.bitstream)
    subprocess.run(
        [
            codec_tool("opj_decompress"),
            "-i",
            str(tmp_path / "o.j2k"),
            "-o",
            str(tmp_path / "o.png"),
        ],
        check=True,
        capture_output=True,
    )
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), ours.decoded)
    Image.fromarray(codec_rgb).save(tmp_path / "in.png")
    subprocess.run(
        [
            codec_tool("opj_compress"),
            "-I",
            "-r",
            str(cr),
            "-i",
            str(tmp_path / "in.png"),
            "-o",
            str(tmp_path / "r.j2k"),
        ],
        check=True,
        capture_output=True,
    )
    ref = (tmp_path / "r.j2k").read_bytes()
    assert abs(len(ref) - len(ours.bitstream)) <= 0.05 * len(ref)
    with Image.open(tmp_path / "r.j2k") as im:
        assert abs(_psnr(np.asarray(im), codec_rgb) - _psnr(ours.decoded, codec_rgb)) < 0.3


def test_report_label():
    from carbench.reports.labels import degradation_label

    assert degradation_label("jp2k-cr20") == "J2K 20:1"
    assert degradation_label("jp2k-db35") == "J2K 35 dB"
