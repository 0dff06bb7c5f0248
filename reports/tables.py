"""Aggregating the result store into per-set means (the numbers every table shows)."""

from __future__ import annotations

import pandas as pd

GROUP = ["dataset", "protocol", "degradation", "method", "metric", "variant"]


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, protocol, degradation, method, metric) with mean and image count.

    Means are arithmetic over images (PSNR averaged in dB, as papers do).
    """
    if df.empty:
        return pd.DataFrame(columns=[*GROUP, "mean", "n"])
    out = (
        df.groupby(GROUP, sort=True, dropna=False)["value"]
        .agg(mean="mean", n="count")
        .reset_index()
    )
    return out[[*GROUP, "mean", "n"]]
