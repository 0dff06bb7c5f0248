"""Record upstream SwinIR's JPEG-CAR outputs on seeded stand-in weights (tests/test_swinir.py).

Usage (outside the project, in an environment where upstream's imports work):
    python tests/reference/swinir_reference.py /path/to/JingyunLiang/SwinIR OUT_DIR

Runs upstream's ``main_test_swinir.py`` main() for ``jpeg_car`` (a Classic5 crop) and
``color_jpeg_car`` (a LIVE1 crop) at QF 10 on stand-in weights, capturing the padded input and
float output of its ``test`` function, and writes ``swinir_<task>.npz``: ``gt``, ``lq`` (the
decoded JPEG upstream feeds the model), ``padded`` and ``out`` (float32), ``png`` (its uint8
result). Reads the crops from BENCH_DATA_ROOT. Imports nothing from upstream at module level,
so the test can import :func:`standin_state_dict` from here.
Upstream: JingyunLiang/SwinIR @6545850fbf8df298df73d81f3e8cba638787c8bd.
Environment and command: ``python -m tests.reference.rebuild --show swinir_jpeg_car.npz``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

CROPS = {  # task: (image under BENCH_DATA_ROOT, top, left, height, width)
    "jpeg_car": ("Classic5/barbara.png", 200, 300, 45, 52),
    "color_jpeg_car": ("LIVE1/bikes.png", 100, 200, 40, 47),
}
QF = 10
BUFFERS = ("relative_position_index", "attn_mask")


def standin_state_dict(reference: dict, seed: int = 0) -> dict:
    """Seeded stand-in values for every parameter of ``reference`` (key -> tensor); buffers are
    kept. Each key draws from its own generator (seed xor crc32 of the name), so the values do
    not depend on key order: weights N(0, 1) * 0.5 / sqrt(fan_in), LayerNorm weights 1 + N * 0.1,
    other 1-D tensors N * 0.02."""
    import torch

    out = {}
    for key, ref in reference.items():
        if key.endswith(BUFFERS):
            out[key] = ref.clone()
            continue
        g = torch.Generator().manual_seed(seed ^ zlib.crc32(key.encode()))
        v = torch.randn(tuple(ref.shape), generator=g, dtype=torch.float32)
        if ref.ndim >= 2:
            v *= 0.5 / (ref[0].numel() ** 0.5)
        elif "norm" in key and key.endswith("weight"):
            v = 1 + 0.1 * v
        else:
            v *= 0.02
        out[key] = v
    return out


def _crop(task: str) -> np.ndarray:
    import cv2

    name, top, left, h, w = CROPS[task]
    img = cv2.imread(str(Path(os.environ["BENCH_DATA_ROOT"]) / name), cv2.IMREAD_UNCHANGED)
    return img[top : top + h, left : left + w]


def record(upstream: Path, task: str, out_dir: Path) -> Path:
    import cv2
    import torch

    sys.path.insert(0, str(upstream))
    import main_test_swinir as mts
    from models.network_swinir import SwinIR

    gt = _crop(task)
    gray = task == "jpeg_car"
    net = SwinIR(
        upscale=1,
        in_chans=1 if gray else 3,
        img_size=126,
        window_size=7,
        img_range=255.0,
        depths=[6] * 6,
        embed_dim=180,
        num_heads=[6] * 6,
        mlp_ratio=2,
        upsampler="",
        resi_connection="1conv",
    )
    sd = standin_state_dict(net.state_dict())
    captured = []
    run_test = mts.test

    def capture(img_lq, model, args, window_size):
        y = run_test(img_lq, model, args, window_size)
        captured.append((img_lq.detach().cpu().numpy().copy(), y.detach().cpu().numpy().copy()))
        return y

    mts.test = capture
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "gt").mkdir()
        cv2.imwrite(str(tmp / "gt" / "crop.png"), gt)
        model_path = tmp / "standin.pth"
        torch.save({"params": sd}, model_path)
        argv = [
            "main_test_swinir.py",
            "--task",
            task,
            "--jpeg",
            str(QF),
            "--model_path",
            str(model_path),
            "--folder_gt",
            str(tmp / "gt"),
        ]
        cwd, old_argv = os.getcwd(), sys.argv
        try:
            os.chdir(tmp)
            sys.argv = argv
            mts.main()
        finally:
            os.chdir(cwd)
            sys.argv = old_argv
        png = cv2.imread(
            str(tmp / f"results/swinir_{task}_jpeg{QF}/crop_SwinIR.png"), cv2.IMREAD_UNCHANGED
        )
    # the decoded JPEG upstream's get_image_pair builds (same call, same library)
    _, enc = cv2.imencode(".jpg", gt, [int(cv2.IMWRITE_JPEG_QUALITY), QF])
    lq = cv2.imdecode(enc, 0 if gray else 1)
    if not gray:  # store RGB like carbench
        gt, lq, png = gt[..., ::-1], lq[..., ::-1], png[..., ::-1]
    ((padded, out),) = captured
    path = out_dir / f"swinir_{task}.npz"
    np.savez_compressed(
        path,
        gt=np.ascontiguousarray(gt),
        lq=np.ascontiguousarray(lq),
        padded=padded[0].astype(np.float32),
        out=out[0].astype(np.float32),
        png=np.ascontiguousarray(png),
    )
    return path


if __name__ == "__main__":
    up, dest = Path(sys.argv[1]), Path(sys.argv[2])
    dest.mkdir(parents=True, exist_ok=True)
    for t in CROPS:
        print(record(up, t, dest))
