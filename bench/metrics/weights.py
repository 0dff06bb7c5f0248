"""Weight files of the pyiqa metrics: where each goes, where it comes from, its hash.

Everything lives in a carbench-owned cache (``BENCH_CACHE``, default ``~/.cache/carbench``) in
the layouts the libraries expect: ``torch/hub/checkpoints`` (torchvision), ``torch/hub/pyiqa``
(pyiqa), ``torch/hub/clip`` (CLIP), ``huggingface/hub`` (timm via the Hugging Face cache).
Runs point TORCH_HOME / HF_HOME there and set the Hugging Face offline flags, so no metric
touches the network mid-run.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.download import download, sha256_file
from bench.errors import BenchError

PYIQA_HF = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"
TORCHVISION = "https://download.pytorch.org/models/"
CLIP_RN50 = (
    "https://openaipublic.azureedge.net/clip/models/"
    "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt"
)


@dataclass(frozen=True)
class WeightFile:
    """One file a metric needs. ``sha256`` may be a prefix (torchvision/pyiqa name hashes)."""

    relpath: str  # under the cache root
    url: str
    sha256: str | None = None
    wheel: tuple[str, str] | None = None  # (package, file inside it) shipping the same bytes
    hf: tuple[str, str] | None = None  # (repo id, file) fetched through huggingface_hub

    @property
    def name(self) -> str:
        return Path(self.relpath).name


def _pyiqa(name: str, sha: str | None = None, wheel=None) -> WeightFile:
    return WeightFile(f"torch/hub/pyiqa/{name}", PYIQA_HF + name, sha, wheel)


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


def cache_root() -> Path:
    return Path(os.environ.get("BENCH_CACHE") or Path.home() / ".cache" / "carbench")


def file_path(wf: WeightFile, root: Path | None = None) -> Path:
    return (root or cache_root()) / wf.relpath


def _hf_file(wf: WeightFile, root: Path) -> Path | None:
    """The snapshot file of a Hugging Face cache entry, if present."""
    snaps = root / wf.relpath / "snapshots"
    if not snaps.is_dir():
        return None
    for snap in sorted(snaps.iterdir()):
        f = snap / wf.hf[1]
        if f.exists():
            return f
    return None


def present(wf: WeightFile, root: Path | None = None) -> Path | None:
    root = root or cache_root()
    if wf.hf:
        return _hf_file(wf, root)
    p = file_path(wf, root)
    return p if p.is_file() else None


def missing_files(metric: str, root: Path | None = None) -> list[str]:
    """One line per missing file: what it is and where it goes."""
    root = root or cache_root()
    out = []
    for wf in METRIC_WEIGHTS.get(metric, []):
        if present(wf, root) is None:
            where = root / wf.relpath
            what = f"{wf.hf[0]}/{wf.hf[1]} (Hugging Face cache layout)" if wf.hf else wf.url
            out.append(f"{wf.name}: fetch {what} -> {where}")
    return out


def _hash_ok(path: Path, want: str | None) -> bool:
    return want is None or sha256_file(path).startswith(want)


def verify(metric: str, root: Path | None = None) -> list[str]:
    """Problems with a metric's files: missing, or a sha256 that does not match."""
    root = root or cache_root()
    problems = missing_files(metric, root)
    for wf in METRIC_WEIGHTS.get(metric, []):
        p = present(wf, root)
        if p is not None and not _hash_ok(p, wf.sha256):
            problems.append(
                f"{p}: sha256 does not start with {wf.sha256} (not the official "
                "file; delete it and fetch again)"
            )
    return problems


def _from_wheel(wf: WeightFile) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(wf.wheel[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(next(iter(spec.submodule_search_locations))) / wf.wheel[1]
    return p if p.is_file() else None


def fetch(metric: str, root: Path | None = None, mirror: str | None = None) -> list[Path]:
    """Put every file of ``metric`` into the cache (from an installed wheel when one ships
    it, else by download with hash check) and write ``manifest.json`` with sizes and sha256.

    ``mirror`` (or ``BENCH_WEIGHTS_MIRROR``) is a base URL serving the same file names.
    """
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


def fetch_file(wf: WeightFile, root: Path, mirror: str | None = None) -> Path:
    """One weight file: kept if present and verified, else copied from a wheel or downloaded."""
    have = present(wf, root)
    if have is not None and _hash_ok(have, wf.sha256):
        return have
    if wf.hf:
        return _fetch_hf(wf, root)
    dest = file_path(wf, root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = _from_wheel(wf) if wf.wheel else None
    if src is not None and _hash_ok(src, wf.sha256):
        shutil.copyfile(src, dest)
        return dest
    url = mirror.rstrip("/") + "/" + wf.name if mirror else wf.url
    tmp = download(url, dest.with_name(dest.name + ".download"))
    if not _hash_ok(tmp, wf.sha256):
        tmp.unlink()
        raise BenchError(
            f"{url}: sha256 does not start with {wf.sha256} (not the official "
            f"{wf.name}); the download was deleted"
        )
    os.replace(tmp, dest)
    return dest


def _fetch_hf(wf: WeightFile, root: Path) -> Path:
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(wf.hf[0], wf.hf[1], cache_dir=root / "huggingface" / "hub"))
    except Exception as e:  # offline, no such repo, ...
        raise BenchError(
            f"cannot fetch {wf.hf[0]}/{wf.hf[1]} from the Hugging Face Hub ({e}); "
            f"copy a Hugging Face cache entry to {root / wf.relpath}"
        ) from None


def write_manifest(root: Path | None = None) -> Path:
    """``manifest.json`` in the cache: every present weight file with size and sha256."""
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
                        "source": wf.url,
                    }
                )
    path = root / "manifest.json"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=1))
    return path
