"""Method adapters: official checkpoint layouts, loading, restoring real images end to end."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
import torch

from carbench import methods
from carbench.core.errors import PARTIAL_FAILURE_EXIT, BenchError, WeightsMissingError
from carbench.degradations import Jpeg
from carbench.methods.base import Sample
from carbench.methods.dncnn import read_matconvnet
from carbench.methods.tiling import tile_starts, tiled
from conftest import run_cli

# manifest file -> (method, variant); every official layout carbench implements
MANIFESTS = {
    "promptcir.json": ("promptcir", None),
    "jdec.json": ("jdec", None),
    "diffbir-ircontrolnet.json": ("diffbir", "ircontrolnet"),
    "diffbir-stage1-swinir.json": ("diffbir", "stage1-swinir"),
    "diffbir-stage1-scunet.json": ("diffbir", "stage1-scunet"),
    "codiff-cave.json": ("codiff", "cave"),
    "fbcnn-color.json": ("fbcnn", "color"),
    "fbcnn-gray.json": ("fbcnn", "gray"),
    "fbcnn-gray-double.json": ("fbcnn", "gray-double"),
    "dncnn3.json": ("dncnn3", None),
}


@pytest.mark.parametrize("manifest", sorted(MANIFESTS))
def test_network_matches_official_manifest(manifests, manifest):
    man = json.loads((manifests / manifest).read_text())
    name, variant = MANIFESTS[manifest]
    with torch.device("meta"):  # no memory, no weights
        net = methods.get(name).build_network(variant)
    shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert shapes == man["shapes"]
    assert list(shapes) == list(man["shapes"])  # same order as the official state dict
    assert sum(p.numel() for p in net.parameters()) == man["param_count"]
    assert sorted(k for k, _ in net.named_buffers()) == sorted(man["buffers"])


def _sample(img: np.ndarray, qf: int = 10) -> Sample:
    return Sample("x", Jpeg(qf).apply(img).decoded, None, f"jpeg-q{qf}", {"qf": qf})


@pytest.fixture(scope="module")
def fbcnn_checkpoint(tmp_path_factory):
    """fbcnn_color.pth in the official format (plain fp32 state dict) from a seeded init."""
    folder = tmp_path_factory.mktemp("w") / "fbcnn"
    folder.mkdir()
    torch.manual_seed(0)
    net = methods.get("fbcnn").build_network("color")
    torch.save(net.state_dict(), folder / "fbcnn_color.pth")
    return folder.parent


def test_fbcnn_end_to_end_with_official_format(fbcnn_checkpoint, monkeypatch, coffee):
    """Load path, odd size (padding to 8 inside, crop back), QF override, tiling, dtype.
    Random weights: the values are not quality results."""
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(fbcnn_checkpoint))
    img = coffee[:77, :101]
    m = methods.get("fbcnn")
    m.load("cpu", "fp32", kinds=("rgb",))
    out = m.restore(_sample(img))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert len(m.weights_sha256()) == 64
    assert 0 <= m.predict_qf(_sample(img)) <= 100
    fixed = methods.get("fbcnn:qf=90")
    fixed.load("cpu", "fp32", kinds=("rgb",))
    assert fixed.id == "fbcnn:qf=90"
    assert not np.array_equal(fixed.restore(_sample(img)), out)
    m.tile = 48
    tiled_out = m.restore(_sample(img))
    assert tiled_out.shape == img.shape
    # Tiling by hand: 48x48 tiles, overlap 12 (= tile // 4), rows start at 0, 29 (77 - 48),
    # columns at 0, 36, 53 (101 - 48); overlapping predictions averaged with equal weights.
    net = m._nets["color"]
    x = torch.from_numpy(_sample(img).decoded.astype(np.float32) / 255).permute(2, 0, 1)[None]
    acc, cnt = np.zeros((3, 77, 101)), np.zeros((1, 77, 101))
    with torch.no_grad():
        for top in (0, 29):
            for left in (0, 36, 53):
                y = net(x[..., top : top + 48, left : left + 48].contiguous())[0][0].double()
                acc[:, top : top + 48, left : left + 48] += y.numpy()
                cnt[:, top : top + 48, left : left + 48] += 1
    ref = np.round(np.clip(acc / cnt, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    diff = np.abs(ref.astype(int) - tiled_out.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99  # float32 vs float64 rounding only
    assert not np.array_equal(tiled_out, out)  # the seams really differ from the whole image
    bf = methods.get("fbcnn")
    bf.load("cpu", "bf16", kinds=("rgb",))
    assert np.abs(bf.restore(_sample(img)).astype(int) - out).mean() < 3


def test_fbcnn_missing_weights_say_what_and_where(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "nothing"))
    with pytest.raises(WeightsMissingError) as e:
        methods.get("fbcnn").load("cpu", "fp32", kinds=("rgb", "gray"))
    msg = str(e.value)
    assert (
        "fbcnn_color.pth: get https://github.com/jiaxi-jiang/FBCNN/releases/download/v1.0/"
        "fbcnn_color.pth, 287,755,111 bytes, sha256 8b0e4ef2" in msg
    )
    assert (
        "fbcnn_gray.pth" in msg and str(tmp_path / "nothing" / "fbcnn" / "fbcnn_color.pth") in msg
    )


def test_wrong_layout_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "w" / "fbcnn"
    folder.mkdir(parents=True)
    gray = methods.get("fbcnn").build_network("gray").state_dict()
    torch.save(gray, folder / "fbcnn_color.pth")
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "w"))
    with pytest.raises(
        BenchError,
        match=r"fbcnn_color.pth: not the expected checkpoint layout: 3 shape mismatch"
        r".*m_head.weight: file \(64, 1, 3, 3\) vs network \(64, 3, 3, 3\)",
    ):
        methods.get("fbcnn").load(kinds=("rgb",))


def test_fbcnn_bad_option():
    with pytest.raises(BenchError, match=r"option `qf` of fbcnn takes int 1-100, got '0'"):
        methods.get("fbcnn:qf=0")


def test_dncnn3_matconvnet_and_kair_files_agree(
    dncnn3_weights, manifests, tmp_path, monkeypatch, camera
):
    """The .mat converted by carbench has exactly the official KAIR dncnn3.pth layout (key
    names and shapes from the manifest of KAIR's checkpoint, an independent source), and a
    .pth in that layout gives the same output as the .mat."""
    import json

    sd = read_matconvnet(dncnn3_weights / "DnCNN3.mat")
    man = json.loads((manifests / "dncnn3.json").read_text())
    assert {k: list(v.shape) for k, v in sd.items()} == man["shapes"]
    assert sum(v.numel() for v in sd.values()) == man["state_dict_numel"] == 665921
    # (the values are pinned by the published DnCNN-3 table: tests/test_dncnn3_published.py)
    (tmp_path / "w" / "dncnn3").mkdir(parents=True)
    torch.save(sd, tmp_path / "w" / "dncnn3" / "dncnn3.pth")
    img = camera[100:228, 50:210]
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(dncnn3_weights))
    a = methods.get("dncnn3")
    a.load()
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "w"))
    b = methods.get("dncnn3:variant=pth")
    b.load()
    sa, sb = a.restore(_sample(img)), b.restore(_sample(img))
    assert np.array_equal(sa, sb)
    assert a.weights_sha256() == "3962377d522b6728417e364bf7a589cf34ddfb592af0bd9769e53f8123d17677"


def test_dncnn3_colour_runs_on_y(dncnn3_weights, monkeypatch, coffee):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(dncnn3_weights))
    m = methods.get("dncnn3")
    m.load()
    img = coffee[:96, :120]
    s = _sample(img)
    out = m.restore_sample(s)  # capabilities colour="luma": restored on Y, Cb/Cr kept
    assert out.shape == img.shape
    from carbench.bench.metrics.fullref import psnr

    assert psnr(out, img) > psnr(s.decoded, img)


def test_tiling_utility():
    assert tile_starts(10, 4, 1) == [0, 3, 6]
    assert tile_starts(384, 384, 96) == [0]
    assert tile_starts(1000, 384, 96) == [0, 288, 576, 616]
    x = torch.rand(1, 3, 70, 90)
    for blend in ("uniform", "gaussian"):
        assert torch.allclose(tiled(lambda t: t * 2, x, 32, 8, blend), x * 2, atol=1e-6)
    with pytest.raises(ValueError, match="overlap must be in"):
        tiled(lambda t: t, x, 32, 32)


FBCNN_LOG = "published/FBCNN/LIVE1_color_fbcnn_color/10/LIVE1_color_fbcnn_color_qf_10.log"


def test_external_published_fbcnn(ws, data_root, capsys):
    """The authors' released FBCNN outputs scored through `external`: the per-image PSNR of
    the authors' log, read from the log file released beside the outputs."""
    pub = data_root / "published/FBCNN/LIVE1_color_fbcnn_color/{qf}"
    assert (
        run_cli(
            "run",
            "-w",
            ws,
            "--methods",
            f"external:FBCNN={pub}",
            "-d",
            "LIVE1",
            "-p",
            "fbcnn",
            "-g",
            "jpeg-q10",
            "--metrics",
            "psnr",
            "--data-root",
            data_root,
            "--no-progress",
        )
        == PARTIAL_FAILURE_EXIT  # 24 LIVE1 images have no published output
    )
    err = capsys.readouterr().err
    assert "no FBCNN output for image woman" in err and "24 item(s) failed" in err
    from carbench.bench.store import ResultStore

    df = ResultStore(ws / "results").load(method="FBCNN").set_index("image")
    log = (data_root / FBCNN_LOG).read_text()
    want = dict(re.findall(r"(\w+)\.bmp - PSNR: ([\d.]+) dB", log))
    assert len(want) == 5
    assert {k: f"{v:.2f}" for k, v in df.value.items()} == want


def test_weights_fetch_over_http(dncnn3_weights, tmp_path, monkeypatch, capsys, static_server):
    """`bench weights fetch dncnn3` from a local mirror: the real file passes the sha256
    check; a corrupted copy is refused and deleted."""
    www, mirror = static_server
    data = (dncnn3_weights / "DnCNN3.mat").read_bytes()
    (www / "DnCNN3.mat").write_bytes(data)
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "w"))
    assert run_cli("weights", "fetch", "dncnn3:mat", "--mirror", mirror) == 0
    got = (tmp_path / "w" / "dncnn3" / "DnCNN3.mat").read_bytes()
    assert hashlib.sha256(got).hexdigest().startswith("3962377d")
    (www / "DnCNN3.mat").write_bytes(data[:-10] + b"corrupted!")
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "w2"))
    assert run_cli("weights", "fetch", "dncnn3:mat", "--mirror", mirror) == 1
    assert "sha256 does not start with 3962377d" in capsys.readouterr().err
    assert not list((tmp_path / "w2" / "dncnn3").iterdir())


def test_run_stops_before_work_without_weights(ws, capsys):
    assert run_cli("run", "-w", ws, "--methods", "jpeg,fbcnn", "--no-progress") == 1
    assert "method fbcnn cannot run, weight file(s) missing" in capsys.readouterr().err
    assert not (ws / "sets").exists()


def test_to_uint8_rounds_and_leaves_its_input_alone():
    """Clamp, x255, round (half to even, as torch.round), by hand; the caller's float32 tensor
    is not changed in place (it was: ``.float()`` of float32 is the same tensor)."""
    from carbench.methods.torch_utils import to_uint8

    x = torch.tensor([[[[0.5, 1.7], [-0.2, 0.25]]]])
    before = x.clone()
    assert to_uint8(x).tolist() == [[128, 255], [0, 64]]
    assert torch.equal(x, before)
