"""Study statistics: MOS with two-way (raters x images) bootstrap intervals, Bradley-Terry
(``choix``) or Thurstone Case V scores with rater-bootstrap intervals, rater consistency and
outlier flags."""

from __future__ import annotations

import numpy as np
import pandas as pd

from carbench.study.db import StudyDB
from carbench.study.model import Study

SET = ["dataset", "protocol", "degradation"]
#: one shown condition: a method's output of one image of one set (what a metric scores)
CONDITION = [*SET, "method", "image"]


def answers_frame(study: Study) -> pd.DataFrame:
    """One row per stored answer, with the hidden stimulus fields joined back."""
    db = StudyDB.open(study)
    rows = db.answers()
    db.close()
    df = pd.DataFrame(rows, columns=["rater", "pos", "item", "value", "is_repeat", "swap"])
    first = [study.stimuli[study.items[i].stimuli[0]] for i in df.item]
    for col in [*SET, "image", "method"]:
        df[col] = [getattr(s, col) for s in first]
    if study.config.mode == "pairwise":
        df["method_b"] = [study.stimuli[study.items[i].stimuli[1]].method for i in df.item]
    return df


def condition_grid(df: pd.DataFrame) -> pd.DataFrame:
    """Ratings as a conditions x raters table (first answers only; NaN = not rated), indexed by
    ``CONDITION``: the one matrix behind agreement, screening and reliability."""
    first = df[df.is_repeat == 0]
    if first.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=CONDITION))
    return first.pivot_table(index=CONDITION, columns="rater", values="value", aggfunc="mean")


def two_way_bootstrap(grid: np.ndarray, n_boot: int, seed: int, level: float = 0.95):
    """Mean of a raters x images grid (NaN = not rated) and its percentile interval from
    resampling raters and images independently."""
    rng = np.random.default_rng(seed)
    r, i = grid.shape
    stats = np.empty(n_boot)
    for b in range(n_boot):
        g = grid[rng.integers(0, r, r)][:, rng.integers(0, i, i)]
        stats[b] = np.nanmean(g)
    a = (1 - level) / 2
    return float(np.nanmean(grid)), float(np.quantile(stats, a)), float(np.quantile(stats, 1 - a))


def mos(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """MOS per (set, method) with 95% intervals over raters and images (first answers only),
    and the ITU-R BT.500 interval MOS +- 1.96 S / sqrt(N) of the same ratings (``bt500_lo``,
    ``bt500_hi``); no answers: an empty table with the same columns."""
    from carbench.study.reliability import mos_intervals

    df = df[df.is_repeat == 0]
    out = []
    for key, g in df.groupby([*SET, "method"], sort=True):
        grid = g.pivot_table(index="rater", columns="image", values="value").to_numpy(float)
        m, lo, hi = two_way_bootstrap(grid, n_boot, seed)
        delta = float(mos_intervals(grid.reshape(1, -1)).delta[0])
        out.append(
            {
                **dict(zip([*SET, "method"], key, strict=True)),
                "mos": m,
                "lo": lo,
                "hi": hi,
                "n": int(np.isfinite(grid).sum()),
                "bt500_lo": m - delta,
                "bt500_hi": m + delta,
            }
        )
    cols = [*SET, "method", "mos", "lo", "hi", "n", "bt500_lo", "bt500_hi"]
    return pd.DataFrame(out, columns=cols)


def _wins(methods: list[str], g: pd.DataFrame) -> list[tuple[int, int]]:
    """(winner, loser) index pairs; ``value`` is the index of the preferred stimulus."""
    idx = {m: k for k, m in enumerate(methods)}
    return [
        (idx[a], idx[b]) if v == 0 else (idx[b], idx[a])
        for a, b, v in zip(g.method, g.method_b, g.value, strict=True)
    ]


def fit_bradley_terry(n: int, wins: list[tuple[int, int]], alpha: float = 0.01) -> np.ndarray:
    """Bradley-Terry log-strengths, mean zero (choix ILSR, ``alpha`` = ridge prior)."""
    import choix

    return choix.ilsr_pairwise(n, wins, alpha=alpha)


def fit_thurstone(n: int, wins: list[tuple[int, int]], alpha: float = 0.01) -> np.ndarray:
    """Thurstone Case V scores, mean zero: P(i beats j) = Phi(s_i - s_j), maximum likelihood
    with a ridge ``alpha`` (so scores stay finite when one method always wins)."""
    from scipy.optimize import minimize
    from scipy.special import log_ndtr
    from scipy.stats import norm

    w = np.array(wins, dtype=int).reshape(-1, 2)

    def nll(s: np.ndarray) -> tuple[float, np.ndarray]:
        d = s[w[:, 0]] - s[w[:, 1]]
        ratio = np.exp(norm.logpdf(d) - log_ndtr(d))  # d/dd log Phi(d)
        grad = alpha * s
        np.add.at(grad, w[:, 0], -ratio)
        np.add.at(grad, w[:, 1], ratio)
        return float(-log_ndtr(d).sum() + alpha * (s**2).sum() / 2), grad

    s = minimize(nll, np.zeros(n), jac=True, method="L-BFGS-B").x
    return s - s.mean()


MODELS = {"bt": fit_bradley_terry, "thurstone": fit_thurstone}


def pairwise_scores(
    df: pd.DataFrame, model: str = "bt", n_boot: int = 200, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Bradley-Terry (``bt``) or Thurstone scores (mean zero) per set, with percentile
    intervals from resampling raters (first answers only); no answers: an empty table."""
    if model not in MODELS:
        raise ValueError(f"unknown pairwise model {model!r}; available: {', '.join(MODELS)}")
    fit = MODELS[model]
    df = df[df.is_repeat == 0]
    rng = np.random.default_rng(seed)
    a = (1 - level) / 2
    out = []
    for key, g in df.groupby(SET, sort=True):
        methods = sorted(set(g.method) | set(g.method_b))
        score = fit(len(methods), _wins(methods, g))
        raters = g.rater.unique()
        by = {r: g[g.rater == r] for r in raters}
        boot = np.array(
            [
                fit(
                    len(methods),
                    _wins(methods, pd.concat([by[r] for r in rng.choice(raters, len(raters))])),
                )
                for _ in range(n_boot)
            ]
        )
        lo, hi = np.quantile(boot, [a, 1 - a], axis=0)
        for k, m in enumerate(methods):
            out.append(
                {
                    **dict(zip(SET, key, strict=True)),
                    "method": m,
                    "score": float(score[k]),
                    "lo": float(lo[k]),
                    "hi": float(hi[k]),
                    "n": int(((g.method == m) | (g.method_b == m)).sum()),
                }
            )
    return pd.DataFrame(out, columns=[*SET, "method", "score", "lo", "hi", "n"])


def bradley_terry(df: pd.DataFrame, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Bradley-Terry log-strengths per set with rater-bootstrap intervals (column ``score``)."""
    return pairwise_scores(df, "bt", n_boot, seed)


def consistency(df: pd.DataFrame, min_corr: float = 0.3) -> pd.DataFrame:
    """Per rater: repeat agreement (ratings: mean |first - repeat|; pairs: share of equal
    choices), correlation with the other raters' mean per item, and an outlier flag."""
    out = []
    first = df[df.is_repeat == 0]
    for r, g in df.groupby("rater"):
        rep = g[g.is_repeat == 1]
        base = g[g.is_repeat == 0].set_index("item").value
        again = rep.set_index("item").value
        common = again.index.intersection(base.index)
        if "method_b" in df:
            agree = float((again[common] == base[common]).mean()) if len(common) else np.nan
        else:
            agree = float((again[common] - base[common]).abs().mean()) if len(common) else np.nan
        others = first[first.rater != r].groupby("item").value.mean()
        both = base.index.intersection(others.index)
        corr = float(np.corrcoef(base[both], others[both])[0, 1]) if len(both) > 2 else np.nan
        out.append(
            {
                "rater": r,
                "repeat": agree,
                "corr": corr,
                "outlier": bool(np.isfinite(corr) and corr < min_corr),
            }
        )
    return pd.DataFrame(out)


def store_rows(df: pd.DataFrame, mode: str, implementation: str) -> list[dict]:
    """Per-image result-store rows (first answers only): ``mos`` (mean rating of the image by
    the raters) for rating studies; ``winrate`` (share of the image's comparisons the method
    won) for pairwise ones, so the HTML report shows them beside the metrics."""
    import time

    first = df[df.is_repeat == 0]
    key = [*SET, "image", "method"]
    if mode == "pairwise":
        won = np.where(first.value == 0, first.method, first.method_b)
        long = pd.concat(
            [
                first.assign(value=(won == first.method).astype(float)),
                first.assign(method=first.method_b, value=(won == first.method_b).astype(float)),
            ]
        )
        metric = "winrate"
    else:
        long, metric = first, "mos"
    now = time.time()
    return [
        {
            **dict(zip(key, k, strict=True)),
            "metric": metric,
            "variant": metric,
            "value": float(g.value.mean()),
            "higher_better": True,
            "kind": "study",
            "implementation": implementation,
            "created": now,
        }
        for k, g in long.groupby(key)
    ]


def screen_raters(df: pd.DataFrame, min_corr: float = 0.3) -> pd.DataFrame:
    """:func:`consistency` per rater, and for rating studies the ITU-R BT.500-14 Annex 1
    §2.3.1 screening beside it (columns ``bt500_P``, ``bt500_Q``, ``bt500``: rejected)."""
    from carbench.study.reliability import bt500_screen

    flags = consistency(df, min_corr)
    if "method_b" in df or flags.empty:
        return flags
    grid = condition_grid(df)
    screen = bt500_screen(grid.to_numpy(float)).set_index(grid.columns)
    out = flags.assign(
        bt500_P=flags.rater.map(screen.P).fillna(0).astype(int),
        bt500_Q=flags.rater.map(screen.Q).fillna(0).astype(int),
        bt500=flags.rater.map(screen.rejected).fillna(False).astype(bool),
    )
    return out[[c for c in out if c != "outlier"] + ["outlier"]]  # the corr flag stays last
