"""JPEG XL through libjxl (the ``imagecodecs`` binding): lossy VarDCT at a Butteraugli distance
(``d``, like ``cjxl -d``) or a quality 0-100 (``q``, like ``cjxl -q``, turned into a distance with
libjxl's own mapping, the distance being what is recorded), encoder effort 1-9 (default 7, as
cjxl). Bare codestream (no container); 8-bit RGB or gray kept as is. Decoded with the same
libjxl; the decoded image is stored beside the bitstream.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from carbench.core.options import Option
from carbench.degradations.base import Degradation, DegradedImage, ImageLike, as_array, ints


def jxl_distance_from_quality(q: float) -> float:
    """libjxl's quality -> distance mapping (``JxlEncoderDistanceFromQuality``, cjxl ``-q``)."""
    if q >= 100:
        return 0.0
    if q >= 30:
        return 0.1 + (100 - q) * 0.09
    return 53.0 / 3000.0 * q * q - 23.0 / 20.0 * q + 25.0


def _codecs():
    try:
        import imagecodecs
    except ImportError:
        raise RuntimeError(
            "JPEG XL needs the imagecodecs package (pip install imagecodecs), which bundles libjxl"
        ) from None
    if not imagecodecs.JPEGXL.available:
        raise RuntimeError("this imagecodecs build has no JPEG XL; pip install -U imagecodecs")
    return imagecodecs


def encode_jxl(img: ImageLike, distance: float, effort: int = 7) -> bytes:
    """Encode a uint8 RGB or gray image as a lossy JPEG XL codestream (``cjxl -d D -e E``)."""
    arr = as_array(img)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(
            f"encode_jxl expects an RGB or gray uint8 image, got {arr.dtype} {arr.shape}"
        )
    return bytes(
        _codecs().jpegxl_encode(
            np.ascontiguousarray(arr),
            distance=distance,
            effort=effort,
            lossless=False,
            usecontainer=False,
            numthreads=1,
        )
    )


def decode_jxl(data: bytes) -> np.ndarray:
    """Decode a JPEG XL codestream to uint8 RGB or gray."""
    out = np.asarray(_codecs().jpegxl_decode(data, numthreads=1))
    return out[..., 0] if out.ndim == 3 and out.shape[2] == 1 else out


@functools.cache
def libjxl_version() -> str:
    ic = _codecs()
    return f"imagecodecs {ic.__version__} / {ic.jpegxl_version()}"


@dataclass(frozen=True)
class JpegXl(Degradation):
    """JPEG XL at distance ``d`` (id ``jxl-d1.5``) or quality ``q`` (``jxl-q75``); ``-e9``."""

    mode: str
    value: float
    effort: int = 7

    kind: ClassVar[str] = "jxl"
    bitstream_ext: ClassVar[str] = ".jxl"
    stores_decoded: ClassVar[bool] = True
    spec_options: ClassVar[tuple[Option, ...]] = (
        Option("d", "float", min=0.1, max=25, help="Butteraugli distances (at most 2 decimals)"),
        Option("q", "int", min=0, max=100, help="cjxl quality (instead of d)"),
        Option("effort", "int", 7, min=1, max=9, help="encoder effort"),
    )
    spec_example: ClassVar[str] = "jxl:d=1,2,4"
    id_pattern: ClassVar[str] = r"jxl-(d|q)(\d+(?:\.\d+)?)(?:-e(\d))?"

    def __post_init__(self) -> None:
        v = self.value
        if self.mode == "q":
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < 100:
                raise ValueError(
                    f"JPEG XL quality must be an integer from 0 to 99 (100 is lossless), got {v!r}"
                )
        elif self.mode == "d":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.1 <= v <= 25:
                raise ValueError(f"JPEG XL distance must be from 0.1 to 25, got {v!r}")
            if round(v, 2) != v:
                raise ValueError(f"JPEG XL distance takes at most 2 decimals, got {v!r}")
        else:
            raise ValueError(f"jxl mode must be d (distance) or q (quality), got {self.mode!r}")
        if isinstance(self.effort, bool) or self.effort not in range(1, 10):
            raise ValueError(f"JPEG XL effort must be an integer from 1 to 9, got {self.effort!r}")

    @property
    def distance(self) -> float:
        d = jxl_distance_from_quality(self.value) if self.mode == "q" else float(self.value)
        return round(d, 6)

    @property
    def id(self) -> str:
        return f"jxl-{self.mode}{self._value_text}" + (
            "" if self.effort == 7 else f"-e{self.effort}"
        )

    def apply(self, gt: ImageLike) -> DegradedImage:
        return DegradedImage(encode_jxl(gt, self.distance, self.effort), gt, decoder=decode_jxl)

    @classmethod
    def from_match(cls, m: re.Match[str]) -> JpegXl:
        return cls(m[1], int(m[2]) if m[1] == "q" else float(m[2]), int(m[3] or 7))

    @classmethod
    def from_spec(cls, p: dict[str, list[str]]) -> list[Degradation]:
        if "d" not in p and "q" not in p:
            raise ValueError("jxl needs d=... (distance) or q=..., e.g. jxl:d=1,2,4")
        try:
            values = [("d", float(v)) for v in p.get("d", [])]
        except ValueError:
            raise ValueError(f"jxl d takes numbers, got {','.join(p['d'])}") from None
        values += [("q", v) for v in ints(p.get("q", []), "q")]
        efforts = ints(p.get("effort", ["7"]), "effort")
        return [cls(m, v, e) for (m, v), e in itertools.product(values, efforts)]

    @property
    def _value_text(self) -> str:
        return str(self.value) if self.mode == "q" else f"{float(self.value):g}"

    @property
    def label(self) -> str:
        effort = "" if self.effort == 7 else f" e{self.effort}"
        return f"JXL {self.mode}={self._value_text}{effort}"

    def params(self) -> dict:
        return {
            "mode": self.mode,
            "value": self.value,
            "distance": self.distance,
            "effort": self.effort,
            "container": False,
        }

    def encoder(self) -> str:
        return libjxl_version()

    def check_available(self) -> None:
        libjxl_version()
