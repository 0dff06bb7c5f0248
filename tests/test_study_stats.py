"""Study statistics on simulated raters with known preferences."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from carbench.study.report import render_study, study_model
from carbench.study.stats import (
    bradley_terry,
    consistency,
    fit_bradley_terry,
    fit_thurstone,
    mos,
    pairwise_scores,
    store_rows,
    two_way_bootstrap,
)

TRUE = {"a": 3.0, "b": 5.0, "c": 7.0}


def _ratings(rng, raters=12, images=6, reverse: int | None = None) -> pd.DataFrame:
    rows = []
    bias = rng.normal(0, 0.5, raters)
    ease = rng.normal(0, 0.5, images)
    for r, i, (m, mu) in itertools.product(range(raters), range(images), TRUE.items()):
        v = mu + bias[r] + ease[i] + rng.normal(0, 1)
        if r == reverse:
            v = 10 - v
        rows.append((f"r{r}", f"{m}{i}", int(np.clip(round(v), 1, 10)), 0, m, f"im{i}"))
    df = pd.DataFrame(rows, columns=["rater", "item", "value", "is_repeat", "method", "image"])
    return df.assign(dataset="d", protocol="p", degradation="jpeg-q10")


def test_mos_recovers_the_known_order_and_flags_a_reversed_rater():
    df = _ratings(np.random.default_rng(1), reverse=3)
    table = mos(df, n_boot=300).set_index("method")
    assert list(table.sort_values("mos").index) == ["a", "b", "c"]
    assert (table.lo < table.mos).all() and (table.mos < table.hi).all()
    a = df[df.method == "a"].value  # one rating per rater and image: BT.500 by hand
    half = 1.96 * a.std(ddof=1) / np.sqrt(len(a))
    assert table.bt500_hi["a"] - table.mos["a"] == pytest.approx(half, rel=1e-3)
    assert table.mos["a"] - table.bt500_lo["a"] == pytest.approx(half, rel=1e-3)
    flags = consistency(df).set_index("rater")
    assert flags.outlier["r3"] and not flags.outlier.drop("r3").any()


@pytest.mark.slow
def test_two_way_interval_coverage_near_nominal():
    rng = np.random.default_rng(0)
    hits = 0
    sims = 200
    for s in range(sims):
        grid = (
            5 + rng.normal(0, 0.5, (8, 1)) + rng.normal(0, 0.5, (1, 6)) + rng.normal(0, 1, (8, 6))
        )
        _, lo, hi = two_way_bootstrap(grid, 200, s)
        hits += lo <= 5 <= hi
    assert 0.85 <= hits / sims <= 0.995, hits / sims


@pytest.mark.slow
def test_bradley_terry_recovers_known_strengths():
    rng = np.random.default_rng(2)
    strength = {"a": 0.0, "b": 1.0, "c": 2.0}
    rows = []
    for r in range(15):
        for (x, y), k in itertools.product(itertools.combinations(strength, 2), range(8)):
            p = 1 / (1 + np.exp(strength[y] - strength[x]))
            rows.append((f"r{r}", f"{x}{y}{k}", int(rng.random() >= p), 0, x, y))
    df = pd.DataFrame(rows, columns=["rater", "item", "value", "is_repeat", "method", "method_b"])
    df = df.assign(dataset="d", protocol="p", degradation="jpeg-q10", image="im")
    bt = bradley_terry(df, n_boot=50).set_index("method")
    assert list(bt.sort_values("score").index) == ["a", "b", "c"]
    centred = {m: s - 1.0 for m, s in strength.items()}
    for m in strength:
        assert bt.lo[m] <= centred[m] <= bt.hi[m]


def test_two_method_fits_match_closed_forms():
    """Two methods, a wins k of n: the maximum-likelihood difference is logit(k/n) for
    Bradley-Terry and probit(k/n) for Thurstone Case V; mean zero puts a at half of it."""
    from scipy.stats import norm

    k, n = 14, 20
    wins = [(0, 1)] * k + [(1, 0)] * (n - k)
    bt = fit_bradley_terry(2, wins, alpha=1e-9)
    th = fit_thurstone(2, wins, alpha=1e-9)
    assert bt[0] == pytest.approx(np.log(k / (n - k)) / 2, abs=1e-5)
    assert th[0] == pytest.approx(norm.ppf(k / n) / 2, abs=1e-5)
    assert bt.sum() == pytest.approx(0, abs=1e-9) and th.sum() == pytest.approx(0, abs=1e-9)


def _probit_pairs(rng, strength, raters=15, reps=8) -> pd.DataFrame:
    from scipy.stats import norm

    rows = []
    for r in range(raters):
        for (x, y), k in itertools.product(itertools.combinations(strength, 2), range(reps)):
            p = norm.cdf(strength[x] - strength[y])  # P(x preferred)
            rows.append((f"r{r}", f"{x}{y}{k}", int(rng.random() >= p), 0, x, y))
    df = pd.DataFrame(rows, columns=["rater", "item", "value", "is_repeat", "method", "method_b"])
    return df.assign(dataset="d", protocol="p", degradation="jpeg-q10", image="im")


@pytest.mark.slow
def test_thurstone_recovers_known_scores_and_covers_them():
    strength = {"a": -0.6, "b": 0.0, "c": 0.6}  # mean zero already
    rng = np.random.default_rng(5)
    hits, sims = 0, 40
    for s in range(sims):
        th = pairwise_scores(_probit_pairs(rng, strength), "thurstone", 100, s).set_index("method")
        if s == 0:
            assert list(th.sort_values("score").index) == ["a", "b", "c"]
            for m, v in strength.items():
                assert th.score[m] == pytest.approx(v, abs=0.2)
        hits += sum(th.lo[m] <= v <= th.hi[m] for m, v in strength.items())
    assert 0.85 <= hits / (3 * sims) <= 1.0, hits / (3 * sims)


def test_study_table_layout_best_in_red_anchors_unranked():
    """Methods as rows, degradations as columns; the ground truth anchor is not ranked;
    intervals in the cells; the same table in LaTeX, Markdown, HTML and CSV."""
    rows = []
    for deg, vals in {"jpeg-q5": (2.0, 4.5, 6.0, 9.0), "jpeg-q10": (3.0, 6.5, 5.0, 9.5)}.items():
        for m, v in zip(["jpeg", "fbcnn", "codiff", "gt"], vals, strict=True):
            rows.append(("LIVE1", "codiff", deg, m, v, v - 0.5, v + 0.5, 20))
    cols = ["dataset", "protocol", "degradation", "method", "mean", "lo", "hi", "n"]
    table = pd.DataFrame(rows, columns=cols)
    model = study_model(table, "mos", "MOS", "note")
    assert model.groups == [("QF=5", 1), ("QF=10", 1)]
    assert model.headers == ["MOS↑", "MOS↑"]
    by = {r.key: r.cells for r in model.blocks[0].rows}
    assert set(by) == {"jpeg", "fbcnn", "codiff", "gt"}
    assert [c.rank for c in by["codiff"]] == [1, 2] and [c.rank for c in by["fbcnn"]] == [2, 1]
    assert by["gt"][0].rank is None and by["jpeg"][0].rank is None
    assert by["codiff"][0].text == "6.00 [5.50, 6.50]"
    tex = render_study(table, "latex", model)
    assert r"\textcolor{red}{6.00 [5.50, 6.50]}" in tex and r"\textcolor{blue}{4.50" in tex
    md = render_study(table, "markdown", model)
    assert "**6.50 [6.00, 7.00]**" in md and "_5.00 [4.50, 5.50]_" in md
    html = render_study(table, "html", model)
    assert 'class="best" data-v="6.0"' in html
    csv = render_study(table, "csv", model)
    assert csv.splitlines()[0] == ",".join(cols)


def test_pairwise_store_rows_are_win_shares():
    df = pd.DataFrame(
        [("r0", "i0", 0, 0, "a", "b"), ("r1", "i0", 1, 0, "a", "b"), ("r2", "i0", 0, 0, "a", "b")],
        columns=["rater", "item", "value", "is_repeat", "method", "method_b"],
    ).assign(dataset="d", protocol="p", degradation="g", image="im")
    rows = {r["method"]: r for r in store_rows(df, "pairwise", "study x")}
    assert rows["a"]["value"] == pytest.approx(2 / 3) and rows["b"]["value"] == pytest.approx(1 / 3)
    assert rows["a"]["metric"] == "winrate" and rows["a"]["image"] == "im"


def test_empty_answers_give_empty_tables_with_their_columns():
    """No answers left (e.g. every rater excluded): empty tables that still have the columns
    the report reads, not a frame without columns."""
    cols = ["rater", "item", "value", "is_repeat", "method", "method_b", "image"]
    empty = pd.DataFrame(columns=cols).assign(dataset="d", protocol="p", degradation="g")
    keys = ["dataset", "protocol", "degradation", "method"]
    cols = [*keys, "mos", "lo", "hi", "n", "bt500_lo", "bt500_hi"]
    assert list(mos(empty).columns) == cols and mos(empty).empty
    for model in ("bt", "thurstone"):
        table = pairwise_scores(empty, model, n_boot=5)
        assert list(table.columns) == [*keys, "score", "lo", "hi", "n"] and table.empty


def test_report_when_every_rater_is_an_outlier(tmp_path, capsys):
    """Two raters who rate four items in opposite orders correlate -1 with each other: both
    are flagged, and ``--exclude-outliers`` leaves nobody: a clear error, nothing written;
    without it the MOS of both is reported."""
    from carbench.study.db import StudyDB
    from carbench.study.model import Item, Stimulus, Study, StudyConfig
    from conftest import run_cli

    folder = tmp_path / "s"
    study = Study(folder, StudyConfig("two", "rating", 0, "admintoken-two", repeats=0))
    for k, (method, image) in enumerate(itertools.product("ab", ("im0", "im1"))):
        sid = f"{k:016x}"
        stim = Stimulus(sid, "LIVE1", "codiff", "jpeg-q10", method, image, f"{sid}.png", "0")
        study.stimuli[sid] = stim
        study.items[f"i{k}"] = Item(f"i{k}", (sid,))
    study.save()
    db = StudyDB.open(study)
    db.add_raters(study, 2)
    for rid in (1, 2):
        while (nxt := db.next_item(rid)) is not None:
            k = int(nxt[1][1:])
            assert db.answer(rid, nxt[0], k + 1 if rid == 1 else 4 - k, None) == "ok"
    db.close()
    capsys.readouterr()
    out = tmp_path / "table.md"
    args = ("study", "report", folder, "--resamples", "20", "--out", out)
    assert run_cli(*args, "--exclude-outliers") == 1
    err = capsys.readouterr().err
    assert "rater001  " in err and err.count("True") == 2  # the flag table: both flagged
    assert (
        "error: every rater (rater001, rater002) is flagged as an outlier (correlation with "
        "the other raters below --min-corr 0.3); nothing left to report: rerun without "
        "--exclude-outliers or with a lower --min-corr"
    ) in err
    assert not out.exists()
    assert run_cli(*args) == 0
    text = out.read_text()  # a: (1 + 2 + 4 + 3) / 4, b: (3 + 4 + 2 + 1) / 4
    assert text.count("2.50 [") == 2 and "Excluded" not in text
