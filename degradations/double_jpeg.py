"""Double JPEG: QF1 -> decode -> drop the first ``dy`` rows and ``dx`` columns -> QF2.

Aligned is shift (0, 0). FBCNN's non-aligned test uses (4, 4); the CODiff supplementary's
"remove the first eight rows and columns" is (8, 8), which keeps the luma grid aligned but moves
the 16-pixel 4:2:0 chroma MCU grid (see notes in the README). The ground truth is cropped the
same way as the intermediate image.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from carbench.core.options import Option
from carbench.degradations.base import (
    Degradation,
    DegradedImage,
    ImageLike,
    as_array,
    image_shape,
    ints,
)
from carbench.degradations.jpeg import (
    _CV_SAMPLING,
    check_quality,
    decode_jpeg,
    encode_jpeg,
    libjpeg_version,
)


@dataclass(frozen=True)
class DoubleJpeg(Degradation):
    """Id ``jpeg2-q10-q30`` (aligned), ``jpeg2-q10-q30-s4x4`` (rows x columns dropped)."""

    q1: int
    q2: int
    dy: int = 0
    dx: int = 0
    chroma: str = "420"

    kind: ClassVar[str] = "jpeg2"
    bitstream_ext: ClassVar[str] = ".jpg"
    spec_options: ClassVar[tuple[Option, ...]] = (
        Option("q1", "int", min=1, max=100, help="first quality factors (all pairs with q2)"),
        Option("q2", "int", min=1, max=100, help="second quality factors"),
        Option("pairs", "str", help="explicit pairs Q1/Q2 (instead of q1, q2)"),
        Option("shift", "str", "0", help="rows and columns dropped after the first encode: "
               "N (NxN) or ROWSxCOLS"),
        Option("chroma", "choice", "420", choices=("420", "422", "444"), help="subsampling"),
    )
    spec_example: ClassVar[str] = "jpeg2:q1=10,30,q2=90,shift=4"
    id_pattern: ClassVar[str] = r"jpeg2-q(\d+)-q(\d+)(?:-s(\d+)x(\d+))?(?:-(420|422|444))?"

    def __post_init__(self) -> None:
        check_quality(self.q1)
        check_quality(self.q2)
        for name, v in (("rows", self.dy), ("columns", self.dx)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(
                    f"double-JPEG shift ({name}) must be a non-negative integer, got {v!r}"
                )
        if self.chroma not in _CV_SAMPLING:
            raise ValueError(f"jpeg2 chroma must be one of 420, 422, 444, got {self.chroma!r}")

    @property
    def id(self) -> str:
        shift = f"-s{self.dy}x{self.dx}" if (self.dy, self.dx) != (0, 0) else ""
        chroma = "" if self.chroma == "420" else f"-{self.chroma}"
        return f"jpeg2-q{self.q1}-q{self.q2}{shift}{chroma}"

    def check_image(self, shape: tuple[int, ...]) -> None:
        h, w = shape[:2]
        if h - self.dy < 8 or w - self.dx < 8:
            raise ValueError(
                f"a shift of {self.dy}x{self.dx} (rows x columns) leaves "
                f"{h - self.dy}x{w - self.dx} pixels of a {h}x{w} image; at least 8x8 must remain"
            )

    def apply(self, gt: ImageLike) -> DegradedImage:
        self.check_image(image_shape(gt))
        first = decode_jpeg(encode_jpeg(gt, self.q1, self.chroma))
        if self.dy or self.dx:
            first = np.ascontiguousarray(first[self.dy :, self.dx :])
            gt = np.ascontiguousarray(as_array(gt)[self.dy :, self.dx :])
        data = encode_jpeg(first, self.q2, self.chroma)
        return DegradedImage(data, gt, gt_changed=bool(self.dy or self.dx), decoder=decode_jpeg)

    @classmethod
    def from_match(cls, m: re.Match[str]) -> DoubleJpeg:
        return cls(int(m[1]), int(m[2]), int(m[3] or 0), int(m[4] or 0), m[5] or "420")

    @classmethod
    def from_spec(cls, p: dict[str, list[str]]) -> list[Degradation]:
        """``q1=...,q2=...`` (all pairs) or ``pairs=Q1/Q2,...``; ``shift=N`` or ``ROWSxCOLS``."""
        if "pairs" in p:
            if "q1" in p or "q2" in p:
                raise ValueError("jpeg2 takes either pairs=Q1/Q2,... or q1=...,q2=..., not both")
            pairs = []
            for v in p["pairs"]:
                a, sep, b = v.partition("/")
                if not sep:
                    raise ValueError(f"jpeg2 pair must be Q1/Q2, got {v!r}")
                pairs.append(tuple(ints([a, b], "pairs")))
        elif "q1" in p and "q2" in p:
            pairs = list(itertools.product(ints(p["q1"], "q1"), ints(p["q2"], "q2")))
        else:
            raise ValueError("jpeg2 needs q1=...,q2=... or pairs=Q1/Q2,...")
        shifts = [_shift(v) for v in p.get("shift", ["0"])]
        return [
            cls(q1, q2, dy, dx, c)
            for (q1, q2), (dy, dx), c in itertools.product(pairs, shifts, p.get("chroma", ["420"]))
        ]

    @property
    def label(self) -> str:
        shift = f" s{self.dy}x{self.dx}" if (self.dy, self.dx) != (0, 0) else ""
        chroma = "" if self.chroma == "420" else f" ({self.chroma})"
        return f"QF=({self.q1},{self.q2}){shift}{chroma}"

    def decode(self, bitstream: bytes) -> np.ndarray:
        return decode_jpeg(bitstream)

    def params(self) -> dict:
        return {
            "qf1": self.q1,
            "qf2": self.q2,
            "shift_rows": self.dy,
            "shift_cols": self.dx,
            "grid": self.grid(),
            "chroma": self.chroma,
        }

    def grid(self) -> str:
        """``aligned``, ``luma-aligned`` (chroma MCU grid moved) or ``misaligned``."""
        if self.dy % 8 or self.dx % 8:
            return "misaligned"
        mcu_h, mcu_w = {"420": (16, 16), "422": (8, 16), "444": (8, 8)}[self.chroma]
        return "aligned" if self.dy % mcu_h == 0 and self.dx % mcu_w == 0 else "luma-aligned"

    def encoder(self) -> str:
        return libjpeg_version()


def _shift(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)(?:x(\d+))?", value)
    if not m:
        raise ValueError(f"shift must be N or ROWSxCOLS (e.g. 4 or 4x0), got {value!r}")
    return int(m[1]), int(m[2] if m[2] is not None else m[1])
