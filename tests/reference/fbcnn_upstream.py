"""Record FBCNN reference outputs from the official code on seeded stand-in weights.

Usage: python tests/reference/fbcnn_upstream.py /path/to/FBCNN-checkout [out.npz]
(run in an environment with upstream's dependencies; BENCH_DATA_ROOT points at the test sets).
Imports ``models.network_fbcnn`` from the checkout (jiaxi-jiang/FBCNN @54d1831); carbench is used
only for its JPEG encoder and the stand-in recipe (tests/reference/standin.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from carbench.degradations.jpeg import decode_jpeg, encode_jpeg  # noqa: E402
from tests.reference.standin import fill_standin, layout_digest  # noqa: E402

QF = 10  # JPEG quality of the inputs
GIVEN_QF = 30  # the user-given QF of the second pass (fbcnn:qf=30 -> qf_input 0.7)
GAIN = 0.5
CASES = {  # name: (seed, channels, image, crop rows, crop cols)
    "color": (1, 3, "LIVE1/bikes.png", (100, 161), (200, 275)),
    "gray": (2, 1, "Classic5/lena.png", (100, 161), (200, 275)),
    "gray_double": (3, 1, "Classic5/barbara.png", (100, 161), (200, 275)),
}


def crop(name: str, rows, cols, channels: int) -> np.ndarray:
    from PIL import Image

    img = Image.open(Path(os.environ["BENCH_DATA_ROOT"]) / name)
    img = img.convert("RGB" if channels == 3 else "L")
    return np.asarray(img)[rows[0] : rows[1], cols[0] : cols[1]].copy()


def main(upstream: str, out: str) -> None:
    sys.path.insert(0, upstream)
    from models.network_fbcnn import FBCNN

    torch.set_num_threads(1)
    arrays = {}
    for case, (seed, ch, name, rows, cols) in CASES.items():
        gt = crop(name, rows, cols, ch)
        lq = decode_jpeg(encode_jpeg(gt, QF))
        net = FBCNN(in_nc=ch, out_nc=ch, nc=[64, 128, 256, 512], nb=4, act_mode="R").eval()
        fill_standin(net, seed, GAIN)
        x = torch.from_numpy(lq.astype(np.float32) / 255.0)
        x = (x[None] if ch == 1 else x.permute(2, 0, 1))[None]
        feats: dict = {}

        def keep(_m, _i, o, feats=feats):
            feats.setdefault("f", o)

        net.m_body_encoder.register_forward_hook(keep)
        with torch.no_grad():
            y, q = net(x)
            y_qf, q_qf = net(x, torch.tensor([[1 - GIVEN_QF / 100]]))
        u8 = (y.clamp(0, 1) * 255).round().to(torch.uint8)  # KAIR tensor2uint
        arrays |= {
            f"{case}_input": lq,
            f"{case}_bottleneck": feats["f"][0].numpy().astype(np.float16),
            f"{case}_out": y[0].numpy(),
            f"{case}_q": q.numpy(),
            f"{case}_out_u8": u8[0].numpy(),
            f"{case}_out_qf{GIVEN_QF}": y_qf[0].numpy(),
            f"{case}_layout": np.array(layout_digest(net)),
        }
        print(case, "q", q.item(), "out std", y.std().item())
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    default = str(ROOT / "tests/data/upstream/fbcnn.npz")
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else default)
