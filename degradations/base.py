"""The degradation interface: a frozen spec with a canonical id and a pure ``apply``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PIL import Image

#: A uint8 image: numpy HxWx3 RGB / HxW gray, or a Pillow image in mode RGB / L.
ImageLike = np.ndarray | Image.Image


def as_array(img: ImageLike) -> np.ndarray:
    return img if isinstance(img, np.ndarray) else np.asarray(img)


def as_pil(img: ImageLike) -> Image.Image:
    return img if isinstance(img, Image.Image) else Image.fromarray(np.ascontiguousarray(img))


def image_shape(img: ImageLike) -> tuple[int, ...]:
    """numpy-style shape (H, W) or (H, W, C) without converting a Pillow image."""
    if isinstance(img, np.ndarray):
        return img.shape
    return (img.height, img.width) if img.mode == "L" else (img.height, img.width, 3)


@dataclass
class DegradedImage:
    """What a degradation makes of one ground-truth image.

    ``gt`` is the ground truth the result must be scored against: the input itself, or a changed
    copy (``gt_changed``) when the degradation crops or converts it (shifted double JPEG, gray).
    ``decoded`` is computed on first use when the degradation gives a ``decoder`` (JPEG: most
    callers only store the bitstream). ``extra`` holds per-image facts such as padding.
    """

    bitstream: bytes
    gt: ImageLike
    gt_changed: bool = False
    extra: dict | None = None
    decoder: Callable[[bytes], np.ndarray] | None = None
    _decoded: np.ndarray | None = None

    @property
    def decoded(self) -> np.ndarray:
        if self._decoded is None:
            self._decoded = self.decoder(self.bitstream)
        return self._decoded


@dataclass(frozen=True)
class Degradation(ABC):
    """A named, parameterised degradation. Subclasses are frozen dataclasses."""

    kind: ClassVar[str]
    bitstream_ext: ClassVar[str]
    #: True when the decoded image comes from an external tool and is stored as PNG.
    stores_decoded: ClassVar[bool] = False

    @property
    @abstractmethod
    def id(self) -> str:
        """Canonical id used in folder names, store rows and tables, e.g. ``jpeg-q10``."""

    @abstractmethod
    def apply(self, gt: ImageLike) -> DegradedImage:
        """Degrade a uint8 RGB (HxWx3) or gray (HxW) ground truth."""

    @abstractmethod
    def params(self) -> dict:
        """Flat parameters for the manifest (JSON-serialisable scalars)."""

    @abstractmethod
    def encoder(self) -> str:
        """Encoder name and library version, for the manifest."""

    def check_image(self, shape: tuple[int, ...]) -> None:  # noqa: B027 - optional hook
        """Raise ``ValueError`` when an image of this shape cannot be degraded this way."""

    def check_available(self) -> None:  # noqa: B027 - optional hook
        """Raise ``RuntimeError`` naming the missing tool when the encoder cannot run here."""

    def __str__(self) -> str:
        return self.id
