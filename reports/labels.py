"""How ids appear in tables: method, degradation and metric labels, method groups."""

from __future__ import annotations

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


def degradation_label(deg: str) -> str:
    """The kind's own label (``jpeg-q10`` -> ``QF=10``, ``hevc-qp30`` -> ``HEVC-intra QP=30``);
    an id no kind parses (a store from elsewhere) is shown as it is."""
    from degradations import from_id

    try:
        return from_id(deg).label
    except ValueError:
        return deg


def metric_label(metric: str) -> str:
    """The metric row's table header (``psnrb`` -> ``PSNR-B``)."""
    from bench.metrics.registry import label

    return label(metric)
