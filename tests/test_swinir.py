"""SwinIR CAR adapter: key layout, parity with upstream on stand-in weights, QF-to-model
choice, the missing-weights message and (with the real weights) the published table."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from carbench.core.errors import BenchError, WeightsMissingError
from carbench.methods.base import Sample
from carbench.methods.swinir import QFS, SwinIRCar, build_swinir_car

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(Path(__file__).parent / "reference"))
from swinir_reference import standin_state_dict  # noqa: E402


def test_key_layout_matches_upstream_module():
    torch = pytest.importorskip("torch")
    want = json.loads((DATA / "swinir_car_keys.json").read_text())["shapes"]
    for kind, chans in (("gray", 1), ("color", 3)):
        with torch.device("meta"):
            net = build_swinir_car(chans)
        got = {k: list(v.shape) for k, v in net.state_dict().items()}
        assert got == want[kind], kind
        assert list(got) == list(want[kind])  # same order as upstream's module


def _standin_weights(root: Path, variant: str) -> None:
    import torch

    net = build_swinir_car(1 if variant.startswith("gray") else 3)
    (wf,) = SwinIRCar.weights[variant]
    path = root / "swinir" / wf.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": standin_state_dict(net.state_dict())}, path)


@pytest.mark.parametrize("task", ["jpeg_car", "color_jpeg_car"])
def test_matches_upstream_on_standin_weights(task, tmp_path, monkeypatch):
    """Upstream main_test_swinir.py @6545850 on the same seeded weights and decoded JPEG."""
    import torch

    ref = np.load(DATA / "upstream" / f"swinir_{task}.npz")
    kind = "gray" if task == "jpeg_car" else "color"
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path))
    _standin_weights(tmp_path, f"{kind}-q10")
    m = SwinIRCar(model="q10")
    m.load("cpu", "fp32", kinds=("gray",) if kind == "gray" else ("rgb",))
    s = Sample("crop", ref["lq"], tmp_path / "x.jpg", "jpeg-q10", {"qf": 10.0})
    out = m.restore(s)
    assert out.shape == ref["png"].shape and out.dtype == np.uint8
    # padding: upstream's padded input, exactly
    from carbench.methods.swinir import pad_symmetric
    from carbench.methods.torch_utils import to_tensor

    padded = pad_symmetric(to_tensor(ref["lq"], "cpu", torch.float32))[0].numpy()
    np.testing.assert_array_equal(padded, ref["padded"])
    with torch.no_grad():
        y = m._net(f"{kind}-q10")(torch.from_numpy(ref["padded"])[None])[0].numpy()
    # same float32 ops: measured 0.0 on the recording CPU, 1.2e-7 on another (its kernels)
    assert np.abs(y - ref["out"]).max() <= 3.5e-7
    np.testing.assert_array_equal(out, ref["png"])


def test_qf_without_model_is_refused_unless_named(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path))
    _standin_weights(tmp_path, "gray-q20")
    img = np.full((14, 14), 128, np.uint8)
    with pytest.raises(WeightsMissingError):
        SwinIRCar().load("cpu", "fp32", kinds=("gray",))  # q10/q30/q40 absent
    m = SwinIRCar(model="q20")
    m.load("cpu", "fp32", kinds=("gray",))
    assert m.id == "swinir:model=q20"
    assert m.restore(Sample("a", img, tmp_path / "a.jpg", "jpeg-q50", {"qf": 50})).shape == (14, 14)
    auto = SwinIRCar()
    auto._paths = m._paths
    with pytest.raises(BenchError, match="QF 10, 20, 30, 40 only, not for QF 50"):
        auto.model_for(Sample("a", img, tmp_path / "a.jpg", "jpeg-q50", {"qf": 50}))
    with pytest.raises(BenchError, match="swinir:model=q10"):
        auto.model_for(Sample("a", img, tmp_path / "a.jpg", "jpeg2-q10-q20", {}))
    assert auto.model_for(Sample("a", img, tmp_path / "a.jpg", "jpeg-q20", {"qf": 20.0})) == (
        "gray-q20"
    )
    with pytest.raises(BenchError, match="`model` of swinir takes one of: q10, q20, q30, q40"):
        SwinIRCar(model="q50")


def test_missing_weights_name_every_file_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsMissingError) as e:
        SwinIRCar().load("cpu", "fp32", kinds=("gray", "rgb"))
    msg = str(e.value)
    for kind in ("CAR", "colorCAR"):
        for q in QFS:
            name = f"006_{kind}_DFWB_s126w7_SwinIR-M_jpeg{q}.pth"
            assert f"https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/{name}" in msg
            assert str(tmp_path / "swinir" / name) in msg


# The published table (Liang et al. 2021, Table 7) and its tolerances: reports/published/
# swinir-iccvw2021.yaml (swinir:car), compared by reports.reproduce.compare.


def _real_weights() -> Path:
    from carbench.methods.base import weights_dir

    root = Path(os.environ.get("BENCH_SWINIR_WEIGHTS") or weights_dir())
    try:
        SwinIRCar().weight_paths("gray-q10", root)
    except WeightsMissingError:
        pytest.skip(
            "SwinIR CAR weights not found: run `bench weights fetch swinir` "
            "(or set BENCH_SWINIR_WEIGHTS to the folder holding the release files)"
        )
    return root


@pytest.mark.slow
def test_swinir_reproduces_published_gray_table(tmp_path, data_root, monkeypatch):
    import pandas as pd

    from conftest import run_cli

    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(_real_weights()))
    ws = tmp_path / "ws"
    args = ["run", "-w", ws, "--methods", "swinir", "-d", "Classic5", "-d", "LIVE1_gray"]
    args += ["-p", "fbcnn", "-g", "jpeg:q=10,20,30,40", "--metrics", "psnr,ssim,psnrb:swinir"]
    assert run_cli(*args, "--data-root", data_root, "--no-progress") == 0
    assert run_cli("report", "-w", ws, "--out", tmp_path / "t.csv") == 0
    from carbench.reports.reproduce import compare, published

    got = pd.read_csv(tmp_path / "t.csv")
    ours = {
        (r.dataset, r.protocol, r.degradation, r.method, r.variant): r.mean
        for r in got.itertuples(index=False)
    }
    outcomes = compare([c for c in published("swinir:car") if c.method == "swinir"], ours)
    assert len(outcomes) == 24  # 2 sets x 4 QF x (PSNR, SSIM, PSNR-B)
    assert [(o.cell.where, o.ours) for o in outcomes if o.status != "ok"] == []
