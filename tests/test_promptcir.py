"""PromptCIR adapter: official checkpoint layout, loading, the test protocol end to end.

The checkpoints written here are seeded random inits in the official format (plain state
dicts); outputs computed with them are not quality results. Crops are small because the
network has ~35M parameters and every test runs on the CPU.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from carbench.core.errors import BenchError, WeightsMissingError
from carbench.degradations import Jpeg
from carbench.methods.base import Sample
from carbench.methods.promptcir import DRIVE_FOLDER, PromptCIR, mirror_pad

FILES = ("model_best.pth", "model_best2.pth")


def _sample(img: np.ndarray, qf: int = 10) -> Sample:
    return Sample("x", Jpeg(qf).apply(img).decoded, None, f"jpeg-q{qf}", {"qf": qf})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """weights/promptcir/model_best{,2}.pth from two seeded inits (different weights)."""
    root = tmp_path_factory.mktemp("weights")
    (root / "promptcir").mkdir()
    for seed, name in enumerate(FILES):
        torch.manual_seed(seed)
        torch.save(PromptCIR().build_network().state_dict(), root / "promptcir" / name)
    return root


@pytest.fixture(scope="module")
def loaded(checkpoints):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_WEIGHTS_DIR", str(checkpoints))
        m = PromptCIR()
        m.load("cpu", "fp32", kinds=("rgb",))
    return m


@pytest.fixture
def adapter(loaded):
    """The loaded adapter, reset to the default tiling and the full ensemble."""
    loaded.tile, loaded.ensemble = 0, True
    yield loaded
    loaded.tile, loaded.ensemble = 0, True


@contextmanager
def _forward_shapes(m: PromptCIR):
    """Record the (H, W) of every network call."""
    shapes: list[tuple[int, int]] = []
    hooks = [
        net.register_forward_pre_hook(lambda _, args: shapes.append(tuple(args[0].shape[-2:])))
        for net in m._nets
    ]
    try:
        yield shapes
    finally:
        for h in hooks:
            h.remove()


def _untiled_pass(net, img: np.ndarray, transpose: bool) -> torch.Tensor:
    """One pass written independently of the adapter: numpy symmetric padding (edge repeated)
    to (floor(side/32)+1)*32, the whole image at once, crop, clamp."""
    x = np.asarray(img, np.float32) / 255.0
    x = x.transpose(1, 0, 2) if transpose else x
    h, w = x.shape[:2]
    x = np.pad(x, ((0, (h // 32 + 1) * 32 - h), (0, (w // 32 + 1) * 32 - w), (0, 0)), "symmetric")
    with torch.no_grad():
        y = net(torch.from_numpy(x).permute(2, 0, 1)[None].contiguous())[0].permute(1, 2, 0)
    y = y[:h, :w].clamp(0, 1)
    return y.transpose(0, 1) if transpose else y


def _to_u8(y: torch.Tensor) -> np.ndarray:
    return (y * 255).round().numpy().astype(np.uint8)


def test_network_matches_official_manifest(manifests):
    man = json.loads((manifests / "promptcir.json").read_text())
    with torch.device("meta"):  # no memory, no weights
        net = PromptCIR().build_network()
    sd = net.state_dict()
    shapes = {k: list(v.shape) for k, v in sd.items()}
    assert list(shapes) == list(man["shapes"])  # same keys, same order as the official dict
    assert shapes == man["shapes"]
    assert len(shapes) == man["state_dict_key_count"] == 870
    assert sum(p.numel() for p in net.parameters()) == man["param_count"] == 34_754_927
    assert sorted(k for k, _ in net.named_buffers()) == sorted(man["buffers"])
    assert {k: str(v.dtype).removeprefix("torch.") for k, v in sd.items()} == man["dtypes"]


def test_mirror_padding():
    x = torch.arange(5.0)[None, None, :, None].expand(1, 1, 5, 3)
    y = mirror_pad(x, 4)  # 5 -> 8 rows (edge repeated), 3 -> 4 columns
    assert y.shape == (1, 1, 8, 4)
    assert y[0, 0, :, 0].tolist() == [0, 1, 2, 3, 4, 4, 3, 2]
    assert mirror_pad(torch.zeros(1, 3, 32, 64)).shape == (1, 3, 64, 96)  # always >= 1 px
    tiny = mirror_pad(torch.arange(3.0)[None, None, None, :])  # shorter than its padding
    assert tiny.shape == (1, 1, 32, 32) and tiny[0, 0, 0, :8].tolist() == [0, 1, 2, 2, 1, 0, 0, 1]


def test_end_to_end_ensemble_with_official_format(adapter, coffee):
    """Sides not multiples of 32 (20x25 -> padded 32x32, one tile); the output equals the
    protocol computed independently: 2 checkpoints x {identity, transpose}, averaged."""
    img = coffee[:20, :25]
    s = _sample(img)
    with _forward_shapes(adapter) as shapes:
        out = adapter.restore(s)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert shapes == [(32, 32)] * 4
    shas = adapter.weights_sha256().split(",")
    assert len(shas) == 2 and all(len(h) == 64 for h in shas) and shas[0] != shas[1]
    n1, n2 = adapter._nets
    passes = [_untiled_pass(n, s.decoded, t) for t in (False, True) for n in (n1, n2)]
    assert np.array_equal(out, _to_u8(sum(passes) / 4))
    assert not np.array_equal(out, _to_u8(passes[0]))  # the ensemble is not one pass
    adapter.ensemble = False  # promptcir:ensemble=off: model_best.pth, no transpose
    assert np.array_equal(adapter.restore(s), _to_u8(passes[0]))
    adapter.tile = 1024  # a tile larger than the image: still the untiled result
    assert np.array_equal(adapter.restore(s), _to_u8(passes[0]))


def test_tiling(adapter, coffee):
    """Upstream's square tiles of min(tile, H, W) with overlaps averaged."""
    adapter.ensemble = False  # one checkpoint, no transpose: 1 pass per restore
    strip = coffee[:20, :70]  # padded 32x96: square 32-px tiles along the width
    with _forward_shapes(adapter) as shapes:
        strip_out = adapter.restore(_sample(strip))
    assert strip_out.shape == strip.shape and strip_out.dtype == np.uint8
    assert shapes == [(32, 32)] * 4  # starts 0, 24, 48, 64 (overlap 8)
    img = coffee[:40, :45]  # padded 64x64
    adapter.tile = 32
    with _forward_shapes(adapter) as shapes:
        out = adapter.restore(_sample(img))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert shapes == [(32, 32)] * 9  # 3 x 3 tiles


def test_gray_input_runs_on_replicated_channels(adapter, camera):
    adapter.ensemble = False
    img = camera[:20, :25]
    s = _sample(img)
    out = adapter.restore_sample(s)  # capabilities gray="replicate"
    assert out.shape == img.shape and out.dtype == np.uint8
    rgb = np.repeat(s.decoded[..., None], 3, axis=2)
    want = _to_u8(_untiled_pass(adapter._nets[0], rgb, False).mean(dim=-1))
    assert np.abs(out.astype(int) - want).max() <= 1  # the channel mean may round apart


def test_missing_weights_say_what_and_where(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "nothing"))
    with pytest.raises(WeightsMissingError) as e:
        PromptCIR().load("cpu", "fp32", kinds=("rgb",))
    msg = str(e.value)
    assert "method promptcir (ensemble) cannot run, weight file(s) missing" in msg
    for name in FILES:
        assert f"{name}: download it by hand from the Google Drive folder {DRIVE_FOLDER}" in msg
        assert str(tmp_path / "nothing" / "promptcir" / name) in msg
    assert (
        DRIVE_FOLDER == "https://drive.google.com/drive/folders/1oxOVDK845rikuwWiMICHUv5nFGJjA7pV"
    )
    assert "bench weights fetch" not in msg  # a Drive folder cannot be fetched by URL


def test_single_checkpoint_needs_only_the_first_file(checkpoints, monkeypatch, tmp_path):
    folder = tmp_path / "w" / "promptcir"
    folder.mkdir(parents=True)
    (folder / FILES[0]).symlink_to(checkpoints / "promptcir" / FILES[0])
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "w"))
    with pytest.raises(WeightsMissingError) as e:
        PromptCIR().load(kinds=("rgb",))
    assert "model_best2.pth: download" in str(e.value)
    assert "model_best.pth: download" not in str(e.value)
    m = PromptCIR(ensemble="off")
    assert m.id == "promptcir:ensemble=off"
    m.load(kinds=("rgb",))
    assert len(m._nets) == 1 and len(m.weights_sha256()) == 64


def test_not_a_checkpoint_is_refused(monkeypatch, tmp_path):
    """What a download of the Drive folder URL would leave behind (an HTML page)."""
    folder = tmp_path / "w" / "promptcir"
    folder.mkdir(parents=True)
    for name in FILES:
        (folder / name).write_text("<!DOCTYPE html><html>Google Drive</html>")
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "w"))
    with pytest.raises(BenchError) as e:
        PromptCIR().load(kinds=("rgb",))
    msg = str(e.value)
    assert f"{folder / FILES[0]}: not a PyTorch checkpoint" in msg
    assert f"download model_best.pth again by hand from {DRIVE_FOLDER}" in msg


def test_wrong_layout_is_refused(monkeypatch, tmp_path):
    folder = tmp_path / "w" / "promptcir"
    folder.mkdir(parents=True)
    for name in FILES:
        torch.save({"output.weight": torch.zeros(3, 96, 3, 3)}, folder / name)
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "w"))
    with pytest.raises(BenchError, match=r"not the expected checkpoint layout: 869 missing key"):
        PromptCIR().load(kinds=("rgb",))


def test_bad_option():
    with pytest.raises(BenchError, match="`ensemble` of promptcir takes one of: on, off"):
        PromptCIR(ensemble="maybe")
