"""Record JDEC reference outputs from the official code on seeded stand-in weights.

Usage: python tests/reference/jdec_upstream.py /path/to/JDEC-checkout [out.npz]
Builds ``models.make({"name": "jdec", "args": <configs/train_JDEC.yaml>})`` from the checkout
(WooKyoungHan/JDEC @e9fe835, full size), fills it with ``standin.fill_standin`` and runs the
input preparation of upstream's ``test.py`` on one 112x112 crop (a multiple of 112 pixels, so
upstream's mirror padding to the 1120 canvas can be left out: the network sees the crop's own
14x14 block grid). Differences from a GPU run of ``test.py``, all outside the network:

* ``dct_manip`` (upstream's C++ libjpeg extension) is not built here; its ``read_coefficients``
  is emulated with jpeglib (the same libjpeg arrays: int16 Y ``(1, H/8, W/8, 8, 8)``, CbCr
  ``(2, H/16, W/16, 8, 8)``, tables ``(3, 8, 8)``, blocks in libjpeg's natural order). Import-only
  modules the network does not use (tensorboardX, jpegio, matplotlib, dct_manip) are stubbed.
* upstream calls ``.cuda()`` inside the forward pass; here ``Tensor.cuda``/``Module.cuda`` return
  their argument unchanged, so everything runs on the CPU (encoder ``device="cpu"``).
* the JPEG is written by OpenCV's ``imwrite`` at QF 30 as in ``test.py`` (BGR input).
The normalisation is upstream's own ``utils.custom_transforms.ToRange(-1, 1, -1024, 1016)``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.reference.standin import fill_standin, layout_digest  # noqa: E402

QF = 30  # test.py's loop value
GAIN = 0.5
SEED = 21
CROP = ((200, 312), (300, 412))  # LIVE1/bikes.png, 112x112
NATIVE_CROP = ((150, 374), (250, 474))  # 224x224: 56x56 sub-block tokens, the stored mask's grid
# second stand-in ("hf"): the last convs of the amplitude and frequency heads scaled, so that the
# cosine basis varies across a sub-block (with plain stand-ins the frequencies are ~0.2 and the
# output hardly depends on the pixel positions inside a sub-block)
HF_SCALE = {"coef": 30.0, "freq": 8.0}


def _stub_imports() -> None:
    """Modules imported at module level by upstream files but not used by the network."""
    for name in (
        "tensorboardX",
        "jpegio",
        "dct_manip",
        "matplotlib",
        "matplotlib.pyplot",
        "mpl_toolkits",
        "mpl_toolkits.mplot3d",
    ):
        if name not in sys.modules:
            try:
                __import__(name)
            except ImportError:
                mod = types.ModuleType(name)
                mod.SummaryWriter = mod.Axes3D = object
                sys.modules[name] = mod


def scale_heads(model) -> None:
    """The "hf" stand-in: ``coef[2]`` and ``freq[2]`` (weight and bias) times HF_SCALE."""
    with torch.no_grad():
        for name, k in HF_SCALE.items():
            for p in getattr(model, name)[2].parameters():
                p.mul_(k)


def read_coefficients(path: str):
    """``dct_manip.read_coefficients`` emulated: (dims, quant, Y, CbCr) as int16 tensors."""
    import jpeglib

    j = jpeglib.read_dct(path)
    quant = np.stack([np.asarray(j.qt[i]) for i in j.quant_tbl_no]).astype(np.int16)
    y = torch.from_numpy(np.asarray(j.Y, dtype=np.int16)[None].copy())
    cbcr = torch.from_numpy(np.stack([j.Cb, j.Cr]).astype(np.int16))
    return None, torch.from_numpy(quant), y, cbcr


def main(upstream: str, out: str, crop=CROP, hf: bool = True) -> None:
    import cv2
    from PIL import Image

    sys.path.insert(0, upstream)
    _stub_imports()
    torch.Tensor.cuda = lambda self, *a, **k: self  # CPU run (see module docstring)
    torch.nn.Module.cuda = lambda self, *a, **k: self
    import models
    import utils.custom_transforms as ctrans

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    spec = {
        "name": "jdec",
        "args": {
            "encoder_spec": {
                "name": "swinv2_group_embedded",
                "args": {
                    "use_subblock": True,
                    "emb_size": 256,
                    "num_heads": [8] * 5,
                    "device": "cpu",
                },
            },
            "decoder_spec": {
                "name": "mlp_1dconv",
                "args": {"out_dim": 3, "hidden_list": [512, 512, 512]},
            },
            "hidden_dim": 512,
        },
    }
    model = models.make(spec).eval()
    fill_standin(model, SEED, GAIN)
    img = Image.open(Path(os.environ["BENCH_DATA_ROOT"]) / "LIVE1/bikes.png").convert("RGB")
    (r0, r1), (c0, c1) = crop
    gt = np.asarray(img)[r0:r1, c0:c1].copy()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "temp_.jpg")
        cv2.imwrite(path, np.ascontiguousarray(gt[..., ::-1]), [int(cv2.IMWRITE_JPEG_QUALITY), QF])
        jpeg = np.frombuffer(Path(path).read_bytes(), dtype=np.uint8)
        _, dqt, y_q, cbcr_q = read_coefficients(path)
    # test.py, from here on
    q_y, q_cbcr = dqt[0], dqt[1]
    inp = torch.clamp(y_q * q_y, min=-1024, max=1016)
    inp_cbcr = torch.clamp(cbcr_q * q_cbcr, min=-1024, max=1016)
    normalize = ctrans.ToRange(val_min=-1, val_max=1, orig_min=-1024, orig_max=1016)
    inp, inp_cbcr = normalize(inp), normalize(inp_cbcr)
    qmap = normalize(torch.stack([q_y, q_cbcr], dim=0))
    with torch.no_grad():
        pred = model(inp.unsqueeze(0), inp_cbcr.unsqueeze(0), qmap.unsqueeze(0))
        pred = pred.squeeze(0) + 0.5
        if hf:
            scale_heads(model)
            pred_hf = model(inp.unsqueeze(0), inp_cbcr.unsqueeze(0), qmap.unsqueeze(0))[0] + 0.5
    pred = pred[:, : gt.shape[0], : gt.shape[1]]
    pred_u8 = (pred * 255).round().clamp(0, 255).permute(1, 2, 0).numpy().astype(np.uint8)
    print("pred std", pred.std().item(), "range", pred.min().item(), pred.max().item())
    extra = {}
    if hf:
        print("hf std", pred_hf.std().item())
        extra["out_hf"] = pred_hf.numpy().astype(np.float32)
    np.savez_compressed(
        out,
        **extra,
        gt=gt,
        jpeg=jpeg,
        y_coef=y_q.numpy(),
        cbcr_coef=cbcr_q.numpy(),
        quant=dqt.numpy(),
        net_y=inp.numpy().astype(np.float32),
        net_qmap=qmap.numpy().astype(np.float32),
        out=pred.numpy().astype(np.float32),
        out_u8=pred_u8,
        layout=np.array(layout_digest(model)),
    )


if __name__ == "__main__":
    if "--native" in sys.argv:  # jdec_native.npz: a 224x224 crop, the token grid upstream's
        # stored attention mask is built for (TRAIN_RES 56), without the "hf" variant
        args = [a for a in sys.argv[1:] if a != "--native"]
        default = str(ROOT / "tests/data/upstream/jdec_native.npz")
        main(args[0], args[1] if len(args) > 1 else default, crop=NATIVE_CROP, hf=False)
    else:
        default = str(ROOT / "tests/data/upstream/jdec.npz")
        main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else default)
