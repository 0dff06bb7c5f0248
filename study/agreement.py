"""Metric-human agreement: how well each metric variant in the result store predicts a study's
judgements, per degradation and pooled.

Statistics (all pure functions of arrays): SRCC, KRCC and PLCC between the metric and the human
score of each condition (a method's output of one image of one set); PLCC after the monotonic
four-parameter logistic mapping of ITU-T P.1401 / VQEG (:func:`logistic4`); for pairwise studies
also the 2AFC accuracy, the share of human choices the metric predicts (a tie counts half).
The human score is the MOS (rating studies) or the Bradley-Terry / Thurstone score of the
condition among the outputs of its image (pairwise: one fit over all conditions, comparisons
only within an image, so each image's scores have mean zero; cross-image correlations are then
about within-image differences, and 2AFC accuracy is the direct measure).

Metrics are sign-aligned (lower-is-better ones negated) so that higher always means "agrees
better". Intervals: percentile bootstrap, each resample drawing raters and images (a source
image with all its sets and methods) independently, the human scores recomputed from the drawn
raters. "A agrees better than B": the paired bootstrap of the SRCC difference on the same
resamples (two-sided p and interval).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from carbench.study.stats import CONDITION, MODELS, condition_grid

STATS = ("srcc", "krcc", "plcc", "plcc_l")
PAIR_STATS = ("acc",)  # pairwise studies only
POOLED = "pooled"
#: what each statistic is, for table headers and the footnote
STAT_LABELS = {
    "srcc": "SRCC",
    "krcc": "KRCC",
    "plcc": "PLCC",
    "plcc_l": "PLCC (logistic)",
    "acc": "2AFC acc.",
}


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """ITU-T P.1401 / VQEG monotonic logistic: ``b2 + (b1 - b2) / (1 + exp(-(x - b3)/|b4|))``."""
    z = np.clip(-(x - b3) / (abs(b4) + 1e-12), -500, 500)
    return b2 + (b1 - b2) / (1 + np.exp(z))


def _logistic_jac(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """d logistic4 / d (b1, b2, b3, b4), one row per x."""
    a = abs(b4) + 1e-12
    sig = 1 / (1 + np.exp(np.clip(-(x - b3) / a, -500, 500)))
    ds = (b1 - b2) * sig * (1 - sig)
    return np.stack([sig, 1 - sig, -ds / a, -ds * (x - b3) * np.sign(b4) / a**2], axis=1)


def fit_logistic(x: np.ndarray, y: np.ndarray, p0=None) -> np.ndarray | None:
    """Least-squares parameters of :func:`logistic4` mapping ``x`` to ``y`` (Levenberg-
    Marquardt, analytic Jacobian); None if no finite fit. Given ``p0`` (a bootstrap resample,
    starting from the full data's fit) the search stops after 20 evaluations or at a relative
    change of 1e-6 and keeps the best parameters found: on 210 simulated conditions the PLCC
    after the mapping then differs from the converged one by at most 1.2e-4 (mean 8e-6), below
    the table's 3 decimals, and no resample is dropped for being slow to converge."""
    from scipy.optimize import least_squares

    warm = p0 is not None
    if p0 is None:
        p0 = [float(y.max()), float(y.min()), float(np.median(x)), float(x.std()) or 1.0]
    tol = 1e-6 if warm else 1e-9
    try:
        with np.errstate(all="ignore"):
            fit = least_squares(
                lambda p: logistic4(x, *p) - y,
                np.asarray(p0, float),
                jac=lambda p: _logistic_jac(x, *p),
                method="lm",
                max_nfev=20 if warm else 500,
                xtol=tol,
                ftol=tol,
            )
    except (ValueError, np.linalg.LinAlgError):
        return None
    return fit.x if np.all(np.isfinite(fit.x)) else None


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else np.nan


def correlations(x: np.ndarray, y: np.ndarray, p0=None) -> dict[str, float]:
    """SRCC, KRCC, PLCC of metric ``x`` and human ``y`` (finite pairs), and PLCC after the
    logistic mapping of ``x`` to ``y`` (5+ pairs); NaN with fewer than 3 pairs or a constant
    side."""
    from scipy.stats import kendalltau, rankdata

    ok = np.isfinite(x) & np.isfinite(y)
    x, y = np.asarray(x, float)[ok], np.asarray(y, float)[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return dict.fromkeys(STATS, np.nan)
    p = fit_logistic(x, y, p0) if len(x) > 4 else None  # 4 parameters need 5+ points
    plcc_l = _pearson(logistic4(x, *p), y) if p is not None else np.nan
    return {
        "srcc": _pearson(rankdata(x), rankdata(y)),
        "krcc": float(kendalltau(x, y).statistic),
        "plcc": _pearson(x, y),
        "plcc_l": plcc_l,
    }


def two_afc(x: np.ndarray, a: np.ndarray, b: np.ndarray, won_a: np.ndarray) -> np.ndarray:
    """Per comparison: 1 if metric ``x`` (higher = better) prefers the human's choice, 0.5 on a
    tie, 0 otherwise, NaN where the metric misses either side."""
    d = x[a] - x[b]
    out = np.where(d == 0, 0.5, ((d > 0) == won_a).astype(float))
    return np.where(np.isfinite(d), out, np.nan)


def williams_test(r12: float, r13: float, r23: float, n: int) -> tuple[float, float]:
    """Williams' t for two dependent correlations sharing variable 1 (Williams 1959; Steiger,
    Psychol. Bull. 87, 1980, eq. 7): H0 r12 = r13, given r23 and n cases; (t, two-sided p) with
    n - 3 degrees of freedom."""
    from scipy.stats import t as student

    det = 1 - r12**2 - r13**2 - r23**2 + 2 * r12 * r13 * r23
    rbar = (r12 + r13) / 2
    den = 2 * (n - 1) / (n - 3) * det + rbar**2 * (1 - r23) ** 3
    if n <= 3 or den <= 0:
        return np.nan, np.nan
    tval = (r12 - r13) * np.sqrt((n - 1) * (1 + r23) / den)
    return float(tval), float(2 * student.sf(abs(tval), n - 3))


@dataclass
class Human:
    """A study's judgements in the form each bootstrap resample recomputes them from."""

    conditions: pd.MultiIndex  # CONDITION tuples
    image_of: np.ndarray  # per condition: index of its source image (dataset, image)
    n_raters: int
    n_images: int
    score: Callable[[np.ndarray], np.ndarray]  # drawn rater indices -> per-condition score
    # pairwise only: per first answer, condition indices, whether a won, rater and image index
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None


def _images(conditions: pd.MultiIndex) -> np.ndarray:
    ds, im = conditions.get_level_values("dataset"), conditions.get_level_values("image")
    keys = list(zip(ds, im, strict=True))
    return pd.factorize(pd.Series(keys, dtype=object))[0]


def rating_human(df: pd.DataFrame) -> Human:
    """MOS per condition; a resample's MOS is the mean over the drawn raters (with repeats)."""
    grid = condition_grid(df)
    values = grid.to_numpy(float)

    def score(raters: np.ndarray) -> np.ndarray:
        g = values[:, raters]
        n = np.isfinite(g).sum(1)
        return np.where(n > 0, np.nansum(g, 1) / np.maximum(n, 1), np.nan)

    images = _images(grid.index)
    return Human(grid.index, images, values.shape[1], int(images.max(initial=-1)) + 1, score)


def pairwise_human(df: pd.DataFrame, model: str = "bt") -> Human:
    """Bradley-Terry / Thurstone score per condition among its image's outputs; a resample
    refits on the drawn raters' answers (each with all of theirs)."""
    fit = MODELS[model]
    first = df[df.is_repeat == 0]
    set_cols = [c for c in CONDITION if c not in ("method", "image")]
    key_a = [tuple(r) for r in first[[*set_cols, "method", "image"]].itertuples(index=False)]
    key_b = [tuple(r) for r in first[[*set_cols, "method_b", "image"]].itertuples(index=False)]
    conditions = pd.MultiIndex.from_tuples(sorted(set(key_a) | set(key_b)), names=CONDITION)
    pos = {k: i for i, k in enumerate(conditions)}
    a = np.array([pos[k] for k in key_a], dtype=int)
    b = np.array([pos[k] for k in key_b], dtype=int)
    won_a = first.value.to_numpy() == 0
    raters, rater_of = np.unique(first.rater.to_numpy(), return_inverse=True)
    images = _images(conditions)
    by_rater = [np.flatnonzero(rater_of == r) for r in range(len(raters))]
    winners, losers = np.where(won_a, a, b), np.where(won_a, b, a)

    def score(drawn: np.ndarray) -> np.ndarray:
        rows = np.concatenate([by_rater[r] for r in drawn]) if len(drawn) else np.array([], int)
        wins = list(zip(winners[rows].tolist(), losers[rows].tolist(), strict=True))
        return np.asarray(fit(len(conditions), wins), float)

    pairs = (a, b, won_a, rater_of, images[a])
    return Human(conditions, images, len(raters), int(images.max(initial=-1)) + 1, score, pairs)


def metric_matrix(rows: pd.DataFrame, conditions: pd.MultiIndex) -> tuple[list[str], np.ndarray]:
    """Store rows -> (variant ids, variants x conditions array), sign-aligned so that higher
    is better (``higher_better`` False: negated); NaN where a variant lacks a condition. Rows of
    human studies (``kind`` study) are left out."""
    if rows.empty:
        return [], np.empty((0, len(conditions)))
    if "kind" in rows:
        rows = rows[rows.kind != "study"]
    sign = (
        rows.higher_better.map({True: 1.0, False: -1.0}).fillna(1.0)
        if ("higher_better" in rows)
        else 1.0
    )
    rows = rows.assign(aligned=rows.value.astype(float) * sign)
    wide = rows.pivot_table(index=CONDITION, columns="variant", values="aligned", aggfunc="last")
    wide = wide.reindex(conditions)
    keep = [v for v in wide.columns if wide[v].notna().sum() >= 3]
    return keep, wide[keep].to_numpy(float).T


def _groups(conditions: pd.MultiIndex) -> dict[str, np.ndarray]:
    from carbench.reports.tables import natural_key

    deg = conditions.get_level_values("degradation").to_numpy()
    out = {POOLED: np.ones(len(conditions), bool)}
    for d in sorted(set(deg), key=natural_key):
        out[d] = deg == d
    return out


def _stats_of(x: np.ndarray, human: np.ndarray, idx: np.ndarray, p0=None) -> dict[str, float]:
    return correlations(x[idx], human[idx], p0)


def _williams_srcc(xa: np.ndarray, xb: np.ndarray, human: np.ndarray, mask: np.ndarray) -> float:
    """Williams' test p of SRCC(a, human) = SRCC(b, human) on the conditions both metrics
    score (Pearson on ranks, the usual approximation for rank correlations)."""
    from scipy.stats import rankdata

    ok = mask & np.isfinite(xa) & np.isfinite(xb) & np.isfinite(human)
    if ok.sum() < 5:
        return np.nan
    ra, rb, rh = (rankdata(v[ok]) for v in (xa, xb, human))
    return williams_test(_pearson(rh, ra), _pearson(rh, rb), _pearson(ra, rb), int(ok.sum()))[1]


def agreement(
    human: Human,
    variants: list[str],
    values: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Agreement of each variant with the human scores, per group (``pooled`` and each
    degradation): a long table (group, variant, stat, value, lo, hi, n) and the paired
    comparisons of each group's best SRCC with every other variant (group, best, other, diff,
    lo, hi, p: paired bootstrap; williams_p: Williams' test on the ranks)."""
    groups = _groups(human.conditions)
    full = human.score(np.arange(human.n_raters))
    stats = STATS + (PAIR_STATS if human.pairs is not None else ())
    point: dict[tuple[str, str], dict[str, float]] = {}
    p0s: dict[tuple[str, str], np.ndarray | None] = {}
    for g, mask in groups.items():
        idx = np.flatnonzero(mask)
        for v, x in zip(variants, values, strict=True):
            ok = idx[np.isfinite(x[idx]) & np.isfinite(full[idx])]
            p0s[g, v] = fit_logistic(x[ok], full[ok]) if len(ok) > 4 else None
            point[g, v] = _stats_of(x, full, idx, p0s[g, v])  # refines the fit just made
    accs = {}
    if human.pairs is not None:
        a, b, won_a, _, _ = human.pairs
        accs = {v: two_afc(x, a, b, won_a) for v, x in zip(variants, values, strict=True)}
        deg = human.conditions.get_level_values("degradation").to_numpy()[a]
        for g in groups:
            sel = np.ones(len(a), bool) if g == POOLED else deg == g
            for v in variants:
                c = accs[v][sel]
                point[g, v]["acc"] = float(np.nanmean(c)) if np.isfinite(c).any() else np.nan

    rng = np.random.default_rng(seed)
    boot = {key: {s: np.full(n_boot, np.nan) for s in stats} for key in point}
    for k in range(n_boot):
        raters = rng.integers(0, human.n_raters, human.n_raters)
        images = rng.integers(0, human.n_images, human.n_images)
        img_count = np.bincount(images, minlength=human.n_images)
        score = human.score(raters)
        reps = img_count[human.image_of]
        for g, mask in groups.items():
            idx = np.repeat(np.flatnonzero(mask), reps[mask])
            for v, x in zip(variants, values, strict=True):
                for s, val in _stats_of(x, score, idx, p0s[g, v]).items():
                    boot[g, v][s][k] = val
        if human.pairs is not None:
            a, _, _, rater_of, image_of = human.pairs
            w = np.bincount(raters, minlength=human.n_raters)[rater_of] * img_count[image_of]
            deg = human.conditions.get_level_values("degradation").to_numpy()[a]
            for g in groups:
                sel = w * (1 if g == POOLED else (deg == g))
                for v in variants:
                    c = accs[v]
                    ok = np.isfinite(c) & (sel > 0)
                    if ok.any():
                        boot[g, v]["acc"][k] = float((c[ok] * sel[ok]).sum() / sel[ok].sum())
    q = (1 - level) / 2
    rows, comps = [], []
    for (g, v), vals in point.items():
        n = int((np.isfinite(values[variants.index(v)]) & groups[g]).sum())
        for s in stats:
            b = boot[g, v][s]
            b = b[np.isfinite(b)]
            lo, hi = np.quantile(b, [q, 1 - q]) if len(b) else (np.nan, np.nan)
            rows.append(
                {
                    "group": g,
                    "variant": v,
                    "stat": s,
                    "value": vals.get(s, np.nan),
                    "lo": float(lo),
                    "hi": float(hi),
                    "n": n,
                }
            )
    for g in groups:
        ranked = sorted(
            (v for v in variants if np.isfinite(point[g, v]["srcc"])),
            key=lambda v, g=g: -point[g, v]["srcc"],
        )
        for other in ranked[1:]:
            d = boot[g, ranked[0]]["srcc"] - boot[g, other]["srcc"]
            d = d[np.isfinite(d)]
            if not len(d):
                continue
            lo, hi = np.quantile(d, [q, 1 - q])
            p = min(1.0, 2 * min((d <= 0).mean(), (d >= 0).mean()))
            comps.append(
                {
                    "group": g,
                    "best": ranked[0],
                    "other": other,
                    "diff": point[g, ranked[0]]["srcc"] - point[g, other]["srcc"],
                    "lo": float(lo),
                    "hi": float(hi),
                    "p": float(p),
                    "significant": bool(lo > 0 or hi < 0),
                    "williams_p": _williams_srcc(
                        values[variants.index(ranked[0])],
                        values[variants.index(other)],
                        full,
                        groups[g],
                    ),
                }
            )
    long = pd.DataFrame(rows, columns=["group", "variant", "stat", "value", "lo", "hi", "n"])
    comp_cols = ["group", "best", "other", "diff", "lo", "hi", "p", "significant", "williams_p"]
    return long, pd.DataFrame(comps, columns=comp_cols)


def study_agreement(
    df: pd.DataFrame,
    mode: str,
    store_rows: pd.DataFrame,
    model: str = "bt",
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`agreement` of a study's answers (``answers_frame``) with the store's rows."""
    human = pairwise_human(df, model) if mode == "pairwise" else rating_human(df)
    variants, values = metric_matrix(store_rows, human.conditions)
    return agreement(human, variants, values, n_boot, seed)
