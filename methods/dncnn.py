"""DnCNN-3 - Zhang et al., "Beyond a Gaussian Denoiser", TIP 2017: one blind model for
Gaussian denoising, super-resolution and JPEG deblocking (gray).

Upstream: the original MatConvNet release cszn/DnCNN:model/DnCNN3.mat (@e93b278) and KAIR's
PyTorch conversion dncnn3.pth (cszn/KAIR:models/network_dncnn.py @fc1732f, MIT). carbench's
network uses KAIR's parameter names (``model.0`` ... ``model.38``: 20 convolutions with ReLUs,
batch norm folded in) and reads either file. Output = input - predicted residual, rounded to
uint8 (MATLAB im2uint8). Colour input is deblocked on BT.601 Y with Cb/Cr kept (KAIR's
main_test_dncnn3_deblocking.py); the published numbers are on gray images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from carbench.core.errors import BenchError
from carbench.core.options import Option
from carbench.core.weights import WeightFile
from carbench.methods.base import Capabilities, Method, Sample, locate
from carbench.methods.tiling import tiled
from carbench.methods.torch_utils import (
    load_state_dict_file,
    loaded,
    sha256_of,
    to_tensor,
    to_uint8,
    torch_dtype,
)

DEPTH, WIDTH = 20, 64


def build_dncnn(in_nc: int = 1, out_nc: int = 1, nc: int = WIDTH, nb: int = DEPTH):
    """DnCNN(in_nc, out_nc, nc, nb, act 'R') without batch norm; forward returns x - f(x)."""
    import torch.nn as nn

    layers: list = [nn.Conv2d(in_nc, nc, 3, 1, 1), nn.ReLU(inplace=True)]
    for _ in range(nb - 2):
        layers += [nn.Conv2d(nc, nc, 3, 1, 1), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(nc, out_nc, 3, 1, 1))

    class DnCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = nn.Sequential(*layers)

        def forward(self, x):
            return x - self.model(x)

    return DnCNN()


def read_matconvnet(path: Path) -> dict:
    """State dict (KAIR names) from the MatConvNet simplenn file DnCNN3.mat (MATLAB v7.3).

    MATLAB stores conv kernels as H x W x in x out in column-major order; HDF5 readers see the
    reversed axes (out, in, W, H), so the kernel becomes (out, in, H, W) by swapping the last
    two. MatConvNet correlates (no kernel flip), like torch.
    """
    import h5py
    import torch

    def text(ds) -> str:
        return "".join(chr(c) for c in np.asarray(ds).ravel())

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise BenchError(f"{path}: not a MATLAB v7.3 (HDF5) file ({e})") from None
    with f:
        layers = [f[ref] for ref in np.asarray(f["net/layers"]).ravel()]
        convs = [lay for lay in layers if text(lay["type"]) == "conv"]
        if len(convs) != DEPTH:
            raise BenchError(f"{path}: expected {DEPTH} conv layers, found {len(convs)}")
        sd = {}
        for i, lay in enumerate(convs):
            w_ref, b_ref = np.asarray(lay["weights"]).ravel()
            w = np.asarray(f[w_ref], dtype=np.float32)
            b = np.asarray(f[b_ref], dtype=np.float32).ravel()
            if w.ndim == 3:  # last layer: MATLAB 3x3x64(x1), trailing singleton dropped
                w = w[None]
            w = np.ascontiguousarray(w.transpose(0, 1, 3, 2))
            sd[f"model.{2 * i}.weight"] = torch.from_numpy(w)
            sd[f"model.{2 * i}.bias"] = torch.from_numpy(b.copy())
    return sd


class DnCNN3(Method):
    name = "dncnn3"
    label = "DnCNN-3"
    description = "DnCNN-3 (TIP 2017), one blind model; JPEG deblocking of gray images"
    group = "cnn"
    paper = "https://arxiv.org/abs/1608.03981"
    capabilities = Capabilities(colour="luma")  # restores Y, keeps Cb/Cr
    weights = {
        "mat": [
            WeightFile(
                "DnCNN3.mat",
                "https://github.com/cszn/DnCNN/raw/master/model/DnCNN3.mat",
                "3962377d522b6728417e364bf7a589cf34ddfb592af0bd9769e53f8123d17677",
                2_771_543,
                licence="MIT (cszn/DnCNN)",
            )
        ],
        "pth": [
            WeightFile(
                "dncnn3.pth",
                "https://github.com/cszn/KAIR/releases/download/v1.0/dncnn3.pth",
                licence="MIT (cszn/KAIR)",
            )
        ],
    }

    declared_options = (
        Option(
            "variant",
            "choice",
            "auto",
            choices=("auto", *weights),
            in_id=False,  # the same model; rows record the weights' sha256
            help="release to load: mat (DnCNN3.mat, MatConvNet original), pth (KAIR's "
            "conversion) or auto (mat when present, else pth)",
        ),
    )

    @property
    def variant(self) -> str:
        """The release to read: the one asked for, else the original when present, else
        KAIR's; with neither, the original (named as the one to fetch)."""
        asked = self.opt("variant")
        if asked != "auto":
            return asked
        found = [v for v in self.weights if all(locate(self.name, wf) for wf in self.weights[v])]
        return found[0] if found else "mat"

    def build_network(self, variant: str | None = None):
        return build_dncnn()

    def load(self, device: str = "cpu", dtype: str = "fp32", kinds=("rgb", "gray")) -> None:
        super().load(device, dtype)
        variant = self.variant
        (path,) = self.weight_paths(variant)
        sd = read_matconvnet(path) if variant == "mat" else load_state_dict_file(path)
        self._net = loaded(self.build_network(), sd, str(path), device, dtype, cnn=True)
        self._weights_sha = sha256_of([path])

    def restore(self, sample: Sample) -> np.ndarray:
        """Deblock a gray image (colour ones come as their Y, see ``capabilities``)."""
        import torch

        x = to_tensor(sample.decoded, self.device, torch_dtype(self.dtype))
        if self.device == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            return to_uint8(tiled(self._net, x, self.tile, overlap=min(32, self.tile // 4)))
