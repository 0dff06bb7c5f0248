"""How ids appear in tables: method, degradation and metric labels, method groups."""

from __future__ import annotations

GROUP_ORDER = ["baseline", "cnn", "transformer", "external", "diffusion"]


def _method_class(name: str):
    """The registry's class of a method name, None for names it does not know (a store written
    elsewhere, an external folder's name)."""
    import methods
    from bench.core.errors import BenchError

    try:
        return methods.get_class(name)
    except BenchError:
        return None


def method_label(method_id: str) -> str:
    """The class's ``label`` (``codiff:seed=1`` -> ``CODiff (seed=1)``)."""
    name, _, opts = method_id.partition(":")
    cls = _method_class(name)
    label = (cls.label or cls.name) if cls else (method_id if not opts else name)
    return f"{label} ({opts})" if opts else label


def method_group(method_id: str) -> str:
    """The class's table group (``external`` for names the registry does not know)."""
    cls = _method_class(method_id.partition(":")[0])
    return cls.group if cls else "external"


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
