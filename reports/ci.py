"""``bench report --ci``: 95% bootstrap intervals per cell and a significance marker where the
best method beats the second by a paired test over the images both have."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.model import TableModel

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


def add_intervals(
    model: TableModel, rows: pd.DataFrame, n_resamples: int = 2000, seed: int = 0
) -> TableModel:
    """Append ``[lo, hi]`` to every cell with a key, and ``†`` to the best cell where it is
    significantly better than the second; the footnote records seed and resample count."""
    finite = rows[np.isfinite(rows.value.astype(float))]
    per = {
        k: g.set_index("image").value.astype(float)
        for k, g in finite.groupby(["dataset", "degradation", "method", "variant"])
    }
    for block in model.blocks:
        columns = list(zip(*[r.cells for r in block.rows], strict=True)) if block.rows else []
        for cells in columns:
            for c in cells:
                v = per.get(c.key) if c.key else None
                if v is not None and len(v) > 1 and c.value is not None:
                    lo, hi = bootstrap_mean_ci(v.to_numpy(), n_resamples, seed)
                    c.text += f" [{lo:.{_dec(c.text)}f}, {hi:.{_dec(c.text)}f}]"
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
    model.footnote += (
        f" [lo, hi]: 95% percentile bootstrap interval of the mean over images ({n_resamples} "
        f"resamples, seed {seed}). {MARK}: best significantly better than second over the images "
        f"both have (paired bootstrap of the mean difference and Wilcoxon signed-rank, "
        f"one-sided, alpha 0.05)."
    )
    return model


def _dec(text: str) -> int:
    head = text.split(" ")[0].rstrip("*")
    return len(head.partition(".")[2]) if "." in head else 0
