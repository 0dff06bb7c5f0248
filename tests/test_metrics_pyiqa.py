"""pyiqa wiring, offline, with the real LPIPS/DISTS heads and stand-in (random) trunks.

The values computed here are meaningless as quality scores; the tests check plumbing:
offline loading from carbench's cache, properties of the metric, agreement with a direct
pyiqa call on the same weights, and clear failures when weights are missing or not official.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from carbench.bench.metrics import weight_files as W
from carbench.bench.metrics.registry import parse_metric
from carbench.bench.metrics.runner import MetricRunner
from carbench.bench.metrics.scorers import build_scorer
from carbench.core.errors import BenchError, WeightsMissingError
from carbench.core.weights import cache_root, present
from carbench.degradations import Jpeg


@pytest.fixture(scope="module")
def pair():
    import skimage.data

    ref = skimage.data.chelsea()[:128, :160]
    return Jpeg(10).apply(ref).decoded, ref


@pytest.mark.parametrize("name", ["lpips", "dists"])
def test_properties_and_direct_pyiqa(standin_weights, pair, name):
    out, ref = pair
    score = build_scorer(parse_metric(name), "cpu")
    assert score(ref, ref) == pytest.approx(0.0, abs=1e-6)
    a, b = score(out, ref), score(ref, out)
    assert a > 1e-4 and a == pytest.approx(b, rel=1e-5)
    import pyiqa

    def t(x):
        return torch.from_numpy(x.copy()).permute(2, 0, 1)[None].float() / 255

    direct = float(pyiqa.create_metric(name, device="cpu")(t(out), t(ref)))
    assert direct == pytest.approx(a, rel=1e-6)
    assert score.implementation.startswith("pyiqa ")


def test_lpips_head_comes_from_the_wheel_and_trunk_is_flagged(standin_weights):
    problems = W.verify("lpips")
    assert (
        len(problems) == 1
        and "alexnet-owt-7be5be79.pth: sha256 does not start with 7be5be79" in problems[0]
    )
    head = present(W.metric_weights()["lpips"][1], cache_root())
    assert W.sha256_file(head).startswith("df73285e")


def test_missing_weights_name_the_files(standin_weights):
    with pytest.raises(
        WeightsMissingError,
        match=r"musiq_koniq_ckpt-e95806b9.pth: fetch https://"
        r"huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/musiq_koniq",
    ):
        build_scorer(parse_metric("musiq"))
    with pytest.raises(WeightsMissingError, match=r"RN50.pt: fetch .* -> .*torch/hub/clip/RN50.pt"):
        build_scorer(parse_metric("clipiqa"))


def test_runner_named_metric_stops_available_skips(standin_weights):
    specs = [parse_metric(n) for n in ("psnr", "lpips", "maniqa")]
    with pytest.raises(WeightsMissingError, match="maniqa cannot load"):
        MetricRunner(specs)
    runner = MetricRunner(specs, lenient=True)
    assert [s.id for s in runner.specs] == ["psnr:rgb", "lpips:alex-v0.1"]
    assert "maniqa:koniq" in runner.skipped


def test_runner_caches_by_content(tmp_path, pair):
    out, ref = pair
    r1 = MetricRunner([parse_metric("psnr"), parse_metric("ssim")], cache_dir=tmp_path)
    first = r1.score(out, ref, "t1", "r1")
    r1.close()
    r2 = MetricRunner([parse_metric("psnr"), parse_metric("ssim")], cache_dir=tmp_path)
    again = r2.score(out, ref, "t1", "r1")
    assert [s.cached for s in first] == [False, False] and [s.cached for s in again] == [True, True]
    assert [s.value for s in first] == [s.value for s in again]
    assert not r2.score(out, ref, "t2", "r1")[0].cached


def test_fetch_from_mirror_checks_hash(tmp_path, static_server):
    """A mirror serving a wrong file is refused and nothing is left behind."""
    www, mirror = static_server
    (www / "alexnet-owt-7be5be79.pth").write_bytes(b"not the official alexnet")
    root = tmp_path / "cache"
    with pytest.raises(BenchError, match="sha256 does not start with 7be5be79"):
        W.fetch("lpips", root=root, mirror=mirror)
    assert not (root / "torch/hub/checkpoints/alexnet-owt-7be5be79.pth").exists()
    assert not list((root / "torch/hub/checkpoints").glob("*.download*"))


def test_gray_input_is_replicated(standin_weights, camera):
    score = build_scorer(parse_metric("lpips"), "cpu")
    g = camera[:64, :64]
    assert score(g, g) == pytest.approx(0.0, abs=1e-6)
    assert np.isfinite(score(Jpeg(5).apply(g).decoded, g))
