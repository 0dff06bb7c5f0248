"""JPEG through libjpeg-turbo: encoded with OpenCV ``imencode`` (the papers' encoder; it
releases the GIL, so threads scale), byte-identical to Pillow's bundled libjpeg-turbo (tested);
decoded with Pillow.

Settings are those of the papers' test scripts: baseline, accurate integer DCT ("islow"),
standard Annex K Huffman tables (no optimisation), IJG quality scaling clamped to 255, chroma
4:2:0 unless asked otherwise, 1-component JPEG for gray images.
"""

from __future__ import annotations

import functools
import io
import itertools
import re
import threading
import weakref
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PIL import Image

from carbench.core.options import Option
from carbench.degradations.base import Degradation, DegradedImage, ImageLike, as_array, ints, need
from carbench.degradations.color import rgb_to_y_uint8

CHROMA_MODES = ("420", "422", "444", "gray")
#: OpenCV's IMWRITE_JPEG_SAMPLING_FACTOR values (h/v factors of Y, Cb, Cr)
_CV_SAMPLING = {"444": 0x111111, "422": 0x211111, "420": 0x221111}

# ITU-T T.81 Annex K tables K.1 (luminance) and K.2 (chrominance), natural (row-major) order.
ANNEX_K_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
)
ANNEX_K_CHROMA = np.full((8, 8), 99, dtype=np.int64)
ANNEX_K_CHROMA[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]


def check_quality(qf: int) -> int:
    """Validate a JPEG quality factor (integer 1-100) and return it."""
    if isinstance(qf, bool) or not isinstance(qf, (int, np.integer)) or not 1 <= int(qf) <= 100:
        raise ValueError(f"JPEG quality factor must be an integer from 1 to 100, got {qf!r}")
    return int(qf)


def ijg_quant_tables(qf: int, baseline: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Luma and chroma quantisation tables (8x8, natural order) of the IJG quality scaling.

    scale = 5000/QF below 50, else 200 - 2 QF; entry = (base * scale + 50) // 100, at least 1
    and, for baseline JPEG, at most 255.
    """
    qf = check_quality(qf)
    scale = 5000 // qf if qf < 50 else 200 - 2 * qf
    hi = 255 if baseline else 32767
    return tuple(np.clip((t * scale + 50) // 100, 1, hi) for t in (ANNEX_K_LUMA, ANNEX_K_CHROMA))


_MEMO = threading.local()


def _bgr(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's BGR copy of an RGB array. A read-only array that owns its pixels (as
    ``bench generate`` hands every encoder) cannot change, so its copy is kept for the next QF of
    the same image (one per thread)."""
    import cv2

    frozen = not rgb.flags.writeable and rgb.base is None
    last = getattr(_MEMO, "last", None)
    if frozen and last is not None and last[0]() is rgb:
        return last[1]
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if frozen:
        _MEMO.last = (weakref.ref(rgb), bgr)
    return bgr


def encode_jpeg(img: ImageLike, qf: int, chroma: str = "420") -> bytes:
    """Encode a uint8 RGB (HxWx3) or gray (HxW) image as baseline JPEG.

    ``chroma`` is the subsampling of colour images (420, 422, 444); gray images always give a
    1-component file. This is ``cv2.imencode('.jpg', bgr, [IMWRITE_JPEG_QUALITY, qf])`` (with
    the sampling-factor flag for 422/444), the call of the papers' test scripts.
    """
    import cv2

    qf = check_quality(qf)
    if chroma not in _CV_SAMPLING:
        raise ValueError(f"chroma subsampling must be one of 420, 422, 444, got {chroma!r}")
    arr = as_array(img)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        mode = img.mode if isinstance(img, Image.Image) else f"{arr.dtype} {arr.shape}"
        raise ValueError(f"encode_jpeg expects an RGB or gray uint8 image, got {mode}")
    params = [cv2.IMWRITE_JPEG_QUALITY, qf]
    if arr.ndim == 3:
        arr = _bgr(arr)
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, _CV_SAMPLING[chroma]]
    ok, buf = cv2.imencode(".jpg", arr, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {arr.shape} image as JPEG")
    return buf.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode JPEG bytes to uint8 RGB (3 components) or gray (1 component), libjpeg defaults."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
        return np.asarray(im)


def read_quant_tables(data: bytes) -> list[np.ndarray]:
    """Quantisation tables stored in a JPEG file, as 8x8 arrays in natural order."""
    with Image.open(io.BytesIO(data)) as im:
        tables = im.quantization
    return [np.asarray(tables[k], dtype=np.int64).reshape(8, 8) for k in sorted(tables)]


def qf_from_quant_tables(tables: list[np.ndarray]) -> tuple[int, bool]:
    """The IJG quality factor of a file's quantisation tables: ``(qf, True)`` when the luma (and
    chroma, if present) tables equal ``ijg_quant_tables(qf)`` exactly, else ``(qf, False)`` for
    the QF whose tables are nearest in mean absolute difference (another encoder's tables)."""
    if not tables:
        raise ValueError("no quantisation tables")
    best, best_err = 0, float("inf")
    own = tables[:2]  # luma, chroma (gray files have one)
    baseline = bool(max(t.max() for t in own) <= 255)
    for qf in range(1, 101):
        ref = ijg_quant_tables(qf, baseline)[: len(own)]
        err = float(np.mean([np.abs(t - r).mean() for t, r in zip(own, ref, strict=True)]))
        if err == 0:
            return qf, True
        if err < best_err:
            best, best_err = qf, err
    return best, False


@functools.cache
def libjpeg_version() -> str:
    """The encoder: OpenCV's version and the libjpeg(-turbo) build inside it."""
    import re

    import cv2

    m = re.search(r"JPEG:\s*(.+)", cv2.getBuildInformation())
    lib = m.group(1).strip() if m else "libjpeg (unknown build)"
    return f"OpenCV {cv2.__version__} / {lib.removeprefix('build-')}"


def to_gray(img: ImageLike) -> ImageLike:
    """Gray as is; colour converted to BT.601 studio-range Y rounded to uint8."""
    arr = as_array(img)
    return img if arr.ndim == 2 else rgb_to_y_uint8(arr)


@dataclass(frozen=True)
class Jpeg(Degradation):
    """Single JPEG at quality ``q`` (id ``jpeg-q10``; ``jpeg-q10-444``; ``jpeg-q10-gray``).

    With chroma ``gray`` a colour ground truth is converted to BT.601 Y first and scored as gray.
    """

    q: int
    chroma: str = "420"

    kind: ClassVar[str] = "jpeg"
    bitstream_ext: ClassVar[str] = ".jpg"
    spec_options: ClassVar[tuple[Option, ...]] = (
        Option("q", "int", min=1, max=100, required=True, help="quality factor (IJG scaling)"),
        Option("chroma", "choice", "420", choices=CHROMA_MODES, help="chroma subsampling; "
               "gray: 1-component JPEG of the BT.601 Y (scored as gray)"),
    )
    spec_example: ClassVar[str] = "jpeg:q=5,10,20"
    id_pattern: ClassVar[str] = r"jpeg-q(\d+)(?:-(420|422|444|gray))?"

    def __post_init__(self) -> None:
        check_quality(self.q)
        if self.chroma not in CHROMA_MODES:
            raise ValueError(
                f"jpeg chroma must be one of {', '.join(CHROMA_MODES)}, got {self.chroma!r}"
            )

    @property
    def id(self) -> str:
        return f"jpeg-q{self.q}" + ("" if self.chroma == "420" else f"-{self.chroma}")

    def apply(self, gt: ImageLike) -> DegradedImage:
        gt_changed = False
        if self.chroma == "gray" and as_array(gt).ndim == 3:
            gt, gt_changed = to_gray(gt), True
        chroma = "420" if self.chroma == "gray" else self.chroma
        return DegradedImage(encode_jpeg(gt, self.q, chroma), gt, gt_changed, decoder=decode_jpeg)

    @classmethod
    def from_match(cls, m: re.Match[str]) -> Jpeg:
        return cls(int(m[1]), m[2] or "420")

    @classmethod
    def from_spec(cls, p: dict[str, list[str]]) -> list[Degradation]:
        qs = ints(need(p, "q", "jpeg:q=5,10,20", "jpeg"), "q")
        return [cls(q, c) for q, c in itertools.product(qs, p.get("chroma", ["420"]))]

    @property
    def label(self) -> str:
        return f"QF={self.q}" + ("" if self.chroma == "420" else f" ({self.chroma})")

    def decode(self, bitstream: bytes) -> np.ndarray:
        return decode_jpeg(bitstream)

    def params(self) -> dict:
        return {"qf": self.q, "chroma": self.chroma}

    def encoder(self) -> str:
        return libjpeg_version()
