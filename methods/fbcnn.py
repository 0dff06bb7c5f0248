"""FBCNN - Jiang, Zhang, Timofte, "Towards Flexible Blind JPEG Artifacts Removal", ICCV 2021.

Upstream: jiaxi-jiang/FBCNN (models/network_fbcnn.py @54d1831, Apache-2.0). The network below
is carbench's own implementation with the upstream parameter names, so the released
checkpoints load with strict key matching. Protocol as in the authors' test scripts: input RGB
(gray: one channel) in [0,1], replicate padding to a multiple of 8 inside the network and crop
back, output clamped and rounded. The quality factor is predicted (``qf_pred``) unless set with
``fbcnn:qf=N``, which feeds 1 - N/100 to the QF embedding instead.
"""

from __future__ import annotations

import numpy as np

from bench.errors import WeightsMissingError
from bench.weights import WeightFile
from methods.base import Capabilities, Method, Sample
from methods.tiling import tiled
from methods.torch_utils import (
    load_state_dict_file,
    sha256_of,
    strict_load,
    to_tensor,
    to_uint8,
    torch_dtype,
)

RELEASE = "https://github.com/jiaxi-jiang/FBCNN/releases/download/v1.0/"
NC = (64, 128, 256, 512)
NB = 4


def _nn():
    import torch.nn as nn

    return nn


def _res_branch(ch: int):
    nn = _nn()
    return nn.Sequential(
        nn.Conv2d(ch, ch, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(ch, ch, 3, 1, 1)
    )


def build_fbcnn(in_nc: int = 3, out_nc: int = 3):
    """FBCNN(in_nc, out_nc, nc=[64,128,256,512], nb=4, act 'R', strideconv / convtranspose)."""
    import torch.nn.functional as F

    nn = _nn()

    class ResBlock(nn.Module):
        def __init__(self, ch: int) -> None:
            super().__init__()
            self.res = _res_branch(ch)

        def forward(self, x):
            return x + self.res(x)

    class QFAttention(nn.Module):
        """Residual block whose branch is modulated per channel: x + gamma * f(x) + beta."""

        def __init__(self, ch: int) -> None:
            super().__init__()
            self.res = _res_branch(ch)

        def forward(self, x, gamma, beta):
            return x + gamma[..., None, None] * self.res(x) + beta[..., None, None]

    def down(cin: int, cout: int):
        return nn.Sequential(*[ResBlock(cin) for _ in range(NB)], nn.Conv2d(cin, cout, 2, 2, 0))

    def up(cin: int, cout: int):
        return nn.ModuleList(
            [nn.ConvTranspose2d(cin, cout, 2, 2, 0), *[QFAttention(cout) for _ in range(NB)]]
        )

    def head(act, *layers):
        return nn.Sequential(*layers, act)

    class FBCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m_head = nn.Conv2d(in_nc, NC[0], 3, 1, 1)
            self.m_down1 = down(NC[0], NC[1])
            self.m_down2 = down(NC[1], NC[2])
            self.m_down3 = down(NC[2], NC[3])
            self.m_body_encoder = nn.Sequential(*[ResBlock(NC[3]) for _ in range(NB)])
            self.m_body_decoder = nn.Sequential(*[ResBlock(NC[3]) for _ in range(NB)])
            self.m_up3 = up(NC[3], NC[2])
            self.m_up2 = up(NC[2], NC[1])
            self.m_up1 = up(NC[1], NC[0])
            self.m_tail = nn.Conv2d(NC[0], out_nc, 3, 1, 1)
            self.qf_pred = nn.Sequential(
                *[ResBlock(NC[3]) for _ in range(NB)],
                nn.AdaptiveAvgPool2d((1, 1)),
                nn.Flatten(),
                nn.Linear(512, 512),
                nn.ReLU(),
                nn.Linear(512, 512),
                nn.ReLU(),
                nn.Linear(512, 1),
                nn.Sigmoid(),
            )
            self.qf_embed = nn.Sequential(
                nn.Linear(1, 512),
                nn.ReLU(),
                nn.Linear(512, 512),
                nn.ReLU(),
                nn.Linear(512, 512),
                nn.ReLU(),
            )
            for i, ch in ((3, NC[2]), (2, NC[1]), (1, NC[0])):
                setattr(self, f"to_gamma_{i}", head(nn.Sigmoid(), nn.Linear(512, ch)))
                setattr(self, f"to_beta_{i}", head(nn.Tanh(), nn.Linear(512, ch)))

        def forward(self, x, qf_input=None):
            """Returns (restored, predicted 1 - QF/100)."""
            h, w = x.shape[-2:]
            x = F.pad(x, (0, (-w) % 8, 0, (-h) % 8), mode="replicate")
            x1 = self.m_head(x)
            x2 = self.m_down1(x1)
            x3 = self.m_down2(x2)
            x4 = self.m_down3(x3)
            x = self.m_body_encoder(x4)
            qf = self.qf_pred(x)
            x = self.m_body_decoder(x)
            emb = self.qf_embed(qf if qf_input is None else qf_input)
            for level, skip in ((3, x4), (2, x3), (1, x2)):
                blocks = getattr(self, f"m_up{level}")
                gamma = getattr(self, f"to_gamma_{level}")(emb)
                beta = getattr(self, f"to_beta_{level}")(emb)
                x = blocks[0](x + skip)
                for blk in blocks[1:]:
                    x = blk(x, gamma, beta)
            x = self.m_tail(x + x1)
            return x[..., :h, :w], qf

    return FBCNN()


class Fbcnn(Method):
    name = "fbcnn"
    description = "FBCNN (ICCV 2021), blind QF prediction or fixed QF (fbcnn:qf=N)"
    group = "cnn"
    paper = "https://arxiv.org/abs/2109.14573"
    capabilities = Capabilities(uses_qf=True, size_multiple=8)
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

    def __init__(self, **options: str) -> None:
        super().__init__(**options)
        self._nets: dict[str, object] = {}
        qf = options.get("qf")
        if qf is not None and (not qf.isdigit() or not 1 <= int(qf) <= 100):
            from bench.errors import BenchError

            raise BenchError(f"fbcnn:qf must be an integer 1-100, got {qf!r}")

    def build_network(self, variant: str | None = None):
        channels = 3 if (variant or "color") == "color" else 1
        return build_fbcnn(channels, channels)

    def _variant_for(self, gray: bool) -> str:
        if "variant" in self.options:
            return self.variant
        return "gray" if gray else "color"

    def load(self, device: str = "cpu", dtype: str = "fp32", kinds=("rgb", "gray")) -> None:
        import torch

        super().load(device, dtype)
        variants = sorted({self._variant_for(k == "gray") for k in kinds})
        paths, missing = {}, []
        for v in variants:  # name every missing file of every needed variant at once
            try:
                paths[v] = self.weight_paths(v)
            except WeightsMissingError as e:
                missing.append(str(e))
        if missing:
            raise WeightsMissingError("\n".join(missing))
        digests = []
        for v, (path,) in paths.items():
            net = self.build_network(v)
            strict_load(net, load_state_dict_file(path), str(path))
            net = net.eval().to(device=device, dtype=torch_dtype(dtype))
            if device == "cpu":  # oneDNN convolutions are faster in channels-last layout
                net = net.to(memory_format=torch.channels_last)
            self._nets[v] = net
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
        if "qf" in self.options:
            qf_input = torch.tensor(
                [[1 - int(self.options["qf"]) / 100]], device=self.device, dtype=dt
            )
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
