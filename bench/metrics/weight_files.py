"""Weight files of the pyiqa metrics, in the layouts the libraries expect.

Everything lives in carbench's cache (``BENCH_CACHE``): ``torch/hub/checkpoints`` (torchvision),
``torch/hub/pyiqa`` (pyiqa), ``torch/hub/clip`` (CLIP), ``huggingface/hub`` (timm via the
Hugging Face cache). Runs point TORCH_HOME / HF_HOME there and set the Hugging Face offline
flags, so no metric touches the network mid-run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.core.download import sha256_file
from bench.core.errors import BenchError
from bench.core.weights import WeightFile, cache_root, fetch_file, hash_ok, present

PYIQA_HF = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"
TORCHVISION = "https://download.pytorch.org/models/"
CLIP_RN50 = (
    "https://openaipublic.azureedge.net/clip/models/"
    "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt"
)


def _pyiqa(name: str, sha: str | None = None, wheel=None) -> WeightFile:
    return WeightFile(f"torch/hub/pyiqa/{name}", PYIQA_HF + name, sha, wheel=wheel)


def _tv(name: str, sha: str) -> WeightFile:
    return WeightFile(f"torch/hub/checkpoints/{name}", TORCHVISION + name, sha)


_VIT = WeightFile(
    "huggingface/hub/models--timm--vit_base_patch8_224.augreg2_in21k_ft_in1k",
    "https://huggingface.co/timm/vit_base_patch8_224.augreg2_in21k_ft_in1k",
    hf=("timm/vit_base_patch8_224.augreg2_in21k_ft_in1k", "model.safetensors"),
)

METRIC_WEIGHTS: dict[str, list[WeightFile]] = {
    "lpips": [
        _tv("alexnet-owt-7be5be79.pth", "7be5be79"),
        _pyiqa("LPIPS_v0.1_alex-df73285e.pth", "df73285e", ("lpips", "weights/v0.1/alex.pth")),
    ],
    "dists": [
        _tv("vgg16-397923af.pth", "397923af"),
        _pyiqa("DISTS_weights-f5e65c96.pth", "f5e65c96", ("DISTS_pytorch", "weights.pt")),
    ],
    "musiq": [_pyiqa("musiq_koniq_ckpt-e95806b9.pth", "e95806b9")],
    "maniqa": [_VIT, _pyiqa("ckpt_koniq10k.pt")],
    "clipiqa": [
        WeightFile(
            "torch/hub/clip/RN50.pt",
            CLIP_RN50,
            "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762",
        )
    ],
    "niqe": [_pyiqa("niqe_modelparameters.mat")],
}


def missing_files(metric: str, root: Path | None = None) -> list[str]:
    """One line per missing file: what it is and where it goes."""
    root = root or cache_root()
    return [
        f"{wf.name}: fetch {wf.source()} -> {root / wf.relpath}"
        for wf in METRIC_WEIGHTS.get(metric, [])
        if present(wf, root) is None
    ]


def verify(metric: str, root: Path | None = None) -> list[str]:
    """Problems with a metric's files: missing, or a sha256 that does not match."""
    root = root or cache_root()
    problems = missing_files(metric, root)
    for wf in METRIC_WEIGHTS.get(metric, []):
        p = present(wf, root)
        if p is not None and not hash_ok(p, wf.sha256):
            problems.append(
                f"{p}: sha256 does not start with {wf.sha256} (not the official "
                "file; delete it and fetch again)"
            )
    return problems


def fetch(metric: str, root: Path | None = None, mirror: str | None = None) -> list[Path]:
    """Put every file of ``metric`` into the cache and write the cache manifest."""
    root = root or cache_root()
    mirror = mirror or os.environ.get("BENCH_WEIGHTS_MIRROR")
    if metric not in METRIC_WEIGHTS:
        raise BenchError(
            f"metric {metric!r} needs no weights or is unknown; with weights: "
            + ", ".join(METRIC_WEIGHTS)
        )
    paths = [fetch_file(wf, root, mirror) for wf in METRIC_WEIGHTS[metric]]
    write_manifest(root)
    return paths


def write_manifest(root: Path | None = None) -> Path:
    """``manifest.json`` in the cache: every present metric file with size and sha256."""
    root = root or cache_root()
    entries = []
    for metric, files in METRIC_WEIGHTS.items():
        for wf in files:
            p = present(wf, root)
            if p is not None:
                entries.append(
                    {
                        "metric": metric,
                        "file": str(p.relative_to(root)),
                        "bytes": p.stat().st_size,
                        "sha256": sha256_file(p),
                        "expected_sha256": wf.sha256,
                        "source": wf.source(),
                    }
                )
    root.mkdir(parents=True, exist_ok=True)
    path = root / "manifest.json"
    path.write_text(json.dumps(entries, indent=1))
    return path
