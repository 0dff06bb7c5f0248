"""Table presets: the paper tables carbench reproduces, and ``auto``.

CODiff (ICCV 2025) main table: LPIPS, DISTS, MUSIQ, M-IQA, C-IQA at QF 5/10/20, one block per
dataset. The supplementary could not be opened here (notes/conventions.md B7); its tables are
mapped from the experiments the brief lists, in that order: Table 1 extreme QF 1, Table 2
double JPEG, Table 3 BPG QP 30/40/50, Table 6 fidelity metrics (PSNR/SSIM) at QF 5/10/20.
"""

from __future__ import annotations

from dataclasses import dataclass

from carbench.core.errors import BenchError

PERCEPTUAL = ("lpips", "dists", "musiq", "maniqa", "clipiqa")


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    layout: str = "paper"  # paper | classic
    degradations: tuple[str, ...] | None = None
    metrics: tuple[str, ...] | None = None
    note: str = ""


_DOUBLE = tuple(
    f"jpeg2-q{a}-q{b}{s}" for a, b in ((5, 95), (10, 90), (90, 10)) for s in ("", "-s8x8")
)
#: the output formats of ``bench report`` (``reports.build.render_report`` dispatches on them)
FORMATS = ("latex", "html", "markdown", "csv")
#: how a cell shows its 95% interval (``--ci-style``; ``reports.ci.show_interval``):
#: ``brackets`` ``25.16 [24.50, 25.82]``, ``pm`` ``25.16 ± 0.66`` (half the interval's width),
#: ``below`` the interval on a second, smaller line under the value
CI_STYLES = ("brackets", "pm", "below")

PRESETS = {
    p.name: p
    for p in [
        Preset("auto", "Results", degradations=None, metrics=None),
        Preset(
            "codiff-main",
            "Single JPEG (CODiff main table)",
            degradations=("jpeg-q5", "jpeg-q10", "jpeg-q20"),
            metrics=PERCEPTUAL,
        ),
        Preset(
            "codiff-supp-t1",
            "Extreme compression, QF 1 (CODiff supplementary Table 1)",
            degradations=("jpeg-q1",),
            metrics=PERCEPTUAL,
        ),
        Preset(
            "codiff-supp-t2",
            "Double JPEG, aligned and shifted (CODiff supplementary Table 2)",
            degradations=_DOUBLE,
            metrics=PERCEPTUAL,
        ),
        Preset(
            "codiff-supp-t3",
            "BPG (CODiff supplementary Table 3)",
            degradations=(
                "bpg-qp30",
                "bpg-qp40",
                "bpg-qp50",
                "hevc-qp30",
                "hevc-qp40",
                "hevc-qp50",
            ),
            metrics=PERCEPTUAL,
        ),
        Preset(
            "codiff-supp-t6",
            "Fidelity metrics (CODiff supplementary Table 6)",
            degradations=("jpeg-q5", "jpeg-q10", "jpeg-q20"),
            metrics=("psnr", "ssim"),
        ),
        Preset("fbcnn", "PSNR|SSIM|PSNR-B (FBCNN-style table)", layout="classic"),
    ]
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise BenchError(f"unknown table {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]
