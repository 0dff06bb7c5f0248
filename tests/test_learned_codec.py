"""Learned codecs (CompressAI zoo models) as a degradation kind, with models built at random:
the real entropy coder round-trips, the stored size is the bitstream's, the declared weight
files are the package's own, and missing weights are a clear error."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from carbench.core.options import OptionError
from carbench.degradations import expand, from_id, learned


def _compressai():
    """The compressai package (importing it takes seconds: only the slow tests do). Missing,
    the test fails: ``scripts/setup.sh --dev`` installs it."""
    try:
        import compressai
    except ImportError:
        pytest.fail("compressai not installed (scripts/setup.sh --dev installs the learned extra)")
    return compressai


def _random_net(model: str, quality: int = 1, seed: int = 0):
    """The zoo architecture of ``model`` at ``quality``, weights drawn at random, CDFs built."""
    import torch

    _compressai()
    from compressai.zoo.image import cfgs, model_architectures

    torch.manual_seed(seed)
    net = model_architectures[model](*cfgs[model][quality]).eval()
    net.update(force=True)
    return net


@pytest.fixture
def random_models():
    saved = dict(learned._MODELS)
    yield
    learned._MODELS.clear()
    learned._MODELS.update(saved)


@pytest.mark.slow
def test_declared_files_are_the_zoo_urls():
    """Every declared file is in compressai's own ``model_urls``, and every one of its image
    models (but the ReLU variant, which it ships no weights for) is declared."""
    _compressai()
    from compressai.zoo.image import model_urls

    declared = {wf.url for _, wf in learned.all_weight_files()}
    theirs = {u for m, by in model_urls.items() for qs in by.values() for u in qs.values()}
    assert declared == theirs
    for _, wf in learned.all_weight_files():
        assert re.search(rf"-{wf.sha256}\.pth\.tar$", wf.url)  # the sha256 prefix in the name
        assert len(wf.sha256) == 8


def test_spec_and_ids():
    degs = expand("compressai:model=bmshj2018-hyperprior,mbt2018-mean,q=1,8")
    assert [d.id for d in degs] == [
        "compressai-bmshj2018-hyperprior-q1",
        "compressai-bmshj2018-hyperprior-q8",
        "compressai-mbt2018-mean-q1",
        "compressai-mbt2018-mean-q8",
    ]
    d = expand("compressai:model=cheng2020-anchor,q=3,metric=ms-ssim")[0]
    assert d.id == "compressai-cheng2020-anchor-msssim-q3" and from_id(d.id) == d
    assert d.codec == "compressai-cheng2020-anchor-msssim"
    with pytest.raises(OptionError, match=r"option `model`.*did you mean `mbt2018-mean`"):
        expand("compressai:model=mbt2018-maen,q=1")
    with pytest.raises(ValueError, match="cheng2020-anchor has qualities 1-6, got 7"):
        expand("compressai:model=cheng2020-anchor,q=7")
    with pytest.raises(OptionError, match="needs q="):
        expand("compressai:model=mbt2018-mean")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["bmshj2018-hyperprior", "mbt2018-mean"])
def test_entropy_coder_round_trip(model, random_models):
    """encode -> file -> decode: the strings in the file are ``net.compress``'s, the file is
    header + strings, and the decoded image equals the eval forward pass on the rounded
    latents (what a lossless entropy coder must give back)."""
    import torch
    import torch.nn.functional as F

    net = _random_net(model)
    learned.use_model(model, "mse", 1, net)
    deg = from_id(f"compressai-{model}-q1")
    rgb = (np.random.default_rng(1).random((70, 100, 3)) * 255).astype(np.uint8)
    out = deg.apply(rgb)
    h, w, shape, strings = learned.unpack(out.bitstream)
    assert (h, w) == (70, 100)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    x = F.pad(x, (14, 14, 29, 29))  # to 128 x 128, zeros split as CompressAI's eval pads
    with torch.no_grad():
        direct = net.compress(x)
        fwd = net(x)["x_hat"]
    assert strings == [s[0] for s in direct["strings"]]
    assert len(out.bitstream) == 13 + 4 * len(strings) + sum(map(len, strings))
    assert out.extra == {"entropy_bytes": sum(map(len, strings)), "header_bytes": 21}
    want = fwd[0, :, 29:99, 14:114].clamp(0, 1).mul(255).round().to(torch.uint8)
    assert np.array_equal(out.decoded, want.permute(1, 2, 0).numpy())
    assert np.array_equal(deg.decode(out.bitstream), out.decoded)
    with pytest.raises(ValueError, match="trailing or missing bytes"):
        learned.unpack(out.bitstream[:-1])


def test_missing_weights_are_a_clear_error(tmp_path, monkeypatch, capsys):
    from conftest import run_cli

    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    args = ("generate", "-w", tmp_path / "ws", "-g", "compressai:model=mbt2018-mean,q=2")
    assert run_cli(*args) != 0
    err = capsys.readouterr().err
    assert "compressai-mbt2018-mean-q2: missing CompressAI weights" in err
    assert "bench weights fetch compressai" in err
    problem = learned.weights_problem("mbt2018-mean", "mse", 2)
    assert "missing CompressAI weights mbt2018-mean-2-e54a039d.pth.tar" in problem
    assert "https://compressai.s3.amazonaws.com/models/v1/mbt2018-mean-2-e54a039d.pth.tar" in (
        problem
    )
    bad = tmp_path / "cache" / "compressai" / "mbt2018-mean-2-e54a039d.pth.tar"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not the file")
    assert "sha256 does not start with e54a039d" in learned.weights_problem(
        "mbt2018-mean", "mse", 2
    )
    capsys.readouterr()
    assert run_cli("weights", "verify", "compressai:mbt2018-mean") != 0
    assert f"{bad}: sha256 does not start with e54a039d" in capsys.readouterr().err
    assert run_cli("weights", "list") == 0
    listing = capsys.readouterr().out
    assert "codec cheng2020-anchor:mse:6 missing  cheng2020-anchor-6-4c052b1a.pth.tar" in listing
    assert (
        "from official https://compressai.s3.amazonaws.com/models/v1/"
        "cheng2020-anchor-6-4c052b1a.pth.tar" in listing
    )
    assert listing.count("\ncodec ") == 6 * 2 * 8 - 2 * 2 * 2  # cheng2020: qualities 1-6


@pytest.mark.slow
def test_degrades_kodak24_with_random_weights(tmp_path, random_models):
    """``bench.generate`` over Kodak24 with a random bmshj2018-factorized q1: every manifest
    row's bytes is its file's size, header + entropy bytes, bpp = bits / pixels, and the
    stored decoded PNG is the decode of the stored file."""
    root = os.environ.get("BENCH_DATA_ROOT")
    if not root or not (Path(root) / "Kodak24").is_dir():
        pytest.skip("BENCH_DATA_ROOT with Kodak24 not set")
    from carbench.bench.datasets import resolve
    from carbench.bench.generate import generate, read_manifest
    from carbench.bench.protocols import get_protocol
    from carbench.core.imageio import read_image
    from carbench.core.workspace import Workspace

    warnings.filterwarnings("ignore", category=UserWarning)
    learned.use_model("bmshj2018-factorized", "mse", 1, _random_net("bmshj2018-factorized"))
    ws = Workspace(tmp_path / "ws")
    deg = from_id("compressai-bmshj2018-factorized-q1")
    ds = resolve("Kodak24", ws.root, Path(root))
    s = generate(ws, ds, get_protocol("fbcnn"), [deg], progress=False)
    assert s.done == 24 and not s.failed
    man = read_manifest(ws, "Kodak24", "fbcnn", deg.id)
    assert len(man) == 24
    for rec in man.itertuples():
        path = ws.resolve(rec.bitstream_path)
        data = path.read_bytes()
        assert rec.bytes == len(data) == rec.extra_entropy_bytes + rec.extra_header_bytes
        assert rec.bpp == len(data) * 8 / (rec.width * rec.height)
        assert not rec.param_weights_official
    rec = man.iloc[0]
    decoded = read_image(ws.resolve(rec.decoded_path)).pixels
    assert np.array_equal(decoded, deg.decode(ws.resolve(rec.bitstream_path).read_bytes()))
