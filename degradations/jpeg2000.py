"""JPEG 2000 through OpenJPEG (Pillow's bundled build): one quality layer at a compression
ratio (``cr``, like ``opj_compress -r``) or a PSNR target in dB (``db``, like ``opj_compress
-q``), irreversible 9/7 wavelet (``-I``), the colour transform (ICT) for RGB as opj_compress
does, OpenJPEG's defaults otherwise (6 resolutions, 64x64 code blocks, LRCP). Raw J2K
codestream; the decoded image is stored beside it.
"""

from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PIL import Image

from carbench.core.options import Option
from carbench.degradations.base import Degradation, DegradedImage, ImageLike, as_array, ints


def encode_j2k(img: ImageLike, mode: str, value: int) -> bytes:
    """Encode a uint8 RGB or gray image as a lossy J2K codestream; ``mode`` is cr or db."""
    arr = as_array(img)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(
            f"encode_j2k expects an RGB or gray uint8 image, got {arr.dtype} {arr.shape}"
        )
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(
        buf,
        "JPEG2000",
        no_jp2=True,
        irreversible=True,
        mct=1 if arr.ndim == 3 else 0,
        quality_mode="rates" if mode == "cr" else "dB",
        quality_layers=[value],
    )
    return buf.getvalue()


def decode_j2k(data: bytes) -> np.ndarray:
    """Decode a J2K codestream to uint8 RGB or gray."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im if im.mode in ("RGB", "L") else im.convert("RGB"))


@functools.cache
def openjpeg_version() -> str:
    from PIL import __version__, features

    if not features.check("jpg_2000"):
        raise RuntimeError(
            "Pillow was built without OpenJPEG; install a Pillow wheel (pip install pillow)"
        )
    return f"Pillow {__version__} / OpenJPEG {features.version('jpg_2000')}"


_RANGES = {"cr": (2, 1000), "db": (15, 80)}


@dataclass(frozen=True)
class Jpeg2000(Degradation):
    """JPEG 2000 at a compression ratio (``jp2k-cr20``) or a PSNR target (``jp2k-db35``)."""

    mode: str
    value: int

    kind: ClassVar[str] = "jp2k"
    bitstream_ext: ClassVar[str] = ".j2k"
    stores_decoded: ClassVar[bool] = True
    spec_options: ClassVar[tuple[Option, ...]] = (
        Option("cr", "int", min=_RANGES["cr"][0], max=_RANGES["cr"][1], help="compression "
               "ratios (OpenJPEG -r)"),
        Option("db", "int", min=_RANGES["db"][0], max=_RANGES["db"][1], help="target PSNRs in "
               "dB (OpenJPEG -q)"),
    )
    spec_example: ClassVar[str] = "jp2k:cr=10,20,40"
    id_pattern: ClassVar[str] = r"jp2k-(cr|db)(\d+)"

    def __post_init__(self) -> None:
        if self.mode not in _RANGES:
            raise ValueError(f"jp2k mode must be cr (ratio) or db (PSNR), got {self.mode!r}")
        lo, hi = _RANGES[self.mode]
        if (
            isinstance(self.value, bool)
            or not isinstance(self.value, int)
            or not lo <= self.value <= hi
        ):
            raise ValueError(
                f"jp2k {self.mode} must be an integer from {lo} to {hi}, got {self.value!r}"
            )

    @property
    def id(self) -> str:
        return f"jp2k-{self.mode}{self.value}"

    def apply(self, gt: ImageLike) -> DegradedImage:
        return DegradedImage(encode_j2k(gt, self.mode, self.value), gt, decoder=decode_j2k)

    @classmethod
    def from_match(cls, m: re.Match[str]) -> Jpeg2000:
        return cls(m[1], int(m[2]))

    @classmethod
    def from_spec(cls, p: dict[str, list[str]]) -> list[Degradation]:
        if not p:
            raise ValueError("jp2k needs cr=... or db=..., e.g. jp2k:cr=10,20,40")
        return [cls(m, v) for m in ("cr", "db") for v in ints(p.get(m, []), m)]

    @property
    def label(self) -> str:
        return f"J2K {self.value}:1" if self.mode == "cr" else f"J2K {self.value} dB"

    def params(self) -> dict:
        return {"mode": self.mode, "value": self.value, "wavelet": "9/7", "layers": 1}

    def encoder(self) -> str:
        return openjpeg_version()

    def check_available(self) -> None:
        openjpeg_version()
