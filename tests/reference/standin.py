"""Seeded stand-in weights shared by the reference scripts (upstream side) and the parity tests
(carbench side). Nothing here comes from upstream; both sides call :func:`fill_standin` on a
module whose parameter names and shapes are the official ones, so both get the same values."""

from __future__ import annotations

import hashlib
import math


def fill_standin(module, seed: int, gain: float = 1.0, bias_std: float = 0.05) -> None:
    """Overwrite every parameter, in sorted-name order, from one ``torch.Generator(seed)``.

    Tensors with two or more dims get ``randn * gain / sqrt(numel / shape[0])`` (a fan-in
    scale); 1-D ``*weight`` (norm scales) get ``1 + 0.1 randn``; every other tensor gets
    ``randn * bias_std``. Buffers (position indices, masks) keep the module's own values."""
    import torch

    g = torch.Generator().manual_seed(seed)
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.ndim >= 2:
                value = noise * (gain / math.sqrt(p.numel() / p.shape[0]))
            elif name.endswith("weight"):
                value = 1 + 0.1 * noise
            else:
                value = noise * bias_std
            p.copy_(value.to(p.dtype))


def layout_digest(module, rename=None) -> str:
    """sha256 of the sorted ``name:shape`` lines of a module's state dict (its key layout),
    names passed through ``rename`` first when given."""
    items = module.state_dict().items()
    if rename is not None:
        items = [(rename(k), v) for k, v in items]
    lines = [f"{k}:{tuple(v.shape)}" for k, v in sorted(items)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def toy_denoiser(x, t: float, c_txt, c_img):
    """A cheap closed-form stand-in for the ControlLDM's prediction (same on both sides):
    depends on the latent, the timestep, the text context and the condition latent."""
    import torch

    scale = 1.0 + float(t) / 1000.0
    return torch.tanh(0.7 * x + 0.4 * c_img) * scale + 0.1 * c_txt.mean() * x.cos()
