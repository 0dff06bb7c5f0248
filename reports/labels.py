"""How ids appear in tables: method, degradation and metric labels, method groups."""

from __future__ import annotations

import re

METHOD_LABELS = {
    "jpeg": "JPEG",
    "fbcnn": "FBCNN",
    "dncnn3": "DnCNN-3",
    "promptcir": "PromptCIR",
    "jdec": "JDEC",
    "codiff": "CODiff",
    "osediff": "OSEDiff",
    "diffbir": "DiffBIR",
}
METRIC_LABELS = {
    "psnr": "PSNR",
    "ssim": "SSIM",
    "psnrb": "PSNR-B",
    "lpips": "LPIPS",
    "dists": "DISTS",
    "musiq": "MUSIQ",
    "maniqa": "M-IQA",
    "clipiqa": "C-IQA",
    "niqe": "NIQE",
}
GROUP_ORDER = ["baseline", "cnn", "transformer", "external", "diffusion"]


def method_label(method_id: str) -> str:
    name, _, opts = method_id.partition(":")
    label = METHOD_LABELS.get(name, method_id if not opts else name)
    return f"{label} ({opts})" if opts else label


def method_group(method_id: str) -> str:
    """The registry's group of a method (``external`` for names the registry does not know)."""
    import methods

    name = method_id.partition(":")[0]
    try:
        return methods.get_class(name).group
    except Exception:
        return "external"


def _step_label(tok: str) -> str:
    """One chain step: ``resize0.5`` -> ``×0.5``, ``long2048`` kept, codecs as their label."""
    m = re.fullmatch(r"resize([\d.]+)(-[a-z]+)?", tok)
    if m:
        return f"×{m[1]}" + (f" {m[2][1:]}" if m[2] else "")
    return tok if tok.startswith("long") else degradation_label(tok)


def degradation_label(deg: str) -> str:
    """``jpeg-q10`` -> ``QF=10``; ``jpeg2-q5-q95-s8x8`` -> ``QF=(5,95) s8x8``; ``bpg-qp30``
    -> ``QP=30``; ``hevc-qp30`` (also what a ``bpg:`` spec becomes without bpgenc) ->
    ``HEVC-intra QP=30``, never a BPG label; ``webp-q50`` -> ``WebP q=50``."""
    if deg.startswith("chain-"):
        return " → ".join(_step_label(t) for t in deg.removeprefix("chain-").split("+"))
    m = re.fullmatch(r"jpeg-q(\d+)(-\w+)?", deg)
    if m:
        return f"QF={m[1]}" + (f" ({m[2][1:]})" if m[2] else "")
    m = re.fullmatch(r"jpeg2-q(\d+)-q(\d+)(?:-s(\d+)x(\d+))?(-\w+)?", deg)
    if m:
        shift = f" s{m[3]}x{m[4]}" if m[3] else ""
        return f"QF=({m[1]},{m[2]}){shift}" + (f" ({m[5][1:]})" if m[5] else "")
    m = re.fullmatch(r"(bpg|hevc)-qp(\d+)(-.*)?", deg)
    if m:
        return ("HEVC-intra " if m[1] == "hevc" else "") + f"QP={m[2]}" + (m[3] or "")
    m = re.fullmatch(r"jp2k-(cr|db)(\d+)", deg)
    if m:
        return f"J2K {m[2]}:1" if m[1] == "cr" else f"J2K {m[2]} dB"
    m = re.fullmatch(r"webp-q(\d+)(?:-m(\d))?", deg)
    if m:
        return f"WebP q={m[1]}" + (f" m{m[2]}" if m[2] else "")
    m = re.fullmatch(r"heif-qp(\d+)(?:-(444))?", deg)
    if m:
        return f"QP={m[1]} (HEIF)" + (" (444)" if m[2] else "")
    m = re.fullmatch(r"jxl-(d|q)([\d.]+)(?:-e(\d))?", deg)
    if m:
        return f"JXL {m[1]}={m[2]}" + (f" e{m[3]}" if m[3] else "")
    m = re.fullmatch(r"avif-q(\d+)(?:-s(\d+))?(?:-(444))?", deg)
    if m:
        return f"AVIF q={m[1]}" + (f" s{m[2]}" if m[2] else "") + (" (444)" if m[3] else "")
    return deg


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.upper())
