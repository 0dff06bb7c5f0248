"""``bench reproduce``: the published tables as data, their schema check, the tolerance rule,
the comparison cell by cell, the CLI (--list, --dry-run, --json, reports) and the rule that no
published number lives outside the table files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from carbench.core.errors import BenchError
from carbench.reports.reproduce import (
    DRIFTS,
    TABLES_DIR,
    Cell,
    compare,
    load_paper,
    paper_list,
    published,
    tolerance,
)
from carbench.reports.reproduce_render import render
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_tables_load_with_every_cell():
    """Cell counts follow from the papers' table shapes (methods x rows x metrics)."""
    got = {t.ref: len(t.cells) for p in paper_list() for t in p.tables.values()}
    assert got == {
        "codiff:table1a": 5 * 3 * 5,  # 5 methods, 3 QF pairs, 5 metrics
        "codiff:table1b": 5 * 3 * 5,
        "codiff:table2": 8 * 3 * 5,  # 8 methods, 3 sets, 5 metrics
        "codiff:table3": 3 * 4 * 3,  # JPEG/Implicit/Dual, 2 sets x 2 QF, 3 metrics
        "codiff:table4": 3 * 7,  # 3 methods, 7 QF, one rating
        "codiff:table5": 2 * 3 * 3,
        "codiff:table6": 3 * 3 * 3,
        "dncnn3:readme": 3 * 8 * 2 - 2 * 2,  # TNRD has no QF 40 values
        "fbcnn:single": 7 * 12 * 3,
        "fbcnn:color-jpeg": 2 * 3,
        "fbcnn:double": 7 * 9 * 3,  # 7 methods, 9 QF pairs
        "swinir:car": 7 * 8 * 3 - 2 * 3 - 8,  # QGAC lacks QF 40, RDN prints no PSNR-B
    }


def test_cells_name_everything_the_paper_used():
    (cell,) = [
        c
        for c in published("dncnn3:readme")
        if (c.dataset, c.degradation, c.method, c.metric)
        == ("LIVE1_gray", "jpeg-q40", "dncnn3", "ssim:gauss11")
    ]
    assert (cell.protocol, cell.spec, cell.printed, cell.decimals) == (
        "fbcnn",
        "dncnn3",
        "0.9247",
        4,
    )
    retrained = [c for c in published("codiff:table2") if c.method == "osdiff-retrained"]
    assert len(retrained) == 15 and all("retrained" in c.never and not c.spec for c in retrained)
    assert {c.metric for c in published("codiff:table2")} == {
        "lpips:alex-v0.1",
        "dists:vgg16",
        "musiq:koniq",
        "maniqa:koniq",
        "clipiqa:rn50",
    }


def _copy(tmp_path: Path, name: str, old: str, new: str, count: int = 1) -> Path:
    text = (TABLES_DIR / name).read_text()
    assert text.count(old) >= 1, old
    out = tmp_path / name
    out.write_text(text.replace(old, new, count))
    return out


@pytest.mark.parametrize(
    "old,new,message",
    [
        (
            "dataset: Classic5, degradation: jpeg-q10",
            "dataset: Classic6, degradation: jpeg-q10",
            "dataset 'Classic6'",
        ),
        ("degradation: jpeg-q20", "degradation: jpeg-q20x", "degradation 'jpeg-q20x'"),
        ("spec: dncnn3", "spec: dncnn4", "method 'dncnn4'"),
        ("spec: dncnn3", "spec: dncnn3:badopt=1", "method 'dncnn3:badopt=1': "),
        ("spec: dncnn3", "spec: dncnn3:variant=onnx", "method 'dncnn3:variant=onnx': "),
        ("[psnr:rgb, ssim:gauss11]", "[psnr:rgb, ssim:gauss12]", "metric 'ssim:gauss12': "),
        ("[psnr:rgb, ssim:gauss11]", "[psnr, ssim:gauss11]", "name the variant"),
        ("protocol: fbcnn", "protocol: fbcn", "protocol 'fbcn'"),
        ("dncnn3: 29.40 0.8026}", "dncnn3: 29.40 0.8026 0.1}", "3 value(s) for 2 metric(s)"),
        ("drift: none", "drift: gpu", "unknown drift 'gpu'"),
        ("    caption:", "    captoin:", "unknown key(s) captoin"),
    ],
)
def test_schema_refuses_unknown_names(tmp_path, old, new, message):
    path = _copy(tmp_path, "dncnn3.yaml", old, new)
    with pytest.raises(BenchError, match=re.escape(message)):
        load_paper(path)


def test_schema_refuses_an_unquoted_single_value(tmp_path):
    """``"2.88"`` unquoted is a YAML float, ``9.40`` would lose its printed zero."""
    path = _copy(tmp_path, "codiff-iccv2025.yaml", 'diffbir: "2.88"', "diffbir: 2.88")
    with pytest.raises(BenchError, match="values must be quoted strings"):
        load_paper(path)


def _cell(printed: str, drift: str = "none") -> Cell:
    return Cell(
        "p",
        "t",
        "LIVE1",
        "codiff",
        "jpeg-q10",
        "m",
        "M",
        "jpeg",
        "psnr:rgb",
        printed,
        drift=drift,
        ulps=DRIFTS[drift].ulps,
    )


def test_tolerance_rule():
    assert tolerance(_cell("29.40")) == pytest.approx(0.005)
    assert tolerance(_cell("0.8026", "cpu-gpu")) == pytest.approx(1.5e-4)
    assert tolerance(_cell("33.4", "fp16")) == pytest.approx(0.35)
    assert tolerance(_cell("0.1422", "unseeded")) == pytest.approx(1.05e-3)


def test_compare_statuses():
    a, b, c = _cell("29.40"), _cell("0.8026", "cpu-gpu"), _cell("1.00")
    b = Cell(**{**b.__dict__, "degradation": "jpeg-q20"})
    c = Cell(**{**c.__dict__, "degradation": "jpeg-q30"})
    out = compare([a, b, c], {a.key: 29.4049, b.key: 0.8028}, {c.key: "needs weights: x"})
    assert [o.status for o in out] == ["ok", "off", "not-run"]
    assert out[1].delta == pytest.approx(0.0002) and out[2].reason == "needs weights: x"


def test_perturbed_value_fails_that_cell_and_only_that(tmp_path):
    """Ours = each published value moved by +0.4 of its last digit (inside every tolerance);
    in a copy of the FBCNN file one printed value is changed by 3 in the last digit: exactly
    that cell is outside tolerance."""
    cells = published("fbcnn:single")
    ours = {c.key: c.value + 0.4 * 10.0**-c.decimals for c in cells if not c.never}
    assert {o.status for o in compare(cells, ours) if o.cell.spec} == {"ok"}
    changed = _copy(
        tmp_path, "fbcnn-iccv2021.yaml", "jpeg: 30.07 0.851 27.57", "jpeg: 30.07 0.851 27.60"
    )
    perturbed = [c for t in load_paper(changed).tables.values() for c in t.cells]
    off = [o.cell for o in compare(perturbed, ours) if o.status == "off"]
    assert [(c.dataset, c.degradation, c.method, c.metric) for c in off] == [
        ("LIVE1_gray", "jpeg-q20", "jpeg", "psnrb:fbcnn")
    ]


def test_list_and_unknown_refs(capsys):
    assert run_cli("reproduce", "--list") == 0
    out = capsys.readouterr().out
    for ref in ("dncnn3:readme", "codiff:table2", "fbcnn:single", "swinir:car"):
        assert ref in out
    assert run_cli("reproduce", "nopaper") == 1
    assert "unknown paper 'nopaper'" in capsys.readouterr().err
    assert run_cli("reproduce", "codiff:table9") == 1
    assert "codiff has no table 'table9'" in capsys.readouterr().err


def test_dncnn3_without_weights_names_the_file_and_runs_nothing(
    tmp_path, data_root, monkeypatch, capsys
):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    ws = tmp_path / "ws"
    code = run_cli("reproduce", "dncnn3:readme", "-w", ws, "--data-root", data_root)
    out = capsys.readouterr().out
    assert code == 2
    skipped = [line for line in out.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1 and "DnCNN3.mat" in skipped[0]
    assert "bench weights fetch dncnn3" in skipped[0]
    assert not ws.exists() or not any(ws.rglob("*.parquet"))  # nothing generated or scored


def test_codiff_table2_dry_run_lists_every_cell(tmp_path, data_root, capsys):
    ws = tmp_path / "ws"
    assert (
        run_cli("reproduce", "codiff:table2", "--dry-run", "-w", ws, "--data-root", data_root) == 0
    )
    out = capsys.readouterr().out
    lines = [x for x in out.splitlines() if x.startswith("  ") and " = " in x]
    assert len(lines) == 120
    retrained = [x for x in lines if "OSDiff*" in x or "DiffBIR*" in x]
    assert len(retrained) == 30 and all(
        "never: not reproducible: retrained" in x for x in retrained
    )
    # DIV2K-val is not staged here: its cells name the data; LIVE1/Urban100 JPEG rows run
    # once the metric weights are present (all five are pyiqa metrics)
    from carbench.bench.metrics.weight_files import missing_files

    jpeg_live1 = [x for x in lines if x.startswith("  LIVE1/jpeg-q1 JPEG [11]")]
    assert len(jpeg_live1) == 5
    for x, metric in zip(jpeg_live1, ("lpips", "dists", "musiq", "maniqa", "clipiqa"), strict=True):
        want = "needs-weights" if missing_files(metric) else "runnable: bench run --methods jpeg"
        assert want in x, x
    skipped = [x for x in out.splitlines() if x.startswith("skipped:")]
    for metric in ("lpips", "dists", "musiq", "maniqa", "clipiqa"):
        assert any(metric in x for x in skipped) == bool(missing_files(metric)), metric
    assert not ws.exists() or not any(ws.rglob("*.parquet"))


def test_json_of_a_table_nothing_can_run(tmp_path, capsys):
    """Table 4 (a user study): every cell not reproducible, exit 2 (nothing compared)."""
    assert run_cli("reproduce", "codiff:table4", "--json", "-w", tmp_path / "ws") == 2
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["cells"]) == 21 and doc["summary"]["never"] == 21
    assert {c["status"] for c in doc["cells"]} == {"not-run"}
    assert all(c["reason"].startswith("not reproducible: a human study") for c in doc["cells"])


def test_report_renders_agreement(tmp_path):
    cells = published("dncnn3:readme")
    run = [c for c in cells if c.spec]
    ours = {c.key: c.value for c in run}
    ours[run[0].key] = run[0].value + 0.1  # one cell off
    from carbench.reports.reproduce import select

    tables = select("dncnn3:readme")
    outs = compare(cells, ours)
    html = render(tables, outs, ".html")
    assert html.count('class="off"') == 1 and html.count('class="ok"') == len(run) - 1
    assert html.count('class="not-run"') == len(cells) - len(run)
    assert f'title="published {run[0].printed}; ours {run[0].value + 0.1:.4f}' in html
    md = render(tables, outs, ".md")
    assert md.count("✗") == 1 + 1  # the cell's mark and the legend's
    assert f"] published {run[0].printed}; ours {run[0].value + 0.1:.4f}" in md
    tex = render(tables, outs, ".tex")
    assert tex.count(r"\cellcolor{red!25}") == 1
    if shutil.which("pdflatex"):
        doc = (
            "\\documentclass{article}\\usepackage[table]{xcolor}\\begin{document}"
            + tex
            + "\\end{document}\n"
        )
        (tmp_path / "t.tex").write_text(doc)
        r = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "t.tex"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stdout[-2000:]


#: files that may hold published values, with the reason
ALLOWED = {
    "tests/test_report.py": "rendering fixtures: FBCNN/DnCNN-3 values as inputs to the table "
    "layout test, never compared with a paper",
    "tests/test_reproduce.py": "this file: it names the printed strings it changes in copies of "
    "the table files and the cells it expects (each read back from the files)",
    "docs/rate-distortion.md": "carbench's own BD-rate table measured on Kodak24 (percentages "
    "such as -29.59): three of its 69 numbers equal FBCNN values by chance, none is a copy",
}
NUMBER_IN_TEXT = re.compile(r"(?<![\d.])(\d+\.\d+)(?!\d)")


def published_numbers() -> dict[str, set[str]]:
    """Per table, its printed values with 3 or more significant digits."""
    return {
        t.ref: {
            c.printed
            for c in t.cells
            if len(c.printed.replace("-", "").replace(".", "").lstrip("0")) >= 3
        }
        for p in paper_list()
        for t in p.tables.values()
    }


def typed_tables(text: str, tables: dict[str, set[str]]) -> dict[str, list[str]]:
    """Tables of which ``text`` holds 3 or more distinct printed values: a typed copy. One or
    two values are coincidences (a measured PSNR, a fixture) and do not count."""
    found = set(NUMBER_IN_TEXT.findall(text))
    hits = {ref: sorted(found & vals) for ref, vals in tables.items()}
    return {ref: v for ref, v in hits.items() if len(v) >= 3}


def test_no_published_number_outside_the_table_files():
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    tables = published_numbers()
    bad = {}
    for f in files:
        if f.startswith("reports/published/") or not f.endswith((".py", ".md", ".yaml", ".j2")):
            continue
        hits = typed_tables((ROOT / f).read_text(errors="replace"), tables)
        if hits and f not in ALLOWED:
            bad[f] = hits
    assert bad == {}


def test_the_grep_sees_a_typed_table():
    """Three values of one table typed in code are found (the test can fail); one is not."""
    tables = published_numbers()
    typed = 'FBCNN = {("Classic5", 10): (30.12, 0.822, 29.80)}'
    assert typed_tables(typed, tables) == {"fbcnn:single": ["0.822", "29.80", "30.12"]}
    assert typed_tables("psnr = 30.12", tables) == {}


@pytest.mark.slow
def test_dncnn3_readme_reproduces(tmp_path, data_root, dncnn3_weights, monkeypatch, capsys):
    """The acceptance run: every DnCNN-3 cell regenerated and within tolerance, exit 0."""
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(dncnn3_weights))
    ws = tmp_path / "ws"
    args = ["reproduce", "dncnn3:readme", "-w", ws, "--data-root", data_root, "-j", "2"]
    assert run_cli(*args, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    statuses = [(c["method"], c["status"]) for c in doc["cells"]]
    assert statuses.count(("dncnn3", "ok")) == 16
    assert statuses.count((None, "not-run")) == 28
    assert doc["summary"]["here"] == 16 and doc["summary"]["off"] == 0


@pytest.mark.slow
def test_perturbed_table_fails_one_real_cell(tmp_path, data_root, capsys):
    """The JPEG column of FBCNN's gray table, run for real; a copy of the table with one value
    moved by 0.05 dB fails that cell only (exit 1), the shipped table passes (exit 0)."""
    ws = tmp_path / "ws"
    args = ["reproduce", "fbcnn:single", "--only", "jpeg", "-w", ws, "--data-root", data_root]
    assert run_cli(*args, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["ok"] == 24  # Classic5 + LIVE1_gray, 4 QF, 3 metrics (no BSDS500)
    tables = tmp_path / "tables"
    tables.mkdir()
    _copy(tables, "fbcnn-iccv2021.yaml", "jpeg: 31.48 0.867 28.94", "jpeg: 31.53 0.867 28.94")
    assert run_cli(*args, "--json", "--tables", tables) == 1
    doc = json.loads(capsys.readouterr().out)
    off = [
        (c["dataset"], c["degradation"], c["metric"]) for c in doc["cells"] if c["status"] == "off"
    ]
    assert off == [("Classic5", "jpeg-q30", "psnr:rgb")]


SAMPLE_TABLE = """
paper: mechanics
title: a table of the run mechanics (its value is no published number)
citation: none
methods:
  jpeg: {label: JPEG, spec: jpeg}
tables:
  t:
    caption: JPEG on the embedded sample set
    source: this test
    protocol: codiff
    dataset: sample
    metrics: [psnr:rgb]
    rows:
      - {degradation: jpeg-q50, values: {jpeg: "1.00"}}
"""


@pytest.mark.slow
def test_shard_leaves_cells_incomplete_then_resumes(tmp_path, capsys):
    """A --shard run scores part of the set: the cell is 'incomplete', not compared; the full
    run scores the rest (resuming) and compares it (here off: 1.00 dB is no JPEG's PSNR)."""
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "m.yaml").write_text(SAMPLE_TABLE)
    args = ["reproduce", "mechanics:t", "--tables", tmp_path / "tables", "-w", tmp_path / "ws"]
    assert run_cli(*args, "--json", "--shard", "0/2") == 2
    (cell,) = json.loads(capsys.readouterr().out)["cells"]
    assert (cell["status"], cell["reason"]) == ("not-run", "incomplete: 2 of 4 images scored")
    assert run_cli(*args, "--json") == 1
    (cell,) = json.loads(capsys.readouterr().out)["cells"]
    assert cell["status"] == "off" and cell["ours"] > 30


@pytest.mark.slow
def test_bench_report_renders_a_reproduction_from_the_store(tmp_path, data_root, capsys):
    """``bench report --format html|markdown --reproduce REF`` draws the paper's table from
    what the store holds (nothing runs): after ``bench reproduce fbcnn:color-jpeg`` ran the
    JPEG row on LIVE1, each cell shows ours with the published value and its agreement."""
    ws = tmp_path / "ws"
    base = ("-w", str(ws), "--data-root", str(data_root))
    assert run_cli("reproduce", "fbcnn:color-jpeg", *base) == 0
    capsys.readouterr()
    cell = next(c for c in published("fbcnn:color-jpeg") if c.metric == "psnr:rgb")
    page = tmp_path / "r.html"
    assert run_cli("report", "-w", str(ws), "--format", "html", "--reproduce",
                   "fbcnn:color-jpeg", "--out", str(page)) == 0
    html_text = page.read_text()
    assert cell.printed in html_text and "#c8e6c9" in html_text  # published value, ok colour
    assert run_cli("report", "-w", str(ws), "--format", "markdown", "--reproduce",
                   "fbcnn:color-jpeg") == 0
    assert "✓" in capsys.readouterr().out
    assert run_cli("report", "-w", str(ws), "--format", "csv", "--reproduce", "fbcnn:x") == 1
