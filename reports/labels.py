"""How ids appear in tables: method, degradation and metric labels, method groups."""

from __future__ import annotations

GROUP_ORDER = ["reference", "baseline", "cnn", "transformer", "external", "diffusion"]
#: groups whose rows are shown but never ranked: the ground truth and the JPEG input
UNRANKED_GROUPS = ("reference", "baseline")
#: the method id of the ground truth where it is scored like a method (a study's anchor)
GROUND_TRUTH = "gt"
#: scores of human studies (``bench study report``, and the rows its ``--store`` writes), which
#: the metric registry does not list: metric -> (table header, decimals). The one decimals
#: setting of these scores, for the study tables and ``bench report`` alike.
STUDY_SCORES = {
    "mos": ("MOS", 2),
    "winrate": ("Win rate", 2),
    "bt": ("Bradley-Terry", 2),
    "thurstone": ("Thurstone", 2),
}


def _method_class(name: str):
    """The registry's class of a method name, None for names it does not know (a store written
    elsewhere, an external folder's name)."""
    from carbench import methods
    from carbench.core.errors import BenchError

    try:
        return methods.get_class(name)
    except BenchError:
        return None


def method_label(method_id: str) -> str:
    """The class's ``label`` (``codiff:seed=1`` -> ``CODiff (seed=1)``); ``gt`` is the ground
    truth."""
    if method_id == GROUND_TRUTH:
        return "Ground truth"
    name, _, opts = method_id.partition(":")
    cls = _method_class(name)
    label = (cls.label or cls.name) if cls else (method_id if not opts else name)
    return f"{label} ({opts})" if opts else label


def method_group(method_id: str) -> str:
    """The class's table group (``external`` for names the registry does not know,
    ``reference`` for the ground truth)."""
    if method_id == GROUND_TRUTH:
        return "reference"
    cls = _method_class(method_id.partition(":")[0])
    return cls.group if cls else "external"


def degradation_label(deg: str) -> str:
    """The kind's own label (``jpeg-q10`` -> ``QF=10``, ``hevc-qp30`` -> ``HEVC-intra QP=30``);
    an id no kind parses (a store from elsewhere) is shown as it is."""
    from carbench.degradations import from_id

    try:
        return from_id(deg).label
    except ValueError:
        return deg


def metric_label(metric: str) -> str:
    """The metric row's table header (``psnrb`` -> ``PSNR-B``, ``mos`` -> ``MOS``)."""
    from carbench.bench.metrics.registry import label

    return STUDY_SCORES[metric][0] if metric in STUDY_SCORES else label(metric)


def metric_decimals(variant: str) -> int:
    """Digits shown for a metric variant: the registry's, a study score's, else 4."""
    from carbench.bench.metrics.registry import find

    spec = find(variant)
    if spec:
        return spec.decimals
    return STUDY_SCORES.get(variant.partition(":")[0], ("", 4))[1]
