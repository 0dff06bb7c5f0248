"""JPEG encoder (OpenCV imencode): bytes equal to Pillow's own libjpeg-turbo build, an
independent second encoder; the papers' flag-less OpenCV call is our 4:2:0; tables equal the
IJG formula."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from carbench.degradations.jpeg import (
    Jpeg,
    check_quality,
    decode_jpeg,
    encode_jpeg,
    ijg_quant_tables,
    read_quant_tables,
)

QFS = [1, 5, 10, 50, 90, 100]


def test_sampling_flags_are_opencvs():
    from carbench.degradations.jpeg import _CV_SAMPLING

    assert _CV_SAMPLING == {
        "420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
        "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
        "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    }


def pillow_jpeg(rgb: np.ndarray, qf: int, chroma: str = "420") -> bytes:
    """Pillow's encoder (its bundled libjpeg-turbo): baseline, no Huffman optimisation."""
    buf = io.BytesIO()
    opts = {"quality": qf, "optimize": False, "progressive": False}
    if rgb.ndim == 3:
        opts["subsampling"] = {"444": 0, "422": 1, "420": 2}[chroma]
    Image.fromarray(rgb).save(buf, "JPEG", **opts)
    return buf.getvalue()


@pytest.mark.parametrize("qf", QFS)
def test_bytes_equal_pillow_color_420(astronaut, qf):
    assert encode_jpeg(astronaut, qf) == pillow_jpeg(astronaut, qf)


@pytest.mark.parametrize("chroma", ["422", "444"])
@pytest.mark.parametrize("qf", [5, 50])
def test_bytes_equal_pillow_other_chroma(coffee, qf, chroma):
    assert encode_jpeg(coffee, qf, chroma) == pillow_jpeg(coffee, qf, chroma)


@pytest.mark.parametrize("qf", QFS)
def test_bytes_equal_pillow_gray(camera, qf):
    data = encode_jpeg(camera, qf)
    assert data == pillow_jpeg(camera, qf)
    assert data[data.index(b"\xff\xc0") + 9] == 1  # SOF0: one component


def test_default_opencv_call_is_420(astronaut):
    """The papers pass no sampling flag; OpenCV's default must equal our 4:2:0."""
    bgr = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 10])
    assert buf.tobytes() == encode_jpeg(astronaut, 10)


def test_bytes_equal_pillow_on_live1(live1):
    for name in ["bikes", "carnivaldolls", "dancers"]:  # two with sides not multiples of 8
        rgb = cv2.cvtColor(cv2.imread(str(live1 / f"{name}.png")), cv2.COLOR_BGR2RGB)
        for qf in QFS:
            assert encode_jpeg(rgb, qf) == pillow_jpeg(rgb, qf), (name, qf)


def _ijg_by_hand(base: list[int], qf: int) -> np.ndarray:
    """libjpeg's jpeg_quality_scaling + jpeg_add_quant_table, written out independently."""
    scale = (5000 // qf) if qf < 50 else (200 - qf * 2)
    out = []
    for b in base:
        v = (b * scale + 50) // 100
        out.append(min(max(v, 1), 255))
    return np.array(out).reshape(8, 8)


LUMA = [
    16,
    11,
    10,
    16,
    24,
    40,
    51,
    61,
    12,
    12,
    14,
    19,
    26,
    58,
    60,
    55,
    14,
    13,
    16,
    24,
    40,
    57,
    69,
    56,
    14,
    17,
    22,
    29,
    51,
    87,
    80,
    62,
    18,
    22,
    37,
    56,
    68,
    109,
    103,
    77,
    24,
    35,
    55,
    64,
    81,
    104,
    113,
    92,
    49,
    64,
    78,
    87,
    103,
    121,
    120,
    101,
    72,
    92,
    95,
    98,
    112,
    100,
    103,
    99,
]
CHROMA = [
    17,
    18,
    24,
    47,
    99,
    99,
    99,
    99,
    18,
    21,
    26,
    66,
    99,
    99,
    99,
    99,
    24,
    26,
    56,
    99,
    99,
    99,
    99,
    99,
    47,
    66,
    99,
    99,
    99,
    99,
    99,
    99,
] + [99] * 32


@pytest.mark.parametrize("qf", QFS)
def test_quant_tables_follow_ijg_formula(astronaut, qf):
    want = [_ijg_by_hand(LUMA, qf), _ijg_by_hand(CHROMA, qf)]
    ours = read_quant_tables(encode_jpeg(astronaut, qf))
    theirs = read_quant_tables(pillow_jpeg(astronaut, qf))
    for got in (ours, theirs, list(ijg_quant_tables(qf))):
        assert [t.tolist() for t in got] == [w.tolist() for w in want]


def test_quant_table_hand_values():
    luma1, _ = ijg_quant_tables(1)
    assert luma1[0, 0] == 255  # 16 * 5000 / 100 = 800, clamped for baseline
    assert ijg_quant_tables(1, baseline=False)[0][0, 0] == 800
    assert ijg_quant_tables(50)[0][0].tolist() == LUMA[:8]
    assert (ijg_quant_tables(100)[0] == 1).all()
    assert ijg_quant_tables(10)[0][0, 0] == 80  # 16 * 500 / 100


@pytest.mark.parametrize("bad", [0, 101, -5, 10.5, "10", True, None])
def test_bad_quality_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="quality factor must be an integer from 1 to 100"):
        check_quality(bad)


def test_jpeg_degradation_decodes_like_opencv(astronaut):
    out = Jpeg(10).apply(astronaut)
    ref = cv2.cvtColor(cv2.imdecode(np.frombuffer(out.bitstream, np.uint8), 1), cv2.COLOR_BGR2RGB)
    assert np.array_equal(out.decoded, ref)
    assert out.gt is astronaut and not out.gt_changed
    # published figure (notes/codecs.md 1.2): astronaut QF 10 = 11 564 bytes
    assert len(out.bitstream) == 11564


def test_gray_chroma_mode_converts_gt_to_y(astronaut):
    out = Jpeg(10, "gray").apply(astronaut)
    assert out.gt.ndim == 2 and out.gt_changed and out.decoded.ndim == 2
    assert np.array_equal(decode_jpeg(out.bitstream), out.decoded)


def test_ids():
    assert Jpeg(10).id == "jpeg-q10"
    assert Jpeg(10, "444").id == "jpeg-q10-444"
    assert Jpeg(5, "gray").id == "jpeg-q5-gray"
    with pytest.raises(ValueError, match="chroma"):
        Jpeg(10, "411")


def test_bgr_copy_is_reused_only_for_frozen_arrays(coffee):
    """A read-only array's BGR copy serves every QF; a writable one is converted afresh, so an
    in-place change between two encodes is seen."""
    from carbench.degradations.jpeg import _bgr

    frozen = coffee.copy()
    frozen.flags.writeable = False
    assert _bgr(frozen) is _bgr(frozen)
    assert np.array_equal(_bgr(frozen), coffee[..., ::-1])
    live = coffee.copy()
    before = encode_jpeg(live, 50)
    live[:64] = 0
    assert encode_jpeg(live, 50) != before
    assert encode_jpeg(frozen, 50) == encode_jpeg(coffee, 50)
