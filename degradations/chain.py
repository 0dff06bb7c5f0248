"""Chains: a degradation that is a sequence of resize and codec steps, e.g. a platform that
downscales, encodes and re-encodes.

Spec ``chain:resize=0.5:bicubic,jpeg=75,resize=2:bicubic`` or a named preset
``chain:preset=platform``. Steps:

- ``resize=F[:FILTER]`` scales both sides by ``F`` (rounded, at least 1 pixel) with Pillow's
  antialiased resampling (``bicubic`` default, ``bilinear``, ``lanczos``, ``box``, ``nearest``);
- ``long=N[:FILTER]`` downscales so the long side is at most ``N`` (no-op on smaller images);
- ``jpeg=Q[:CHROMA]``, ``webp=Q``, ``avif=Q``, ``jxl=D`` (distance), ``jp2k=CR``, ``heif=QP``, or
  any single-image canonical id (``jpeg-q75-444``, ``avif-q50-s4``) as a codec step; each codec
  step encodes the current image and continues from its decoded pixels.

Canonical id: ``chain-`` and the steps joined by ``+`` (``chain-resize0.5+jpeg-q75+resize2``;
a non-bicubic filter is appended as ``-lanczos``); a preset has the id of its steps.

Refused before any work: an unknown step, a chain without a codec step, two geometry steps in a
row (write one), a resize by 1, a nested chain, a double JPEG with a shift (its crop would move
the ground truth) or a BPG/HEVC step (padding extras).

Ground truth: when the chain ends at the input's size (``resize=0.5 ... resize=2``) the ground
truth is the input itself; otherwise it is the input resized once, straight to the output size,
with the filter of the chain's first geometry step (``gt_changed``; the manifest's ``extra_gt``
says which). The stored bitstream is the last codec step's output (``.jpg`` when that is JPEG, so
``bench qf`` reads the last JPEG's tables); bpp is its size over the output's pixels; methods get
the final decoded image (stored as PNG), which differs from the bitstream's decode when the chain
ends with a resize.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PIL import Image

from carbench.core.options import Option, check_known
from carbench.degradations.base import Degradation, DegradedImage, ImageLike, as_array, from_id

FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "nearest": Image.Resampling.NEAREST,
}

PRESETS = {
    # A platform-like pipeline: downscale to a long side of 2048, JPEG 85 4:2:0, re-save at 70.
    "platform": "long=2048:bicubic,jpeg=85:420,jpeg=70:420",
}

_SHORT = {  # step key -> canonical id of the codec step from its value
    "jpeg": lambda v, c: f"jpeg-q{v}" + ("" if c in (None, "420") else f"-{c}"),
    "webp": lambda v, c: f"webp-q{v}",
    "avif": lambda v, c: f"avif-q{v}" + ("" if c in (None, "420") else f"-{c}"),
    "jxl": lambda v, c: f"jxl-d{float(v):g}",
    "jp2k": lambda v, c: f"jp2k-cr{v}",
    "heif": lambda v, c: f"heif-qp{v}" + ("" if c in (None, "420") else f"-{c}"),
}


#: the steps ``chain:`` takes, in any order and repeated; the value's ``:SUFFIX`` (a filter, a
#: chroma) is checked by the step
STEPS: tuple[Option, ...] = (
    Option("resize", "float", min=0.05, max=8, help="scale both sides (not 1); :FILTER"),
    Option("long", "int", min=16, max=65535, help="downscale to this long side; :FILTER"),
    Option("jpeg", "int", min=1, max=100, help="JPEG quality; :CHROMA (420, 422, 444)"),
    Option("webp", "int", min=0, max=100, help="WebP quality"),
    Option("avif", "int", min=0, max=100, help="AVIF quality; :CHROMA (420, 444)"),
    Option("jxl", "float", min=0.1, max=25, help="JPEG XL distance"),
    Option("jp2k", "int", min=1, help="JPEG 2000 compression ratio"),
    Option("heif", "int", min=0, max=51, help="HEIF (x265) QP; :CHROMA (420, 444)"),
    Option("preset", "choice", choices=tuple(PRESETS), help="a named chain (alone)"),
)
_STEP = {o.name: o for o in STEPS}


@dataclass(frozen=True)
class Geometry:
    """A resize step: ``op`` is ``resize`` (factor) or ``long`` (max long side)."""

    op: str
    value: float
    filter: str = "bicubic"

    @property
    def token(self) -> str:
        v = f"{self.value:g}" if self.op == "resize" else str(int(self.value))
        return f"{self.op}{v}" + ("" if self.filter == "bicubic" else f"-{self.filter}")

    @property
    def label(self) -> str:
        """``resize0.5`` -> ``×0.5`` (``×0.5 lanczos``); a ``long`` step keeps its token."""
        if self.op == "long":
            return self.token
        m = re.fullmatch(r"resize([\d.]+)(-[a-z]+)?", self.token)
        return f"×{m[1]}" + (f" {m[2][1:]}" if m[2] else "")

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        if self.op == "resize":
            return max(1, round(h * self.value)), max(1, round(w * self.value))
        s = min(1.0, self.value / max(h, w))
        return max(1, round(h * s)), max(1, round(w * s))

    def apply(self, img: np.ndarray) -> np.ndarray:
        h, w = self.out_size(*img.shape[:2])
        if (h, w) == img.shape[:2]:
            return img
        pil = Image.fromarray(np.ascontiguousarray(img))
        return np.asarray(pil.resize((w, h), FILTERS[self.filter]))


def _geometry(op: str, value: str) -> Geometry:
    num, _, filt = value.partition(":")
    filt = filt or "bicubic"
    if filt not in FILTERS:
        raise ValueError(f"chain {op} filter must be one of {', '.join(FILTERS)}, got {filt!r}")
    v = _STEP[op].parse(num, "chain")
    if op == "resize" and v == 1:
        raise ValueError(f"chain resize factor must be from 0.05 to 8 and not 1, got {num}")
    return Geometry(op, float(v), filt)


def _codec(token: str) -> Degradation:
    key, eq, value = token.partition("=")
    if eq:
        check_known("chain (steps; or a codec id such as jpeg-q75-444)", STEPS[:-1], [key])
        v, _, c = value.partition(":")
        deg = from_id(_SHORT[key](_STEP[key].text(_STEP[key].parse(v, "chain")), c or None))
    else:
        deg = from_id(token)
    if deg.kind in ("chain", "bpg", "hevc"):
        raise ValueError(f"a chain step cannot be {deg.kind} ({deg.id})")
    if deg.kind == "jpeg2" and (deg.dy or deg.dx):
        raise ValueError(f"a chain step cannot be a shifted double JPEG ({deg.id})")
    return deg


Step = Geometry | Degradation


def parse_steps(text: str) -> tuple[Step, ...]:
    """Parse ``resize=0.5:bicubic,jpeg=75,...`` (or ``preset=NAME``) into steps, checked."""
    text = text.strip()
    if text.startswith("preset="):
        text = PRESETS[_STEP["preset"].parse(text.removeprefix("preset="), "chain")]
    steps: list[Step] = []
    for token in filter(None, (t.strip() for t in text.split(","))):
        key, _, value = token.partition("=")
        steps.append(_geometry(key, value) if key in ("resize", "long") else _codec(token))
    return check_steps(steps)


def check_steps(steps: list[Step]) -> tuple[Step, ...]:
    if not any(isinstance(s, Degradation) for s in steps):
        raise ValueError("a chain needs at least one codec step (e.g. jpeg=75)")
    for a, b in zip(steps, steps[1:], strict=False):
        if isinstance(a, Geometry) and isinstance(b, Geometry):
            raise ValueError(
                f"chain step {b.token} cannot follow {a.token}: write one geometry step"
            )
    return tuple(steps)


def _token(s: Step) -> str:
    return s.token if isinstance(s, Geometry) else s.id


@dataclass(frozen=True)
class Chain(Degradation):
    """A sequence of resize and codec steps (id ``chain-resize0.5+jpeg-q75+resize2``)."""

    steps: tuple[Step, ...]

    kind: ClassVar[str] = "chain"
    stores_decoded: ClassVar[bool] = True
    spec_options: ClassVar[tuple[Option, ...]] = STEPS
    spec_example: ClassVar[str] = "chain:resize=0.5,jpeg=75,resize=2"
    id_pattern: ClassVar[str] = r"chain-(.+)"

    def __post_init__(self) -> None:
        check_steps(list(self.steps))

    @classmethod
    def parse(cls, text: str) -> Chain:
        return cls(parse_steps(text))

    @classmethod
    def from_spec_text(cls, text: str) -> list[Degradation]:
        """Steps are ordered, so ``chain:...`` is parsed whole, not as a parameter table."""
        return [cls.parse(text)]

    @classmethod
    def from_match(cls, m: re.Match[str]) -> Chain:
        return cls.from_id_text(m[1])

    @property
    def label(self) -> str:
        return " → ".join(s.label for s in self.steps)

    @classmethod
    def from_id_text(cls, body: str) -> Chain:
        """Inverse of ``id`` without the ``chain-`` prefix."""
        steps: list[Step] = []
        for tok in body.split("+"):
            m = re.fullmatch(r"(resize|long)([\d.]+)(?:-([a-z]+))?", tok)
            steps.append(_geometry(m[1], f"{m[2]}:{m[3] or 'bicubic'}") if m else _codec(tok))
        return cls(check_steps(steps))

    @property
    def codecs(self) -> list[Degradation]:
        return [s for s in self.steps if isinstance(s, Degradation)]

    @property
    def bitstream_ext(self) -> str:  # type: ignore[override]
        return self.codecs[-1].bitstream_ext

    @property
    def id(self) -> str:
        return "chain-" + "+".join(_token(s) for s in self.steps)

    def _first_filter(self) -> str:
        return next((s.filter for s in self.steps if isinstance(s, Geometry)), "bicubic")

    def check_image(self, shape: tuple[int, ...]) -> None:
        h, w = shape[:2]
        for s in self.steps:
            if isinstance(s, Geometry):
                h, w = s.out_size(h, w)
                if min(h, w) < 8:
                    raise ValueError(f"{self.id}: {s.token} leaves a {h}x{w} image (< 8 pixels)")
            else:
                s.check_image((h, w, *shape[2:]))

    def check_available(self) -> None:
        for c in self.codecs:
            c.check_available()

    def apply(self, gt: ImageLike) -> DegradedImage:
        src = as_array(gt)
        img, last = src, None
        for s in self.steps:
            if isinstance(s, Geometry):
                img = s.apply(img)
            else:
                last = s.apply(img)
                img = as_array(last.decoded)
        if img.shape == src.shape:
            ref, changed = gt, False
        else:
            pil = Image.fromarray(np.ascontiguousarray(src))
            size = (img.shape[1], img.shape[0])
            ref, changed = np.asarray(pil.resize(size, FILTERS[self._first_filter()])), True
        extra = {"gt": "input resized to output size" if changed else "input"}
        return DegradedImage(
            last.bitstream, ref, gt_changed=changed, extra=extra, _decoded=np.ascontiguousarray(img)
        )

    def params(self) -> dict:
        out: dict = {"steps": ",".join(_token(s) for s in self.steps), "n_steps": len(self.steps)}
        for i, s in enumerate(self.steps, 1):
            if isinstance(s, Geometry):
                out.update({f"s{i}_op": s.op, f"s{i}_value": s.value, f"s{i}_filter": s.filter})
            else:
                out[f"s{i}_op"] = s.kind
                out[f"s{i}_id"] = s.id
                out.update({f"s{i}_{k}": v for k, v in s.params().items()})
        return out

    def encoder(self) -> str:
        from PIL import __version__

        codecs = dict.fromkeys(c.encoder() for c in self.codecs)
        return "; ".join([*codecs, f"Pillow {__version__} resize"])
