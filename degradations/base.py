"""The degradation interface: a frozen spec with a canonical id and a pure ``apply``.

Each kind owns its grammar: the CLI parameters it takes (``spec_options``, ``from_spec``), the
pattern of its canonical id (``id_pattern``, ``from_match``), its table label (``label``) and how
a stored bitstream is decoded for a method (``decode``). Defining a subclass with a ``kind``
registers it in ``KINDS``; ``from_id`` and ``degradations.registry.expand`` read only that.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PIL import Image

from carbench.core.options import Option, resolve_lists

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

    # -- grammar: what ``KIND:key=v,...`` and the canonical id mean for this kind --------------

    #: the parameters ``KIND:key=v1,v2,...`` accepts, declared once (type, range, default,
    #: help); ``from_spec`` receives their checked values, defaults filled in
    spec_options: ClassVar[tuple[Option, ...]] = ()
    #: an example spec, for the error when a required parameter is missing
    spec_example: ClassVar[str] = ""
    #: the canonical id's grammar (``re.fullmatch``), e.g. ``jpeg-q(\d+)(?:-(444|gray))?``
    id_pattern: ClassVar[str]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            KINDS[cls.kind] = cls

    @classmethod
    @abstractmethod
    def from_match(cls, m: re.Match[str]) -> Degradation:
        """The degradation whose canonical id matched ``id_pattern``."""

    @classmethod
    def from_spec(cls, p: dict[str, list]) -> list[Degradation]:
        """Every degradation a CLI spec's parameters (checked against ``spec_options``,
        defaults filled in) expand to."""
        raise NotImplementedError(f"{cls.kind} specs are parsed by from_spec_text")

    @classmethod
    def from_spec_text(cls, text: str) -> list[Degradation]:
        """``q=5,10,chroma=444`` (the part after ``KIND:``) -> degradations, in order."""
        p = resolve_lists(cls.kind, cls.spec_options, split_params(text), cls.spec_example)
        return cls.from_spec(p)

    @property
    def label(self) -> str:
        """How the degradation is headed in tables (``QF=10``)."""
        return self.id

    def decode(self, bitstream: bytes) -> np.ndarray:
        """Decode a stored bitstream as methods see it (kinds that store a decoded PNG don't)."""
        raise ValueError(f"{self.id}: sets of this kind store the decoded image; read that")

    def __str__(self) -> str:
        return self.id


#: every kind by name, in the order their classes were defined
KINDS: dict[str, type[Degradation]] = {}

_ID_EXAMPLES = (
    "jpeg-q10, jpeg-q10-444, jpeg2-q10-q30, jpeg2-q10-q30-s4x4, bpg-qp30, hevc-qp30, webp-q50, "
    "avif-q50, jxl-d1.5"
)


def from_id(did: str) -> Degradation:
    """Parse a canonical id such as ``jpeg2-q10-q30-s4x4``; inverse of ``Degradation.id``."""
    cls = KINDS.get(did.split("-", 1)[0])
    m = re.fullmatch(cls.id_pattern, did) if cls else None
    if m is None:
        raise ValueError(
            f"unknown degradation {did!r}; expected an id like {_ID_EXAMPLES} "
            "or a spec like jpeg:q=5,10,20"
        )
    deg = cls.from_match(m)
    if deg.id != did:
        raise ValueError(f"{did!r} is not canonical; write it as {deg.id!r}")
    return deg


def split_params(text: str) -> dict[str, list[str]]:
    """``q1=10,30,q2=50`` -> {"q1": ["10", "30"], "q2": ["50"]}."""
    params: dict[str, list[str]] = {}
    key = None
    for token in filter(None, (t.strip() for t in text.split(","))):
        if "=" in token:
            key, value = (s.strip() for s in token.split("=", 1))
            if key in params:
                raise ValueError(f"parameter {key!r} given twice")
            params[key] = [value] if value else []
        elif key is None:
            raise ValueError(f"value {token!r} has no parameter name (write key=value)")
        else:
            params[key].append(token)
    return params


def ints(values: list[str], name: str) -> list[int]:
    """Integer parameter values, or an error naming the parameter."""
    try:
        return [int(v) for v in values]
    except ValueError:
        raise ValueError(f"{name} takes integers, got {','.join(values)}") from None


def need(p: dict[str, list[str]], key: str, example: str, kind: str) -> list[str]:
    """The values of a required parameter, or ``{kind} needs {key}=..., e.g. {example}``."""
    if key not in p:
        raise ValueError(f"{kind} needs {key}=..., e.g. {example}")
    return p[key]
