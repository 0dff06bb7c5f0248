"""Reports: paper layout, ranks, decimals, LaTeX compiled by pdflatex, HTML in Chromium."""

from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest
import skimage.data
from PIL import Image

from carbench.bench.store import ResultStore
from carbench.reports.build import render_report
from carbench.reports.model import build_classic, build_table
from carbench.reports.render import to_latex, to_markdown
from carbench.reports.tables import summarize
from conftest import run_cli


def _rows(values: dict) -> pd.DataFrame:
    """{(dataset, degradation, method, variant): [per-image values]} -> store-like rows."""
    out = []
    for (ds, deg, m, v), vals in values.items():
        for i, x in enumerate(vals):
            out.append(
                {
                    "dataset": ds,
                    "protocol": "codiff",
                    "degradation": deg,
                    "method": m,
                    "image": f"im{i}",
                    "metric": v.partition(":")[0],
                    "variant": v,
                    "value": x,
                    "implementation": "test",
                    "carbench": "t",
                }
            )
    return pd.DataFrame(out)


HAND = _rows(
    {
        ("LIVE1", "jpeg-q5", "jpeg", "lpips:alex-v0.1"): [0.5, 0.7],  # mean 0.6
        ("LIVE1", "jpeg-q5", "fbcnn", "lpips:alex-v0.1"): [0.30, 0.34],  # 0.32  second
        ("LIVE1", "jpeg-q5", "dncnn3", "lpips:alex-v0.1"): [0.2, 0.2],  # 0.2   best (lower)
        ("LIVE1", "jpeg-q5", "promptcir", "lpips:alex-v0.1"): [0.4, 0.4],
        ("LIVE1", "jpeg-q5", "jpeg", "musiq:koniq"): [40.0, 42.0],
        ("LIVE1", "jpeg-q5", "fbcnn", "musiq:koniq"): [60.004, 60.0],  # 60.00 tie for best
        ("LIVE1", "jpeg-q5", "dncnn3", "musiq:koniq"): [60.0, 60.0],  # 60.00 tie for best
        ("LIVE1", "jpeg-q5", "promptcir", "musiq:koniq"): [55.0, 55.0],  # second
        ("LIVE1", "jpeg-q10", "fbcnn", "lpips:alex-v0.1"): [0.25, 0.25],  # promptcir missing
    }
)


def test_paper_table_ranks_ties_missing_and_decimals():
    model = build_table(summarize(HAND), "t")
    assert model.groups == [("QF=5", 2), ("QF=10", 2)]
    assert model.headers == ["LPIPS↓", "MUSIQ↑", "LPIPS↓", "MUSIQ↑"]
    (block,) = model.blocks
    rows = {r.key: r for r in block.rows}
    assert [r.key for r in block.rows][0] == "jpeg"  # baseline first
    assert rows["jpeg"].cells[0].text == "0.6000" and rows["jpeg"].cells[0].rank is None
    assert rows["dncnn3"].cells[0].rank == 1 and rows["fbcnn"].cells[0].rank == 2
    assert rows["promptcir"].cells[0].rank is None
    assert rows["fbcnn"].cells[1].text == "60.00" and rows["fbcnn"].cells[1].rank == 1
    assert rows["dncnn3"].cells[1].rank == 1 and rows["promptcir"].cells[1].rank == 2
    assert rows["promptcir"].cells[2].text == "–" and rows["promptcir"].cells[2].rank is None


def test_markdown_and_latex_text():
    model = build_table(summarize(HAND), "Hand table", footnote="protocol codiff")
    md = to_markdown(model)
    assert "| LIVE1 | JPEG | 0.6000 |" in md and "**0.2000**" in md and "_0.3200_" in md
    tex = to_latex(model)
    assert r"\textcolor{red}{0.2000}" in tex and r"\textcolor{blue}{0.3200}" in tex
    assert r"LPIPS$\downarrow$" in tex and r"\multicolumn{2}{c}{QF=5}" in tex
    assert r"\multirow{4}{*}{LIVE1}" in tex and r"\cmidrule(lr){3-4}" in tex


def test_latex_compiles_with_pdflatex(tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.fail("pdflatex not installed (scripts/setup.sh installs Debian's TeX Live)")
    (tmp_path / "t.tex").write_text(
        to_latex(build_table(summarize(HAND), "A_b & 50%"), standalone=True)
    )
    r = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout[-2000:]
    assert (tmp_path / "t.pdf").stat().st_size > 1000
    assert shutil.which("pdftotext"), "pdftotext missing (scripts/setup.sh installs poppler-utils)"
    text = subprocess.run(
        ["pdftotext", "-layout", "t.pdf", "-"], cwd=tmp_path, capture_output=True, text=True
    ).stdout
    assert "0.2000" in text and "QF=10" in text and "b & 50%" in text  # escaped


def test_classic_layout():
    rows = _rows(
        {
            ("Classic5", "jpeg-q10", "jpeg", "psnr:rgb"): [27.82],
            ("Classic5", "jpeg-q10", "jpeg", "ssim:gauss11"): [0.7596],
            ("Classic5", "jpeg-q10", "jpeg", "psnrb:fbcnn"): [25.21],
            ("Classic5", "jpeg-q10", "dncnn3", "psnr:rgb"): [29.40],
            ("Classic5", "jpeg-q10", "dncnn3", "ssim:gauss11"): [0.8026],
            ("Classic5", "jpeg-q10", "dncnn3", "psnrb:fbcnn"): [29.13],
        }
    )
    model = build_classic(summarize(rows), "c")
    assert model.headers == ["JPEG", "DnCNN-3"]
    (row,) = model.blocks[0].rows
    assert [c.text for c in row.cells] == ["27.82|0.760|25.21", "29.40|0.803|29.13"]
    assert row.cells[1].rank == 1 and row.cells[0].rank is None


@pytest.fixture(scope="module")
def sample_workspace(tmp_path_factory):
    """A real run on the sample set: jpeg, plus an `external` method whose outputs are the
    ground truths themselves (a perfect restorer), scored with psnr/ssim."""
    root = tmp_path_factory.mktemp("rep")
    ws = root / "ws"
    perfect = root / "perfect"
    perfect.mkdir()
    assert (
        run_cli("generate", "-w", ws, "-p", "fbcnn", "-g", "jpeg:q=10,20,40", "--no-progress") == 0
    )
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        Image.fromarray(getattr(skimage.data, name)()).save(perfect / f"{name}.png")
    assert (
        run_cli(
            "run",
            "-w",
            ws,
            "-p",
            "fbcnn",
            "-g",
            "jpeg:q=10,20,40",
            "--methods",
            f"jpeg,external:Perfect={perfect}",
            "--metrics",
            "psnr,ssim",
            "--no-progress",
        )
        == 0
    )
    return ws


def test_report_formats_from_store(sample_workspace, tmp_path):
    rows = ResultStore(sample_workspace / "results").load()
    md = render_report(rows, "markdown")
    assert "| sample | JPEG |" in md and "| ∞ |" in md.replace("**", "")  # PSNR of a perfect copy
    csv = render_report(rows, "csv")
    assert csv.splitlines()[0] == "dataset,protocol,degradation,method,metric,variant,mean,n"
    assert (
        run_cli(
            "report",
            "-w",
            sample_workspace,
            "-f",
            "latex",
            "-t",
            "codiff-supp-t6",
            "-o",
            tmp_path / "t.tex",
        )
        == 0
    )
    assert "Fidelity metrics" in (tmp_path / "t.tex").read_text()
    assert run_cli("report", "-w", sample_workspace, "-f", "pdf") == 1


def test_html_report_in_chromium(sample_workspace, tmp_path):
    """Render the HTML report in real headless Chromium: table values on screen, sorting by
    a click, crops decoded, plots and per-image tables present."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium not installed (scripts/setup.sh installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    out = tmp_path / "report.html"
    assert run_cli("report", "-w", sample_workspace, "-f", "html", "-o", out) == 0
    html = out.read_text()
    assert "http://" not in html.split("<svg")[0] and "<script src" not in html  # self-contained
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(out.as_uri())
        assert page.locator("body").get_attribute("data-ready") == "1"
        table = page.locator("#main-table")
        assert table.is_visible()
        assert "QF=10" in table.inner_text() and "Perfect" in table.inner_text()
        body_rows = table.locator("tbody tr")
        assert body_rows.count() == 2
        assert table.locator("td.best").count() >= 1
        # click the first SSIM column twice (descending): the perfect method (1.0) goes first
        header = table.locator("th.col", has_text="SSIM").first
        header.click()
        header.click()
        assert "sorted-desc" in header.get_attribute("class")
        assert body_rows.first.locator("th.m").inner_text() == "Perfect"
        header.click()
        assert body_rows.first.locator("th.m").inner_text() == "JPEG"
        crops = page.locator(".crops img")
        assert crops.count() >= 3
        assert all(
            crops.nth(i).evaluate("i => i.complete && i.naturalWidth === 96")
            for i in range(crops.count())
        )
        assert page.locator(".plots svg").count() >= 2
        assert page.locator("details").count() == 3
        page.locator("details summary").first.click()
        assert page.locator("details table").first.is_visible()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_check_detects_regressions(sample_workspace, tmp_path, capsys):
    base = tmp_path / "baseline.csv"
    assert run_cli("check", "-w", sample_workspace, "--update", "-b", base) == 0
    assert run_cli("check", "-w", sample_workspace, "-b", base) == 0
    assert "✅ all 12 cells match" in capsys.readouterr().out
    df = pd.read_csv(base)
    i = df.index[(df.method == "jpeg") & (df.metric == "psnr") & (df.degradation == "jpeg-q10")][0]
    df.loc[i, "mean"] += 0.02  # the store is now 0.02 dB worse than the baseline
    df.loc[df.index[-1], "variant"] = "ssim:box8"
    extra = df.iloc[[0]].assign(method="fbcnn")
    pd.concat([df, extra]).to_csv(base, index=False)
    assert run_cli("check", "-w", sample_workspace, "-b", base, "--summary", tmp_path / "s.md") == 1
    out = capsys.readouterr()
    assert "❌ 3 of 13 cells differ" in out.out
    assert "regressed: worse by 0.02" in out.out and "variant changed" in out.out
    assert "| fbcnn |" in out.out and "missing" in out.out
    assert (tmp_path / "s.md").read_text().startswith("### carbench check")
    assert run_cli("check", "-w", sample_workspace, "-b", base, "--tolerance", "psnr=0.05") == 1
    assert "❌ 2 of 13" in capsys.readouterr().out


def test_check_allow_better(sample_workspace, tmp_path, capsys):
    base = tmp_path / "b.csv"
    assert run_cli("check", "-w", sample_workspace, "--update", "-b", base) == 0
    df = pd.read_csv(base)
    df.loc[df.metric == "ssim", "mean"] -= 0.01  # the store is better than the baseline
    df.to_csv(base, index=False)
    assert run_cli("check", "-w", sample_workspace, "-b", base) == 1
    assert "changed: better by 0.01" in capsys.readouterr().out
    assert run_cli("check", "-w", sample_workspace, "-b", base, "--allow-better") == 0
    df.loc[df.metric == "psnr", "mean"] += 0.5  # a real regression still fails
    df.to_csv(base, index=False)
    assert run_cli("check", "-w", sample_workspace, "-b", base, "--allow-better") == 1
    assert "regressed: worse by 0.5" in capsys.readouterr().out


def test_a_partial_mean_is_never_ranked_best():
    """fbcnn's mean over 2 of 4 images is the highest number but not comparable: it gets the
    partial mark and no rank; the full cells are ranked among themselves."""
    rows = _rows(
        {
            ("LIVE1", "jpeg-q10", "jpeg", "psnr:rgb"): [25.0, 25.0, 25.0, 25.0],
            ("LIVE1", "jpeg-q10", "fbcnn", "psnr:rgb"): [40.0, 40.0],
            ("LIVE1", "jpeg-q10", "codiff", "psnr:rgb"): [30.0, 30.0, 30.0, 30.0],
            ("LIVE1", "jpeg-q10", "osediff", "psnr:rgb"): [28.0, 28.0, 28.0, 28.0],
        }
    )
    model = build_table(summarize(rows), "t")
    cells = {r.key: r.cells[0] for r in model.blocks[0].rows}
    assert cells["fbcnn"].text == "40.00*" and cells["fbcnn"].rank is None
    assert cells["codiff"].rank == 1 and cells["osediff"].rank == 2
    rows_c = _rows(
        {
            ("C5", "jpeg-q10", m, v): vals
            for m, vals in (("fbcnn", [40.0]), ("codiff", [30.0, 30.0]), ("dncnn3", [29.0, 29.0]))
            for v in ("psnr:rgb", "ssim:gauss11", "psnrb:fbcnn")
        }
    )
    classic = build_classic(summarize(rows_c), "c")
    (row,) = classic.blocks[0].rows
    by = dict(zip(classic.headers, row.cells, strict=True))
    assert by["FBCNN"].text.endswith("*") and by["FBCNN"].rank is None
    assert by["CODiff"].rank == 1 and by["DnCNN-3"].rank == 2


def _visible_text(page: str) -> str:
    """The text a browser shows: everything outside <script>, <style> and <svg>."""
    from html.parser import HTMLParser

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.hidden, self.parts = 0, []

        def handle_starttag(self, tag, attrs) -> None:
            self.hidden += tag in ("script", "style", "svg")

        def handle_endtag(self, tag) -> None:
            self.hidden -= tag in ("script", "style", "svg")

        def handle_data(self, data) -> None:
            if not self.hidden:
                self.parts.append(data)

    parser = Text()
    parser.feed(page)
    return " ".join(parser.parts)


def test_html_footnote_appears_once():
    page = render_report(HAND, "html", ci=100, seed=0)
    text = _visible_text(page)
    assert text.count("Protocol: codiff.") == 1
    assert text.count("95% percentile bootstrap interval") == 1


def test_a_method_keeps_its_colour_in_every_plot(monkeypatch):
    """FBCNN is missing from one dataset, so the methods' order differs between plots; each
    method still has one colour: the default cycle's entry at its place among all methods."""
    import matplotlib
    import matplotlib.axes

    from carbench.reports.html_report import plots

    values = {}
    for ds, meths in (("LIVE1", ("jpeg", "fbcnn", "codiff")), ("Kodak24", ("jpeg", "codiff"))):
        for q in (10, 20):
            for k, m in enumerate(meths):
                values[(ds, f"jpeg-q{q}", m, "psnr:rgb")] = [25.0 + k + q / 10] * 2
    rows = _rows(values)
    rows["bpp"] = rows.degradation.map({"jpeg-q10": 0.5, "jpeg-q20": 0.8})
    seen: list[tuple[str, str]] = []
    original = matplotlib.axes.Axes.plot

    def recording(self, *args, **kwargs):
        lines = original(self, *args, **kwargs)
        seen.extend((ln.get_label(), ln.get_color()) for ln in lines)
        return lines

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", recording)
    assert len(plots(summarize(rows), rows)) == 4  # per dataset: vs QF and vs bpp
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    want = {"CODiff": cycle[0], "FBCNN": cycle[1], "JPEG": cycle[2]}  # codiff < fbcnn < jpeg
    assert len(seen) == 10 and set(seen) == set(want.items())


@pytest.fixture
def store_ws(tmp_path):
    """A workspace whose result store holds HAND (no images: tables only)."""
    ws = tmp_path / "store-ws"
    ResultStore(ws / "results").append(HAND.to_dict("records"))
    return ws


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["022", "027"])
def test_report_files_get_the_mode_of_a_new_file(store_ws, tmp_path, umask):
    """``bench report -o``: 0644 under umask 022, 0640 under 027 (not the temp file's 0600)."""
    import os
    import stat

    from carbench.reports.build import write_report

    old = os.umask(umask)
    try:
        assert run_cli("report", "-w", store_ws, "-f", "markdown", "-o", tmp_path / "r.md") == 0
        write_report(tmp_path / "study.md", "x")  # what `bench study report -o` writes with
    finally:
        os.umask(old)
    for name in ("r.md", "study.md"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask
    assert "LPIPS" in (tmp_path / "r.md").read_text()


def test_ci_style_option(store_ws, tmp_path, capsys):
    """``--ci-style pm`` from the command line; the help names the styles; a wrong one fails."""
    out = tmp_path / "r.md"
    assert (
        run_cli(
            "report", "-w", store_ws, "-f", "markdown", "--ci", "50", "--ci-style", "pm", "-o", out
        )
        == 0
    )
    assert "0.3200 ± 0.0200" in out.read_text()  # fbcnn LPIPS [0.30, 0.34]: means 0.30..0.34
    assert run_cli("report", "-w", store_ws, "--ci", "50", "--ci-style", "wide") == 1
    capsys.readouterr()
    assert run_cli("report", "--help") == 0
    assert "--ci intervals: brackets | pm | below [default: brackets]" in " ".join(
        capsys.readouterr().out.split()
    )
