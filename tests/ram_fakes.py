"""Seeded stand-ins for the RAM and DAPE checkpoint files (no real weights are available).

Every tensor is drawn from its own generator, seeded by its key, so any subset of keys gets the
same values whoever builds it: the upstream reference run (scripts outside carbench) built the
files over the full official key set, the tests build only the keys carbench reads, and both
see the same numbers.
"""

from __future__ import annotations

import math
import zlib

import torch

from carbench.methods.nets.ram_tagger import RamConfig, RamTaggingNet

#: tensors the fake DAPE file overrides besides every LoRA matrix; the second is a tied tensor
#: named on the tag_encoder side only, so the DAPE value must win over RAM's tagging_head one
DAPE_OVERRIDES = (
    "image_proj.weight",
    "tag_encoder.encoder.layer.1.intermediate.dense.weight",
    "fc.bias",
)

#: a small RAM for fast checks (the upstream code builds it from config files of these sizes)
TINY = RamConfig(
    embed_dim=8,
    depths=(2, 2, 2, 2),
    num_heads=(1, 2, 4, 8),
    hidden_size=32,
    head_heads=4,
    intermediate_size=64,
    num_classes=24,
)
TINY_TAGS = [f"tag {i:02d}" for i in range(TINY.num_classes)]
TINY_THRESHOLDS = [(0.3, 0.5, 0.65, 0.45, 0.95, 0.2, 1.0)[i % 7] for i in range(TINY.num_classes)]


def seeded(key: str, shape: list[int], salt: str) -> torch.Tensor:
    """A deterministic tensor for ``key``, scaled so a deep random network stays finite."""
    g = torch.Generator().manual_seed(zlib.crc32((salt + key).encode()))
    x = torch.randn(shape, generator=g)
    last = key.rsplit(".", 1)[-1]
    if last == "lora_B" or key == "label_embed":
        return x
    if len(shape) == 1:
        return 1 + 0.1 * x if "norm" in key.lower() and last == "weight" else 0.02 * x
    if "relative_position_bias_table" in key:
        return 0.5 * x
    return x / math.sqrt(math.prod(shape[1:]))


def read_keys(cfg: RamConfig) -> dict[str, list[int]]:
    """Keys carbench reads from the files: its own, plus the tag_encoder tensors tied to (or
    merged into) the tagging head."""
    with torch.device("meta"):
        own = {k: list(v.shape) for k, v in RamTaggingNet(cfg).state_dict().items()}
    extra = {}
    for k, shape in own.items():
        if k.startswith("tagging_head.encoder.layer."):
            extra["tag_encoder." + k[len("tagging_head.") :]] = shape
    return {**own, **extra}


def fake_files(keys: dict[str, list[int]], vision_multi: bool = False) -> tuple[dict, dict]:
    """(RAM checkpoint {'model': ...}, DAPE state dict) over ``keys``: RAM holds every non-LoRA
    tensor (buffers with junk values, which both loaders must drop), DAPE every LoRA matrix
    plus ``DAPE_OVERRIDES``. ``vision_multi``: RAM names the tagging head by its old name."""
    ram, dape = {}, {}
    for k, shape in keys.items():
        if ".lora_" in k:
            dape[k] = seeded(k, shape, "dape:")
            continue
        name = k.replace("tagging_head.", "vision_multi.", 1) if vision_multi else k
        ram[name] = seeded(k, shape, "ram:")
        if k in DAPE_OVERRIDES:
            dape[k] = seeded(k, shape, "dape:")
    return {"model": ram}, dape
