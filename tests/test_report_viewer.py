"""The HTML report's comparison viewer in headless Chromium: slider and synchronised zoom."""

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
