"""Record PromptCIR reference outputs from the official code on seeded stand-in weights.

Usage: python tests/reference/promptcir_upstream.py /path/to/PromptCIR-NTIRE24-checkout [out.npz]
Imports ``model.MyModel`` from the checkout (lbc12345/PromptCIR-NTIRE24 @3506b1a) and takes the
functions ``test`` and ``tile_eval`` from its ``test_model.py`` (that file runs its CLI at import,
so only those two definitions are compiled from it). The 4-pass combination is upstream's
per-image loop: E0 = test(model1, x), E1 = test(model2, x), E2/E3 the same on x transposed,
(sum of the clamped passes) / 4, x255, round.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from carbench.degradations.jpeg import decode_jpeg, encode_jpeg  # noqa: E402
from tests.reference.standin import fill_standin, layout_digest  # noqa: E402

QF = 10
GAIN = 0.5
SEEDS = (11, 12)  # model_best.pth, model_best2.pth
NET_CROP = ((100, 164), (200, 264))  # 64x64 network input (already a multiple of 32)
ENS_CROP = ((100, 200), (200, 330))  # 100x130 -> padded 128x160: tile 128, overlap 96, 2 tiles
# 100x200 -> padded 128x224: tile 128, stride 32 -> column starts 0, 32, 64, 96 (4 tiles), so the
# overlap (stride) decides where the tiles lie
TILE_CROP = ((100, 200), (200, 400))


def protocol_functions(upstream: str) -> dict:
    """``test`` and ``tile_eval`` from upstream's test_model.py, compiled from its source."""
    tree = ast.parse((Path(upstream) / "test_model.py").read_text())
    keep = [
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in ("test", "tile_eval")
    ]
    ns: dict = {"torch": torch}
    exec(compile(ast.Module(keep, []), "test_model.py", "exec"), ns)
    return ns


def crop(rows, cols) -> np.ndarray:
    from PIL import Image

    img = Image.open(Path(os.environ["BENCH_DATA_ROOT"]) / "LIVE1/bikes.png").convert("RGB")
    gt = np.asarray(img)[rows[0] : rows[1], cols[0] : cols[1]].copy()
    return decode_jpeg(encode_jpeg(gt, QF))


def to_tensor(img: np.ndarray):
    return torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


def main(upstream: str, out: str) -> None:
    sys.path.insert(0, upstream)
    from model import MyModel

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    fns = protocol_functions(upstream)
    nets = []
    for seed in SEEDS:
        net = MyModel(decoder=True).eval()
        fill_standin(net, seed, GAIN)
        nets.append(net)
    net_in, ens_in, tile_in = crop(*NET_CROP), crop(*ENS_CROP), crop(*TILE_CROP)
    with torch.no_grad():
        y = nets[0](to_tensor(net_in))
        x = to_tensor(ens_in)
        xt = x.transpose(-2, -1)
        passes = [fns["test"](n, x) for n in nets] + [
            fns["test"](n, xt).transpose(-2, -1) for n in nets
        ]
        sr = sum(p.clamp(0, 1) for p in passes) / 4.0
        tiles = fns["test"](nets[0], to_tensor(tile_in))
    sr = np.clip((sr[0].numpy().transpose(1, 2, 0) * 255.0).round(), 0, 255).astype(np.uint8)
    print("net out std", y.std().item(), "pass0 std", passes[0].std().item())
    np.savez_compressed(
        out,
        net_input=net_in,
        net_out=y[0].numpy(),
        ensemble_input=ens_in,
        pass0=passes[0][0].numpy().astype(np.float16),
        ensemble_u8=sr,
        tiles_input=tile_in,
        tiles_pass0=tiles[0].numpy().astype(np.float16),
        layout=np.array(layout_digest(nets[0])),
    )


if __name__ == "__main__":
    default = str(ROOT / "tests/data/upstream/promptcir.npz")
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else default)
