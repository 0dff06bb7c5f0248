"""Lossy WebP through libwebp (Pillow's bundled build): quality 0-100, method 0-6 (speed/size
trade-off, libwebp's default 4), preset ``default``. Decoded with Pillow's libwebp; the decoded
RGB is stored beside the bitstream. Gray images are encoded as RGB (WebP has no gray mode) and
decoded back to gray with their first channel (libwebp keeps R=G=B within rounding).
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


def check_webp_quality(q: int) -> int:
    """Validate a WebP quality (integer 0-100) and return it."""
    if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or not 0 <= int(q) <= 100:
        raise ValueError(f"WebP quality must be an integer from 0 to 100, got {q!r}")
    return int(q)


def encode_webp(img: ImageLike, q: int, method: int = 4) -> bytes:
    """Encode a uint8 RGB or gray image as lossy WebP (``cwebp -q Q -m METHOD``'s settings)."""
    arr = as_array(img)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(
            f"encode_webp expects an RGB or gray uint8 image, got {arr.dtype} {arr.shape}"
        )
    im = Image.fromarray(np.ascontiguousarray(arr)).convert("RGB")
    buf = io.BytesIO()
    im.save(buf, "WEBP", quality=check_webp_quality(q), method=method, lossless=False, exact=False)
    return buf.getvalue()


def decode_webp(data: bytes) -> np.ndarray:
    """Decode WebP bytes to uint8 RGB."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@functools.cache
def libwebp_version() -> str:
    from PIL import __version__, features

    if not features.check("webp"):
        raise RuntimeError(
            "Pillow was built without WebP; install a Pillow wheel (pip install pillow)"
        )
    return f"Pillow {__version__} / libwebp {features.version('webp')}"


@dataclass(frozen=True)
class Webp(Degradation):
    """Lossy WebP at quality ``q`` (id ``webp-q50``; ``webp-q50-m6`` for method 6)."""

    q: int
    method: int = 4

    kind: ClassVar[str] = "webp"
    bitstream_ext: ClassVar[str] = ".webp"
    stores_decoded: ClassVar[bool] = True
    spec_options: ClassVar[tuple[Option, ...]] = (
        Option("q", "int", min=0, max=100, required=True, help="libwebp quality"),
        Option("method", "int", 4, min=0, max=6, help="libwebp method (speed/size trade-off)"),
    )
    spec_example: ClassVar[str] = "webp:q=25,50,75"
    id_pattern: ClassVar[str] = r"webp-q(\d+)(?:-m(\d))?"

    def __post_init__(self) -> None:
        check_webp_quality(self.q)
        if isinstance(self.method, bool) or self.method not in range(7):
            raise ValueError(f"WebP method must be an integer from 0 to 6, got {self.method!r}")

    @property
    def id(self) -> str:
        return f"webp-q{self.q}" + ("" if self.method == 4 else f"-m{self.method}")

    def apply(self, gt: ImageLike) -> DegradedImage:
        gray = as_array(gt).ndim == 2

        def decode(data: bytes) -> np.ndarray:
            rgb = decode_webp(data)
            return np.ascontiguousarray(rgb[..., 0]) if gray else rgb

        return DegradedImage(encode_webp(gt, self.q, self.method), gt, decoder=decode)

    @classmethod
    def from_match(cls, m: re.Match[str]) -> Webp:
        return cls(int(m[1]), int(m[2] or 4))

    @classmethod
    def from_spec(cls, p: dict[str, list[str]]) -> list[Degradation]:
        qs = ints(need(p, "q", "webp:q=25,50,75", "webp"), "q")
        methods = ints(p.get("method", ["4"]), "method")
        return [cls(q, m) for q, m in itertools.product(qs, methods)]

    @property
    def label(self) -> str:
        return f"WebP q={self.q}" + ("" if self.method == 4 else f" m{self.method}")

    def params(self) -> dict:
        return {"quality": self.q, "method": self.method, "preset": "default", "lossless": False}

    def encoder(self) -> str:
        return libwebp_version()

    def check_available(self) -> None:
        libwebp_version()
