"""Rate sweeps: one documented ladder of settings per codec, for rate-distortion curves.

``bench generate --sweep jpeg,webp`` (and ``bench run --sweep ...``) expands each named codec
into the degradations of its ladder: ordinary degradation specs, checked against the kind's
own ``spec_options``, so a rung is stored, named and decoded like any other set. Every stored
bitstream's exact size is recorded in the manifest (``bytes``, and ``bpp`` = file size in bits
over the ground truth's pixels); what the file holds besides the coded image is the ladder's
``container`` note. The ladders are declared once, as :class:`Option` rows (:data:`SWEEPS`),
so a misspelt codec name is refused naming the known ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from carbench.core.options import Option, check_known


@dataclass(frozen=True)
class Ladder:
    """One codec's sweep: the degradation spec of its rungs and what its files contain."""

    codec: str
    spec: str  # a degradation spec, e.g. ``jpeg:q=10,20,30``
    container: str  # what the stored file holds besides the coded image (the bpp counts it)


LADDERS: tuple[Ladder, ...] = (
    Ladder(
        "jpeg",
        "jpeg:q=10,20,30,50,70,90",
        "JFIF file: markers, quantisation and Huffman tables (~0.6 KB)",
    ),
    Ladder("webp", "webp:q=10,25,40,55,70,85", "RIFF/WebP container (20-byte header)"),
    Ladder(
        "avif",
        "avif:q=20,35,50,60,70,80",
        "HEIF/ISOBMFF container (ftyp, meta boxes; ~0.3 KB)",
    ),
    Ladder("jxl", "jxl:d=6,4,3,2,1.5,1", "bare JPEG XL codestream (no container box)"),
    Ladder("jp2k", "jp2k:cr=96,64,48,32,24,16", "raw J2K codestream (main header, no JP2 boxes)"),
    Ladder("bpg", "bpg:qp=42,38,34,30,26,22", "BPG file header; HEVC-intra without bpgenc"),
    Ladder("hevc", "hevc:qp=42,38,34,30,26,22", "raw Annex-B HEVC stream (VPS/SPS/PPS)"),
    Ladder("heif", "heif:qp=42,38,34,30,26,22", "HEIF/ISOBMFF container (~0.4 KB)"),
    *(
        Ladder(
            f"compressai-{model}",
            f"compressai:model={model},q={','.join(map(str, range(1, n + 1)))}",
            "21-byte carbench header (size, latent shape, string lengths) + entropy strings",
        )
        for model, n in (("bmshj2018-hyperprior", 8), ("mbt2018-mean", 8), ("cheng2020-anchor", 6))
    ),
)

#: the sweeps as declared options: name = codec, default = its ladder (a degradation spec)
SWEEPS: tuple[Option, ...] = tuple(
    Option(lad.codec, "str", lad.spec, help=f"bpp includes: {lad.container}") for lad in LADDERS
)


def ladder(codec: str) -> Ladder:
    """The ladder of one codec; an unknown name is an ``OptionError`` naming the known ones."""
    check_known("--sweep", SWEEPS, [codec])
    return next(lad for lad in LADDERS if lad.codec == codec)


def parse_sweep(text: str | Iterable[str]) -> list[str]:
    """``"jpeg,webp"`` (or several such) -> the degradation specs of those ladders, in order;
    each codec name is checked against :data:`SWEEPS`."""
    parts = [text] if isinstance(text, str) else list(text)
    names = [n.strip() for p in parts for n in p.split(",") if n.strip()]
    if not names:
        check_known("--sweep", SWEEPS, [""])
    return list(dict.fromkeys(ladder(n).spec for n in names))
