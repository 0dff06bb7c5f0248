"""Protocols: CODiff's Lanczos resize, FBCNN's gray derivation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from carbench.bench.protocols import get_protocol
from carbench.core.imageio import read_image

RESIZED_LIVE1 = {
    "carnivaldolls",
    "cemetry",
    "churchandcapitol",
    "dancers",
    "manfishing",
    "studentsculpture",
}


def test_codiff_resize_matches_pil_lanczos(coffee):
    img = coffee[:397, :589]
    gt, changed = get_protocol("codiff").prepare(img)
    gt = np.asarray(gt)
    assert changed and gt.shape == (392, 584, 3)
    ref = np.asarray(Image.fromarray(img).resize((584, 392), Image.LANCZOS))
    assert np.array_equal(gt, ref)


def test_codiff_keeps_multiples_of_8_and_makes_gray_rgb(coffee, camera):
    gt, changed = get_protocol("codiff").prepare(coffee)
    assert gt is coffee and not changed
    gt, changed = get_protocol("codiff").prepare(camera)
    gt = np.asarray(gt)
    assert changed and gt.shape == (512, 512, 3) and np.array_equal(gt[..., 1], camera)


def test_codiff_resizes_exactly_six_live1_images(live1):
    proto = get_protocol("codiff")
    changed = {
        p.stem for p in sorted(live1.glob("*.png")) if proto.prepare(read_image(p).pixels)[1]
    }
    assert changed == RESIZED_LIVE1


def test_fbcnn_gray_reproduces_live1_gray(data_root):
    proto = get_protocol("fbcnn-gray")
    total = mismatched = 0
    for p in sorted((data_root / "LIVE1").glob("*.png")):
        y, changed = proto.prepare(read_image(p).pixels)
        ref = read_image(data_root / "LIVE1_gray" / p.name).pixels
        assert changed and y.shape == ref.shape
        diff = np.abs(y.astype(int) - ref)
        assert diff.max() <= 1, p.name  # MATLAB rounding of .5 cases
        total, mismatched = total + diff.size, mismatched + int((diff > 0).sum())
    assert mismatched / total < 1e-4


def test_fbcnn_keeps_images(coffee, camera):
    for img in (coffee, camera[:9, :13]):
        gt, changed = get_protocol("fbcnn").prepare(img)
        assert gt is img and not changed


def test_too_small_for_codiff():
    with pytest.raises(ValueError, match="needs at least 8x8"):
        get_protocol("codiff").prepare(np.zeros((7, 20, 3), np.uint8))


def test_fbcnn_double_suite_runs_the_double_jpeg_checkpoint(ws, capsys):
    """The FBCNN authors' double-JPEG table uses fbcnn_gray_double.pth: `--suite fbcnn-double`
    asks for that file (here: missing, so the run stops before any work naming it)."""
    from carbench.bench.suites import get_suite
    from conftest import run_cli

    s = get_suite("fbcnn-double")
    assert s.apply_method_options("fbcnn") == "fbcnn:variant=gray-double"
    assert s.apply_method_options("fbcnn:qf=10") == "fbcnn:qf=10,variant=gray-double"
    assert s.apply_method_options("fbcnn:variant=gray") == "fbcnn:variant=gray"  # user wins
    assert s.apply_method_options("jpeg") == "jpeg"
    assert get_suite("fbcnn-single").apply_method_options("fbcnn") == "fbcnn"
    code = run_cli(
        "run",
        "-w",
        ws,
        "--suite",
        "fbcnn-double",
        "-d",
        "sample",
        "--methods",
        "fbcnn",
        "--metrics",
        "psnr",
        "--no-progress",
    )
    out = capsys.readouterr()
    assert code == 1 and "fbcnn runs as fbcnn:variant=gray-double" in out.out
    assert "fbcnn_gray_double.pth" in out.err and "fbcnn_gray.pth" not in out.err
    assert not (ws / "sets").exists()
