"""Evaluation protocols: how a paper turns a test-set image into its ground truth.

A protocol only prepares the ground truth; the degradation (JPEG, BPG, ...) is separate.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from carbench.core.options import unknown_name
from carbench.degradations.base import ImageLike, as_array, as_pil, image_shape
from carbench.degradations.color import rgb_to_y_uint8


@dataclass(frozen=True)
class Protocol:
    """A named ground-truth preparation with its provenance."""

    name: str
    description: str
    source: str
    color: str  # "rgb": force RGB, "keep": as stored, "gray": BT.601 studio-range Y (rounded)
    resize_multiple: int = 0  # Lanczos-resize down to a multiple of this (0: never)

    def prepare(self, img: ImageLike) -> tuple[ImageLike, bool]:
        """Return (ground truth, whether it differs from the stored image).

        An unchanged image is returned as given (numpy or Pillow), so nothing is copied.
        """
        gt, changed = img, False
        shape = image_shape(gt)
        if self.color == "rgb" and len(shape) == 2:
            gt, changed = as_pil(gt).convert("RGB"), True  # CODiff: PIL .convert("RGB")
        elif self.color == "gray" and len(shape) == 3:
            gt, changed = rgb_to_y_uint8(as_array(gt)), True
        m = self.resize_multiple
        if m:
            h, w = shape[:2]
            th, tw = h - h % m, w - w % m
            if th == 0 or tw == 0:
                raise ValueError(
                    f"image is {w}x{h}; protocol {self.name} resizes to multiples of "
                    f"{m} and needs at least {m}x{m}"
                )
            if (th, tw) != (h, w):
                gt, changed = as_pil(gt).resize((tw, th), Image.Resampling.LANCZOS), True
        return gt, changed


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in [
        Protocol(
            "codiff",
            "RGB; PIL Lanczos resize down to multiples of 8 (the resized image is "
            "the ground truth); JPEG 4:2:0 via libjpeg-turbo",
            "jp-guo/CODiff:main_test_codiff.py",
            color="rgb",
            resize_multiple=8,
        ),
        Protocol(
            "fbcnn",
            "no resize; colour sets on RGB, gray sets single-channel (1-component JPEG)",
            "jiaxi-jiang/FBCNN:main_test_fbcnn_color.py / _gray.py",
            color="keep",
        ),
        Protocol(
            "fbcnn-gray",
            "no resize; colour images converted to BT.601 studio-range Y "
            "rounded to uint8 (MATLAB rgb2ycbcr), as FBCNN's LIVE1_gray and SwinIR jpeg_car",
            "jiaxi-jiang/FBCNN:testsets/LIVE1_gray; JingyunLiang/SwinIR:main_test_swinir.py",
            color="gray",
        ),
    ]
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise unknown_name("protocol", name, PROTOCOLS) from None
