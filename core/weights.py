"""Weight files: where each goes, where it comes from, its hash; fetching and verifying.

Shared by metric weights (``bench.metrics.weight_files``) and method weights (``methods``). A file
comes from a URL (pooch-style: downloaded once, sha256 checked), a Hugging Face repo, a Google
Drive id (through gdown), or an installed wheel that ships the same bytes.

Sources are tried in order: an installed wheel, the official URL, then each known mirror
(``WeightFile.mirrors``, the ``--mirror`` base URL, and the files' entries in the JSON file
named by ``BENCH_WEIGHTS_SOURCES``: ``{"<file name>": {"sha256": "...", "mirrors": [URL, ...]}}``).
Downloads resume (HTTP Range) from a ``.part`` file. A mirror is accepted only when the file's
full official sha256 is known and matches, or, for a small file no source states a sha256 of (a
config or tokenizer file that is not in Git LFS), when its ``content_check`` finds the official
values in it; with neither, a mirror is not tried at all.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from carbench.core.download import DownloadError, download, sha256_file
from carbench.core.errors import BenchError

log = logging.getLogger(__name__)
FULL_SHA = re.compile(r"[0-9a-f]{64}")
GDRIVE = "https://drive.google.com/uc?id="
HF_HUB = "https://huggingface.co"


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
    mirrors: tuple[str, ...] = ()  # URLs of unofficial copies (accepted only on the full sha256)
    shared: bool = False  # goes to the weights dir itself, not <weights dir>/<method>
    #: for a file without a recorded sha256: compares its content with the official values,
    #: raising ValueError that names the first difference (a mirror is then accepted on it)
    content_check: Callable[[Path], None] | None = field(default=None, compare=False)

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


def file_problem(wf: WeightFile, path: Path, want: str | None = None) -> str | None:
    """Why ``path`` is not the official ``wf``: a sha256 that does not start with ``want``
    (default: the declared one), else what its content check finds; None when it is."""
    want = want or wf.sha256
    if want is not None:
        if hash_ok(path, want):
            return None
        return f"sha256 does not start with {want} (not the official {wf.name})"
    if wf.content_check is not None:
        try:
            wf.content_check(path)
        except (OSError, ValueError) as e:
            return f"{e} (not the official {wf.name})"
    return None


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


def extra_sources() -> dict[str, dict]:
    """``BENCH_WEIGHTS_SOURCES``: extra mirrors (and sha256 values) per file name."""
    path = os.environ.get("BENCH_WEIGHTS_SOURCES")
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise BenchError(f"BENCH_WEIGHTS_SOURCES={path}: cannot read it ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise BenchError(f"{path}: expected {{file name: {{sha256, mirrors}}}}")
    return data


def official_sha256(wf: WeightFile) -> str | None:
    """The full sha256 of the official file, if recorded (declaration or sources file)."""
    extra = extra_sources().get(wf.relpath) or extra_sources().get(wf.name) or {}
    for cand in (wf.sha256, extra.get("sha256")):
        if cand and FULL_SHA.fullmatch(cand):
            return cand
    return None


def sources(wf: WeightFile, mirror: str | None = None) -> list[tuple[str, str]]:
    """``(kind, URL)`` in the order tried. A ``--mirror`` base URL the user names replaces the
    others (``given``, checked against whatever sha256 is recorded); otherwise ``official``
    first, then each known ``mirror`` (declared, then from ``BENCH_WEIGHTS_SOURCES``)."""
    if mirror:
        return [("given", mirror.rstrip("/") + "/" + wf.name)]
    if wf.gdrive:
        out = [("official", f"{GDRIVE}{wf.gdrive}")]
    else:
        out = [("official", _hub(wf.url))] if wf.url.startswith("http") else []
    extra = extra_sources().get(wf.relpath) or extra_sources().get(wf.name) or {}
    mirrors = [_hub(u) for u in wf.mirrors] + list(extra.get("mirrors", []))
    return out + [("mirror", u) for u in mirrors]


def _hub(url: str) -> str:
    """Hugging Face URLs go to ``HF_ENDPOINT`` when set (huggingface_hub's variable)."""
    endpoint = os.environ.get("HF_ENDPOINT")
    if endpoint and url.startswith(HF_HUB):
        return endpoint.rstrip("/") + url[len(HF_HUB) :]
    return url


def fetch_file(wf: WeightFile, root: Path, mirror: str | None = None) -> Path:
    """Make ``wf`` present under ``root`` (see :func:`fetch_with_source`)."""
    return fetch_with_source(wf, root, mirror)[0]


def fetch_with_source(wf: WeightFile, root: Path, mirror: str | None = None) -> tuple[Path, str]:
    """Make ``wf`` present under ``root``: kept if there and verified, else copied from a
    wheel, else downloaded from the first source that serves the verified file. Returns the
    path and what served it (``present``, ``wheel``, ``official <URL>``, ``mirror <URL>``)."""
    have = present(wf, root)
    if have is not None and file_problem(wf, have) is None:
        return have, "present"
    if wf.hf:
        return _fetch_hf(wf, root), f"Hugging Face {wf.hf[0]}"
    dest = root / wf.relpath
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = _from_wheel(wf) if wf.wheel else None
    if src is not None and file_problem(wf, src) is None:
        shutil.copyfile(src, dest)
        return dest, f"wheel {wf.wheel[0]}"
    if not mirror and "/drive/folders/" in wf.url:
        raise BenchError(
            f"{wf.name} lies in a Google Drive folder ({wf.url}) and cannot be "
            f"fetched file by file: download the folder by hand (e.g. `gdown "
            f"--folder {wf.url}`) and put {wf.name} at {dest}"
        )
    full = official_sha256(wf)
    tmp = dest.with_name(dest.name + ".download")  # resumable as tmp.part
    tried = []
    for kind, url in sources(wf, mirror):
        if kind == "mirror" and full is None and wf.content_check is None:
            tried.append(f"{url}: not tried, no official sha256 of {wf.name} is recorded")
            continue
        try:
            if url.startswith(GDRIVE):
                _gdown(wf.gdrive, tmp, dest)
            else:
                download(url, tmp, progress=False)
            _check_and_place(wf, tmp, dest, url, full)
        except DownloadError as e:
            if "interrupted" in str(e):  # resume once from the same source
                try:
                    download(url, tmp, progress=False)
                    _check_and_place(wf, tmp, dest, url, full)
                except BenchError as e2:
                    tried.append(str(e2))
                    continue
            else:
                tried.append(str(e))
                continue
        except BenchError as e:
            tried.append(str(e))
            continue
        log.info("%s served by %s %s", wf.name, kind, url)
        return dest, f"{kind} {url}"
    if not tried:
        raise BenchError(f"{wf.name}: no download source known; put it at {dest}")
    raise BenchError(f"{wf.name}: no source served the official file:\n  " + "\n  ".join(tried))


def _check_and_place(
    wf: WeightFile, got: Path, dest: Path, url: str, full: str | None = None
) -> None:
    """Size and sha256 check (``full``, else the recorded prefix, else the content check)
    of a finished download; moves it to ``dest`` or deletes it."""
    problem = file_problem(wf, got, full)
    if problem is not None:
        got.unlink()
        raise BenchError(f"{url}: {problem}; the download was deleted")
    if wf.size is not None and got.stat().st_size != wf.size:
        size = got.stat().st_size
        got.unlink()
        raise BenchError(f"{url}: {size} bytes, expected {wf.size}; the download was deleted")
    if got != dest:
        os.replace(got, dest)


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
