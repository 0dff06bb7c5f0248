"""Metric-human agreement on synthetic studies whose judgements come from a known metric plus
noise: the generating metric ranks first and its interval covers the generating value."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from carbench.study.agreement import (
    correlations,
    fit_logistic,
    logistic4,
    study_agreement,
    two_afc,
)

KEY = ["dataset", "protocol", "degradation", "method", "image"]


def _synthetic(rng, methods=8, images=20, raters=25, metric_noise=0.5, rater_noise=0.8):
    """Conditions with iid true quality q ~ N(0, 1); ``good`` = q + N(0, metric_noise²),
    ``weak`` = q + N(0, 2²) (stored lower-is-better, negated), ``none`` independent of q;
    ratings = 5.5 + 1.5 q + rater bias + N(0, rater_noise²), rounded into 1..10."""
    rows, store = [], []
    bias = rng.normal(0, 0.3, raters)
    degs = ["jpeg-q5", "jpeg-q10"]
    for d, m, i in itertools.product(degs, range(methods), range(images)):
        q = rng.normal()
        cond = ("LIVE1", "codiff", d, f"m{m}", f"im{i}")
        for name, val, hb in (
            ("good", q + rng.normal(0, metric_noise), True),
            ("weak", -(q + rng.normal(0, 2.0)), False),
            ("none", rng.normal(), True),
        ):
            store.append((*cond, f"{name}:v", val, hb, "FR"))
        for r in range(raters):
            v = int(np.clip(round(5.5 + 1.5 * q + bias[r] + rng.normal(0, rater_noise)), 1, 10))
            rows.append((f"r{r}", f"{d}{m}{i}", v, 0, *cond))
    cols = ["rater", "item", "value", "is_repeat", *KEY]
    df = pd.DataFrame(rows, columns=cols)
    st = pd.DataFrame(store, columns=[*KEY, "variant", "value", "higher_better", "kind"])
    return df, st


def _population_srcc(rho: float) -> float:
    """Spearman's rho of a bivariate normal with Pearson ``rho`` (Pearson 1907)."""
    return 6 / np.pi * np.arcsin(rho / 2)


@pytest.mark.slow
def test_generating_metric_ranks_first_and_its_interval_covers_the_value():
    df, st = _synthetic(np.random.default_rng(0))
    long, comps = study_agreement(df, "rating", st, n_boot=150, seed=0)
    srcc = long[long.stat == "srcc"].set_index(["group", "variant"])
    pooled = srcc.loc["pooled"].sort_values("value", ascending=False)
    assert list(pooled.index) == ["good:v", "weak:v", "none:v"]
    # the value generating the ratings: the population SRCC of good and the MOS. Every rater
    # rates every condition, so a rater's bias shifts all MOS alike and drops out; the MOS
    # noise is the mean of 25 raters' noise (0.8) and rounding (variance 1/12), on a 1.5 q
    # scale: rho = corr(good, MOS) = corr(good, q) / sqrt(1 + s_mos^2)
    s_mos = np.sqrt((0.8**2 + 1 / 12) / 25) / 1.5
    rho = 1 / np.sqrt(1 + 0.5**2) / np.sqrt(1 + s_mos**2)
    want = _population_srcc(rho)
    lo, hi = pooled.lo["good:v"], pooled.hi["good:v"]
    assert lo <= want <= hi, (lo, want, hi)
    assert hi - lo < 0.2
    assert pooled.value["weak:v"] > 0  # sign-aligned: lower-is-better metric negated
    assert abs(pooled.value["none:v"]) < 0.2
    comp = comps[comps.group == "pooled"].set_index("other")
    assert (comp.best == "good:v").all() and comp.significant.all()
    assert (comp.williams_p < 0.05).all()  # Williams' test on the ranks says so too
    assert set(long.group) == {"pooled", "jpeg-q5", "jpeg-q10"}
    assert set(long.stat) == {"srcc", "krcc", "plcc", "plcc_l"}


def test_correlations_match_scipy_and_logistic_recovers_its_parameters():
    from scipy.stats import kendalltau, pearsonr, spearmanr

    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, 60)
    true = (8.0, 2.0, 0.5, 0.7)
    y = logistic4(x, *true) + rng.normal(0, 0.05, 60)
    got = correlations(x, y)
    assert got["srcc"] == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert got["krcc"] == pytest.approx(kendalltau(x, y).statistic, abs=1e-12)
    assert got["plcc"] == pytest.approx(pearsonr(x, y).statistic, abs=1e-12)
    p = fit_logistic(x, y)
    assert p[:3] == pytest.approx(true[:3], abs=0.1) and abs(p[3]) == pytest.approx(0.7, abs=0.1)
    assert got["plcc_l"] > got["plcc"] and got["plcc_l"] > 0.99
    assert np.isnan(correlations(np.ones(5), np.arange(5.0))["srcc"])


def test_two_afc_counts_ties_half_and_missing_as_nan():
    x = np.array([1.0, 2.0, 2.0, np.nan])
    a, b = np.array([0, 1, 1, 3]), np.array([1, 0, 2, 0])
    won_a = np.array([False, True, True, True])
    assert list(two_afc(x, a, b, won_a)[:3]) == [1.0, 1.0, 0.5]
    assert np.isnan(two_afc(x, a, b, won_a)[3])


@pytest.mark.slow
def test_pairwise_agreement_ranks_the_generating_metric_and_its_2afc_covers_the_truth():
    """Pairs of one image's outputs judged by a Thurstone observer on q (probit of the quality
    difference); the metric ``good`` = q + noise predicts a choice with a probability worked
    out by integration over the model; ``none`` predicts half."""
    from scipy.stats import norm

    rng = np.random.default_rng(1)
    rows, store = [], []
    methods, images, raters, noise = 4, 12, 12, 0.4
    q = rng.normal(0, 1, (images, methods))
    for i, m in itertools.product(range(images), range(methods)):
        cond = ("LIVE1", "codiff", "jpeg-q10", f"m{m}", f"im{i}")
        store.append((*cond, "good:v", q[i, m] + rng.normal(0, noise), True, "FR"))
        store.append((*cond, "none:v", rng.normal(), True, "FR"))
    for r, i, (x, y) in itertools.product(
        range(raters), range(images), itertools.combinations(range(methods), 2)
    ):
        p = norm.cdf(q[i, x] - q[i, y])
        rows.append(
            (
                f"r{r}",
                f"{i}{x}{y}",
                int(rng.random() >= p),
                0,
                "LIVE1",
                "codiff",
                "jpeg-q10",
                f"m{x}",
                f"m{y}",
                f"im{i}",
            )
        )
    cols = [
        "rater",
        "item",
        "value",
        "is_repeat",
        "dataset",
        "protocol",
        "degradation",
        "method",
        "method_b",
        "image",
    ]
    df = pd.DataFrame(rows, columns=cols)
    st = pd.DataFrame(store, columns=[*KEY, "variant", "value", "higher_better", "kind"])
    long, _ = study_agreement(df, "pairwise", st, "bt", n_boot=60, seed=0)
    acc = long[(long.stat == "acc") & (long.group == "pooled")].set_index("variant")
    # P(metric and human agree) for d = q_x - q_y ~ N(0, 2): metric difference d + N(0, 2 noise²)
    grid = np.linspace(-6, 6, 4001)
    dens = norm.pdf(grid, scale=np.sqrt(2))
    agree_sign = norm.cdf(np.abs(grid) / np.sqrt(2 * noise**2))
    human = norm.cdf(np.abs(grid))
    want = np.trapezoid(dens * (agree_sign * human + (1 - agree_sign) * (1 - human)), grid)
    assert acc.lo["good:v"] <= want <= acc.hi["good:v"], (acc.loc["good:v"], want)
    assert acc.lo["none:v"] <= 0.5 <= acc.hi["none:v"]
    srcc = long[(long.stat == "srcc") & (long.group == "pooled")].set_index("variant")
    assert srcc.value["good:v"] > 0.5 > abs(srcc.value["none:v"])


@pytest.mark.slow
def test_report_agreement_from_a_real_store(tmp_path, capsys):
    """A rating study built from a real run (jpeg at QF 5/10/20, PSNR and SSIM in the store),
    rated from PSNR through a monotone map: ``bench study report --agreement`` ranks PSNR first
    with the SRCC that scipy gives on the stored answers, in Markdown and in the HTML page."""
    from scipy.stats import spearmanr

    from carbench.bench.store import ResultStore
    from carbench.study.db import StudyDB
    from carbench.study.model import Study
    from conftest import run_cli

    ws = tmp_path / "ws"
    args = ("-w", ws, "-p", "fbcnn", "-g", "jpeg:q=5,10,20", "--no-progress")
    assert run_cli("generate", *args) == 0
    assert run_cli("run", *args, "--methods", "jpeg", "--metrics", "psnr,ssim") == 0
    folder = tmp_path / "s"
    assert run_cli("study", "create", folder, "-w", ws, "--methods", "jpeg", "--raters", "5",
                   "--repeats", "0") == 0
    study = Study.load(folder)
    psnr = ResultStore(ws / "results").load(metric="psnr")
    by = {(r.degradation, r.image): r.value for r in psnr.itertuples()}
    lo, hi = min(by.values()), max(by.values())
    db = StudyDB.open(study)
    rng = np.random.default_rng(0)
    for rid in range(1, 6):
        while (nxt := db.next_item(rid)) is not None:
            s = study.stimuli[study.items[nxt[1]].stimuli[0]]
            x = (by[s.degradation, s.image] - lo) / (hi - lo)
            v = int(np.clip(round(1 + 9 * x**2 + rng.normal(0, 0.3)), 1, 10))
            assert db.answer(rid, nxt[0], v, None) == "ok"
    answers = db.answers()
    db.close()
    mos: dict = {}
    for _, _, item, value, _, _ in answers:
        s = study.stimuli[study.items[item].stimuli[0]]
        mos.setdefault((s.degradation, s.image), []).append(value)
    keys = sorted(mos)
    want = spearmanr([by[k] for k in keys], [np.mean(mos[k]) for k in keys]).statistic
    capsys.readouterr()
    out = tmp_path / "t.md"
    rep = ("study", "report", folder, "--agreement", "--agreement-resamples", "30")
    assert run_cli(*rep, "--resamples", "20", "--out", out) == 0
    text = out.read_text()
    pooled = text.split("| Pooled |")[1].split("\n")[0]
    assert pooled.startswith(" PSNR") and f"**{want:.3f} [" in pooled
    assert "| QF=5 |" in text and "| QF=20 |" in text and "SSIM" in text
    assert "Inter-rater reliability: ICC(2,1)" in text  # the MOS table's footnote
    html = tmp_path / "t.html"
    assert run_cli(*rep, "--resamples", "20", "--format", "html", "--out", html) == 0
    page = html.read_text()
    assert "<h2>Metric-human agreement, study s</h2>" in page and 'id="section-0"' in page
    bt = tmp_path / "bt.md"  # the BT.500 interval in the cells, by hand for QF=5
    assert run_cli("study", "report", folder, "--interval", "bt500", "--out", bt) == 0
    q5 = [v for (d, _), vs in mos.items() if d == "jpeg-q5" for v in vs]
    m, half = np.mean(q5), 1.96 * np.std(q5, ddof=1) / np.sqrt(len(q5))
    assert f"{m:.2f} [{m - half:.2f}, {m + half:.2f}]" in bt.read_text()
    assert "confidence interval of ITU-R BT.500-14" in bt.read_text()
    assert run_cli(*rep, "--agreement-resamples", "3") == 1
    assert "option `agreement_resamples` of bench study report takes int 10-100000, got '3'" in (
        capsys.readouterr().err
    )


def test_williams_test_by_hand_and_calibrated_under_the_null():
    """r12 = .5, r13 = .3, r23 = .4, n = 50: |R| = 1 - .25 - .09 - .16 + 2(.5)(.3)(.4) = .62,
    r̄ = .4, denominator 2 (49/47) .62 + .16 (.6)^3 = 1.32733, t = .2 sqrt(49 x 1.4 / 1.32733)
    = 1.4378. Under H0 (two predictors equally correlated with the target) about 5% of
    simulated samples reject at 0.05; swapping the two negates t."""
    from carbench.study.agreement import williams_test

    t, p = williams_test(0.5, 0.3, 0.4, 50)
    assert t == pytest.approx(1.4378, abs=5e-4) and 0.1 < p < 0.2
    assert williams_test(0.3, 0.5, 0.4, 50)[0] == pytest.approx(-t)
    rng = np.random.default_rng(0)
    rejects, sims, n = 0, 600, 60
    for _ in range(sims):
        z = rng.normal(size=(n, 3))
        a = z[:, 0]
        b = 0.6 * a + 0.8 * z[:, 1]
        c = 0.6 * a + 0.8 * z[:, 2]
        r = np.corrcoef([a, b, c])
        rejects += williams_test(r[0, 1], r[0, 2], r[1, 2], n)[1] < 0.05
    assert 0.03 <= rejects / sims <= 0.08, rejects / sims
