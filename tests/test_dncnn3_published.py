"""DnCNN-3 with its original weights reproduces the authors' published JPEG-deblocking table
(cszn/DnCNN README, "JPEG Image Deblocking", PSNR / SSIM) to the printed digit.

Protocol: gray images (Classic5; LIVE1 as FBCNN's LIVE1_gray, BT.601 Y), libjpeg-turbo JPEG,
PSNR and Gaussian SSIM on the gray image, no border crop. Runs the whole pipeline through the
CLI: generate -> run -> report. About 5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import run_cli

PUBLISHED = {  # (dataset, QF): (PSNR, SSIM)
    ("Classic5", 10): (29.40, 0.8026),
    ("Classic5", 20): (31.63, 0.8610),
    ("Classic5", 30): (32.91, 0.8861),
    ("Classic5", 40): (33.77, 0.9003),
    ("LIVE1_gray", 10): (29.19, 0.8123),
    ("LIVE1_gray", 20): (31.59, 0.8802),
    ("LIVE1_gray", 30): (32.98, 0.9090),
    ("LIVE1_gray", 40): (33.96, 0.9247),
}


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
    got = pd.read_csv(tmp_path / "t.csv").set_index(["dataset", "degradation", "metric"])["mean"]
    for (ds, qf), (p, s) in PUBLISHED.items():
        assert f"{got[(ds, f'jpeg-q{qf}', 'psnr')]:.2f}" == f"{p:.2f}", (ds, qf)
        assert f"{got[(ds, f'jpeg-q{qf}', 'ssim')]:.4f}" == f"{s:.4f}", (ds, qf)
