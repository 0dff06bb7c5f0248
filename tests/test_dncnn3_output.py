"""DnCNN-3's output with the real release weights (DnCNN3.mat) against an independent
computation: tests/reference/dncnn3_matconvnet.py, a numpy float64 re-implementation of
MatConvNet's ``vl_simplenn`` forward reading the .mat file itself (tests/data/upstream/
dncnn3.npz). Fast, so a change in the network, the .mat reading or the uint8 conversion fails
the README test command, not only the slow published-table test."""

from __future__ import annotations

import numpy as np
import pytest

from carbench.methods.base import Sample
from tests.conftest import upstream_arrays

torch = pytest.importorskip("torch")

GRAY = ("barbara", "clamp", "lena", "bikes")  # bikes: the Y of a colour crop


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    return upstream_arrays("dncnn3.npz")


@pytest.mark.parametrize("case", GRAY)
def test_network_matches_matconvnet_forward(case, ref, dncnn3_weights, one_torch_thread):
    """carbench's network (KAIR names, read_matconvnet) in fp32 on the recorded inputs."""
    from carbench.methods.dncnn import build_dncnn, read_matconvnet

    net = build_dncnn()
    net.load_state_dict(read_matconvnet(dncnn3_weights / "DnCNN3.mat"))
    x = torch.from_numpy(ref[f"{case}_input"].astype(np.float32) / 255)[None, None]
    with torch.no_grad():
        out = net.eval()(x)[0, 0].double().numpy()
    # fp32 torch conv vs the float64 reference: measured max |diff| 5.6e-7 (clamp case; 2.6e-7
    # to 3.0e-7 on the others); bound 1.5e-6. A residual scaled by 0.99 moves it by 6e-4..3e-3
    np.testing.assert_allclose(out, ref[f"{case}_out"], rtol=0, atol=1.5e-6)
    xin = ref[f"{case}_input"].astype(np.float32) / np.float32(255)
    np.testing.assert_allclose(xin - out, ref[f"{case}_res"], rtol=0, atol=1.5e-6)


def _adapter(dncnn3_weights, monkeypatch):
    from carbench import methods

    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(dncnn3_weights))
    m = methods.get("dncnn3")
    m.load("cpu", "fp32")
    return m


@pytest.mark.parametrize("case", GRAY)
def test_adapter_uint8_output_matches(case, ref, dncnn3_weights, monkeypatch, one_torch_thread):
    """The adapter's restore (whichever release it finds: here the .mat) on gray input gives
    MATLAB's ``im2uint8(input - res)``: every value equal (measured: all equal; the clamp case
    leaves [0, 1] at 194 pixels)."""
    m = _adapter(dncnn3_weights, monkeypatch)
    sample = Sample("crop", ref[f"{case}_input"], None, "jpeg")
    np.testing.assert_array_equal(m.restore(sample), ref[f"{case}_u8"])


def test_adapter_colour_path_matches(ref, dncnn3_weights, monkeypatch, one_torch_thread):
    """Colour input (``colour="luma"``): MATLAB ``rgb2ycbcr``'s Y, rounded, deblocked, Cb/Cr
    kept, back through ``ycbcr2rgb`` - the reference's own formulas from the BT.601 matrix."""
    m = _adapter(dncnn3_weights, monkeypatch)
    out = m.restore_sample(Sample("crop", ref["bikes_rgb"], None, "jpeg"))
    np.testing.assert_array_equal(out, ref["bikes_rgb_out"])
