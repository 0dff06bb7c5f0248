"""``bench run`` / ``bench report`` / ``bench metrics`` end to end with the ``jpeg`` method."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from carbench import methods
from carbench.bench.store import ResultStore
from conftest import run_cli

# JPEG rows (no restoration) of the FBCNN tables, PSNR | SSIM | PSNR-B, OpenCV encoding: the
# published values and their sources are in reports/published/fbcnn-iccv2021.yaml (gray:
# fbcnn:single; colour LIVE1: fbcnn:color-jpeg) and are compared by reports.reproduce.compare
# (within half a unit of the printed digit: the JPEG row has no network, drift "none").


def _check_published(csv_path, datasets):
    """Compare the report CSV with the published JPEG rows of ``datasets``; returns how many
    (dataset, degradation) pairs were compared (every one must be within tolerance)."""
    from carbench.reports.reproduce import compare, published

    df = pd.read_csv(csv_path)
    assert list(df.columns) == [
        "dataset",
        "protocol",
        "degradation",
        "method",
        "metric",
        "variant",
        "mean",
        "n",
    ]
    ours = {
        (r.dataset, r.protocol, r.degradation, r.method, r.variant): r.mean
        for r in df.itertuples(index=False)
    }
    cells = [
        c
        for ref in ("fbcnn:single", "fbcnn:color-jpeg")
        for c in published(ref)
        if c.method == "jpeg" and c.dataset in datasets and c.key in ours
    ]
    outcomes = compare(cells, ours)
    assert [(o.cell.where, o.cell.printed, o.ours) for o in outcomes if o.status != "ok"] == []
    assert len(cells) % 3 == 0  # PSNR, SSIM and PSNR-B of every row
    return len({(c.dataset, c.degradation) for c in cells})


@pytest.mark.slow
def test_jpeg_row_reproduces_published_live1_colour(ws, data_root, tmp_path, capsys):
    args = [
        "run",
        "-w",
        ws,
        "--methods",
        "jpeg",
        "--dataset",
        "LIVE1",
        "--protocol",
        "fbcnn",
        "--degradation",
        "jpeg:q=10,20",
        "--metrics",
        "psnr,ssim,psnrb",
        "--data-root",
        data_root,
        "--no-progress",
    ]
    assert run_cli(*args) == 0
    assert "jpeg LIVE1/fbcnn/jpeg-q10: scored 29 image(s), 87 rows" in capsys.readouterr().out
    out = tmp_path / "table.csv"
    assert run_cli("report", "-w", ws, "--format", "csv", "--out", out) == 0
    assert _check_published(out, {"LIVE1"}) == 2
    df = pd.read_csv(out)
    assert set(df.variant) == {"psnr:rgb", "ssim:gauss11", "psnrb:fbcnn"} and set(df.n) == {29}
    # a re-run does no work: no new store part
    parts = ResultStore(ws / "results").parts()
    assert run_cli(*args) == 0
    assert "nothing to do (all in the store)" in capsys.readouterr().out
    assert ResultStore(ws / "results").parts() == parts


@pytest.mark.slow
def test_jpeg_row_reproduces_published_gray(ws, data_root, tmp_path):
    assert (
        run_cli(
            "run",
            "-w",
            ws,
            "-d",
            "Classic5",
            "-d",
            "LIVE1_gray",
            "-p",
            "fbcnn",
            "-g",
            "jpeg:q=10,20,30,40",
            "--data-root",
            data_root,
            "--no-progress",
        )
        == 0
    )
    assert run_cli("report", "-w", ws, "--out", tmp_path / "t.csv") == 0
    assert _check_published(tmp_path / "t.csv", {"Classic5", "LIVE1_gray"}) == 8


def test_rows_carry_provenance_and_cache_prevents_recompute(ws):
    assert (
        run_cli(
            "run",
            "-w",
            ws,
            "-g",
            "jpeg-q10",
            "--metrics",
            "psnr,ssim:box8,psnrb:swinir",
            "--no-progress",
        )
        == 0
    )
    store = ResultStore(ws / "results")
    df = store.load()
    assert len(df) == 4 * 3
    row = df.iloc[0]
    assert row["device"] == "cpu" and row["dtype"] == "fp32" and row.carbench.startswith("0.1.0")
    assert "numpy/opencv" in row.implementation and row.kind == "FR"
    assert set(df.variant) == {"psnr:rgb", "ssim:box8", "psnrb:swinir"}
    # drop the store: a re-run recomputes nothing (metric cache by content hash)
    for p in store.parts():
        p.unlink()
    assert (
        run_cli(
            "run",
            "-w",
            ws,
            "-g",
            "jpeg-q10",
            "--metrics",
            "psnr,ssim:box8,psnrb:swinir",
            "--no-progress",
        )
        == 0
    )
    again = store.load()
    assert (again.metric_seconds == 0).all()
    pd.testing.assert_series_equal(
        again.sort_values(["image", "variant"]).value.reset_index(drop=True),
        df.sort_values(["image", "variant"]).value.reset_index(drop=True),
    )


def test_named_metric_without_weights_stops_before_work(ws, capsys):
    assert run_cli("run", "-w", ws, "--metrics", "psnr,musiq", "--no-progress") == 1
    err = capsys.readouterr().err
    assert "metric musiq cannot load" in err and "musiq_koniq_ckpt-e95806b9.pth" in err
    assert not (ws / "sets").exists() and not (ws / "results").exists()


@pytest.mark.slow
def test_available_runs_what_it_can(ws, standin_weights, capsys):
    assert (
        run_cli("run", "-w", ws, "-g", "jpeg-q20", "--metrics", "available", "--no-progress") == 0
    )
    cap = capsys.readouterr()
    for skipped in ("musiq:koniq", "maniqa:koniq", "clipiqa:rn50"):
        assert f"skipped metric {skipped}" in cap.err
    df = ResultStore(ws / "results").load()
    assert set(df.metric) == {"psnr", "ssim", "psnrb", "lpips", "dists"}
    assert df[df.metric == "lpips"].implementation.str.startswith("pyiqa").all()


def test_bench_metrics_lists_everything(capsys, standin_weights):
    assert run_cli("metrics") == 0
    out = capsys.readouterr().out
    assert re.search(r"psnr:rgb +↑ FR +none needed", out)
    assert re.search(r"lpips:alex-v0.1 +↓ FR +present", out)
    assert re.search(r"musiq:koniq +↑ NR +missing 1 file\(s\)", out)


def test_report_empty_store(ws, capsys):
    assert run_cli("report", "-w", ws) == 1
    assert "the result store is empty" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["--methods=nosuch", "--metrics=psnrx"])
def test_bad_names(ws, bad, capsys):
    assert run_cli("run", "-w", ws, bad, "--no-progress") == 1
    assert "unknown" in capsys.readouterr().err


def test_summary_sorts_naturally():
    from carbench.reports.tables import summarize

    rows = [
        {
            "dataset": "d",
            "protocol": "p",
            "degradation": deg,
            "method": "jpeg",
            "metric": "psnr",
            "variant": "psnr:rgb",
            "value": v,
        }
        for deg, v in [("jpeg-q10", 1.0), ("jpeg-q5", 2.0), ("jpeg-q5", 4.0)]
    ]
    out = summarize(pd.DataFrame(rows))
    assert list(out.degradation) == ["jpeg-q5", "jpeg-q10"]
    assert list(out["mean"]) == [3.0, 1.0] and list(out.n) == [2, 1]


def test_an_enlarged_output_is_resized_to_the_ground_truth_for_scoring(tmp_path, coffee):
    """A method keeping its official output geometry (OSEDiff's default enlarges small
    inputs) is scored after a PIL bicubic resize to the ground truth, recorded per row."""
    from PIL import Image as PILImage

    from carbench.bench.datasets import resolve
    from carbench.bench.metrics.fullref import psnr
    from carbench.bench.metrics.registry import parse_metrics
    from carbench.bench.metrics.runner import MetricRunner
    from carbench.bench.protocols import get_protocol
    from carbench.bench.run import run
    from carbench.core.workspace import Workspace
    from carbench.degradations import expand_all
    from carbench.methods.base import Method

    class Enlarge(Method):
        name = "enlarge"
        resize_for_scoring = True

        def load(self, device="cpu", dtype="fp32", kinds=("rgb", "gray")):
            super().load(device, dtype)
            self._weights_sha = "none"

        def restore(self, sample):
            h, w = sample.decoded.shape[:2]
            pil = PILImage.fromarray(sample.decoded)
            return np.asarray(pil.resize((2 * w + 3, 2 * h + 1), PILImage.BICUBIC))

    folder = tmp_path / "one"
    folder.mkdir()
    gt = coffee[:64, :80]
    PILImage.fromarray(gt).save(folder / "c.png")
    ws = tmp_path / "ws"
    specs, _ = parse_metrics("psnr")
    runner = MetricRunner(specs, "cpu", cache_dir=ws / "cache" / "metrics")
    run(
        Workspace(ws),
        [resolve(str(folder), ws)],
        get_protocol("fbcnn"),
        expand_all(["jpeg-q10"]),
        [Enlarge()],
        runner,
        progress=False,
    )
    row = ResultStore(ws / "results").load().iloc[0]
    assert row.scored_resized_from == "163x129"
    from carbench.degradations import Jpeg

    dec = Jpeg(10).apply(gt).decoded
    big = PILImage.fromarray(dec).resize((163, 129), PILImage.BICUBIC)
    back = np.asarray(big.resize((80, 64), PILImage.BICUBIC))
    assert row.value == pytest.approx(psnr(back, gt), abs=1e-9)
    assert methods.get("osediff").resize_for_scoring
    assert not methods.get("osediff:keep_size=1").resize_for_scoring
