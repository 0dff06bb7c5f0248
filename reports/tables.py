"""Aggregating the result store into per-set means (the numbers every table shows)."""

from __future__ import annotations

import re

import pandas as pd

GROUP = ["dataset", "protocol", "degradation", "method", "metric", "variant"]


def natural_key(value) -> tuple:
    """Sort ``jpeg-q5`` before ``jpeg-q10``: digit runs compare as numbers."""
    parts = re.split(r"(\d+)", str(value))
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, protocol, degradation, method, metric) with mean and image count.

    Means are arithmetic over images (PSNR averaged in dB, as papers do); rows are sorted
    naturally (``jpeg-q5`` before ``jpeg-q10``).
    """
    if df.empty:
        return pd.DataFrame(columns=[*GROUP, "mean", "n"])
    out = df.groupby(GROUP, sort=False, dropna=False)["value"].agg(mean="mean", n="count")
    out = out.reset_index()
    order = sorted(range(len(out)), key=lambda i: tuple(natural_key(out.at[i, c]) for c in GROUP))
    return out.loc[order, [*GROUP, "mean", "n"]].reset_index(drop=True)
