"""Chains of resize and codec steps: ids, grammar, refusals, ground truth, and the pixels against
the same steps written out by hand with Pillow and OpenCV."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from carbench.degradations.chain import Chain
from carbench.degradations.registry import expand, from_id


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[100:228, 150:310])  # 128x160


def _jpeg(img: np.ndarray, q: int) -> tuple[bytes, np.ndarray]:
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
    data_ = buf.tobytes()
    return data_, np.asarray(Image.open(io.BytesIO(data_)).convert("RGB"))


def test_ids_round_trip_and_preset():
    d = expand("chain:resize=0.5:bicubic,jpeg=75,resize=2:bicubic")[0]
    assert d.id == "chain-resize0.5+jpeg-q75+resize2" and from_id(d.id) == d
    p = expand("chain:preset=platform")[0]
    assert p.id == "chain-long2048+jpeg-q85+jpeg-q70"
    assert expand("chain:long=2048,jpeg=85:420,jpeg=70")[0] == p
    lz = expand("chain:long=1024:lanczos,jpeg-q85-444,webp=70")[0]
    assert lz.id == "chain-long1024-lanczos+jpeg-q85-444+webp-q70" and from_id(lz.id) == lz
    assert lz.bitstream_ext == ".webp" and d.bitstream_ext == ".jpg"


def test_every_step_in_params():
    p = expand("chain:resize=0.5:lanczos,jpeg=75:444,resize=2")[0].params()
    assert p["steps"] == "resize0.5-lanczos,jpeg-q75-444,resize2" and p["n_steps"] == 3
    assert (p["s1_op"], p["s1_value"], p["s1_filter"]) == ("resize", 0.5, "lanczos")
    assert (p["s2_op"], p["s2_qf"], p["s2_chroma"]) == ("jpeg", 75, "444")
    assert (p["s3_op"], p["s3_value"], p["s3_filter"]) == ("resize", 2.0, "bicubic")


@pytest.mark.parametrize(
    "spec, msg",
    [
        ("chain:resize=0.5,resize=2", "at least one codec"),
        ("chain:resize=0.5,long=512,jpeg=75", "cannot follow"),
        ("chain:resize=1,jpeg=75", "not 1"),
        ("chain:resize=0.5:cubic,jpeg=75", "filter must be one of"),
        ("chain:blur=2,jpeg=75", "unknown option `blur` for chain"),
        ("chain:jpeg=101", "`jpeg` of chain takes int 1-100"),
        ("chain:jpeg2-q10-q30-s4x4", "shifted double JPEG"),
        ("chain:hevc-qp30", "cannot be hevc"),
        ("chain:preset=instagram", "`preset` of chain takes one of: platform"),
    ],
)
def test_bad_chains_refused(spec, msg):
    with pytest.raises(ValueError, match=msg):
        expand(spec)


def test_same_size_chain_keeps_input_as_gt_and_matches_by_hand(rgb):
    out = expand("chain:resize=0.5:bicubic,jpeg=75,resize=2:bicubic")[0].apply(rgb)
    half = np.asarray(Image.fromarray(rgb).resize((80, 64), Image.Resampling.BICUBIC))
    jpg, dec = _jpeg(half, 75)
    want = np.asarray(Image.fromarray(dec).resize((160, 128), Image.Resampling.BICUBIC))
    assert out.bitstream == jpg and np.array_equal(out.decoded, want)
    assert out.gt is rgb and not out.gt_changed and out.extra == {"gt": "input"}


def test_downscaling_chain_resizes_gt_once(rgb):
    out = expand("chain:long=100:lanczos,jpeg=85,jpeg=70")[0].apply(rgb)
    assert out.decoded.shape == (80, 100, 3) and out.gt_changed
    want = np.asarray(Image.fromarray(rgb).resize((100, 80), Image.Resampling.LANCZOS))
    assert np.array_equal(out.gt, want)
    _, first = _jpeg(want, 85)
    second, dec = _jpeg(first, 70)
    assert out.bitstream == second and np.array_equal(out.decoded, dec)


def test_qf_reads_last_jpeg(rgb):
    from carbench.degradations.jpeg import qf_from_quant_tables, read_quant_tables

    out = Chain.parse("preset=platform").apply(rgb)
    assert qf_from_quant_tables(read_quant_tables(out.bitstream)) == (70, True)


def test_tiny_result_refused_before_work():
    with pytest.raises(ValueError, match="< 8 pixels"):
        Chain.parse("resize=0.05,jpeg=75").check_image((100, 100, 3))


def test_report_label():
    from carbench.reports.labels import degradation_label

    assert degradation_label("chain-long2048+jpeg-q85+jpeg-q70") == "long2048 → QF=85 → QF=70"
    assert degradation_label("chain-resize0.5+webp-q50+resize2") == "×0.5 → WebP q=50 → ×2"


def test_bpp_plot_keeps_codecs_apart():
    from carbench.reports.html_report import codec_family

    assert [codec_family(d) for d in ("jpeg-q10", "avif-q50-444", "jxl-d1.5", "heif-qp30")] == [
        "JPEG",
        "AVIF",
        "JPEG XL",
        "HEIF",
    ]
    assert codec_family("chain-long2048+jpeg-q85+jpeg-q70") == "chain"
