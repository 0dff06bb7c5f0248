"""Record DnCNN-3's output on real image crops with the real release weights, computed by a
second implementation of MatConvNet's forward pass (numpy, float64) read straight from the
MatConvNet file, for tests/test_dncnn3_output.py.

Usage (BENCH_DATA_ROOT and BENCH_SHARED set; any environment with numpy, h5py, Pillow, OpenCV):
    python tests/reference/dncnn3_matconvnet.py [out.npz]

Upstream: cszn/DnCNN @e93b278 ``model/DnCNN3.mat`` (sha256 3962377d...7677, in
$BENCH_SHARED/weights/dncnn3) and ``Demo_test_DnCNN3.m``'s deblocking branch: ``input =
im2single(imread(jpeg))``, ``res = vl_simplenn(net, input, [], [], 'mode', 'test')``,
``output = input - res(end).x``, ``im2uint8(output)``; colour images are deblocked on
``rgb2ycbcr``'s Y. No upstream code runs here (MATLAB is not available): this script is the
independent computation. It reads ``net.layers`` in file order and applies each entry by its
``type`` with MatConvNet's definitions - ``conv``: correlation (no kernel flip) of the H x W x C
image with the MATLAB-order kernel H x W x in x out (h5py shows MATLAB's column-major arrays
with the axes reversed, so the full reversal gives MATLAB's order), zero padding ``pad``, stride
``stride``, plus bias; ``relu``: ``max(x, leak x)``; any other type is refused. It does not
import carbench's DnCNN code (which swaps kernel axes for torch instead).

Inputs (stored, uint8): crops encoded with carbench's ``encode_jpeg`` (libjpeg-turbo, the
benchmark's codec) and decoded; odd sizes, none a multiple of 8:

* ``barbara``: Classic5/barbara.png rows 300:347, cols 20:81 (47x61), QF 10;
* ``clamp``: Classic5/boats.png rows 300:347, cols 20:81, columns 30 on replaced by stripes of
  0 and 255 (``255 * ((col // 3 + row // 5) % 2)``), QF 40: the output leaves [0, 1] on both
  sides (49 and 145 pixels), so the uint8 clamp is reached (no real Classic5 image does);
* ``lena``: Classic5/lena.png rows 0:39, cols 451:512 (39x61, the top-right corner), QF 30;
* ``bikes``: LIVE1/bikes.png rows 100:141, cols 200:253 (41x53 RGB), QF 20, deblocked on MATLAB
  ``rgb2ycbcr``'s Y (rounded), Cb/Cr kept in float, back with ``ycbcr2rgb`` (both from MATLAB's
  published BT.601 matrix, written out below).

Arrays per case: ``<case>_input`` (uint8 network input: the decoded JPEG, or its rounded Y),
``<case>_res`` (float64 residual ``res(end).x``), ``<case>_out`` (float64 ``input - res``),
``<case>_u8`` (``im2uint8``: clamp to [0, 1], x255, round half away from zero); for ``bikes``
also ``bikes_rgb`` (the decoded colour JPEG) and ``bikes_rgb_out`` (uint8 RGB result).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MAT_SHA256 = "3962377d522b6728417e364bf7a589cf34ddfb592af0bd9769e53f8123d17677"
CASES = {  # case: (image under BENCH_DATA_ROOT, rows, cols, QF)
    "barbara": ("Classic5/barbara.png", (300, 347), (20, 81), 10),
    "clamp": ("Classic5/boats.png", (300, 347), (20, 81), 40),
    "lena": ("Classic5/lena.png", (0, 39), (451, 512), 30),
    "bikes": ("LIVE1/bikes.png", (100, 141), (200, 253), 20),
}
#: MATLAB rgb2ycbcr (BT.601, studio range) on [0, 255] values: offset + M @ rgb / 255
YCC_M = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]])
YCC_OFFSET = np.array([16.0, 128.0, 128.0])


def read_simplenn(path: Path) -> list[dict]:
    """``net.layers`` of a MatConvNet simplenn file (MATLAB v7.3) as dicts, MATLAB array order."""
    import h5py

    def text(ds) -> str:
        return "".join(chr(c) for c in np.asarray(ds).ravel())

    def matlab(ds) -> np.ndarray:
        a = np.asarray(ds, dtype=np.float64)
        return a.transpose(tuple(range(a.ndim))[::-1])  # h5py order reversed = MATLAB order

    layers = []
    with h5py.File(path, "r") as f:
        for ref in np.asarray(f["net/layers"]).ravel():
            lay = f[ref]
            entry = {"type": text(lay["type"])}
            if entry["type"] == "conv":
                w_ref, b_ref = np.asarray(lay["weights"]).ravel()
                entry["w"], entry["b"] = matlab(f[w_ref]), matlab(f[b_ref]).ravel()
                entry["pad"] = int(np.asarray(lay["pad"]).ravel()[0])
                entry["stride"] = int(np.asarray(lay["stride"]).ravel()[0])
            elif entry["type"] == "relu":
                entry["leak"] = float(np.asarray(lay["leak"]).ravel()[0])
            layers.append(entry)
    return layers


def vl_nnconv(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int, stride: int) -> np.ndarray:
    """MatConvNet's conv: ``y(i,j,o) = b(o) + sum_{u,v,k} w(u,v,k,o) x(i+u-pad, j+v-pad, k)``."""
    if w.ndim == 3:  # MATLAB drops a trailing singleton "out" dimension
        w = w[..., None]
    kh, kw, cin, cout = w.shape
    assert x.shape[2] == cin, (x.shape, w.shape)
    xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    h = (xp.shape[0] - kh) // stride + 1
    wd = (xp.shape[1] - kw) // stride + 1
    y = np.broadcast_to(b, (h, wd, cout)).copy()
    for u in range(kh):
        for v in range(kw):
            patch = xp[u : u + stride * h : stride, v : v + stride * wd : stride, :]
            y += patch @ w[u, v]
    return y


def vl_simplenn(layers: list[dict], x: np.ndarray) -> np.ndarray:
    """The last layer's output for an H x W x C input (test mode)."""
    for lay in layers:
        if lay["type"] == "conv":
            x = vl_nnconv(x, lay["w"], lay["b"], lay["pad"], lay["stride"])
        elif lay["type"] == "relu":
            x = np.maximum(x, lay["leak"] * x)
        else:
            raise ValueError(f"layer type {lay['type']!r} not implemented")
    return x


def im2uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB ``im2uint8`` of a [0, 1] float image: saturate, x255, round half away from zero."""
    return np.floor(np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def rgb2ycbcr(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` of uint8 RGB, float64 on the [0, 255] scale (not rounded)."""
    return rgb.astype(np.float64) @ (YCC_M / 255).T + YCC_OFFSET


def ycbcr2rgb(ycc: np.ndarray) -> np.ndarray:
    """MATLAB ``ycbcr2rgb`` on the [0, 255] scale, rounded and saturated to uint8."""
    rgb = np.linalg.solve(YCC_M / 255, (ycc - YCC_OFFSET).reshape(-1, 3).T).T
    return np.clip(np.floor(rgb.reshape(ycc.shape) + 0.5), 0, 255).astype(np.uint8)


def crop(case: str) -> np.ndarray:
    """The decoded JPEG of one case (uint8, gray HxW or RGB HxWx3)."""
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from carbench.degradations.jpeg import decode_jpeg, encode_jpeg

    name, (r0, r1), (c0, c1), qf = CASES[case]
    with Image.open(Path(os.environ["BENCH_DATA_ROOT"]) / name) as im:
        img = np.asarray(im.convert("L" if name.startswith("Classic5") else "RGB"))
    img = img[r0:r1, c0:c1].copy()
    if case == "clamp":
        rows, cols = np.mgrid[: img.shape[0], 30 : img.shape[1]]
        img[:, 30:] = 255 * ((cols // 3 + rows // 5) % 2)
    return decode_jpeg(encode_jpeg(img, qf))


def main(out: Path) -> None:
    mat = Path(os.environ["BENCH_SHARED"]) / "weights" / "dncnn3" / "DnCNN3.mat"
    assert hashlib.sha256(mat.read_bytes()).hexdigest() == MAT_SHA256, mat
    layers = read_simplenn(mat)
    assert [lay["type"] for lay in layers] == ["conv", "relu"] * 19 + ["conv"]
    arrays: dict[str, np.ndarray] = {}
    for case in CASES:
        img = crop(case)
        if img.ndim == 3:
            arrays[f"{case}_rgb"] = img
            ycc = rgb2ycbcr(img)
            gray = np.clip(np.floor(ycc[..., 0] + 0.5), 0, 255).astype(np.uint8)
        else:
            gray = img
        x = (gray.astype(np.float32) / np.float32(255)).astype(np.float64)  # im2single
        res = vl_simplenn(layers, x[..., None])[..., 0]
        output = x - res
        arrays.update({f"{case}_input": gray, f"{case}_res": res, f"{case}_out": output})
        arrays[f"{case}_u8"] = im2uint8(output)
        if img.ndim == 3:
            ycc[..., 0] = arrays[f"{case}_u8"]
            arrays[f"{case}_rgb_out"] = ycbcr2rgb(ycc)
        print(
            case,
            gray.shape,
            f"|res| max {np.abs(res).max():.4f}",
            f"below 0: {(output < 0).sum()}, above 1: {(output > 1).sum()}",
        )
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests/data/upstream/dncnn3.npz")
