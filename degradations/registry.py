"""Degradation kinds, canonical-id parsing and the CLI spec language.

CLI form: ``KIND:key=v1,v2,key2=v3`` expands to the Cartesian product of the listed values, e.g.
``jpeg:q=5,10,20`` -> ``jpeg-q5``, ``jpeg-q10``, ``jpeg-q20``;
``jpeg2:q1=10,30,50,q2=10,30,50,shift=4`` -> nine pairs with shift (4, 4) (``shift=4x0`` drops
4 rows and 0 columns); ``jpeg2:pairs=5/95,10/90`` lists pairs explicitly;
``bpg:qp=30,40,50``. A canonical id (``jpeg-q10-444``) is accepted as a spec too.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Iterable

from degradations.avif import Avif
from degradations.base import Degradation
from degradations.chain import Chain
from degradations.double_jpeg import DoubleJpeg
from degradations.heif import Heif
from degradations.hevc import Bpg, Hevc, bpgenc_available
from degradations.jpeg import Jpeg
from degradations.jpeg2000 import Jpeg2000
from degradations.jpegxl import JpegXl
from degradations.webp import Webp

log = logging.getLogger(__name__)

KINDS: dict[str, type[Degradation]] = {
    "jpeg": Jpeg,
    "jpeg2": DoubleJpeg,
    "bpg": Bpg,
    "hevc": Hevc,
    "webp": Webp,
    "jp2k": Jpeg2000,
    "avif": Avif,
    "jxl": JpegXl,
    "heif": Heif,
    "chain": Chain,
}

_ID_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Degradation]]] = [
    (re.compile(r"jpeg-q(\d+)(?:-(420|422|444|gray))?"), lambda m: Jpeg(int(m[1]), m[2] or "420")),
    (
        re.compile(r"jpeg2-q(\d+)-q(\d+)(?:-s(\d+)x(\d+))?(?:-(420|422|444))?"),
        lambda m: DoubleJpeg(int(m[1]), int(m[2]), int(m[3] or 0), int(m[4] or 0), m[5] or "420"),
    ),
    (re.compile(r"hevc-qp(\d+)(?:-(420|422|444))?"), lambda m: Hevc(int(m[1]), m[2] or "420")),
    (re.compile(r"jp2k-(cr|db)(\d+)"), lambda m: Jpeg2000(m[1], int(m[2]))),
    (re.compile(r"webp-q(\d+)(?:-m(\d))?"), lambda m: Webp(int(m[1]), int(m[2] or 4))),
    (
        re.compile(r"avif-q(\d+)(?:-s(\d+))?(?:-(444))?"),
        lambda m: Avif(int(m[1]), int(m[2] or 6), m[3] or "420"),
    ),
    (
        re.compile(r"jxl-(d|q)(\d+(?:\.\d+)?)(?:-e(\d))?"),
        lambda m: JpegXl(m[1], int(m[2]) if m[1] == "q" else float(m[2]), int(m[3] or 7)),
    ),
    (re.compile(r"heif-qp(\d+)(?:-(444))?"), lambda m: Heif(int(m[1]), m[2] or "420")),
    (re.compile(r"chain-(.+)"), lambda m: Chain.from_id_text(m[1])),
    (re.compile(r"bpg-qp(\d+)((?:-[a-z0-9]+)*)"), lambda m: _bpg_from_suffix(int(m[1]), m[2])),
]


def _bpg_from_suffix(qp: int, suffix: str) -> Bpg:
    kw: dict = {}
    for part in filter(None, suffix.split("-")):
        if part in ("420", "422", "444"):
            kw["chroma"] = part
        elif part in ("rgb", "ycgco", "ycbcrbt709", "ycbcrbt2020"):
            kw["color_space"] = part.replace("ycbcrbt", "ycbcr_bt")
        elif re.fullmatch(r"b\d+", part):
            kw["bit_depth"] = int(part[1:])
        elif part == "jctvc":
            kw["encoder_name"] = part
        elif re.fullmatch(r"m\d", part):
            kw["level"] = int(part[1:])
        else:
            raise ValueError(f"unknown bpg id part {part!r}")
    return Bpg(qp, **kw)


def from_id(did: str) -> Degradation:
    """Parse a canonical id such as ``jpeg2-q10-q30-s4x4``; inverse of ``Degradation.id``."""
    for pattern, build in _ID_PATTERNS:
        m = pattern.fullmatch(did)
        if m:
            deg = build(m)
            if deg.id != did:
                raise ValueError(f"{did!r} is not canonical; write it as {deg.id!r}")
            return deg
    raise ValueError(
        f"unknown degradation {did!r}; expected an id like jpeg-q10, jpeg-q10-444, jpeg2-q10-q30, "
        "jpeg2-q10-q30-s4x4, bpg-qp30, hevc-qp30, webp-q50, avif-q50, jxl-d1.5 "
        "or a spec like jpeg:q=5,10,20"
    )


def _split_params(text: str) -> dict[str, list[str]]:
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


def _ints(values: list[str], name: str) -> list[int]:
    try:
        return [int(v) for v in values]
    except ValueError:
        raise ValueError(f"{name} takes integers, got {','.join(values)}") from None


def _shift(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)(?:x(\d+))?", value)
    if not m:
        raise ValueError(f"shift must be N or ROWSxCOLS (e.g. 4 or 4x0), got {value!r}")
    return int(m[1]), int(m[2] if m[2] is not None else m[1])


_ALLOWED = {
    "jpeg": {"q", "chroma"},
    "jpeg2": {"q1", "q2", "pairs", "shift", "chroma"},
    "bpg": {"qp", "chroma", "cs", "bits", "encoder", "level"},
    "hevc": {"qp", "chroma"},
    "webp": {"q", "method"},
    "jp2k": {"cr", "db"},
    "avif": {"q", "speed", "chroma"},
    "jxl": {"d", "q", "effort"},
    "heif": {"qp", "chroma"},
}


def expand(spec: str) -> list[Degradation]:
    """Expand a CLI spec (or a canonical id) into degradations, in the order written."""
    spec = spec.strip()
    if ":" not in spec:
        return [from_id(spec)]
    kind, _, rest = spec.partition(":")
    if kind not in KINDS:
        raise ValueError(f"unknown degradation kind {kind!r}; known: {', '.join(KINDS)}")
    if kind == "chain":
        return [Chain.parse(rest)]
    p = _split_params(rest)
    unknown = set(p) - _ALLOWED[kind]
    if unknown:
        raise ValueError(
            f"{kind} has no parameter {sorted(unknown)[0]!r}; "
            f"allowed: {', '.join(sorted(_ALLOWED[kind]))}"
        )
    chroma = p.get("chroma", ["420"])
    if kind == "jpeg":
        if "q" not in p:
            raise ValueError("jpeg needs q=..., e.g. jpeg:q=5,10,20")
        return [Jpeg(q, c) for q, c in itertools.product(_ints(p["q"], "q"), chroma)]
    if kind == "jpeg2":
        if "pairs" in p:
            if "q1" in p or "q2" in p:
                raise ValueError("jpeg2 takes either pairs=Q1/Q2,... or q1=...,q2=..., not both")
            pairs = []
            for v in p["pairs"]:
                a, sep, b = v.partition("/")
                if not sep:
                    raise ValueError(f"jpeg2 pair must be Q1/Q2, got {v!r}")
                pairs.append(tuple(_ints([a, b], "pairs")))
        elif "q1" in p and "q2" in p:
            pairs = list(itertools.product(_ints(p["q1"], "q1"), _ints(p["q2"], "q2")))
        else:
            raise ValueError("jpeg2 needs q1=...,q2=... or pairs=Q1/Q2,...")
        shifts = [_shift(v) for v in p.get("shift", ["0"])]
        return [
            DoubleJpeg(q1, q2, dy, dx, c)
            for (q1, q2), (dy, dx), c in itertools.product(pairs, shifts, chroma)
        ]
    if kind == "jp2k":
        if not p:
            raise ValueError("jp2k needs cr=... or db=..., e.g. jp2k:cr=10,20,40")
        return [Jpeg2000(m, v) for m in ("cr", "db") for v in _ints(p.get(m, []), m)]
    if kind == "webp":
        if "q" not in p:
            raise ValueError("webp needs q=..., e.g. webp:q=25,50,75")
        methods = _ints(p.get("method", ["4"]), "method")
        return [Webp(q, m) for q, m in itertools.product(_ints(p["q"], "q"), methods)]
    if kind == "jxl":
        if "d" not in p and "q" not in p:
            raise ValueError("jxl needs d=... (distance) or q=..., e.g. jxl:d=1,2,4")
        try:
            values = [("d", float(v)) for v in p.get("d", [])]
        except ValueError:
            raise ValueError(f"jxl d takes numbers, got {','.join(p['d'])}") from None
        values += [("q", v) for v in _ints(p.get("q", []), "q")]
        efforts = _ints(p.get("effort", ["7"]), "effort")
        return [JpegXl(m, v, e) for (m, v), e in itertools.product(values, efforts)]
    if kind == "avif":
        if "q" not in p:
            raise ValueError("avif needs q=..., e.g. avif:q=30,50,70")
        speeds = _ints(p.get("speed", ["6"]), "speed")
        return [Avif(q, s, c) for q, s, c in itertools.product(_ints(p["q"], "q"), speeds, chroma)]
    if "qp" not in p:
        raise ValueError(f"{kind} needs qp=..., e.g. {kind}:qp=30,40,50")
    qps = _ints(p["qp"], "qp")
    if kind == "heif":
        return [Heif(qp, c) for qp, c in itertools.product(qps, chroma)]
    if kind == "hevc":
        return [Hevc(qp, c) for qp, c in itertools.product(qps, chroma)]
    return [
        Bpg(qp, c, cs, b, e, lv)
        for qp, c, cs, b, e, lv in itertools.product(
            qps,
            chroma,
            p.get("cs", ["ycbcr"]),
            _ints(p.get("bits", ["8"]), "bits"),
            p.get("encoder", ["x265"]),
            _ints(p.get("level", ["8"]), "level"),
        )
    ]


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
