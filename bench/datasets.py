"""Test sets: the registry in ``datasets.yaml``, resolving a name or folder, fetch and verify."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from carbench.core.download import download
from carbench.core.errors import BenchError, ImageError
from carbench.core.imageio import encode_png, list_images, read_image, write_bytes_atomic
from carbench.core.options import unknown_name
from carbench.core.registry_file import load_registry_file

log = logging.getLogger(__name__)
CHECKSUM_DIR = Path(__file__).parent / "checksums"


@dataclass(frozen=True)
class DatasetInfo:
    """One registry entry: where a test set comes from and what it must contain."""

    name: str
    description: str
    color: str  # "rgb" or "gray"
    count: int | None
    license: str
    source: dict
    names: tuple[str, ...] = ()
    citation: str = ""
    checksums: dict[str, str] = field(default_factory=dict)  # image id -> pixel sha256

    @property
    def embedded(self) -> bool:
        return self.source.get("kind") == "embedded"


@dataclass
class Dataset:
    """A resolved test set: a folder of images with ids (file stems)."""

    name: str
    folder: Path
    images: list[Path]
    info: DatasetInfo | None = None

    def ids(self) -> list[str]:
        return [p.stem for p in self.images]


def pixel_sha256(pixels: np.ndarray) -> str:
    """sha256 over shape and raw uint8 pixels: equal for the same image in any lossless format."""
    h = hashlib.sha256(("x".join(map(str, pixels.shape)) + ":").encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


def _read_checksums(name: str) -> dict[str, str]:
    path = CHECKSUM_DIR / f"{name}.txt"
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, image_id = line.split()
            out[image_id] = digest
    return out


def registry() -> dict[str, DatasetInfo]:
    """All datasets of ``datasets.yaml`` by name."""
    out = {}
    for name, e in load_registry_file()["datasets"].items():
        names = e.get("names") or []
        if isinstance(names, dict):  # {pattern: "{:04d}", start: 801, stop: 900}
            names = [names["pattern"].format(i) for i in range(names["start"], names["stop"] + 1)]
        checksums = _read_checksums(name)
        sha = (e.get("source") or {}).get("sha256")
        if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
            raise BenchError(
                f"datasets.yaml: {name}: source.sha256 must be 64 lowercase hex "
                f"digits in quotes, got {sha!r}"
            )
        out[name] = DatasetInfo(
            name=name,
            description=e.get("description", ""),
            color=e.get("color", "rgb"),
            count=e.get("count"),
            license=e.get("license", ""),
            source=e.get("source", {}),
            names=tuple(names or sorted(checksums)),
            citation=e.get("citation", ""),
            checksums=checksums,
        )
    return out


def get_info(name: str) -> DatasetInfo:
    reg = registry()
    if name in reg:
        return reg[name]
    lower = {k.lower(): k for k in reg}
    if name.lower() in lower:
        return reg[lower[name.lower()]]
    raise unknown_name("dataset", name, reg, "or give a folder path")


def default_data_root() -> Path | None:
    env = os.environ.get("BENCH_DATA_ROOT")
    return Path(env) if env else None


def resolve(name_or_path: str | None, workspace: Path, data_root: Path | None = None) -> Dataset:
    """Find a test set: a folder path, ``DATA_ROOT/NAME``, or ``WORKSPACE/sources/NAME``.

    No name means the embedded ``sample`` set. A registered set found on disk is checked for
    completeness by name; ``verify`` checks pixels.
    """
    name_or_path = name_or_path or "sample"
    data_root = data_root or default_data_root()
    as_path = Path(name_or_path).expanduser()
    reg = registry()
    if name_or_path not in reg and name_or_path.lower() not in {k.lower() for k in reg}:
        if as_path.is_dir() or os.sep in name_or_path or name_or_path.startswith("."):
            images = list_images(as_path)
            if not images:
                raise BenchError(
                    f"{as_path}: no images found (looked for .png/.bmp/.tif/.jpg/.ppm/.webp files)"
                )
            _check_unique_ids(as_path, images)
            return Dataset(as_path.resolve().name, as_path.resolve(), images)
    info = get_info(name_or_path)
    candidates = []
    if data_root is not None:
        candidates.append(Path(data_root) / info.name)
    candidates.append(workspace / "sources" / info.name)
    if info.embedded:  # (re)write any missing file: a killed run may have left a partial set
        return _registered(info, materialise_embedded(info, workspace / "sources" / info.name))
    for folder in candidates:
        if folder.is_dir():
            return _registered(info, folder)
    where = " or ".join(str(c) for c in candidates)
    raise BenchError(
        f"dataset {info.name} not found at {where}; run `bench datasets fetch "
        f"{info.name}` or point --data-root / BENCH_DATA_ROOT at a folder holding "
        f"{info.name}/"
    )


def _check_unique_ids(folder: Path, images: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for p in images:
        if p.stem in seen:
            raise BenchError(
                f"{folder}: two files share the image id {p.stem!r} "
                f"({seen[p.stem].name}, {p.name}); rename one"
            )
        seen[p.stem] = p


def _registered(info: DatasetInfo, folder: Path) -> Dataset:
    images = list_images(folder)
    _check_unique_ids(folder, images)
    if info.names:
        by_id = {p.stem: p for p in images}
        missing = [n for n in info.names if n not in by_id]
        if missing:
            raise BenchError(
                f"{folder}: dataset {info.name} is incomplete, missing "
                f"{len(missing)} image(s): {', '.join(missing[:10])}"
                + (" ..." if len(missing) > 10 else "")
            )
        images = [by_id[n] for n in sorted(info.names)]
    return Dataset(info.name, folder, images, info)


def verify(ds: Dataset) -> list[str]:
    """Problems found: missing, unexpected or altered images (pixel hashes). Empty = OK."""
    problems = []
    info = ds.info
    ids = {p.stem: p for p in list_images(ds.folder)}
    if info is not None and info.names:
        problems += [f"{n}: missing" for n in info.names if n not in ids]
        problems += [f"{n}: not part of {info.name}" for n in ids if n not in set(info.names)]
    if info is not None and info.count is not None and len(ids) != info.count and not info.names:
        problems.append(f"{ds.folder}: expected {info.count} images, found {len(ids)}")
    checks = info.checksums if info is not None else {}
    for image_id, path in sorted(ids.items()):
        try:
            pixels = read_image(path).pixels
        except ImageError as e:
            problems.append(str(e))
            continue
        want = checks.get(image_id)
        if want is not None and pixel_sha256(pixels) != want:
            problems.append(f"{path}: pixels differ from the registered {info.name} image")
    return problems


def materialise_embedded(info: DatasetInfo, folder: Path) -> Path:
    """Write an embedded set (images shipped in a dependency) as PNGs into ``folder``; only
    missing files are written (atomically), so an interrupted write is completed later."""
    folder.mkdir(parents=True, exist_ok=True)
    for image_id in info.source["images"]:
        target = folder / f"{image_id}.png"
        if not target.exists():
            import skimage.data

            write_bytes_atomic(target, encode_png(getattr(skimage.data, image_id)()))
    return folder


def fetch(name: str, workspace: Path, base_url: str | None = None) -> Dataset:
    """Download, verify and extract a registered set into ``WORKSPACE/sources/NAME``.

    ``base_url`` (or ``BENCH_DATASETS_MIRROR``) replaces the scheme+host+path prefix of the
    official URL by a mirror holding the same file names.
    """
    info = get_info(name)
    target = workspace / "sources" / info.name
    if info.embedded:
        return _registered(info, materialise_embedded(info, target))
    src = info.source
    mirror = base_url or os.environ.get("BENCH_DATASETS_MIRROR")
    cache = workspace / "downloads"
    with tempfile.TemporaryDirectory(dir=_mkdir(workspace), prefix=".fetch-") as tmp:
        staging = Path(tmp) / info.name
        staging.mkdir()
        if src["kind"] == "archive":
            url = _mirrored(src["url"], mirror)
            archive = download(url, cache / Path(src["url"]).name, src.get("sha256"))
            _extract(archive, Path(tmp) / "x")
            inner = Path(tmp) / "x" / src.get("subdir", "")
            if not inner.is_dir():
                raise BenchError(f"{archive}: folder {src.get('subdir')!r} not in the archive")
            for p in list_images(inner):
                shutil.move(str(p), staging / p.name)
        elif src["kind"] == "files":
            sums = _read_checksums(f"{info.name}.files") if src.get("file_sha256") else {}
            for fname in (image_id + src["ext"] for image_id in _progress(info.names, info.name)):
                url = _mirrored(src["base_url"].rstrip("/") + "/" + fname, mirror)
                download(url, cache / info.name / fname, sums.get(fname), progress=False)
                shutil.copyfile(cache / info.name / fname, staging / fname)
        else:
            raise BenchError(f"dataset {info.name}: unknown source kind {src['kind']!r}")
        ds = Dataset(info.name, staging, list_images(staging), info)
        problems = verify(ds)
        if problems:
            raise BenchError(f"dataset {info.name} failed verification: " + "; ".join(problems[:5]))
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
    return _registered(info, target)


def _progress(items, desc: str):
    from tqdm import tqdm

    return tqdm(items, desc=f"fetch {desc}", unit="file", leave=False)


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _mirrored(url: str, mirror: str | None) -> str:
    return url if not mirror else mirror.rstrip("/") + "/" + url.rsplit("/", 1)[1]


def _extract(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for m in z.namelist():
                    _check_member(archive, m, dest)
                z.extractall(dest)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                t.extractall(dest, filter="data")
        else:
            raise BenchError(f"{archive}: not a zip or tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise BenchError(f"{archive}: corrupt archive ({e}); delete it and fetch again") from None


def _check_member(archive: Path, member: str, dest: Path) -> None:
    if not (dest / member).resolve().is_relative_to(dest.resolve()):
        raise BenchError(f"{archive}: unsafe path {member!r} in archive")
