"""SwinIR for JPEG artifact removal - Liang et al., "SwinIR: Image Restoration Using Swin
Transformer", ICCV-W 2021 (https://arxiv.org/abs/2108.10257).

Upstream: JingyunLiang/SwinIR @6545850 (``main_test_swinir.py`` tasks ``jpeg_car`` and
``color_jpeg_car``, ``models/network_swinir.py``; code Apache-2.0, weights from its GitHub
release v0.0). The network is carbench's SwinIR (:class:`methods.nets.swinir_net.SwinIR`) in the
CAR configuration: no upsampler, output = input + residual, 1 (gray) or 3 (colour) channels,
width 180, 6 groups of 6 blocks with 6 heads, 7x7 windows (JPEG's 8x8 blocks never line up
with them), ``img_size`` 126, MLP ratio 2, ``img_range`` 255; checkpoints load strictly.

Protocol as upstream's test script:

* one model per quality factor (10, 20, 30, 40), chosen from the sample's QF. A QF without its
  own model (or a degradation without a single QF, e.g. double JPEG) is refused unless
  ``swinir:model=q20`` names the model to use for every image;
* gray images go to the gray models, RGB images to the colour models (upstream's gray task
  compresses the BT.601 studio-range Y channel of colour test images, which is what the gray
  datasets here hold, e.g. LIVE1_gray);
* input in [0, 1] (uint8 / 255; the network multiplies by 255 after subtracting the mean, zero
  for gray, the DIV2K RGB mean for colour), symmetric padding (the image followed by its mirror,
  edge row included) by ``7 * (side // 7 + 1) - side`` on the bottom and right, so always 1 to 7
  rows/columns even when the side is already a multiple of 7, cropped back afterwards; the
  output is clamped to [0, 1], scaled by 255 and rounded.
* ``bench run --tile N`` (N a multiple of 7) runs overlapping tiles (overlap 32, averaged) on
  the padded image, as upstream's ``--tile``; upstream shrinks the tile to the shorter side,
  carbench keeps it per axis.

Weights: the eight release files are declared with their official URLs only; no sha256 or size
is published upstream and none was found elsewhere here, so a download is not hash-checked
(and no mirror can be accepted for them).
"""

from __future__ import annotations

import numpy as np

from carbench.core.errors import BenchError
from carbench.core.options import Option
from carbench.core.weights import WeightFile
from carbench.methods.base import Capabilities, Method, Sample
from carbench.methods.tiling import tiled
from carbench.methods.torch_utils import (
    load_state_dict_file,
    loaded,
    sha256_of,
    to_tensor,
    to_uint8,
    torch_dtype,
)

RELEASE = "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/"
QFS = (10, 20, 30, 40)
WINDOW = 7
TILE_OVERLAP = 32
#: main_test_swinir.py, define_model for jpeg_car / color_jpeg_car
CAR_CONFIG = dict(
    img_size=126,
    embed_dim=180,
    depths=(6,) * 6,
    num_heads=(6,) * 6,
    window_size=WINDOW,
    mlp_ratio=2.0,
    sf=1,
    img_range=255.0,
    upsampler="",
)
FILE_STEM = {
    "gray": "006_CAR_DFWB_s126w7_SwinIR-M_jpeg",
    "color": "006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg",
}


def _weight(kind: str, qf: int) -> WeightFile:
    name = f"{FILE_STEM[kind]}{qf}.pth"
    return WeightFile(name, RELEASE + name, licence="Apache-2.0")


def build_swinir_car(in_chans: int):
    """SwinIR-M for JPEG CAR with ``in_chans`` 1 (gray) or 3 (colour), random weights."""
    from carbench.methods.nets.swinir_net import SwinIR

    return SwinIR(in_chans=in_chans, **CAR_CONFIG)


def pad_symmetric(x, window: int = WINDOW):
    """Upstream's test padding: append the mirrored image below and to the right and keep
    ``window * (side // window + 1)`` rows/columns (1 to ``window`` extra, never 0)."""
    import torch

    h, w = x.shape[-2:]
    x = torch.cat([x, torch.flip(x, [2])], 2)[..., : (h // window + 1) * window, :]
    return torch.cat([x, torch.flip(x, [3])], 3)[..., : (w // window + 1) * window]


class SwinIRCar(Method):
    name = "swinir"
    label = "SwinIR"
    description = "SwinIR-M (ICCV-W 2021) JPEG CAR models, one per QF 10/20/30/40, window 7"
    group = "transformer"
    paper = "https://arxiv.org/abs/2108.10257"
    capabilities = Capabilities(needs_qf=True)
    weights = {f"{k}-q{q}": [_weight(k, q)] for k in ("gray", "color") for q in QFS}
    declared_options = (
        Option(
            "model",
            "choice",
            choices=tuple(f"q{q}" for q in QFS),
            help="one model for every set (default: the model of each set's QF)",
        ),
    )

    def __init__(self, **given: object) -> None:
        super().__init__(**given)
        self.model_qf: int | None = int(self.opt("model")[1:]) if self.opt("model") else None
        self._paths: dict[str, object] = {}
        self._nets: dict[str, object] = {}

    def refusal(self, degradation, kinds: set[str]) -> str | None:
        if self.model_qf:
            return None
        qf = degradation.params().get("qf")
        if qf is not None and int(qf) not in QFS:
            return (
                f"swinir has models for QF {', '.join(map(str, QFS))} only, not for QF {qf}; "
                "name one with swinir:model=q10|q20|q30|q40"
            )
        return super().refusal(degradation, kinds)

    def needed_variants(self, kinds=("rgb", "gray")) -> list[str]:
        colours = sorted("gray" if k == "gray" else "color" for k in kinds)
        return [f"{c}-q{q}" for c in colours for q in self._qfs()]

    def build_network(self, variant: str | None = None):
        kind = (variant or "gray-q10").split("-")[0]
        if kind not in FILE_STEM:
            raise BenchError(f"swinir networks: gray-q*, color-q*; got {variant!r}")
        return build_swinir_car(1 if kind == "gray" else 3)

    def _qfs(self) -> tuple[int, ...]:
        return (self.model_qf,) if self.model_qf else QFS

    def load(self, device: str = "cpu", dtype: str = "fp32", kinds=("rgb", "gray")) -> None:
        """Checks that every model the run may need is present (each QF of each image kind,
        or only ``model=``); networks are read on first use."""
        super().load(device, dtype)
        if self.tile and self.tile % WINDOW:
            raise BenchError(f"swinir: --tile must be a multiple of {WINDOW}, got {self.tile}")
        self.check_weights(kinds)
        for v in self.needed_variants(kinds):
            (self._paths[v],) = self.weight_paths(v)
        self._nets.clear()
        self._weights_sha = sha256_of([self._paths[v] for v in sorted(self._paths)])

    def model_for(self, sample: Sample) -> str:
        """The variant (``gray-q10`` ...) that restores ``sample``."""
        kind = "gray" if sample.decoded.ndim == 2 else "color"
        if self.model_qf:
            return f"{kind}-q{self.model_qf}"
        qf = sample.params.get("qf")
        if qf is None or int(float(qf)) not in QFS:
            got = f"QF {int(float(qf))}" if qf is not None else f"{sample.degradation or 'it'}"
            raise BenchError(
                f"swinir has models for QF {', '.join(map(str, QFS))} only, not for {got}; "
                "name one with swinir:model=q10|q20|q30|q40"
            )
        return f"{kind}-q{int(float(qf))}"

    def _net(self, variant: str):
        if variant not in self._nets:
            if variant not in self._paths:
                (self._paths[variant],) = self.weight_paths(variant)
            path = self._paths[variant]
            net = self.build_network(variant)
            state = load_state_dict_file(path)
            self._nets[variant] = loaded(net, state, str(path), self.device, self.dtype)
        return self._nets[variant]

    def restore(self, sample: Sample) -> np.ndarray:
        import torch

        net = self._net(self.model_for(sample))
        h, w = sample.decoded.shape[:2]
        x = pad_symmetric(to_tensor(sample.decoded, self.device, torch_dtype(self.dtype)))
        with torch.no_grad():
            y = tiled(net, x, self.tile, overlap=min(TILE_OVERLAP, self.tile // 2))
        return to_uint8(y[..., :h, :w])
