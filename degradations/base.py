"""The degradation interface: a frozen spec with a canonical id and a pure ``apply``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np


@dataclass
class DegradedImage:
    """What a degradation makes of one ground-truth image.

    ``gt`` is the ground truth the result must be scored against: the input itself, or a changed
    copy (``gt_changed``) when the degradation crops or converts it (shifted double JPEG, gray).
    ``extra`` holds per-image facts such as padding applied before an external encoder.
    """

    bitstream: bytes
    decoded: np.ndarray
    gt: np.ndarray
    gt_changed: bool = False
    extra: dict | None = None


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
    def apply(self, gt: np.ndarray) -> DegradedImage:
        """Degrade a uint8 RGB (HxWx3) or gray (HxW) ground truth."""

    @abstractmethod
    def params(self) -> dict:
        """Flat parameters for the manifest (JSON-serialisable scalars)."""

    @abstractmethod
    def encoder(self) -> str:
        """Encoder name and library version, for the manifest."""

    def check_image(self, shape: tuple[int, ...]) -> None:  # noqa: B027 - optional hook
        """Raise ``ValueError`` when an image of this shape cannot be degraded this way."""

    def __str__(self) -> str:
        return self.id
