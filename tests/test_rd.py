"""Rate sweeps, RD curves and Bjøntegaard deltas (issue 23).

BD numbers are checked against an independent calculation: the same interpolants (numpy's
cubic polyfit, scipy's PCHIP and Akima) integrated numerically with ``scipy.integrate.quad``
instead of the package's closed-form integrals, and against a worked example whose answer
follows by hand (a curve shifted by a constant factor in rate or a constant in metric).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from carbench.core.errors import BenchError
from carbench.core.options import OptionError
from carbench.reports.bd import Curve, CurveError, bd

# the bjontegaard package's README/example_usage.py test case 1 (libx265 presets via ffmpeg)
RATE_A = (9487.76, 4593.60, 2486.44, 1358.24)
PSNR_A = (40.037, 38.615, 36.845, 34.851)
RATE_T = (9787.80, 4469.00, 2451.52, 1356.24)
PSNR_T = (40.121, 38.651, 36.970, 34.987)


def _interpolant(x: np.ndarray, y: np.ndarray, interp: str):
    import scipy.interpolate as si

    o = np.argsort(x)
    x, y = x[o], y[o]
    if interp == "cubic":
        return np.poly1d(np.polyfit(x, y, 3))
    if interp == "pchip":
        return si.PchipInterpolator(x, y)
    return si.Akima1DInterpolator(x, y)


def _mean_gap(xa, ya, xt, yt, interp: str) -> float:
    """Mean of f_test - f_anchor over the overlap of the x ranges, by numerical quadrature."""
    from scipy.integrate import quad

    fa, ft = _interpolant(xa, ya, interp), _interpolant(xt, yt, interp)
    lo, hi = max(xa.min(), xt.min()), min(xa.max(), xt.max())
    ia = quad(lambda v: float(fa(v)), lo, hi, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
    it = quad(lambda v: float(ft(v)), lo, hi, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
    return (it - ia) / (hi - lo)


def independent(ra, ma, rt, mt, interp: str) -> tuple[float, float]:
    """(BD-rate %, BD-metric) computed without the bjontegaard package."""
    la, lt = np.log10(np.asarray(ra)), np.log10(np.asarray(rt))
    ma, mt = np.asarray(ma, float), np.asarray(mt, float)
    rate = (10 ** _mean_gap(ma, la, mt, lt, interp) - 1) * 100
    return rate, _mean_gap(la, ma, lt, mt, interp)


@pytest.mark.parametrize("interp", ["cubic", "pchip", "akima"])
def test_bd_matches_scipy_quadrature(interp):
    d = bd(Curve("anchor", RATE_A, PSNR_A), Curve("test", RATE_T, PSNR_T), True, interp)
    want_rate, want_psnr = independent(RATE_A, PSNR_A, RATE_T, PSNR_T, interp)
    assert d.interp == interp
    assert d.bd_rate_pct == pytest.approx(want_rate, rel=1e-6)
    assert d.bd_metric == pytest.approx(want_psnr, rel=1e-6)
    assert d.bd_rate_pct < 0 and d.bd_metric > 0  # the test curve is above the anchor


@pytest.mark.parametrize("interp", ["cubic", "pchip", "akima"])
def test_bd_lower_better_metric_matches_quadrature(interp):
    """An LPIPS-like curve (falls with rate): BD-rate and BD-metric by quadrature."""
    rate_a, lp_a = (0.25, 0.5, 1.0, 2.0, 3.0), (0.42, 0.30, 0.19, 0.10, 0.07)
    rate_t, lp_t = (0.2, 0.45, 0.8, 1.7, 2.6), (0.40, 0.27, 0.18, 0.09, 0.065)
    d = bd(Curve("a", rate_a, lp_a), Curve("t", rate_t, lp_t), False, interp)
    want_rate, want_metric = independent(rate_a, lp_a, rate_t, lp_t, interp)
    assert d.bd_rate_pct == pytest.approx(want_rate, rel=1e-6)
    assert d.bd_metric == pytest.approx(want_metric, rel=1e-6)
    assert d.bd_rate_pct < 0 and d.bd_metric < 0  # fewer bits, lower LPIPS: a gain


@pytest.mark.parametrize("interp", ["cubic", "pchip", "akima"])
def test_worked_example_constant_shifts(interp):
    """By hand: the same curve at 0.9x the rate saves exactly 10% (log10 rate shifts by
    log10 0.9 everywhere); the same rates at +0.5 dB gain exactly 0.5 dB."""
    rate = np.array([0.3, 0.5, 0.8, 1.2, 2.0])
    psnr = np.array([27.0, 29.5, 31.8, 33.9, 36.4])
    anchor = Curve("a", tuple(rate), tuple(psnr))
    cheaper = bd(anchor, Curve("cheap", tuple(0.9 * rate), tuple(psnr)), True, interp)
    assert cheaper.bd_rate_pct == pytest.approx(-10.0, rel=1e-9)
    better = bd(anchor, Curve("better", tuple(rate), tuple(psnr + 0.5)), True, interp)
    assert better.bd_metric == pytest.approx(0.5, rel=1e-9)
    same = bd(anchor, anchor, True, interp)
    assert (same.bd_rate_pct, same.bd_metric) == (0.0, 0.0)


def test_refusals_name_the_curve():
    good = Curve("jpeg", (0.3, 0.5, 0.9, 1.5), (27.0, 29.0, 32.0, 35.0))
    wavy = Curve("webp+dncnn3", (0.3, 0.5, 0.9, 1.5), (27.0, 30.0, 29.5, 35.0))
    with pytest.raises(CurveError, match=r"curve webp\+dncnn3 is not monotonic.*30 at 0\.5 bpp"):
        bd(good, wavy)
    far = Curve("avif", (3.0, 4.0, 5.0, 6.0), (40.0, 41.0, 42.0, 43.0))
    with pytest.raises(CurveError, match="curves jpeg and avif do not overlap in metric"):
        bd(good, far)
    short = Curve("jxl", (0.4, 0.8, 1.2), (28.0, 31.0, 33.0))
    with pytest.raises(CurveError, match="curve jxl: 3 point.*cubic needs 4"):
        bd(good, short, interp="cubic")
    bd(good, short, interp="pchip")  # enough for PCHIP
    with pytest.raises(OptionError, match="option `interp`.*did you mean `pchip`"):
        bd(good, good, interp="pchp")


def test_bootstrap_interval_brackets_the_set_value():
    from carbench.reports.bd import bootstrap_bd, mean_curve

    rng = np.random.default_rng(3)
    base = np.array([0.3, 0.5, 0.8, 1.3, 2.0])
    ra = base * rng.uniform(0.8, 1.2, (12, 1))
    ma = 20 + 6 * np.log2(ra) + rng.normal(0, 0.3, (12, 5))
    rt, mt = ra * 0.8, ma + rng.normal(0, 0.05, (12, 5))
    idx = np.arange(12)
    d = bd(mean_curve("a", ra, ma, idx), mean_curve("t", rt, mt, idx))
    (rlo, rhi), (mlo, mhi), refused = bootstrap_bd(
        ("a", ra, ma), ("t", rt, mt), True, "pchip", 200, 0
    )
    assert refused == 0
    assert rlo <= d.bd_rate_pct <= rhi and mlo <= d.bd_metric <= mhi
    assert rhi - rlo > 0


def test_sweep_ladders_are_declared_and_checked():
    from carbench.degradations import expand
    from carbench.degradations.sweeps import LADDERS, SWEEPS, parse_sweep

    assert [o.name for o in SWEEPS] == [lad.codec for lad in LADDERS]
    for lad in LADDERS:
        degs = expand(lad.spec)
        assert len(degs) >= 4, lad.codec  # enough for the cubic BD
        assert {getattr(d, "codec", d.kind) for d in degs} == {lad.codec}  # one RD curve
        assert len({d.id for d in degs}) == len(degs)
    assert parse_sweep("jpeg, webp") == ["jpeg:q=10,20,30,50,70,90", "webp:q=10,25,40,55,70,85"]
    assert parse_sweep(["jpeg", "jpeg"]) == ["jpeg:q=10,20,30,50,70,90"]
    with pytest.raises(OptionError, match=r"unknown option `jpg` for --sweep.*did you mean `jpeg`"):
        parse_sweep("jpg")


@pytest.mark.slow
def test_sweep_generate_run_report(tmp_path):
    """``bench generate/run --sweep`` on the sample set, then the rd CSV (bpp = file size on
    disk in bits over the ground truth's pixels), the CompressAI JSON (read by CompressAI's
    own plot loader) and the BD CSV (= the quadrature on the rd CSV's own points)."""
    import pandas as pd
    from PIL import Image

    from conftest import run_cli

    ws = tmp_path / "ws"
    args = ("-w", ws, "--sweep", "jpeg,webp", "--no-progress")
    assert run_cli("generate", *args) == 0
    assert run_cli("run", *args, "--methods", "jpeg", "--metrics", "psnr,ssim") == 0
    rd_csv, bd_csv = tmp_path / "rd.csv", tmp_path / "bd.csv"
    assert run_cli("report", "-w", ws, "--format", "rd", "--out", rd_csv) == 0
    pts = pd.read_csv(rd_csv)
    assert {"codec", "method", "bpp", "psnr:rgb", "ssim:gauss11", "setting"} <= set(pts.columns)
    assert len(pts) == 12 and set(pts.codec) == {"jpeg", "webp"}
    sets = ws / "sets" / "sample" / "codiff"
    for _, p in pts.iterrows():
        files = sorted((sets / p.setting).glob("*.jpg" if p.codec == "jpeg" else "*.webp"))
        assert len(files) == 4
        bpps = []
        for f in files:
            with Image.open(f) as im:  # the bitstream's own size: codiff keeps it
                w, h = im.size
            bpps.append(os.path.getsize(f) * 8 / (w * h))
        assert p.bpp == pytest.approx(np.mean(bpps), rel=1e-12)

    js = tmp_path / "rd.json"
    assert run_cli("report", "-w", ws, "--format", "rd", "--out", js) == 0
    from compressai.utils.plot.__main__ import parse_json_file

    files = sorted(tmp_path.glob("rd-*.json"))
    assert len(files) == 2
    for f in files:
        parsed = parse_json_file(f, "psnr:rgb")
        assert parsed["name"] in ("jpeg", "webp")
        sub = pts[pts.codec == parsed["name"]].sort_values("bpp")
        assert parsed["xs"] == pytest.approx(list(sub.bpp), rel=1e-5)
        assert json.loads(f.read_text())["results"]["ssim:gauss11"]

    assert run_cli("report", "-w", ws, "--format", "bd", "--anchor", "jpeg", "--out", bd_csv) == 0
    bdt = pd.read_csv(bd_csv, keep_default_na=False)
    for col in ("codec", "method", "metric", "bd_rate_pct", "bd_metric", "interp"):
        assert col in bdt.columns
    row = bdt[(bdt.codec == "webp") & (bdt.metric == "psnr:rgb")].iloc[0]
    a, t = (pts[pts.codec == c].sort_values("bpp") for c in ("jpeg", "webp"))
    want = independent(a.bpp, a["psnr:rgb"], t.bpp, t["psnr:rgb"], "pchip")
    assert row.interp == "pchip"
    assert float(row.bd_rate_pct) == pytest.approx(want[0], rel=1e-6)
    assert float(row.bd_metric) == pytest.approx(want[1], rel=1e-6)
    anchor = bdt[(bdt.codec == "jpeg") & (bdt.metric == "psnr:rgb")].iloc[0]
    assert float(anchor.bd_rate_pct) == 0.0
    assert run_cli("report", "-w", ws, "--format", "bd", "--anchor", "jxl") != 0
    assert math.isfinite(float(row.bd_rate_pct))

    page = tmp_path / "rd.html"
    assert run_cli("report", "-w", ws, "-f", "rd", "--anchor", "jpeg", "-o", page) == 0
    md = tmp_path / "bd.md"
    assert run_cli("report", "-w", ws, "-f", "bd", "--anchor", "jpeg", "-o", md) == 0
    assert f"**{float(row.bd_rate_pct):+.2f}**" in md.read_text()  # webp alone: the best
    _check_rd_page(page, float(row.bd_rate_pct))


def _check_rd_page(page, webp_psnr_bd: float) -> None:
    """In headless Chromium: one RD plot per metric variant with its axes labelled (metric
    variant, bits per pixel) and one line per curve, and the BD-rate table, best in red."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        pg = browser.new_page(viewport={"width": 1200, "height": 900})
        pg.goto(page.as_uri())
        assert pg.locator("body").get_attribute("data-ready") == "1"
        figs = pg.locator(".plots figure")
        assert figs.count() == 2
        for i, variant in enumerate(("psnr:rgb", "ssim:gauss11")):
            fig = figs.nth(i)
            assert variant in fig.locator("figcaption").inner_text()
            texts = fig.locator("svg text").all_text_contents()
            assert "bits per pixel (stored bitstream)" in texts
            assert any(variant in t for t in texts)
            box = fig.locator("svg").bounding_box()
            assert box["width"] > 100 and box["height"] > 100
        table = pg.locator("#bd-table")
        heads = table.locator("th.col").all_inner_texts()
        assert heads == ["PSNR (psnr:rgb)", "SSIM (ssim:gauss11)"]
        best = table.locator("td.best").first
        assert best.inner_text() == f"{webp_psnr_bd:+.2f}"
        assert best.evaluate("e => getComputedStyle(e).color") == "rgb(221, 0, 0)"
        labels = table.locator("th.m").all_inner_texts()
        assert labels == ["JPEG", "WebP"]
        browser.close()


def _store_rows() -> pd.DataFrame:
    """Store-like rows: JPEG and WebP sets, 3 images x 4 settings, PSNR; image k3's WebP curve
    dips at its third setting."""
    rows = []
    for codec, ids, gain in (("jpeg", (10, 30, 50, 90), 0.0), ("webp", (10, 30, 50, 85), 1.5)):
        for k, img in enumerate(("k1", "k2", "k3")):
            for j, q in enumerate(ids):
                bpp = (0.3 + 0.4 * j) * (1 + 0.1 * k)
                psnr = 27 + 3 * j + gain + k
                if codec == "webp" and img == "k3" and j == 2:
                    psnr -= 4.0
                rows.append(
                    ("Kodak24", "codiff", f"{codec}-q{q}", "jpeg", img, "psnr:rgb", psnr, bpp)
                )
    cols = ["dataset", "protocol", "degradation", "method", "image", "variant", "value", "bpp"]
    return pd.DataFrame(rows, columns=cols)


def test_bd_table_per_set_per_image_and_intervals():
    from carbench.reports.rd import bd_table

    rows = _store_rows()
    t = bd_table(rows, "jpeg", "pchip", ci=200, seed=1, per_image=True)
    s = t[(t.image == "") & (t.codec == "webp")].iloc[0]
    a = rows[rows.degradation.str.startswith("jpeg")].groupby("degradation")[["bpp", "value"]]
    w = rows[rows.degradation.str.startswith("webp")].groupby("degradation")[["bpp", "value"]]
    a, w = a.mean().sort_values("bpp"), w.mean().sort_values("bpp")
    want = independent(a.bpp, a.value, w.bpp, w.value, "pchip")
    assert s.bd_rate_pct == pytest.approx(want[0], rel=1e-6)
    assert s.bd_metric == pytest.approx(want[1], rel=1e-6)
    assert s.n_images == 3 and s.refused == "" and s.interp == "pchip"
    assert s.bd_rate_lo <= s.bd_rate_pct <= s.bd_rate_hi
    per = t[(t.codec == "webp") & (t.image != "")].set_index("image")
    assert per.loc["k3", "refused"].startswith("curve webp (k3) is not monotonic")
    assert math.isnan(per.loc["k3", "bd_rate_pct"])
    k1 = rows[rows.image == "k1"]
    ja, jw = (k1[k1.degradation.str.startswith(c)].sort_values("bpp") for c in ("jpeg", "webp"))
    want1 = independent(ja.bpp, ja.value, jw.bpp, jw.value, "pchip")
    assert per.loc["k1", "bd_rate_pct"] == pytest.approx(want1[0], rel=1e-6)
    with pytest.raises(BenchError, match=r"anchor 'avif': no such curve.*curves: jpeg, webp"):
        bd_table(rows, "avif")


def test_curves_use_the_images_every_curve_has():
    """A restorer run on two of the three images (a shard): every curve, the codec alone's
    too, is then over those two images."""
    from carbench.reports.rd import bd_table, curve_points

    rows = _store_rows()
    restored = rows[rows.image != "k2"].assign(method="dncnn3", value=lambda d: d.value + 0.5)
    both = pd.concat([rows, restored])
    pts = curve_points(both)
    assert set(pts.n_images) == {2}
    jq10 = pts[(pts.setting == "jpeg-q10") & (pts.method == "jpeg")].iloc[0]
    two = rows[(rows.degradation == "jpeg-q10") & (rows.image != "k2")]
    assert jq10.bpp == pytest.approx(two.bpp.mean()) and jq10["psnr:rgb"] == two.value.mean()
    t = bd_table(both, "jpeg")
    assert set(t.n_images) == {2}
