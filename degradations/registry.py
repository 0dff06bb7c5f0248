"""Degradation kinds, canonical-id parsing and the CLI spec language.

CLI form: ``KIND:key=v1,v2,key2=v3`` expands to the Cartesian product of the listed values, e.g.
``jpeg:q=5,10,20`` -> ``jpeg-q5``, ``jpeg-q10``, ``jpeg-q20``;
``jpeg2:q1=10,30,50,q2=10,30,50,shift=4`` -> nine pairs with shift (4, 4) (``shift=4x0`` drops
4 rows and 0 columns); ``jpeg2:pairs=5/95,10/90`` lists pairs explicitly;
``bpg:qp=30,40,50``. A canonical id (``jpeg-q10-444``) is accepted as a spec too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from carbench.core.options import unknown_name
from carbench.degradations.avif import Avif
from carbench.degradations.base import KINDS, Degradation, from_id
from carbench.degradations.chain import Chain
from carbench.degradations.double_jpeg import DoubleJpeg
from carbench.degradations.heif import Heif
from carbench.degradations.hevc import Bpg, Hevc, bpgenc_available
from carbench.degradations.jpeg import Jpeg
from carbench.degradations.jpeg2000 import Jpeg2000
from carbench.degradations.jpegxl import JpegXl
from carbench.degradations.learned import CompressAI
from carbench.degradations.webp import Webp

log = logging.getLogger(__name__)

#: The kinds, one line each; a class registers itself in ``base.KINDS`` when it is defined, so
#: adding a codec is its file plus its line here (the import that defines it).
KIND_CLASSES: tuple[type[Degradation], ...] = (
    Jpeg,
    DoubleJpeg,
    Bpg,
    Hevc,
    Webp,
    Jpeg2000,
    Avif,
    JpegXl,
    Heif,
    Chain,
    CompressAI,
)


def expand(spec: str) -> list[Degradation]:
    """Expand a CLI spec (or a canonical id) into degradations, in the order written."""
    spec = spec.strip()
    if ":" not in spec:
        return [from_id(spec)]
    kind, _, rest = spec.partition(":")
    if kind not in KINDS:
        raise unknown_name("degradation kind", kind, KINDS)
    return KINDS[kind].from_spec_text(rest)


def expand_all(specs: Iterable[str]) -> list[Degradation]:
    """Expand several specs, dropping repeats while keeping order."""
    seen: dict[str, Degradation] = {}
    for spec in specs:
        for deg in expand(spec):
            seen.setdefault(deg.id, deg)
    return list(seen.values())


def with_bpg_fallback(deg: Degradation) -> Degradation:
    """Replace a default-option ``bpg`` spec by ``hevc`` when bpgenc is not installed."""
    if not isinstance(deg, Bpg) or bpgenc_available():
        return deg
    if (deg.color_space, deg.bit_depth, deg.encoder_name, deg.level) != ("ycbcr", 8, "x265", 8):
        raise RuntimeError(
            f"{deg.id} needs the real bpgenc/bpgdec (not on PATH; set BENCH_BPGENC/BENCH_BPGDEC); "
            "the ffmpeg fallback only reproduces bpgenc's default options"
        )
    fallback = Hevc(deg.qp, deg.chroma)
    log.info(
        "bpgenc not found: %s is generated as %s (ffmpeg + libx265, BPG-compatible "
        "settings); it is recorded under that id",
        deg.id,
        fallback.id,
    )
    return fallback
