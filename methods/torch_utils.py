"""Small torch helpers shared by the CNN/transformer adapters."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
#: what ``--dtype`` accepts: a dtype, or ``auto`` (each method's official precision on the
#: device, ``Method.auto_dtype``)
DTYPE_CHOICES = ("auto", *DTYPES)


def torch_dtype(name: str):
    import torch

    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return getattr(torch, DTYPES[name])


def to_tensor(img: np.ndarray, device, dtype):
    """uint8 HxW[xC] -> 1xCxHxW float in [0,1]."""
    import torch

    t = torch.from_numpy(np.array(img, dtype=np.float32) / 255.0)
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    return t.to(device=device, dtype=dtype)


def to_uint8(t) -> np.ndarray:
    """1xCxHxW float in [0,1] -> uint8 HxW[xC], clamped and rounded (KAIR single2uint)."""
    # out of place: ``.float()`` of a float32 tensor is the caller's own tensor
    a = t.detach().float().clamp(0, 1).mul(255.0).round().to("cpu").numpy()[0]
    return a[0].astype(np.uint8) if a.shape[0] == 1 else a.transpose(1, 2, 0).astype(np.uint8)


def load_state_dict_file(path: Path):
    """torch.load on CPU, weights only; unwraps ``state_dict`` / ``params`` containers."""
    import torch

    sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "params", "params_ema"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    return sd


def strict_load(net, state_dict, source: str) -> None:
    """load_state_dict(strict=True) with a readable message on mismatch."""
    from carbench.core.errors import BenchError

    own = net.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k}: file {tuple(state_dict[k].shape)} vs network {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es), e.g. {shapes[:2]}")
        raise BenchError(f"{source}: not the expected checkpoint layout: " + "; ".join(parts))
    net.load_state_dict(state_dict, strict=True)


def sha256_of(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def loaded(net, state_dict, source: str, device: str, dtype: str | None = None, cnn: bool = False):
    """The one way an adapter readies a network: :func:`strict_load`, ``eval``, onto ``device``
    (cast to ``dtype`` when given); a CNN on the CPU goes channels-last (oneDNN is faster)."""
    strict_load(net, state_dict, source)
    net = net.eval().to(device=device, dtype=torch_dtype(dtype)) if dtype else net.eval().to(device)
    if cnn and device == "cpu":
        import torch

        net = net.to(memory_format=torch.channels_last)
    return net
