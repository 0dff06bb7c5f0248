"""The HTML report in headless Chromium: the comparison viewer's slider and synchronised zoom;
the study report on the same page; compact intervals keep the table narrow."""

from __future__ import annotations

import pytest
import skimage.data
from PIL import Image

from conftest import run_cli

pytestmark = pytest.mark.slow


def test_viewer_slider_and_synchronised_zoom(tmp_path):
    from playwright.sync_api import sync_playwright

    ws, perfect = tmp_path / "ws", tmp_path / "perfect"
    perfect.mkdir()
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        Image.fromarray(getattr(skimage.data, name)()).save(perfect / f"{name}.png")
    args = ("-w", ws, "-p", "fbcnn", "-g", "jpeg:q=10", "--no-progress")
    assert run_cli("generate", *args) == 0
    methods = f"jpeg,external:Perfect={perfect}"
    assert run_cli("run", *args, "--methods", methods, "--metrics", "psnr") == 0
    out = tmp_path / "r.html"
    assert run_cli("report", "-w", ws, "-f", "html", "-o", out) == 0
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(out.as_uri())  # a file: no server
        assert page.locator("body").get_attribute("data-ready") == "1"
        viewer = page.locator(".viewer").first
        labels = viewer.locator(".zoomgrid figcaption").all_inner_texts()
        assert labels[0] == "Ground truth" and labels[1].startswith("Input") and "Perfect" in labels
        a = viewer.locator(".slider img.a")
        b = viewer.locator(".slider img.b")
        grid = viewer.locator(".zoomgrid img")
        assert a.get_attribute("src") == grid.nth(1).get_attribute("src")  # input on the left
        assert b.get_attribute("src") == grid.nth(len(labels) - 1).get_attribute("src")
        viewer.locator(".pos").fill("20")
        assert "20%" in b.evaluate("i => i.style.clipPath")
        viewer.locator(".pick-a").select_option("0")
        assert a.get_attribute("src") == grid.nth(0).get_attribute("src")
        grid.nth(0).hover()
        page.mouse.wheel(0, -100)
        transforms = {grid.nth(i).evaluate("i => i.style.transform") for i in range(grid.count())}
        assert len(transforms) == 1 and "scale(1.25)" in transforms.pop()
        browser.close()


FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _style(page: str) -> str:
    return page.split("<style>", 1)[1].split("</style>", 1)[0]


def test_study_html_is_the_report_page(tmp_path):
    """``bench study report --format html`` is the page of ``bench report --format html``: the
    same style (best in red), columns sorted by a click, the footnote once."""
    import pandas as pd
    from playwright.sync_api import sync_playwright

    from carbench.reports.build import render_report
    from carbench.study.report import render_study, study_model

    rows = [
        ("LIVE1", "codiff", deg, m, v, v - 0.5, v + 0.5, 20)
        for deg, vals in {"jpeg-q5": (2.0, 4.5, 6.0, 9.0), "jpeg-q10": (3.0, 6.5, 5.0, 9.5)}.items()
        for m, v in zip(["jpeg", "fbcnn", "codiff", "gt"], vals, strict=True)
    ]
    cols = ["dataset", "protocol", "degradation", "method", "mean", "lo", "hi", "n"]
    table = pd.DataFrame(rows, columns=cols)
    study = render_study(table, "html", study_model(table, "mos", "MOS", "study note"))
    metric_rows = pd.DataFrame(
        [
            {
                "dataset": "LIVE1",
                "protocol": "codiff",
                "degradation": "jpeg-q5",
                "method": "jpeg",
                "image": "im0",
                "metric": "psnr",
                "variant": "psnr:rgb",
                "value": 25.0,
                "implementation": "t",
                "carbench": "t",
            }
        ]
    )
    assert _style(study) == _style(render_report(metric_rows, "html"))
    out = tmp_path / "study.html"
    out.write_text(study)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(out.as_uri())
        assert page.locator("body").get_attribute("data-ready") == "1"
        best = page.locator('#study tr[data-key="codiff"] td').first  # QF=5: CODiff best
        assert best.inner_text() == "6.00 [5.50, 6.50]"
        assert best.get_attribute("class") == "best"
        assert best.evaluate("e => getComputedStyle(e).color") == "rgb(221, 0, 0)"
        assert page.locator("p.foot").all_inner_texts() == ["study note"]
        header = page.locator("#study th.col").nth(1)  # QF=10 MOS
        header.click()
        header.click()  # descending
        labels = page.locator("#study tbody tr th.m").all_inner_texts()
        assert labels == ["Ground truth", "FBCNN", "CODiff", "JPEG"]  # 9.5, 6.5, 5.0, 3.0
        browser.close()


def test_compact_intervals_keep_the_table_narrow():
    """Rendered widths in Chromium: ``[lo, hi]`` beside the value makes the table much wider
    than without intervals; ``pm`` and ``below`` (the interval on a small second line) do not."""
    import numpy as np
    import pandas as pd
    from playwright.sync_api import sync_playwright

    from carbench.reports.build import render_report

    rng = np.random.default_rng(0)
    rows = pd.DataFrame(
        [
            {
                "dataset": "LIVE1",
                "protocol": "codiff",
                "degradation": f"jpeg-q{q}",
                "method": m,
                "image": f"im{i}",
                "metric": name,
                "variant": var,
                "value": float(v),
                "implementation": "t",
                "carbench": "t",
            }
            for q in (5, 10, 20)
            for m in ("jpeg", "fbcnn", "dncnn3", "codiff")
            for name, var, mu in (("psnr", "psnr:rgb", 28.0), ("ssim", "ssim:gauss11", 0.8))
            for i, v in enumerate(rng.normal(mu, mu / 20, 8))
        ]
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 3000, "height": 900})
        width = {}
        for style in ("none", "brackets", "pm", "below"):
            ci = 0 if style == "none" else 200
            page.set_content(
                render_report(
                    rows, "html", ci=ci, ci_style="brackets" if style == "none" else style
                )
            )
            width[style] = page.locator("#main-table").bounding_box()["width"]
        small = page.locator("#main-table small.ci").first
        size = small.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
        browser.close()
    assert width["brackets"] > 1.8 * width["none"], width  # measured 2.2x
    assert width["pm"] < 0.8 * width["brackets"], width  # measured 0.73x
    assert width["below"] < 1.4 * width["none"], width  # measured 1.3x
    assert size < 13  # the second line is smaller than the cell's 13px
