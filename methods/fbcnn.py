"""FBCNN - Jiang, Zhang, Timofte, "Towards Flexible Blind JPEG Artifacts Removal", ICCV 2021.

Upstream: jiaxi-jiang/FBCNN (models/network_fbcnn.py @54d1831, Apache-2.0). The network is
carbench's own implementation (``methods.nets.fbcnn_net``) with the upstream parameter names, so
the released checkpoints load with strict key matching. Protocol as in the authors' test
scripts: input RGB (gray: one channel) in [0,1], replicate padding to a multiple of 8 inside
the network and crop back, output clamped and rounded. The quality factor is predicted
(``qf_pred``) unless set with ``fbcnn:qf=N``, which feeds 1 - N/100 to the QF embedding.
"""

from __future__ import annotations

import numpy as np

from carbench.core.options import Option
from carbench.core.weights import WeightFile
from carbench.methods.base import Method, Sample
from carbench.methods.nets.fbcnn_net import build_fbcnn_unet
from carbench.methods.tiling import tiled
from carbench.methods.torch_utils import (
    load_state_dict_file,
    loaded,
    sha256_of,
    to_tensor,
    to_uint8,
    torch_dtype,
)

RELEASE = "https://github.com/jiaxi-jiang/FBCNN/releases/download/v1.0/"


def build_fbcnn(in_nc: int = 3, out_nc: int = 3):
    """FBCNN(in_nc, out_nc, nc=[64,128,256,512], nb=4, act 'R', strideconv / convtranspose)."""
    return build_fbcnn_unet(in_nc, out_nc)


class Fbcnn(Method):
    name = "fbcnn"
    label = "FBCNN"
    description = "FBCNN (ICCV 2021), blind QF prediction or fixed QF (fbcnn:qf=N)"
    group = "cnn"
    paper = "https://arxiv.org/abs/2109.14573"
    weights = {
        "color": [
            WeightFile(
                "fbcnn_color.pth",
                RELEASE + "fbcnn_color.pth",
                "8b0e4ef23d59cf7ac934a342cb31a17619e4fa4a0b3374a9d78c5174312387e8",
                287_755_111,
                licence="Apache-2.0",
            )
        ],
        "gray": [WeightFile("fbcnn_gray.pth", RELEASE + "fbcnn_gray.pth", licence="Apache-2.0")],
        "gray-double": [
            WeightFile(
                "fbcnn_gray_double.pth",
                RELEASE + "fbcnn_gray_double.pth",
                "4444b8b2393649a4acd5d8730410ec3106d15b6e262a49081e4e87b44cfa5cea",
                287_745_895,
                licence="Apache-2.0",
            )
        ],
    }

    declared_options = (
        Option(
            "qf",
            "int",
            min=1,
            max=100,
            help="fixed quality factor fed to the network instead of its own estimate "
            "(default: blind, the network predicts it)",
        ),
        Option(
            "variant",
            "choice",
            "color",
            choices=tuple(weights),
            help="checkpoint: color = the release's blind pair (fbcnn_color.pth on colour "
            "input, fbcnn_gray.pth on gray input); gray / gray-double = that gray checkpoint "
            "(gray input only)",
        ),
    )

    def __init__(self, **given: object) -> None:
        super().__init__(**given)
        self._nets: dict[str, object] = {}

    def build_network(self, variant: str | None = None):
        channels = 3 if (variant or "color") == "color" else 1
        return build_fbcnn(channels, channels)

    def _variant_for(self, gray: bool) -> str:
        if self.variant != "color":
            return self.variant
        return "gray" if gray else "color"

    def refusal(self, degradation, kinds: set[str]) -> str | None:
        if "rgb" in kinds and self.variant != "color":
            return f"{self.id} is a gray checkpoint; the set has colour images (use fbcnn)"
        return super().refusal(degradation, kinds)

    def needed_variants(self, kinds=("rgb", "gray")) -> list[str]:
        return sorted({self._variant_for(k == "gray") for k in kinds})

    def load(self, device: str = "cpu", dtype: str = "fp32", kinds=("rgb", "gray")) -> None:
        super().load(device, dtype)
        self.check_weights(kinds)  # every missing file of every needed variant at once
        digests = []
        for v in self.needed_variants(kinds):
            (path,) = self.weight_paths(v)
            net = self.build_network(v)
            self._nets[v] = loaded(net, load_state_dict_file(path), str(path), device, dtype, True)
            digests.append(sha256_of([path]))
        self._weights_sha = ",".join(digests)

    def restore(self, sample: Sample) -> np.ndarray:
        import torch

        gray = sample.decoded.ndim == 2
        net = self._nets[self._variant_for(gray)]
        dt = torch_dtype(self.dtype)
        x = to_tensor(sample.decoded, self.device, dt)
        if self.device == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        qf_input = None
        if self.opt("qf") is not None:
            qf_input = torch.tensor([[1 - self.opt("qf") / 100]], device=self.device, dtype=dt)
        with torch.no_grad():
            y = tiled(lambda t: net(t, qf_input)[0], x, self.tile, overlap=min(32, self.tile // 4))
        return to_uint8(y)

    def predict_qf(self, sample: Sample) -> int:
        """The quality factor the network estimates, round(100 (1 - q))."""
        import torch

        net = self._nets[self._variant_for(sample.decoded.ndim == 2)]
        with torch.no_grad():
            _, q = net(to_tensor(sample.decoded, self.device, torch_dtype(self.dtype)))
        return int(round(100 * (1 - float(q))))
