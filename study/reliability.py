"""Rater screening and reliability to the standards studies cite (pure functions of a
conditions x raters matrix of ratings, NaN = not rated: ``carbench.study.stats.condition_grid``).

- :func:`bt500_screen`: the subject screening of ITU-R BT.500-14, Annex 1, §2.3.1 (kurtosis
  beta-2 test per presentation, P_i/Q_i counts, rejection rule).
- :func:`icc2`: ICC(2,1) and ICC(2,k) of Shrout & Fleiss (1979), two-way random effects,
  absolute agreement, on the conditions every kept rater rated.
- :func:`krippendorff_alpha`: Krippendorff's alpha (interval level by default) through the
  ``krippendorff`` package; missing ratings allowed.
- :func:`mos_intervals` and :func:`raters_needed`: the 95% confidence interval of each MOS as
  BT.500-14 Annex 1 §2.2.1 gives it (delta = 1.96 S / sqrt(N)), and the number of raters that
  interval needs to be no wider than asked, from the observed standard deviations.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

Z95 = 1.959963984540054  # the 0.975 normal quantile that BT.500's 1.96 rounds


def bt500_screen(grid: np.ndarray) -> pd.DataFrame:
    """ITU-R BT.500-14 Annex 1 §2.3.1 subject screening of a presentations x raters matrix.

    Per presentation (row): mean u, standard deviation S and kurtosis beta2 = m4 / m2**2 (m_x
    the x-th central moment) of its ratings. If 2 <= beta2 <= 4 the ratings are taken as normal
    and the band is u +- 2 S, else u +- sqrt(20) S. Per rater i: P_i counts ratings at or above
    the upper bound, Q_i at or below the lower one. Rater i is rejected when (P_i + Q_i) / N_i >
    0.05 and |(P_i - Q_i) / (P_i + Q_i)| < 0.3, N_i the number of presentations the rater rated
    (J K L in the Recommendation). Returns per rater column index: n, P, Q, ratio, balance,
    rejected."""
    g = np.asarray(grid, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.isfinite(g).sum(1)
        u = np.nanmean(g, 1)
        dev = g - u[:, None]
        m2 = np.nansum(dev**2, 1) / n
        m4 = np.nansum(dev**4, 1) / n
        beta2 = m4 / m2**2
        s = np.sqrt(np.nansum(dev**2, 1) / np.maximum(n - 1, 1))  # BT.500: N - 1 in S
    width = np.where((beta2 >= 2) & (beta2 <= 4), 2.0, math.sqrt(20))
    usable = (n >= 2) & (m2 > 0)
    hi = np.where(usable, u + width * s, np.inf)[:, None]
    lo = np.where(usable, u - width * s, -np.inf)[:, None]
    rated = np.isfinite(g)
    p = ((g >= hi) & rated).sum(0)
    q = ((g <= lo) & rated).sum(0)
    n_i = rated.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(n_i > 0, (p + q) / np.maximum(n_i, 1), 0.0)
        balance = np.where(p + q > 0, np.abs(p - q) / np.maximum(p + q, 1), 1.0)
    return pd.DataFrame(
        {
            "n": n_i,
            "P": p,
            "Q": q,
            "ratio": ratio,
            "balance": balance,
            "rejected": (ratio > 0.05) & (balance < 0.3),
        }
    )


def icc2(grid: np.ndarray) -> dict[str, float]:
    """ICC(2,1) and ICC(2,k) (Shrout & Fleiss 1979, case 2: every target rated by the same k
    raters, drawn at random; absolute agreement) of a targets x raters matrix. Targets a rater
    skipped are left out (complete cases); returns icc21, icc2k, n (targets), k (raters)."""
    g = np.asarray(grid, float)
    g = g[np.isfinite(g).all(1)]
    n, k = g.shape
    if n < 2 or k < 2:
        return {"icc21": np.nan, "icc2k": np.nan, "n": n, "k": k}
    mean = g.mean()
    ss_rows = k * ((g.mean(1) - mean) ** 2).sum()
    ss_cols = n * ((g.mean(0) - mean) ** 2).sum()
    ss_err = ((g - mean) ** 2).sum() - ss_rows - ss_cols
    bms, jms = ss_rows / (n - 1), ss_cols / (k - 1)
    ems = ss_err / ((n - 1) * (k - 1))
    icc21 = (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)
    icc2k = (bms - ems) / (bms + (jms - ems) / n)
    return {"icc21": float(icc21), "icc2k": float(icc2k), "n": n, "k": k}


def krippendorff_alpha(grid: np.ndarray, level: str = "interval") -> float:
    """Krippendorff's alpha of a units x raters matrix (NaN = missing), via ``krippendorff``."""
    import krippendorff

    g = np.asarray(grid, float)
    pairable = (np.isfinite(g).sum(1) >= 2).any()  # a unit two raters rated
    if not pairable or len(np.unique(g[np.isfinite(g)])) < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=g.T, level_of_measurement=level))


def mos_intervals(grid: np.ndarray) -> pd.DataFrame:
    """Per condition: N raters, MOS, S and the BT.500 95% interval half-width 1.96 S/sqrt(N)."""
    g = np.asarray(grid, float)
    n = np.isfinite(g).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(g, 1)
        s = np.sqrt(np.nansum((g - mean[:, None]) ** 2, 1) / (n - 1))
        delta = Z95 * s / np.sqrt(n)
    return pd.DataFrame({"n": n, "mos": mean, "sd": s, "delta": delta})


def raters_needed(sd: float, width: float) -> int:
    """Raters for a 95% interval of full width ``width`` (MOS +- width/2) given the rating
    standard deviation ``sd``: the smallest N with 2 * 1.96 sd / sqrt(N) <= width."""
    return max(2, math.ceil((2 * Z95 * sd / width) ** 2 - 1e-9))


def reliability_summary(grid: np.ndarray, width: float) -> dict:
    """ICC(2,1), ICC(2,k), Krippendorff's alpha (interval), the widest BT.500 MOS interval and
    whether the raters are too few for intervals of ``width``, with the number needed (from the
    pooled standard deviation of the ratings of each condition)."""
    iv = mos_intervals(grid)
    ok = iv[np.isfinite(iv.sd)]
    pooled = float(np.sqrt((ok.sd**2 * (ok.n - 1)).sum() / (ok.n - 1).sum())) if len(ok) else np.nan
    widest = float(2 * ok.delta.max()) if len(ok) else np.nan
    need = raters_needed(pooled, width) if np.isfinite(pooled) else 0
    return {
        **icc2(grid),
        "alpha": krippendorff_alpha(grid),
        "raters": int(np.isfinite(np.asarray(grid, float)).any(0).sum()),
        "widest": widest,
        "sd": pooled,
        "needed": need,
        "too_few": bool(np.isfinite(widest) and widest > width),
    }


def reliability_note(summary: dict, width: float) -> str:
    """The reliability line of a study report, and the too-few-raters warning when it applies."""
    s = {
        k: ("n/a" if isinstance(v, float) and not np.isfinite(v) else v) for k, v in summary.items()
    }

    def f(v) -> str:
        return v if isinstance(v, str) else f"{v:.2f}"

    text = (
        f"Inter-rater reliability: ICC(2,1) {f(s['icc21'])}, ICC(2,k) {f(s['icc2k'])} "
        f"(Shrout & Fleiss 1979; {s['n']} conditions x {s['k']} raters), Krippendorff's alpha "
        f"(interval) {f(s['alpha'])}; widest BT.500 95% MOS interval {f(s['widest'])}."
    )
    if s["too_few"]:
        text += (
            f" Warning: too few raters for a reliable MOS: {s['raters']} raters give intervals "
            f"up to {s['widest']:.2f} wide; about {s['needed']} raters are needed for {width:g} "
            f"(observed rating SD {s['sd']:.2f}, BT.500 1.96 S/sqrt(N))."
        )
    return text
