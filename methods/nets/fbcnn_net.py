"""The FBCNN family of U-Nets (KAIR lineage): FBCNN (ICCV 2021) and CODiff's CaVE encoder.

carbench's own implementation with the upstream parameter names (jiaxi-jiang/FBCNN
models/network_fbcnn.py @54d1831; jp-guo/CODiff cave/cave.py @86e2f04), so released
checkpoints load with strict key matching.

Layout: head conv; three stages of 4 residual blocks each followed by a strided-conv
downsampler; 4 encoder and 4 decoder residual blocks at the bottleneck; three transposed-conv
upsamplers each followed by 4 QF-attention blocks (x + gamma * f(x) + beta); tail conv; a QF
head (4 residual blocks, global pool, MLP 512-512-512-1, sigmoid) on the bottleneck.
FBCNN: no batch norm, strides 2/2/2, gamma/beta from an embedding of the QF. CaVE: batch norm
(momentum 0.9, eps 1e-4) inside the residual branches, strides 2/4/4, gamma = beta = 1.
"""

from __future__ import annotations

NC = (64, 128, 256, 512)
NB = 4


def build_fbcnn_unet(
    in_nc: int = 3,
    out_nc: int = 3,
    batch_norm: bool = False,
    strides: tuple[int, int, int] = (2, 2, 2),
    qf_embedding: bool = True,
):
    """The network (random init). ``forward(x, qf_input=None) -> (image, q)`` with
    q = predicted 1 - QF/100; ``encode(x)`` returns the bottleneck features (B, 512, h, w)."""
    import torch.nn as nn
    import torch.nn.functional as F

    def branch(ch: int) -> nn.Sequential:
        if batch_norm:
            return nn.Sequential(
                nn.Conv2d(ch, ch, 3, 1, 1),
                nn.BatchNorm2d(ch, momentum=0.9, eps=1e-4),
                nn.ReLU(inplace=True),
                nn.Conv2d(ch, ch, 3, 1, 1),
            )
        return nn.Sequential(
            nn.Conv2d(ch, ch, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(ch, ch, 3, 1, 1)
        )

    class ResBlock(nn.Module):
        def __init__(self, ch: int) -> None:
            super().__init__()
            self.res = branch(ch)

        def forward(self, x):
            return x + self.res(x)

    class QFAttention(nn.Module):
        """Residual block whose branch is modulated per channel: x + gamma * f(x) + beta."""

        def __init__(self, ch: int) -> None:
            super().__init__()
            self.res = branch(ch)

        def forward(self, x, gamma, beta):
            if isinstance(gamma, float):
                return x + gamma * self.res(x) + beta
            return x + gamma[..., None, None] * self.res(x) + beta[..., None, None]

    def blocks(ch: int) -> list[nn.Module]:
        return [ResBlock(ch) for _ in range(NB)]

    def down(cin: int, cout: int, s: int) -> nn.Sequential:
        return nn.Sequential(*blocks(cin), nn.Conv2d(cin, cout, s, s, 0))

    def up(cin: int, cout: int, s: int) -> nn.ModuleList:
        return nn.ModuleList(
            [nn.ConvTranspose2d(cin, cout, s, s, 0), *[QFAttention(cout) for _ in range(NB)]]
        )

    class FbcnnUNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            s1, s2, s3 = strides
            self.m_head = nn.Conv2d(in_nc, NC[0], 3, 1, 1)
            self.m_down1 = down(NC[0], NC[1], s1)
            self.m_down2 = down(NC[1], NC[2], s2)
            self.m_down3 = down(NC[2], NC[3], s3)
            self.m_body_encoder = nn.Sequential(*blocks(NC[3]))
            self.m_body_decoder = nn.Sequential(*blocks(NC[3]))
            self.m_up3 = up(NC[3], NC[2], s3)
            self.m_up2 = up(NC[2], NC[1], s2)
            self.m_up1 = up(NC[1], NC[0], s1)
            self.m_tail = nn.Conv2d(NC[0], out_nc, 3, 1, 1)
            self.qf_pred = nn.Sequential(
                *blocks(NC[3]),
                nn.AdaptiveAvgPool2d((1, 1)),
                nn.Flatten(),
                nn.Linear(512, 512),
                nn.ReLU(),
                nn.Linear(512, 512),
                nn.ReLU(),
                nn.Linear(512, 1),
                nn.Sigmoid(),
            )
            if qf_embedding:
                self.qf_embed = nn.Sequential(
                    nn.Linear(1, 512),
                    nn.ReLU(),
                    nn.Linear(512, 512),
                    nn.ReLU(),
                    nn.Linear(512, 512),
                    nn.ReLU(),
                )
                for i, ch in ((3, NC[2]), (2, NC[1]), (1, NC[0])):
                    setattr(self, f"to_gamma_{i}", nn.Sequential(nn.Linear(512, ch), nn.Sigmoid()))
                    setattr(self, f"to_beta_{i}", nn.Sequential(nn.Linear(512, ch), nn.Tanh()))

        @staticmethod
        def _pad8(x):
            h, w = x.shape[-2:]
            return F.pad(x, (0, (-w) % 8, 0, (-h) % 8), mode="replicate")

        def _encoder(self, x):
            x1 = self.m_head(self._pad8(x))
            x2 = self.m_down1(x1)
            x3 = self.m_down2(x2)
            x4 = self.m_down3(x3)
            return x1, x2, x3, x4, self.m_body_encoder(x4)

        def encode(self, x):
            """Bottleneck features after replicate padding to a multiple of 8 (CaVE tokens)."""
            return self._encoder(x)[-1]

        def predict_q(self, x):
            """The QF head: predicted 1 - QF/100, shape (B, 1)."""
            return self.qf_pred(self.encode(x))

        def forward(self, x, qf_input=None):
            """Returns (restored, predicted 1 - QF/100)."""
            h, w = x.shape[-2:]
            x1, x2, x3, x4, x = self._encoder(x)
            qf = self.qf_pred(x)
            x = self.m_body_decoder(x)
            if qf_embedding:
                emb = self.qf_embed(qf if qf_input is None else qf_input)
            for level, skip in ((3, x4), (2, x3), (1, x2)):
                stage = getattr(self, f"m_up{level}")
                if qf_embedding:
                    gamma = getattr(self, f"to_gamma_{level}")(emb)
                    beta = getattr(self, f"to_beta_{level}")(emb)
                else:
                    gamma = beta = 1.0
                x = stage[0](x + skip)
                for blk in stage[1:]:
                    x = blk(x, gamma, beta)
            x = self.m_tail(x + x1)
            return x[..., :h, :w], qf

    return FbcnnUNet()
