"""The metric table: one row per (metric, variant), pyiqa-style.

A metric is asked for as ``name`` (its default variant), ``name:variant`` and optionally
``@N`` for an N-pixel border crop, e.g. ``psnr``, ``psnr:y``, ``ssim:box8``, ``psnrb:swinir``,
``psnr:y@4``; or ``all`` / ``available`` (everything / everything whose weights are present).
The stored variant id is ``name:variant[@N]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from carbench.core.errors import BenchError
from carbench.core.options import Option, unknown_name
from carbench.core.weights import WeightFile

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    """Everything carbench knows about one metric variant; read by the metric runner, the
    scorers, ``bench metrics``, ``bench check``, ``bench weights`` and the reports."""

    name: str
    variant: str
    kind: str  # "FR" full-reference | "NR" no-reference
    higher_better: bool
    decimals: int  # digits in tables
    description: str  # what it computes and whose code it follows (the convention)
    label: str  # table header
    default: bool = False  # the variant that the bare ``name`` means
    in_all: bool = True  # part of ``--metrics all``
    tolerance: float = 1e-4  # ``bench check``'s default absolute tolerance (the metric's unit)
    backend: str = "carbench"  # "carbench" (own code, below) | "pyiqa"
    #: carbench's own metrics: the function of ``bench.metrics.fullref`` / ``fullref_torch``,
    #: the channel it reads (``rgb``, ``y`` rounded BT.601, ``y-float``) and keyword options
    compute: str = ""
    channel: str = "rgb"
    options: tuple[tuple[str, str], ...] = ()
    pyiqa_name: str = ""
    weights: tuple[WeightFile, ...] = ()  # files it loads, in carbench's cache layout
    #: a plain ``(test, ref) -> float`` on uint8 images, for metrics defined outside carbench
    score: Callable[[np.ndarray, np.ndarray | None], float] | None = None
    border: int = 0  # pixels cropped on each side (``@N``), set by ``parse_metric``

    @property
    def id(self) -> str:
        return f"{self.name}:{self.variant}" + (f"@{self.border}" if self.border else "")

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_better else "↓"


PYIQA_HF = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"
TORCHVISION = "https://download.pytorch.org/models/"
CLIP_RN50 = (
    "https://openaipublic.azureedge.net/clip/models/"
    "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt"
)


def _pyiqa_file(name: str, sha: str | None = None, wheel=None) -> WeightFile:
    return WeightFile(f"torch/hub/pyiqa/{name}", PYIQA_HF + name, sha, wheel=wheel)


def _tv(name: str, sha: str) -> WeightFile:
    return WeightFile(f"torch/hub/checkpoints/{name}", TORCHVISION + name, sha)


_VIT = WeightFile(
    "huggingface/hub/models--timm--vit_base_patch8_224.augreg2_in21k_ft_in1k",
    "https://huggingface.co/timm/vit_base_patch8_224.augreg2_in21k_ft_in1k",
    hf=("timm/vit_base_patch8_224.augreg2_in21k_ft_in1k", "model.safetensors"),
)
_PSNR = {"label": "PSNR", "kind": "FR", "higher_better": True, "decimals": 2, "tolerance": 0.005}
_SSIM = {"label": "SSIM", "kind": "FR", "higher_better": True, "decimals": 4, "tolerance": 5e-5}
_PSNRB = {"label": "PSNR-B", "kind": "FR", "higher_better": True, "decimals": 2}
_PSNRB |= {"tolerance": 0.005, "compute": "psnrb"}

METRICS: list[MetricSpec] = [
    MetricSpec(
        name="psnr",
        variant="rgb",
        default=True,
        compute="psnr",
        description="PSNR over all RGB channels (KAIR/FBCNN/CODiff)",
        **_PSNR,
    ),
    MetricSpec(
        name="psnr",
        variant="y",
        compute="psnr",
        channel="y",
        description="PSNR on BT.601 studio-range Y rounded to uint8 (KAIR rgb2ycbcr on uint8, "
        "MATLAB)",
        **_PSNR,
    ),
    MetricSpec(
        name="psnr",
        variant="y-float",
        compute="psnr",
        channel="y-float",
        description="PSNR on unrounded BT.601 Y (BasicSR/SwinIR test_y_channel)",
        **_PSNR,
    ),
    MetricSpec(
        name="ssim",
        variant="gauss11",
        default=True,
        compute="ssim",
        options=(("window", "gauss11"),),
        description="SSIM, Gaussian 11x11 sigma 1.5, valid region, colour = mean of R,G,B "
        "(KAIR/FBCNN/SwinIR)",
        **_SSIM,
    ),
    MetricSpec(
        name="ssim",
        variant="gauss11-y",
        compute="ssim",
        channel="y",
        options=(("window", "gauss11"),),
        description="SSIM gauss11 on rounded BT.601 Y",
        **_SSIM,
    ),
    MetricSpec(
        name="ssim",
        variant="box8",
        compute="ssim",
        options=(("window", "box8"),),
        description="SSIM, uniform 8x8 window, [0,1] constants, mean over channels "
        "(QGAC/JDEC ssim_qg)",
        **_SSIM,
    ),
    MetricSpec(
        name="psnrb",
        variant="fbcnn",
        default=True,
        options=(("variant", "fbcnn"),),
        description="PSNR-B, BEF on rounded Y of the output, MSE "
        "over RGB, float boundary counts (FBCNN/CODiff/JDEC test scripts)",
        **_PSNRB,
    ),
    MetricSpec(
        name="psnrb",
        variant="swinir",
        options=(("variant", "swinir"),),
        description="PSNR-B per channel, integer counts, dB averaged (QGAC; KAIR/SwinIR "
        "calculate_psnrb)",
        **_PSNRB,
    ),
    MetricSpec(
        name="lpips",
        variant="alex-v0.1",
        default=True,
        label="LPIPS",
        kind="FR",
        higher_better=False,
        decimals=4,
        tolerance=5e-5,
        backend="pyiqa",
        pyiqa_name="lpips",
        description="LPIPS v0.1, AlexNet",
        weights=(
            _tv("alexnet-owt-7be5be79.pth", "7be5be79"),
            _pyiqa_file(
                "LPIPS_v0.1_alex-df73285e.pth", "df73285e", ("lpips", "weights/v0.1/alex.pth")
            ),
        ),
    ),
    MetricSpec(
        name="dists",
        variant="vgg16",
        default=True,
        label="DISTS",
        kind="FR",
        higher_better=False,
        decimals=4,
        tolerance=5e-5,
        backend="pyiqa",
        pyiqa_name="dists",
        description="DISTS",
        weights=(
            _tv("vgg16-397923af.pth", "397923af"),
            _pyiqa_file("DISTS_weights-f5e65c96.pth", "f5e65c96", ("DISTS_pytorch", "weights.pt")),
        ),
    ),
    MetricSpec(
        name="musiq",
        variant="koniq",
        default=True,
        label="MUSIQ",
        kind="NR",
        higher_better=True,
        decimals=2,
        tolerance=0.005,
        backend="pyiqa",
        pyiqa_name="musiq",
        description="MUSIQ trained on KonIQ-10k",
        weights=(_pyiqa_file("musiq_koniq_ckpt-e95806b9.pth", "e95806b9"),),
    ),
    MetricSpec(
        name="maniqa",
        variant="koniq",
        default=True,
        label="M-IQA",
        kind="NR",
        higher_better=True,
        decimals=4,
        tolerance=5e-5,
        backend="pyiqa",
        pyiqa_name="maniqa",
        description="MANIQA trained on KonIQ, 20 uniform 224x224 crops",
        weights=(_VIT, _pyiqa_file("ckpt_koniq10k.pt")),
    ),
    MetricSpec(
        name="clipiqa",
        variant="rn50",
        default=True,
        label="C-IQA",
        kind="NR",
        higher_better=True,
        decimals=4,
        tolerance=5e-5,
        backend="pyiqa",
        pyiqa_name="clipiqa",
        description="CLIP-IQA RN50, pyiqa's 5 antonym prompt pairs (not CLIP-IQA+)",
        weights=(
            WeightFile(
                "torch/hub/clip/RN50.pt",
                CLIP_RN50,
                "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762",
            ),
        ),
    ),
    MetricSpec(
        name="niqe",
        variant="pyiqa",
        default=True,
        in_all=False,  # what ``all`` means: the CODiff table metrics and the classic trio
        label="NIQE",
        kind="NR",
        higher_better=False,
        decimals=4,
        tolerance=5e-4,
        backend="pyiqa",
        pyiqa_name="niqe",
        description="NIQE, pyiqa's `niqe` (its Python port)",
        weights=(_pyiqa_file("niqe_modelparameters.mat"),),
    ),
]
#: Old variant ids (as earlier releases stored them) -> the id naming the convention followed.
#: ``psnrb:kair`` was FBCNN's PSNR-B (KAIR's own calculate_psnrb is the per-channel ``swinir``
#: one); ``niqe:matlab`` was computed with pyiqa's ``niqe``, not its ``niqe_matlab``.
ALIASES = {("psnrb", "kair"): "fbcnn", ("niqe", "matlab"): "pyiqa"}


def register(spec: MetricSpec) -> MetricSpec:
    """Add a metric row (a plugin's or a test's); its ``name`` alone means it if ``default``."""
    if any((m.name, m.variant) == (spec.name, spec.variant) for m in METRICS):
        raise BenchError(f"metric {spec.id} is registered already")
    METRICS.append(spec)
    return spec


def names() -> list[str]:
    """Metric names in table order."""
    return list(dict.fromkeys(m.name for m in METRICS))


def default_spec(name: str) -> MetricSpec:
    """The row that the bare name means."""
    rows = [m for m in METRICS if m.name == name]
    if not rows:
        raise BenchError(f"unknown metric {name!r}; known: {', '.join(names())}")
    return next((m for m in rows if m.default), rows[0])


def find(variant_id: str) -> MetricSpec | None:
    """The row of a stored variant id (``psnr:y@4`` -> the ``psnr:y`` row), None if unknown."""
    base = str(variant_id).partition("@")[0]
    return next((m for m in METRICS if m.id == base), None)


def weights_of(name: str) -> tuple[WeightFile, ...]:
    """Weight files of a metric (any variant's; they are the same for every variant)."""
    return next((m.weights for m in METRICS if m.name == name and m.weights), ())


def tolerance(name: str, fallback: float = 1e-4) -> float:
    """``bench check``'s default tolerance for a metric name (fallback for unknown names)."""
    return default_spec(name).tolerance if name in names() else fallback


def label(metric: str) -> str:
    """The table header of a metric name (anything else upper-cased)."""
    return default_spec(metric).label if metric in names() else str(metric).upper()


def canonical_variant_id(variant_id: str) -> str:
    """``psnrb:kair@4`` -> ``psnrb:fbcnn@4``; ids without an alias come back unchanged."""
    base, at, border = str(variant_id).partition("@")
    name, _, variant = base.partition(":")
    new = ALIASES.get((name, variant))
    return f"{name}:{new}{at}{border}" if new else str(variant_id)


def higher_is_better(metric: str) -> bool:
    """The direction of ``metric`` (a name such as ``lpips`` or a variant id), from its row."""
    name = str(metric).partition(":")[0].partition("@")[0]
    if name not in names():
        raise BenchError(f"unknown metric {metric!r}; known: {', '.join(names())}")
    return default_spec(name).higher_better


#: ``@N`` after a metric id: pixels cropped on each side before scoring (carbench's own
#: full-reference metrics only)
BORDER = Option(
    "border", "int", 0, min=0, max=4096, help="pixels cropped on each side before scoring (@N)"
)


def variant_option(name: str) -> Option:
    """The declaration of a metric's ``:variant`` (its rows' variants, the default first)."""
    rows = [m for m in METRICS if m.name == name]
    return Option(
        "variant",
        "choice",
        default_spec(name).variant,
        choices=tuple(m.variant for m in rows),
        help="the convention followed (see bench metrics show)",
    )


def parse_metric(text: str) -> MetricSpec:
    """``psnr`` | ``psnr:y`` | ``ssim:box8`` | ``psnr:y@4`` -> MetricSpec."""
    text = text.strip().lower()
    base, at, border = text.partition("@")
    name, _, variant = base.partition(":")
    if name not in names():
        raise unknown_name("metric", name, [*names(), "all", "available"])
    variant = variant or default_spec(name).variant
    variant = ALIASES.get((name, variant), variant)
    variant_option(name).parse(variant, f"metric {name}")  # unknown: the known ones named
    spec = next(m for m in METRICS if (m.name, m.variant) == (name, variant))
    if at:
        if spec.backend != "carbench" or spec.score is not None:
            raise BenchError(f"{text}: a border crop (@N) applies to psnr/ssim/psnrb only")
        spec = replace(spec, border=BORDER.parse(border, f"metric {name}"))
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
        wanted = [m.name for m in METRICS if m.default and m.in_all]
        for n in wanted if key in ("all", "available") else [t]:
            s = parse_metric(n)
            specs.setdefault(s.id, s)
    return list(specs.values()), lenient
