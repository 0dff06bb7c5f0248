"""The Python API (issue 22): carbench.run with method ids, a callable or a torch module lands
rows in the store with a provenance naming it; results() and report() read the same store."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

import carbench
from carbench.core.errors import BenchError


class Brighten(torch.nn.Module):
    """Adds ``delta`` to every value (a 1x1 convolution with identity weights)."""

    def __init__(self, delta: float) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3)[:, :, None, None])
            self.conv.bias.fill_(delta)

    def forward(self, x):
        return self.conv(x)


def test_run_a_module_and_a_callable(tmp_path):
    ws = tmp_path / "ws"
    plain = carbench.run("jpeg", dataset="sample", degradations="jpeg:q=10", workspace=ws)
    assert not plain.failures and plain.metrics == ["psnr:rgb", "ssim:gauss11", "psnrb:fbcnn"]
    model = Brighten(0.0)
    res = carbench.run(model, dataset="sample", degradations="jpeg:q=10", workspace=ws, name="id")
    assert res.methods == ["id"] and not res.failures
    rows = res.results()
    assert set(rows.method) == {"id"} and len(rows) == 4 * 3  # 4 images x 3 metrics
    assert set(rows.method_source) == {f"{__name__}:Brighten"}
    # the state dict's sha256, worked out here from the tensors' bytes in key order
    h = hashlib.sha256()
    for key, t in model.state_dict().items():
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.detach().contiguous().numpy().tobytes())
    assert set(rows.method_weights_sha256) == {h.hexdigest()}
    # an identity model scores exactly as the JPEG input; a brighter one lower
    jpeg = carbench.results(ws, method="jpeg").set_index(["image", "variant"]).value
    mine = rows.set_index(["image", "variant"]).value
    assert np.allclose(mine.sort_index(), jpeg.sort_index(), rtol=0, atol=1e-12)
    brighter = carbench.run(
        Brighten(8 / 255), dataset="sample", degradations="jpeg-q10", workspace=ws, name="plus8"
    ).results()
    psnr = brighter[brighter.variant == "psnr:rgb"].set_index("image").value
    assert (psnr < jpeg.xs("psnr:rgb", level="variant")).all()

    def invert(img: np.ndarray) -> np.ndarray:
        return 255 - img

    res = carbench.run(invert, dataset="sample", degradations="jpeg-q10", workspace=ws)
    rows = res.results()
    assert set(rows.method) == {"invert"}
    where = f"{__name__}:test_run_a_module_and_a_callable.<locals>.invert"
    assert set(rows.method_source) == {where}
    assert "invert" in carbench.report("csv", ws) and "plus8" in carbench.report("csv", ws)
    again = carbench.run(invert, dataset="sample", degradations="jpeg-q10", workspace=ws)
    assert again.finished  # resumable: the second call finds everything in the store


def test_api_refuses_bad_input(tmp_path):
    with pytest.raises(BenchError, match="unknown option `qff` for fbcnn"):
        carbench.run("fbcnn:qff=1", workspace=tmp_path)
    with pytest.raises(BenchError, match="would share the id of the registered method"):
        carbench.run(lambda x: x, name="fbcnn", workspace=tmp_path)
    with pytest.raises(BenchError, match="neither a method id nor callable"):
        carbench.run([42], workspace=tmp_path)
    assert carbench.__version__ == "0.1.0"
