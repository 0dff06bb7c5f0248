"""The metric table: one row per (metric, variant), pyiqa-style.

A metric is asked for as ``name`` (its default variant), ``name:variant`` and optionally
``@N`` for an N-pixel border crop, e.g. ``psnr``, ``psnr:y``, ``ssim:box8``, ``psnrb:swinir``,
``psnr:y@4``; or ``all`` / ``available`` (everything / everything whose weights are present).
The stored variant id is ``name:variant[@N]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bench.core.errors import BenchError


@dataclass(frozen=True)
class MetricSpec:
    name: str
    variant: str
    kind: str  # "FR" full-reference | "NR" no-reference
    higher_better: bool
    decimals: int
    backend: str  # "carbench" | "pyiqa"
    description: str
    pyiqa_name: str = ""
    border: int = 0

    @property
    def id(self) -> str:
        return f"{self.name}:{self.variant}" + (f"@{self.border}" if self.border else "")

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_better else "↓"


_OWN = "carbench"
METRICS: list[MetricSpec] = [
    MetricSpec(
        "psnr", "rgb", "FR", True, 2, _OWN, "PSNR over all RGB channels (KAIR/FBCNN/CODiff)"
    ),
    MetricSpec(
        "psnr",
        "y",
        "FR",
        True,
        2,
        _OWN,
        "PSNR on BT.601 studio-range Y rounded to uint8 (KAIR rgb2ycbcr on uint8, MATLAB)",
    ),
    MetricSpec(
        "psnr",
        "y-float",
        "FR",
        True,
        2,
        _OWN,
        "PSNR on unrounded BT.601 Y (BasicSR/SwinIR test_y_channel)",
    ),
    MetricSpec(
        "ssim",
        "gauss11",
        "FR",
        True,
        4,
        _OWN,
        "SSIM, Gaussian 11x11 sigma 1.5, valid region, colour = mean of R,G,B (KAIR/FBCNN/SwinIR)",
    ),
    MetricSpec("ssim", "gauss11-y", "FR", True, 4, _OWN, "SSIM gauss11 on rounded BT.601 Y"),
    MetricSpec(
        "ssim",
        "box8",
        "FR",
        True,
        4,
        _OWN,
        "SSIM, uniform 8x8 window, [0,1] constants, mean over channels (QGAC/JDEC ssim_qg)",
    ),
    MetricSpec(
        "psnrb",
        "fbcnn",
        "FR",
        True,
        2,
        _OWN,
        "PSNR-B, BEF on rounded Y of the output, MSE "
        "over RGB, float boundary counts (FBCNN/CODiff/JDEC test scripts)",
    ),
    MetricSpec(
        "psnrb",
        "swinir",
        "FR",
        True,
        2,
        _OWN,
        "PSNR-B per channel, integer counts, dB averaged (QGAC; KAIR/SwinIR calculate_psnrb)",
    ),
    MetricSpec("lpips", "alex-v0.1", "FR", False, 4, "pyiqa", "LPIPS v0.1, AlexNet", "lpips"),
    MetricSpec("dists", "vgg16", "FR", False, 4, "pyiqa", "DISTS", "dists"),
    MetricSpec("musiq", "koniq", "NR", True, 2, "pyiqa", "MUSIQ trained on KonIQ-10k", "musiq"),
    MetricSpec(
        "maniqa",
        "koniq",
        "NR",
        True,
        4,
        "pyiqa",
        "MANIQA trained on KonIQ, 20 uniform 224x224 crops",
        "maniqa",
    ),
    MetricSpec(
        "clipiqa",
        "rn50",
        "NR",
        True,
        4,
        "pyiqa",
        "CLIP-IQA RN50, pyiqa's 5 antonym prompt pairs (not CLIP-IQA+)",
        "clipiqa",
    ),
    MetricSpec(
        "niqe", "pyiqa", "NR", False, 4, "pyiqa", "NIQE, pyiqa's `niqe` (its Python port)", "niqe"
    ),
]
DEFAULT_VARIANT = {
    "psnr": "rgb",
    "ssim": "gauss11",
    "psnrb": "fbcnn",
    "lpips": "alex-v0.1",
    "dists": "vgg16",
    "musiq": "koniq",
    "maniqa": "koniq",
    "clipiqa": "rn50",
    "niqe": "pyiqa",
}
#: What ``all`` means: the CODiff table metrics plus the classic trio (NIQE is opt-in).
ALL = ("psnr", "ssim", "psnrb", "lpips", "dists", "musiq", "maniqa", "clipiqa")
_BY_KEY = {(m.name, m.variant): m for m in METRICS}
#: Old variant ids (as earlier releases stored them) -> the id naming the convention followed.
#: ``psnrb:kair`` was FBCNN's PSNR-B (KAIR's own calculate_psnrb is the per-channel ``swinir``
#: one); ``niqe:matlab`` was computed with pyiqa's ``niqe``, not its ``niqe_matlab``.
ALIASES = {("psnrb", "kair"): "fbcnn", ("niqe", "matlab"): "pyiqa"}


def canonical_variant_id(variant_id: str) -> str:
    """``psnrb:kair@4`` -> ``psnrb:fbcnn@4``; ids without an alias come back unchanged."""
    base, at, border = str(variant_id).partition("@")
    name, _, variant = base.partition(":")
    new = ALIASES.get((name, variant))
    return f"{name}:{new}{at}{border}" if new else str(variant_id)


def higher_is_better(metric: str) -> bool:
    """The direction of ``metric`` (a name such as ``lpips`` or a variant id), from its row."""
    name = str(metric).partition(":")[0].partition("@")[0]
    for m in METRICS:
        if m.name == name:
            return m.higher_better
    raise BenchError(f"unknown metric {metric!r}; known: {', '.join(DEFAULT_VARIANT)}")


def parse_metric(text: str) -> MetricSpec:
    """``psnr`` | ``psnr:y`` | ``ssim:box8`` | ``psnr:y@4`` -> MetricSpec."""
    text = text.strip().lower()
    base, _, border = text.partition("@")
    name, _, variant = base.partition(":")
    if name not in DEFAULT_VARIANT:
        raise BenchError(
            f"unknown metric {name!r}; known: {', '.join(DEFAULT_VARIANT)} (or all / available)"
        )
    variant = variant or DEFAULT_VARIANT[name]
    variant = ALIASES.get((name, variant), variant)
    spec = _BY_KEY.get((name, variant))
    if spec is None:
        known = ", ".join(m.variant for m in METRICS if m.name == name)
        raise BenchError(f"metric {name} has no variant {variant!r}; known: {known}")
    if border:
        if not border.isdigit() or spec.backend != _OWN:
            raise BenchError(f"{text}: a border crop (@N, N >= 0) applies to psnr/ssim/psnrb only")
        spec = replace(spec, border=int(border))
    return spec


def parse_metrics(items: list[str] | str) -> tuple[list[MetricSpec], bool]:
    """Metric specs and whether unavailable ones may be skipped (``available``)."""
    if isinstance(items, str):
        items = [items]
    tokens = [t for item in items for t in item.split(",") if t.strip()]
    lenient = any(t.strip().lower() == "available" for t in tokens)
    specs: dict[str, MetricSpec] = {}
    for t in tokens:
        key = t.strip().lower()
        names = ALL if key in ("all", "available") else [t]
        for n in names:
            s = parse_metric(n)
            specs.setdefault(s.id, s)
    return list(specs.values()), lenient
