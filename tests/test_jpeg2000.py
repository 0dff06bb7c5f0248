"""JPEG 2000 (OpenJPEG via Pillow) against Debian's opj_compress/opj_decompress: the tool
decodes our codestreams to identical pixels; ``opj_compress -I -r CR`` gives the same size
within 5% and PSNR within 0.3 dB."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from skimage import data

from degradations.jpeg2000 import Jpeg2000
from degradations.registry import expand, from_id

needs_opj = pytest.mark.skipif(
    shutil.which("opj_compress") is None, reason="libopenjp2-tools missing"
)


def _psnr(a, b) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_grammar_and_errors():
    degs = expand("jp2k:cr=10,40,db=35")
    assert [d.id for d in degs] == ["jp2k-cr10", "jp2k-cr40", "jp2k-db35"]
    assert all(from_id(d.id) == d for d in degs)
    for spec, msg in [
        ("jp2k:cr=1", "2 to 1000"),
        ("jp2k:q=5", "no parameter 'q'"),
        ("jp2k:", "needs"),
    ]:
        with pytest.raises(ValueError, match=msg):
            expand(spec)


def test_ratio_orders_size_and_psnr_target():
    rgb = np.ascontiguousarray(data.astronaut()[128:256, 192:352])
    n = rgb.size
    a, b = Jpeg2000("cr", 10).apply(rgb), Jpeg2000("cr", 40).apply(rgb)
    assert len(a.bitstream) > len(b.bitstream) and abs(len(b.bitstream) - n / 40) < 0.1 * n / 40
    assert _psnr(a.decoded, rgb) > _psnr(b.decoded, rgb)
    assert _psnr(Jpeg2000("db", 35).apply(rgb).decoded, rgb) == pytest.approx(35, abs=1.5)


@needs_opj
@pytest.mark.parametrize("cr", [10, 40])
def test_against_opj(cr, tmp_path):
    rgb = np.ascontiguousarray(data.astronaut()[128:256, 192:352])
    ours = Jpeg2000("cr", cr).apply(rgb)
    (tmp_path / "o.j2k").write_bytes(ours.bitstream)
    q = ["-quiet"] if False else []
    subprocess.run(
        ["opj_decompress", *q, "-i", str(tmp_path / "o.j2k"), "-o", str(tmp_path / "o.png")],
        check=True,
        capture_output=True,
    )
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), ours.decoded)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    subprocess.run(
        [
            "opj_compress",
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
        assert abs(_psnr(np.asarray(im), rgb) - _psnr(ours.decoded, rgb)) < 0.3


def test_report_label():
    from reports.labels import degradation_label

    assert degradation_label("jp2k-cr20") == "J2K 20:1"
    assert degradation_label("jp2k-db35") == "J2K 35 dB"
