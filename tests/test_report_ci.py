"""``bench report --ci``: intervals equal scipy.stats.bootstrap's; the marker sits exactly where
the paired tests (scipy's bootstrap on differences and Wilcoxon) reject."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from reports.build import render_report
from reports.ci import MARK, bootstrap_mean_ci


def _rows(spec: dict) -> pd.DataFrame:
    out = []
    for (deg, m), vals in spec.items():
        for i, x in enumerate(vals):
            out.append(
                {
                    "dataset": "LIVE1",
                    "protocol": "codiff",
                    "degradation": deg,
                    "method": m,
                    "image": f"im{i}",
                    "metric": "psnr",
                    "variant": "psnr:rgb",
                    "value": x,
                    "implementation": "t",
                    "carbench": "t",
                }
            )
    return pd.DataFrame(out)


def test_interval_matches_scipy_bootstrap():
    x = np.random.default_rng(3).normal(30, 2, 40)
    lo, hi = bootstrap_mean_ci(x, 20000, 0)
    ref = stats.bootstrap((x,), np.mean, n_resamples=20000, method="percentile", random_state=1)
    se = x.std() / np.sqrt(len(x))
    assert abs(lo - ref.confidence_interval.low) < 0.05 * se
    assert abs(hi - ref.confidence_interval.high) < 0.05 * se


def _scipy_rejects(a, b) -> bool:
    d = np.asarray(a) - np.asarray(b)
    boot = stats.bootstrap(
        (d,), np.mean, n_resamples=20000, method="percentile", confidence_level=0.90, random_state=2
    )
    return bool(
        boot.confidence_interval.low > 0 and stats.wilcoxon(d, alternative="greater").pvalue < 0.05
    )


def test_marker_exactly_where_the_paired_test_rejects():
    rng = np.random.default_rng(5)
    base = rng.normal(28, 2, 24)
    clear = base + 0.5 + rng.normal(0, 0.1, 24)  # q10: consistently better than base
    noisy = base + rng.normal(0.02, 1.0, 24)  # q20: best by a hair, not significant
    rows = _rows(
        {
            ("jpeg-q10", "fbcnn"): clear,
            ("jpeg-q10", "dncnn3"): base,
            ("jpeg-q20", "fbcnn"): base,
            ("jpeg-q20", "dncnn3"): noisy,
        }
    )
    md = render_report(rows, "markdown", ci=2000, seed=0)
    lines = {
        ln.split("|")[2].strip(): ln
        for ln in md.splitlines()
        if ln.startswith("|  |") or ln.startswith("| LIVE1")
    }
    fb = lines["FBCNN"].split("|")[3:5]
    dn = lines["DnCNN-3"].split("|")[3:5]
    best20, second20 = (noisy, base) if noisy.mean() > base.mean() else (base, noisy)
    assert (MARK in fb[0]) == _scipy_rejects(clear, base) is True
    cell20 = dn[1] if noisy.mean() > base.mean() else fb[1]
    assert (MARK in cell20) == _scipy_rejects(best20, second20) is False
    assert "2000 resamples, seed 0" in md
    lo, hi = map(float, fb[0].split("[")[1].split("]")[0].split(","))  # rendered interval
    ref = stats.bootstrap((clear,), np.mean, n_resamples=20000, method="percentile", random_state=4)
    assert (
        abs(lo - ref.confidence_interval.low) < 0.02
        and abs(hi - ref.confidence_interval.high) < 0.02
    )
    assert md == render_report(rows, "markdown", ci=2000, seed=0)  # deterministic
    tex = render_report(rows, "latex", ci=2000, seed=0)
    assert r"$^\dagger$" in tex
