"""``bench report --ci``: intervals equal scipy.stats.bootstrap's; the marker sits exactly where
the paired tests (scipy's bootstrap on differences and Wilcoxon) reject; study scores in the
store (MOS, win rate): ground truth unranked, the study's decimals, each footnote's bootstrap;
the compact interval styles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from carbench.core.errors import BenchError
from carbench.reports.build import render_report
from carbench.reports.ci import MARK, bootstrap_mean_ci


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


# human-study scores as `bench study report --store` writes them: one row per image
MOS = {"jpeg": [3, 4, 3, 4], "fbcnn": [5, 6, 6, 5], "codiff": [7, 6, 7, 7], "gt": [9, 9, 8, 9]}


def _study_rows() -> pd.DataFrame:
    out = []
    for m, vals in MOS.items():
        for i, x in enumerate(vals):
            for metric, value in (("mos", x), ("winrate", x / 10)):
                out.append(
                    {
                        "dataset": "LIVE1",
                        "protocol": "codiff",
                        "degradation": "jpeg-q10",
                        "method": m,
                        "image": f"im{i}",
                        "metric": metric,
                        "variant": metric,
                        "value": float(value),
                        "implementation": "study s",
                        "carbench": "t",
                    }
                )
    return pd.DataFrame(out)


def _md_cells(md: str) -> dict[str, list[str]]:
    """Markdown table rows by method label: the cell texts after the label."""
    return {
        ln.split("|")[2].strip(): [c.strip() for c in ln.split("|")[3:-1]]
        for ln in md.splitlines()
        if ln.startswith("| LIVE1") or ln.startswith("|  |")
    }


def test_ground_truth_is_not_ranked_and_mos_has_the_study_decimals():
    """The ground truth has the highest MOS and win rate but takes no part in the ranking:
    CODiff is best (bold), FBCNN second (italic). MOS and its interval have 2 decimals, as in
    ``bench study report``; the interval is the seeded bootstrap's, worked out here."""
    from carbench.study.report import study_model

    md = render_report(_study_rows(), "markdown", ci=200, seed=0)
    cells = _md_cells(md)
    assert set(cells) == {"Ground truth", "JPEG", "FBCNN", "CODiff"}

    def shown(vals: list[float]) -> str:
        lo, hi = bootstrap_mean_ci(np.array(vals, float), 200, 0)
        return f"{np.mean(vals):.2f} [{lo:.2f}, {hi:.2f}]"

    assert cells["Ground truth"][0] == shown(MOS["gt"]) == "8.75 [8.25, 9.00]"
    assert cells["CODiff"][0] == f"**{shown(MOS['codiff'])}**"
    assert cells["FBCNN"][0] == f"_{shown(MOS['fbcnn'])}_"
    assert not cells["Ground truth"][1].startswith(("**", "_"))  # win rate: not ranked either
    assert cells["CODiff"][1].startswith("**") and cells["FBCNN"][1].startswith("_")
    tex = render_report(_study_rows(), "latex", ci=200, seed=0)
    gt_line = next(ln for ln in tex.splitlines() if "Ground truth" in ln)
    assert r"\textcolor" not in gt_line
    table = pd.DataFrame(
        [("LIVE1", "codiff", "jpeg-q10", "codiff", 6.75, 6.25, 7.0, 16)],
        columns=["dataset", "protocol", "degradation", "method", "mean", "lo", "hi", "n"],
    )
    study_cell = study_model(table, "mos", "t", "").blocks[0].rows[0].cells[0]
    assert study_cell.text == "6.75 [6.25, 7.00]"  # the same decimals in both reports


def test_each_footnote_names_its_bootstrap():
    """``bench report --ci`` resamples each cell's images; the study report resamples raters and
    images (MOS) or raters (pairwise); each footnote says so, with count, seed, percentile."""
    from carbench.study.report import study_note

    md = render_report(_study_rows(), "markdown", ci=200, seed=3)
    assert (
        "[lo, hi]: 95% percentile bootstrap interval of the mean, resampling the cell's images "
        "(200 resamples, seed 3)." in md
    )
    assert "raters are not resampled here" in md  # study scores: said where they appear
    assert "raters are not resampled" not in render_report(
        _rows({("jpeg-q10", "a"): [1, 2]}), "markdown", ci=50
    )
    rating = study_note("rating", 12, 1000, 0)
    assert (
        "[lo, hi]: 95% percentile bootstrap interval of the MOS, resampling raters and images "
        "independently (two-way) (1000 resamples, seed 0)" in rating
    )
    pairs = study_note("pairwise", 12, 500, 7, "pm", ["rater006"])
    assert "percentile bootstrap interval of each score, resampling raters" in pairs
    assert "(500 resamples, seed 7)" in pairs and "± h" in pairs
    assert pairs.endswith("Excluded outlier raters: rater006.")


def test_compact_interval_styles():
    """``pm``: the value ± half the interval's width; ``below``: the interval on its own line;
    both at the column's decimals (PSNR: 2); an unknown style is refused."""
    vals = [28.0, 29.0, 31.0, 30.5, 29.5]  # mean 29.6
    rows = _rows({("jpeg-q10", "fbcnn"): vals, ("jpeg-q10", "dncnn3"): [v - 1 for v in vals]})
    lo, hi = bootstrap_mean_ci(np.array(vals), 300, 1)
    pm = _md_cells(render_report(rows, "markdown", ci=300, seed=1, ci_style="pm"))
    # fbcnn beats dncnn3 by 1 on each of 5 images: Wilcoxon p = 1/32, the mark follows the value
    assert pm["FBCNN"][0] == f"**29.60{MARK} ± {(hi - lo) / 2:.2f}**"
    below = _md_cells(render_report(rows, "markdown", ci=300, seed=1, ci_style="below"))
    assert below["FBCNN"][0] == f"**29.60{MARK}<br>[{lo:.2f}, {hi:.2f}]**"
    tex = render_report(rows, "latex", ci=300, seed=1, ci_style="below")
    assert rf"\shortstack{{29.60$^\dagger$\\{{\scriptsize [{lo:.2f}, {hi:.2f}]}}}}" in tex
    with pytest.raises(BenchError, match="brackets, pm, below"):
        render_report(rows, "markdown", ci=300, ci_style="sideways")
