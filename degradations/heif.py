"""HEIF (HEVC still image) through pillow-heif's bundled libheif + x265 at a given x265 QP.

pillow-heif only documents a 0-100 ``quality``; libheif's x265 plugin also passes any
``x265:NAME=VALUE`` parameter to ``x265_param_parse``. ``x265:qp=QP`` switches x265 to constant-QP
rate control with that QP, the same x265 parameter that bpgenc and the ffmpeg ``hevc-qpN`` route set
(for the intra picture x265 then uses QP minus its ip-ratio offset, as in those routes); the quality
is then ignored (bytes identical at quality 10 and 90, tested). Preset veryslow and tune ssim, as
``hevc-qpN``; libheif's colour conversion (full-range BT.601, signalled in the nclx box), 8 bit.
Gray images are encoded as RGB and decoded back to their first channel. The ``.heic`` file (with
its container, a few hundred bytes) is the bitstream bpp is computed from.
"""

from __future__ import annotations

import functools
import io
import itertools
import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from carbench.core.options import Option
from carbench.degradations.base import Degradation, DegradedImage, ImageLike, as_array, ints, need
from carbench.degradations.hevc import _check_qp

CHROMAS = ("420", "444")
PRESET, TUNE = "veryslow", "ssim"


def _heif():
    try:
        import pillow_heif
    except ImportError:
        raise RuntimeError("HEIF needs the pillow-heif package (pip install pillow-heif)") from None
    if not pillow_heif.libheif_info().get("encoders", {}).get("x265"):
        raise RuntimeError("this pillow-heif build has no x265 encoder; pip install -U pillow-heif")
    return pillow_heif


def encode_heif(img: ImageLike, qp: int, chroma: str = "420") -> bytes:
    """Encode a uint8 RGB or gray image as HEIF with x265 at constant QP ``qp``."""
    arr = as_array(img)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(
            f"encode_heif expects an RGB or gray uint8 image, got {arr.dtype} {arr.shape}"
        )
    rgb = np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr
    ph = _heif()
    f = ph.from_bytes(mode="RGB", size=(rgb.shape[1], rgb.shape[0]), data=rgb.tobytes())
    buf = io.BytesIO()
    f.save(
        buf,
        quality=50,
        chroma=int(chroma),
        enc_params={"x265:qp": str(_check_qp(qp)), "preset": PRESET, "tune": TUNE},
    )
    return buf.getvalue()


def decode_heif(data: bytes) -> np.ndarray:
    """Decode HEIF bytes to uint8 RGB."""
    return np.asarray(_heif().open_heif(io.BytesIO(data)).to_pillow().convert("RGB"))


@functools.cache
def libheif_version() -> str:
    ph = _heif()
    info = ph.libheif_info()
    return f"pillow-heif {ph.__version__} / libheif {info['libheif']} / {info['encoders']['x265']}"


@dataclass(frozen=True)
class Heif(Degradation):
    """HEIF at x265 QP ``qp`` through pillow-heif (id ``heif-qp30``, ``heif-qp30-444``)."""

    qp: int
    chroma: str = "420"

    kind: ClassVar[str] = "heif"
    bitstream_ext: ClassVar[str] = ".heic"
    stores_decoded: ClassVar[bool] = True
    spec_options: ClassVar[tuple[Option, ...]] = (
        Option("qp", "int", min=0, max=51, required=True, help="x265 quantiser"),
        Option("chroma", "choice", "420", choices=("420", "444"), help="chroma subsampling"),
    )
    spec_example: ClassVar[str] = "heif:qp=30,40,50"
    id_pattern: ClassVar[str] = r"heif-qp(\d+)(?:-(444))?"

    def __post_init__(self) -> None:
        _check_qp(self.qp)
        if self.chroma not in CHROMAS:
            raise ValueError(f"HEIF chroma must be 420 or 444, got {self.chroma!r}")

    @property
    def id(self) -> str:
        return f"heif-qp{self.qp}" + ("" if self.chroma == "420" else f"-{self.chroma}")

    def apply(self, gt: ImageLike) -> DegradedImage:
        gray = as_array(gt).ndim == 2

        def decode(data: bytes) -> np.ndarray:
            rgb = decode_heif(data)
            return np.ascontiguousarray(rgb[..., 0]) if gray else rgb

        return DegradedImage(encode_heif(gt, self.qp, self.chroma), gt, decoder=decode)

    @classmethod
    def from_match(cls, m: re.Match[str]) -> Heif:
        return cls(int(m[1]), m[2] or "420")

    @classmethod
    def from_spec(cls, p: dict[str, list[str]]) -> list[Degradation]:
        qps = ints(need(p, "qp", "heif:qp=30,40,50", "heif"), "qp")
        return [cls(qp, c) for qp, c in itertools.product(qps, p.get("chroma", ["420"]))]

    @property
    def label(self) -> str:
        return f"QP={self.qp} (HEIF)" + (" (444)" if self.chroma == "444" else "")

    def params(self) -> dict:
        return {
            "qp": self.qp,
            "qp_via": "x265:qp (libheif x265 pass-through; quality ignored)",
            "chroma": self.chroma,
            "preset": PRESET,
            "tune": TUNE,
            "color_space": "ycbcr_bt601_full",
        }

    def encoder(self) -> str:
        return libheif_version()

    def check_available(self) -> None:
        libheif_version()
