"""AVIF through libavif + libaom (Pillow's AVIF plugin): quality 0-100 (libavif's ``quality``,
which libavif maps to the AV1 quantiser ``round((100 - q) * 63 / 100)`` for ``--min``/``--max``),
encoder speed 0-10 (default 6, as avifenc), chroma 4:2:0 or 4:4:4, 8-bit, full-range off (limited
range, BT.601 matrix: libavif's defaults). Decoded with Pillow's libavif (dav1d); the decoded RGB
is stored beside the bitstream. Gray images are encoded as RGB and decoded back to their first
channel, as for WebP.
"""

from __future__ import annotations

import functools
import io
import itertools
import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PIL import Image

from carbench.core.options import Option
from carbench.degradations.base import Degradation, DegradedImage, ImageLike, as_array, ints, need

CHROMAS = ("420", "444")


def avif_quantizer(q: int) -> int:
    """The AV1 quantiser (0-63) libavif uses for quality ``q`` (libavif's quality mapping)."""
    return ((100 - q) * 63 + 50) // 100


def encode_avif(img: ImageLike, q: int, speed: int = 6, chroma: str = "420") -> bytes:
    """Encode a uint8 RGB or gray image as AVIF (``avifenc -s SPEED -y CHROMA`` at quality q)."""
    arr = as_array(img)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(
            f"encode_avif expects an RGB or gray uint8 image, got {arr.dtype} {arr.shape}"
        )
    libavif_version()
    im = Image.fromarray(np.ascontiguousarray(arr)).convert("RGB")
    buf = io.BytesIO()
    im.save(
        buf,
        "AVIF",
        quality=q,
        speed=speed,
        subsampling=f"{chroma[0]}:{chroma[1]}:{chroma[2]}",
        codec="aom",
        max_threads=1,
    )
    return buf.getvalue()


def decode_avif(data: bytes) -> np.ndarray:
    """Decode AVIF bytes to uint8 RGB."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@functools.cache
def libavif_version() -> str:
    from PIL import __version__, features

    if not features.check("avif"):
        raise RuntimeError(
            "Pillow was built without AVIF; install Pillow >= 11.3 from a wheel (pip install -U "
            "pillow), which bundles libavif with libaom"
        )
    from PIL import AvifImagePlugin

    codecs = AvifImagePlugin._avif.codec_versions()
    if "aom [enc]" not in codecs:
        raise RuntimeError(f"Pillow's libavif has no aom encoder ({codecs}); pip install -U pillow")
    return f"Pillow {__version__} / libavif {features.version('avif')} ({codecs})"


@dataclass(frozen=True)
class Avif(Degradation):
    """AVIF at quality ``q`` (id ``avif-q50``; ``avif-q50-s4-444`` for speed 4, 4:4:4)."""

    q: int
    speed: int = 6
    chroma: str = "420"

    kind: ClassVar[str] = "avif"
    bitstream_ext: ClassVar[str] = ".avif"
    stores_decoded: ClassVar[bool] = True
    spec_options: ClassVar[tuple[Option, ...]] = (
        Option("q", "int", min=0, max=100, required=True, help="libavif quality"),
        Option("speed", "int", 6, min=0, max=10, help="encoder speed"),
        Option("chroma", "choice", "420", choices=CHROMAS, help="chroma subsampling"),
    )
    spec_example: ClassVar[str] = "avif:q=30,50,70"
    id_pattern: ClassVar[str] = r"avif-q(\d+)(?:-s(\d+))?(?:-(444))?"

    def __post_init__(self) -> None:
        q = self.q
        if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or not 0 <= q <= 100:
            raise ValueError(f"AVIF quality must be an integer from 0 to 100, got {q!r}")
        if isinstance(self.speed, bool) or self.speed not in range(11):
            raise ValueError(f"AVIF speed must be an integer from 0 to 10, got {self.speed!r}")
        if self.chroma not in CHROMAS:
            raise ValueError(f"AVIF chroma must be 420 or 444, got {self.chroma!r}")

    @property
    def id(self) -> str:
        return (
            f"avif-q{self.q}"
            + ("" if self.speed == 6 else f"-s{self.speed}")
            + ("" if self.chroma == "420" else f"-{self.chroma}")
        )

    def apply(self, gt: ImageLike) -> DegradedImage:
        gray = as_array(gt).ndim == 2

        def decode(data: bytes) -> np.ndarray:
            rgb = decode_avif(data)
            return np.ascontiguousarray(rgb[..., 0]) if gray else rgb

        return DegradedImage(encode_avif(gt, self.q, self.speed, self.chroma), gt, decoder=decode)

    @classmethod
    def from_match(cls, m: re.Match[str]) -> Avif:
        return cls(int(m[1]), int(m[2] or 6), m[3] or "420")

    @classmethod
    def from_spec(cls, p: dict[str, list[str]]) -> list[Degradation]:
        qs = ints(need(p, "q", "avif:q=30,50,70", "avif"), "q")
        speeds = ints(p.get("speed", ["6"]), "speed")
        chroma = p.get("chroma", ["420"])
        return [cls(q, s, c) for q, s, c in itertools.product(qs, speeds, chroma)]

    @property
    def label(self) -> str:
        return (
            f"AVIF q={self.q}"
            + ("" if self.speed == 6 else f" s{self.speed}")
            + (" (444)" if self.chroma == "444" else "")
        )

    def params(self) -> dict:
        return {
            "quality": self.q,
            "quantizer": avif_quantizer(self.q),
            "speed": self.speed,
            "chroma": self.chroma,
            "codec": "aom",
            "bit_depth": 8,
        }

    def encoder(self) -> str:
        return libavif_version()

    def check_available(self) -> None:
        libavif_version()
