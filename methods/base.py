"""The method interface: an adapter restores one degraded sample to a uint8 image."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np


@dataclass
class Sample:
    """One degraded image as a method sees it."""

    image: str  # image id
    decoded: np.ndarray  # the decoded degraded image, uint8 HxWx3 or HxW
    bitstream_path: Path  # the stored bitstream (.jpg, .bpg, .hevc)
    degradation: str  # canonical id, e.g. jpeg-q10
    params: dict = field(default_factory=dict)  # degradation parameters (qf, qf1, qf2, qp, ...)


class Method:
    """Base adapter. Subclasses set the class attributes and implement ``restore``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    group: ClassVar[str] = "baseline"  # table grouping: baseline | cnn | transformer | diffusion
    colour: ClassVar[bool] = True
    gray: ClassVar[bool] = True
    saves_outputs: ClassVar[bool] = True  # write restored PNGs under outputs/

    def __init__(self, **options: str) -> None:
        self.options = options

    @property
    def id(self) -> str:
        """Method id in the store: the name, plus options (``fbcnn:qf=10``)."""
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.name}:{opts}" if opts else self.name

    def load(self, device: str = "cpu", dtype: str = "fp32") -> None:  # noqa: B027
        """Load weights onto a device. Methods without weights do nothing."""

    def weights_sha256(self) -> str:
        return ""

    def restore(self, sample: Sample) -> np.ndarray:
        raise NotImplementedError
