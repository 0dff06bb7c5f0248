"""DnCNN-3 with its original weights reproduces the authors' published JPEG-deblocking table
(cszn/DnCNN README, "JPEG Image Deblocking", PSNR / SSIM) to the printed digit. The published
values are read from reports/published/dncnn3.yaml and compared by reports.reproduce.compare.

Protocol: gray images (Classic5; LIVE1 as FBCNN's LIVE1_gray, BT.601 Y), libjpeg-turbo JPEG,
PSNR and Gaussian SSIM on the gray image, no border crop. Runs the whole pipeline through the
CLI: generate -> run -> report. About 5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import pandas as pd
import pytest

from carbench.reports.reproduce import compare, published
from conftest import run_cli


@pytest.mark.slow
def test_dncnn3_reproduces_published_table(tmp_path, data_root, dncnn3_weights, monkeypatch):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(dncnn3_weights))
    ws = tmp_path / "ws"
    assert (
        run_cli(
            "run",
            "-w",
            ws,
            "--methods",
            "dncnn3",
            "-d",
            "Classic5",
            "-d",
            "LIVE1_gray",
            "-p",
            "fbcnn",
            "-g",
            "jpeg:q=10,20,30,40",
            "--metrics",
            "psnr,ssim",
            "--data-root",
            data_root,
            "--no-progress",
            "-j",
            "2",
        )
        == 0
    )
    assert run_cli("report", "-w", ws, "--out", tmp_path / "t.csv") == 0
    got = pd.read_csv(tmp_path / "t.csv")
    ours = {
        (r.dataset, r.protocol, r.degradation, r.method, r.variant): r.mean
        for r in got.itertuples(index=False)
    }
    cells = [c for c in published("dncnn3:readme") if c.spec == "dncnn3"]
    outcomes = compare(cells, ours)
    assert len(outcomes) == 16  # 2 sets x 4 QF x (PSNR, SSIM)
    assert [o.cell.where for o in outcomes if o.status != "ok"] == []
