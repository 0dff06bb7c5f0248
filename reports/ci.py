"""``bench report --ci``: 95% bootstrap intervals per cell and a significance marker where the
best method beats the second by a paired test over the images both have; how a cell shows an
interval and how a footnote words a bootstrap, for the study tables too."""

from __future__ import annotations

import numpy as np
import pandas as pd

from carbench.core.errors import BenchError
from carbench.reports.labels import STUDY_SCORES
from carbench.reports.model import Cell, TableModel
from carbench.reports.presets import CI_STYLES

MARK = "†"


def bootstrap_mean_ci(values: np.ndarray, n_resamples: int, seed: int, level: float = 0.95):
    """Percentile interval of the mean from ``n_resamples`` resamples of ``values``."""
    values = np.asarray(values, float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), (n_resamples, len(values)))
    means = values[idx].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def paired_better(
    a: np.ndarray,
    b: np.ndarray,
    higher_better: bool,
    n_resamples: int,
    seed: int,
    alpha: float = 0.05,
) -> bool:
    """True when ``a`` is better than ``b`` on the same images: the paired bootstrap interval of
    the mean difference excludes 0 and the Wilcoxon signed-rank test rejects at ``alpha``."""
    from scipy.stats import wilcoxon

    d = np.asarray(a, float) - np.asarray(b, float)
    d = d if higher_better else -d
    if len(d) < 2 or not np.any(d):
        return False
    lo, _ = bootstrap_mean_ci(d, n_resamples, seed, 1 - 2 * alpha)  # one-sided at alpha
    return bool(lo > 0 and wilcoxon(d, alternative="greater").pvalue < alpha)


def check_style(style: str) -> str:
    """``style`` if it is one of ``CI_STYLES``; a BenchError naming them otherwise."""
    if style not in CI_STYLES:
        raise BenchError(f"unknown CI style {style!r}; available: {', '.join(CI_STYLES)}")
    return style


def show_interval(cell: Cell, lo: float, hi: float, style: str) -> None:
    """Write ``[lo, hi]`` into ``cell`` in ``style`` (``CI_STYLES``) at the cell's decimals."""
    d = cell.decimals
    if check_style(style) == "pm":
        cell.text += f" ± {(hi - lo) / 2:.{d}f}"
    elif style == "below":
        cell.sub = f"[{lo:.{d}f}, {hi:.{d}f}]"
    else:
        cell.text += f" [{lo:.{d}f}, {hi:.{d}f}]"


def interval_note(style: str, what: str, unit: str, n_resamples: int, seed: int) -> str:
    """The footnote's account of an interval: how cells show it and which bootstrap made it
    (every report words its bootstrap through here)."""
    form = {
        "brackets": "[lo, hi]",
        "pm": "± h (h = half the width of the interval [lo, hi])",
        "below": "[lo, hi] under the value",
    }[check_style(style)]
    return (
        f"{form}: 95% percentile bootstrap interval of {what}, resampling {unit} "
        f"({n_resamples} resamples, seed {seed})"
    )


def add_intervals(
    model: TableModel,
    rows: pd.DataFrame,
    n_resamples: int = 2000,
    seed: int = 0,
    style: str = "brackets",
) -> TableModel:
    """Mark the best cell of a column with ``†`` where it is significantly better than the
    second, and give every cell with a key its interval (``show_interval``); the footnote
    records the bootstrap: resampling unit, resample count, seed, percentile."""
    check_style(style)
    finite = rows[np.isfinite(rows.value.astype(float))]
    per = {
        k: g.set_index("image").value.astype(float)
        for k, g in finite.groupby(["dataset", "degradation", "method", "variant"])
    }
    for block in model.blocks:
        columns = list(zip(*[r.cells for r in block.rows], strict=True)) if block.rows else []
        for cells in columns:
            best = [c for c in cells if c.rank == 1]
            second = [c for c in cells if c.rank == 2]
            if len(best) == 1 and len(second) == 1 and best[0].key and second[0].key:
                a, b = per.get(best[0].key), per.get(second[0].key)
                if a is not None and b is not None:
                    common = a.index.intersection(b.index)
                    hb = best[0].value > second[0].value
                    if paired_better(
                        a[common].to_numpy(), b[common].to_numpy(), hb, n_resamples, seed
                    ):
                        best[0].text += MARK
            for c in cells:
                v = per.get(c.key) if c.key else None
                if v is not None and len(v) > 1 and c.value is not None:
                    show_interval(c, *bootstrap_mean_ci(v.to_numpy(), n_resamples, seed), style)
    note = interval_note(style, "the mean", "the cell's images", n_resamples, seed)
    model.footnote += f" {note}."
    if any(v.partition(":")[0] in STUDY_SCORES for v in finite.variant.unique()):
        model.footnote += (
            " Study scores (MOS, win rate) are stored per image, as the mean over its raters, so "
            "raters are not resampled here; bench study report resamples raters (and images, "
            "for MOS), so its intervals differ."
        )
    model.footnote += (
        f" {MARK}: best significantly better than second over the images both have (paired "
        f"bootstrap of the mean difference and Wilcoxon signed-rank, one-sided, alpha 0.05)."
    )
    return model
