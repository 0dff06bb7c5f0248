"""PromptCIR - Li et al., "PromptCIR: Blind Compressed Image Restoration with Prompt Learning",
NTIRE 2024 blind JPEG enhancement challenge winner (arXiv 2404.17433).

Upstream: lbc12345/PromptCIR-NTIRE24 (model.py and test_model.py @3506b1a, Apache-2.0; the
checkpoints carry no separate terms). The network below is carbench's own implementation of
``MyModel(decoder=True)`` with the upstream parameter names, so the released checkpoints load
with strict key matching: a Restormer-style 4-level U-Net whose levels 1-2 are HAT-style hybrid
attention groups (shifted-window self-attention + channel attention + overlapping
cross-attention) and whose decoder mixes in per-pixel combinations of learned prompt bases.

Protocol as in the authors' test script: input RGB in [0,1], residual output; mirror padding at
the bottom/right to ``(floor(h/32)+1)*32`` (a flipped copy appended, so the edge row/column
repeats), then cropped back; square tiles of ``min(384, H, W)`` with overlap 96 and uniform
averaging, clamped to [0,1]; self-ensemble of the two checkpoints x {identity, H/W transpose}
(4 passes, each clamped, averaged), x255, rounded. ``promptcir:ensemble=off`` runs
``model_best.pth`` alone without the transpose (1 pass). ``bench run --tile N`` sets the tile
size (rounded down to a multiple of 32, overlap N/4).

Deviation where upstream fails: with the padded image's shorter side <= 96 its tiling has no
positive stride (it crashes at 96 and leaves NaN gaps below); there the overlap becomes a
quarter of the tile. Images smaller than the padding are extended by repeated mirroring. The
network is colour only: a gray image is replicated to three channels and the mean of the
restored channels is returned.
"""

from __future__ import annotations

from pathlib import Path

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

DRIVE_FOLDER = "https://drive.google.com/drive/folders/1oxOVDK845rikuwWiMICHUv5nFGJjA7pV"
TILE = 384  # upstream tile; overlap is a quarter of it (96)
PAD_MULTIPLE = 32  # three 2x downsamplings, then 16-px windows at level 2


def mirror_pad(x, multiple: int = PAD_MULTIPLE):
    """Pad a (B, C, h, w) tensor at the bottom/right to ``(floor(side/multiple)+1)*multiple``
    (always at least one pixel) with flipped copies, the edge row/column repeated."""
    import torch

    for dim in (-2, -1):
        target = (x.shape[dim] // multiple + 1) * multiple
        while x.shape[dim] < target:  # one flipped copy unless the image is tiny
            x = torch.cat([x, x.flip(dim)], dim=dim)
        x = x.narrow(dim, 0, target)
    return x


class PromptCIR(Method):
    """Both checkpoints x {identity, transpose} (``ensemble`` True), or ``model_best.pth`` in
    one pass (``promptcir:ensemble=off``)."""

    name = "promptcir"
    label = "PromptCIR"
    description = (
        "PromptCIR (NTIRE 2024 blind JPEG winner), 2 checkpoints x transpose self-ensemble "
        "(promptcir:ensemble=off: one pass)"
    )
    group = "transformer"
    paper = "https://arxiv.org/abs/2404.17433"
    capabilities = Capabilities(gray="replicate")
    weights = {
        "ensemble": [
            WeightFile("model_best.pth", DRIVE_FOLDER, licence="Apache-2.0"),
            WeightFile("model_best2.pth", DRIVE_FOLDER, licence="Apache-2.0"),
        ]
    }

    declared_options = (
        Option(
            "ensemble",
            "choice",
            "on",
            choices=("on", "off"),
            help="on: both checkpoints x {identity, transpose}, averaged (upstream's test); "
            "off: model_best.pth in one pass",
        ),
    )

    def __init__(self, **given: object) -> None:
        super().__init__(**given)
        self._nets: list = []
        self.ensemble = self.opt("ensemble") == "on"

    def build_network(self, variant: str | None = None):
        if variant not in (None, "ensemble"):
            raise BenchError(f"promptcir has no variant {variant!r}; known: ensemble")
        from carbench.methods.nets.promptcir_net import build_promptcir

        return build_promptcir()

    def load(self, device: str = "cpu", dtype: str = "fp32", kinds=("rgb", "gray")) -> None:
        super().load(device, dtype)
        files = self.weights[self.variant]
        paths = self._locate(files if self.ensemble else files[:1], self.variant)
        self._nets = []
        for path in paths:
            state = self._read(path)
            self._nets.append(loaded(self.build_network(), state, str(path), device, dtype))
        self._weights_sha = ",".join(sha256_of([p]) for p in paths)

    def _read(self, path: Path) -> dict:
        try:
            return load_state_dict_file(path)
        except Exception as e:  # e.g. a Drive HTML page saved under the checkpoint's name
            first = (str(e).strip().splitlines() or [""])[0][:160]
            raise BenchError(
                f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {first}); download "
                f"{path.name} again by hand from {DRIVE_FOLDER}"
            ) from None

    def _tiling(self, h: int, w: int) -> tuple[int, int]:
        """(tile, overlap) for a padded h x w input: upstream's square ``min(tile, h, w)``."""
        base = self.tile if self.tile > 0 else TILE
        base = max(PAD_MULTIPLE, base // PAD_MULTIPLE * PAD_MULTIPLE)
        tile, overlap = min(base, h, w), base // 4
        if overlap >= tile:  # upstream fails here (no stride); keep a quarter-tile overlap
            overlap = tile // 4
        return tile, overlap

    def _one_pass(self, net, x):
        """Pad, tiled forward pass, clamp, crop: upstream's per-model evaluation."""
        h, w = x.shape[-2:]
        padded = mirror_pad(x)
        tile, overlap = self._tiling(*padded.shape[-2:])
        y = tiled(net, padded, tile, overlap, blend="uniform").clamp(0, 1)
        return y[..., :h, :w]

    def _restore_tensor(self, x):
        """Average of the passes: every checkpoint on the image, then on its transpose."""
        views = (False, True) if self.ensemble else (False,)
        nets = self._nets if self.ensemble else self._nets[:1]
        total, count = None, 0
        for transpose in views:
            for net in nets:
                inp = x.transpose(-2, -1) if transpose else x
                y = self._one_pass(net, inp)
                y = y.transpose(-2, -1) if transpose else y
                total = y if total is None else total + y
                count += 1
        return total / count

    def restore(self, sample: Sample) -> np.ndarray:
        import torch

        if not self._nets:
            raise BenchError("promptcir: call load() before restore()")
        x = to_tensor(sample.decoded, self.device, torch_dtype(self.dtype))
        with torch.no_grad():
            return to_uint8(self._restore_tensor(x))
