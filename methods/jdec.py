"""JDEC - Han, Im, Kim, Jin, "JDEC: JPEG Decoding via Enhanced Continuous Cosine Coefficients",
CVPR 2024 (https://arxiv.org/abs/2404.05558).

Upstream: WooKyoungHan/JDEC (models/JDEC.py, models/swinirv2.py, models/mlp.py, test.py
@e9fe835, BSD-3-Clause); the network is carbench's own implementation in
:mod:`methods.nets.jdec_net` with the upstream parameter names, so the released checkpoint
(``ckpt["model"]["sd"]``) loads with strict key matching.

JDEC does not read pixels: it reads the stored JPEG file (``sample.bitstream_path``). The DCT
coefficients and quantisation tables come from libjpeg through ``jpeglib`` (upstream uses its
bundled ``dct_manip`` extension, which reads the same arrays). Preprocessing as in upstream's
test script: coefficients de-quantised by their component's table (upstream uses the Cb table
for Cr too; libjpeg, Pillow and OpenCV files share one chroma table), clamped to [-1024, 1016]
and mapped linearly to [-1, 1]; the Y and Cb tables stacked (2x8x8) and mapped the same way;
the network's output + 0.5 is RGB in [0, 1], clamped, x255 and rounded. Only 3-component
4:2:0 YCbCr files are accepted (the model embeds one chroma block per 2x2 luma blocks).

Image sizes: the network needs a block grid that is a multiple of 14 blocks (112 pixels) on each
side (7-token Swin windows on a grid of 4x4-pixel sub-blocks). Upstream's test mirror-pads
every image to 1120x1120 *before* encoding; carbench's inputs are already encoded, so the
padding is done on the coefficient grid instead: the blocks libjpeg stores (Y: ceil(H/8) x
ceil(W/8), chroma: ceil(H/16) x ceil(W/16)) are extended to the next multiple of 14 (7 for
chroma) by whole-block mirroring, which is exact in the DCT domain (a block flipped up-down
has its coefficient rows multiplied by (-1)^v, left-right its columns by (-1)^u), and the
output is cropped to the image size. For sides that are multiples of 16 this matches the
pixels of a mirror-padded image (its chroma subsampling aside); otherwise the mirror axis
falls at the block edge, after the encoder's own edge replication inside the last block. The
padded canvas is the smallest one that fits (not upstream's fixed 1120), so pixels near the
right and bottom edges can differ slightly from upstream's protocol. Tiling (``--tile``) is
not used: the per-pixel decoder runs over bands of rows to bound memory instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carbench.core.errors import BenchError, ImageError
from carbench.core.weights import WeightFile
from carbench.methods.base import Capabilities, Method, Sample
from carbench.methods.torch_utils import (
    load_state_dict_file,
    loaded,
    sha256_of,
    to_uint8,
    torch_dtype,
)

GDRIVE_ID = "1_TLoGHLBtdbPdApRmI0y0YW2nEqnO8Dr"
#: upstream registry names of the model (the old one is mapped to "jdec" upstream)
MODEL_NAMES = ("jdec", "IPEC-decoder_dctform-rgb-share-size4")
#: constructor args of the released model (configs/train_JDEC.yaml)
CONSTRUCTOR_ARGS = {
    "encoder_spec": {
        "name": "swinv2_group_embedded",
        "args": {"use_subblock": True, "emb_size": 256, "num_heads": [8, 8, 8, 8, 8]},
    },
    "decoder_spec": {"name": "mlp_1dconv", "args": {"out_dim": 3, "hidden_list": [512, 512, 512]}},
    "hidden_dim": 512,
}
COEF_MIN, COEF_MAX = -1024, 1016  # de-quantised coefficient range, mapped to [-1, 1]
GRID = 14  # luma blocks per side must be a multiple of this (chroma: 7)


@dataclass(frozen=True)
class JpegCoefficients:
    """Quantised DCT coefficients of a 4:2:0 JPEG file, blocks ``(rows, cols, 8, 8)`` in natural
    order (row index = vertical frequency), and each component's quantisation table."""

    y: np.ndarray
    cb: np.ndarray
    cr: np.ndarray
    qt_y: np.ndarray
    qt_cb: np.ndarray
    qt_cr: np.ndarray
    height: int
    width: int


def read_coefficients(path: Path) -> JpegCoefficients:
    """DCT coefficients and quantisation tables of a 3-component 4:2:0 JPEG file (libjpeg via
    jpeglib); raises :class:`ImageError` naming the file for anything else."""
    import jpeglib

    path = Path(path)
    try:
        jpeg = jpeglib.read_dct(str(path))
        y, cb, cr = jpeg.Y, jpeg.Cb, jpeg.Cr
    except OSError as e:
        raise ImageError(path, f"JDEC cannot read the JPEG coefficients ({e})") from None
    n = jpeg.num_components
    if n != 3 or cb is None or cr is None:
        kind = "a gray (1-component)" if n == 1 else f"a {n}-component"
        raise ImageError(path, f"JDEC needs a 3-component YCbCr 4:2:0 JPEG, this is {kind} JPEG")
    if str(jpeg.jpeg_color_space) != "JCS_YCbCr":
        raise ImageError(path, f"JDEC needs a YCbCr JPEG, this one is {jpeg.jpeg_color_space}")
    factors = np.asarray(jpeg.samp_factor).tolist()
    if factors != [[2, 2], [1, 1], [1, 1]]:
        raise ImageError(
            path,
            f"JDEC only supports 4:2:0 chroma subsampling (sampling factors [[2,2],[1,1],[1,1]]), "
            f"this file has {factors}" + (" (4:4:4)" if factors == [[1, 1]] * 3 else ""),
        )
    tables = [np.asarray(jpeg.qt[i], dtype=np.int32) for i in jpeg.quant_tbl_no]
    return JpegCoefficients(y, cb, cr, *tables, height=int(jpeg.height), width=int(jpeg.width))


def mirror_blocks(blocks: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Extend a block grid ``(r, c, 8, 8)`` to ``(rows, cols, 8, 8)`` by whole-block symmetric
    mirroring (period 2r / 2c), flipping each mirrored block in the DCT domain."""

    def axis(n: int, target: int) -> tuple[np.ndarray, np.ndarray]:
        j = np.arange(target) % (2 * n)
        flipped = j >= n
        index = np.where(flipped, 2 * n - 1 - j, j)
        alternating = (-1) ** np.arange(8)
        return index, np.where(flipped[:, None], alternating, 1)

    ri, rs = axis(blocks.shape[0], rows)
    ci, cs = axis(blocks.shape[1], cols)
    out = blocks[ri][:, ci].astype(np.int32)
    return out * rs[:, None, :, None] * cs[None, :, None, :]


def padded_grid(coeffs: JpegCoefficients) -> tuple[int, int]:
    """Luma block grid the network runs on: the MCU grid rounded up to multiples of 14."""
    rows, cols = coeffs.cb.shape[:2]
    half = GRID // 2
    return -(-rows // half) * GRID, -(-cols // half) * GRID


def _to_unit_range(values):
    """Clamp to [-1024, 1016] and map linearly to [-1, 1] (float32)."""
    import torch

    v = torch.as_tensor(values).clamp(COEF_MIN, COEF_MAX).to(torch.float32)
    return (v - COEF_MIN) / (COEF_MAX - COEF_MIN) * 2 - 1


def network_inputs(coeffs: JpegCoefficients, device="cpu", dtype=None):
    """``(y, cbcr, qmap)`` for :class:`methods.nets.jdec_net.JDECNet`, batch of one, on the padded
    grid of :func:`padded_grid`."""
    import torch

    rows, cols = padded_grid(coeffs)
    y = mirror_blocks(coeffs.y, rows, cols) * coeffs.qt_y
    cbcr = np.stack(
        [
            mirror_blocks(coeffs.cb, rows // 2, cols // 2) * coeffs.qt_cb,
            mirror_blocks(coeffs.cr, rows // 2, cols // 2) * coeffs.qt_cr,
        ]
    )
    qmap = np.stack([coeffs.qt_y, coeffs.qt_cb])
    dtype = dtype or torch.float32
    return tuple(
        _to_unit_range(a)[None].to(device=device, dtype=dtype) for a in (y[None], cbcr, qmap)
    )


def _architecture(args: dict) -> dict:
    """The constructor args that shape the network, with upstream's defaults filled in
    (others, such as the encoder's ``device`` or unused ``depth``, change nothing)."""
    enc = args.get("encoder_spec") or {}
    dec = args.get("decoder_spec") or {}
    enc_args, dec_args = enc.get("args") or {}, dec.get("args") or {}
    hidden = dec_args.get("hidden_list")
    return {
        "encoder_spec.name": enc.get("name"),
        "encoder_spec.args.emb_size": enc_args.get("emb_size", 180),
        "encoder_spec.args.num_heads": list(enc_args.get("num_heads", [6] * 5)),
        "decoder_spec.name": dec.get("name"),
        "decoder_spec.args.hidden_list": list(hidden) if hidden is not None else None,
        "hidden_dim": args.get("hidden_dim", 256),
    }


def check_checkpoint_spec(spec: dict, source: str) -> None:
    """Refuse an upstream ``ckpt["model"]`` whose name or args describe another network."""
    name = spec.get("name")
    if name is not None and name not in MODEL_NAMES:
        raise BenchError(f"{source}: checkpoint is for model {name!r}, not JDEC")
    if spec.get("args") is None:
        return
    have, want = _architecture(spec["args"]), _architecture(CONSTRUCTOR_ARGS)
    diff = [f"{k}: file {have[k]!r} vs expected {want[k]!r}" for k in want if have[k] != want[k]]
    if diff:
        raise BenchError(
            f"{source}: checkpoint args describe a different JDEC configuration than the "
            "released one (configs/train_JDEC.yaml): " + "; ".join(diff)
        )


class JDEC(Method):
    name = "jdec"
    label = "JDEC"
    description = "JDEC (CVPR 2024), decodes the JPEG coefficients with continuous cosine bases"
    group = "transformer"
    paper = "https://arxiv.org/abs/2404.05558"
    capabilities = Capabilities(gray="refuse", needs_bitstream=".jpg")  # DCT coefficients
    weights = {
        "default": [
            WeightFile(
                "jdec.pth",
                url=f"https://drive.google.com/file/d/{GDRIVE_ID}",
                gdrive=GDRIVE_ID,
                licence="BSD-3-Clause",
            )
        ]
    }

    def __init__(self, **given: object) -> None:
        super().__init__(**given)
        self._net = None

    def build_network(self, variant: str | None = None):
        """JDEC with random weights (configs/train_JDEC.yaml); works on the meta device."""
        from carbench.methods.nets.jdec_net import JDECNet

        enc = CONSTRUCTOR_ARGS["encoder_spec"]["args"]
        dec = CONSTRUCTOR_ARGS["decoder_spec"]["args"]
        return JDECNet(
            emb_size=enc["emb_size"],
            num_heads=tuple(enc["num_heads"]),
            hidden_dim=CONSTRUCTOR_ARGS["hidden_dim"],
            hidden_list=tuple(dec["hidden_list"]),
            out_dim=dec["out_dim"],
        )

    def load(self, device: str = "cpu", dtype: str = "fp32", kinds=("rgb", "gray")) -> None:
        import torch

        super().load(device, dtype)
        (path,) = self.weight_paths()
        ckpt = load_state_dict_file(path)
        sd = ckpt
        if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict):
            spec = ckpt["model"]
            if "sd" not in spec:
                raise BenchError(f"{path}: ckpt['model'] has no 'sd' (state dict)")
            check_checkpoint_spec(spec, str(path))
            sd = spec["sd"]
        with torch.device("meta"):  # no random init: every parameter and buffer is in the file
            net = self.build_network()
        net = net.to_empty(device="cpu")
        self._net = loaded(net, sd, str(path), device, dtype)
        self._weights_sha = sha256_of([path])

    def restore(self, sample: Sample) -> np.ndarray:
        import torch

        if sample.bitstream_path is None:
            raise BenchError(f"jdec reads the JPEG file itself; sample {sample.image} has none")
        coeffs = read_coefficients(sample.bitstream_path)  # refuses unsupported files first
        if self._net is None:
            raise BenchError("jdec: call load() before restore()")
        y, cbcr, qmap = network_inputs(coeffs, self.device, torch_dtype(self.dtype))
        with torch.no_grad():
            out = self._net(y, cbcr, qmap)
        return to_uint8(out[..., : coeffs.height, : coeffs.width] + 0.5)
