"""The three DiffBIR networks carbench implements itself (XPixelGroup/DiffBIR @3f8b530), with
upstream's parameter names so the released checkpoints load with ``strict=True``:

* :func:`build_ircontrolnet` - the IRControlNet of v2 / v2.1 (:mod:`methods.diffbir_controlnet`);
* :func:`build_swinir` - the stage-1 SwinIR of v2.1 (:mod:`methods.diffbir_swinir`);
* :func:`build_scunet` - the stage-1 SCUNet-PSNR of the v2 denoise task
  (:mod:`methods.diffbir_scunet`).

Builders return randomly initialised networks and touch no files; they work under
``with torch.device("meta"):`` (every buffer is registered with its shape there too).
The frozen Stable Diffusion 2.1 parts (UNet, VAE, OpenCLIP text encoder) are not here.
"""

from __future__ import annotations

from methods.diffbir_controlnet import ControlNet, build_ircontrolnet
from methods.diffbir_scunet import SCUNet, build_scunet
from methods.diffbir_swinir import SwinIR, build_swinir

__all__ = [
    "ControlNet",
    "SCUNet",
    "SwinIR",
    "build_ircontrolnet",
    "build_scunet",
    "build_swinir",
]
