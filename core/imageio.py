"""Reading test images strictly and writing outputs atomically.

Reading accepts 8-bit RGB and gray (also palette and bilevel images, converted losslessly, and
an alpha channel that is fully opaque). Everything else is refused with a message naming the
file: 16-bit or float samples, real transparency, CMYK and other colour spaces, corrupt or
truncated files, images smaller than 8x8.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import os
import re
import socket
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from carbench.core.errors import DiskFullError, ImageError

if TYPE_CHECKING:
    from concurrent.futures import Executor

IMAGE_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".ppm", ".pgm", ".webp")
MIN_SIZE = 8
_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8", "JPEG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"RIFF", "WebP"),
]


@dataclass
class LoadedImage:
    """A validated, decoded image and the sha256 of its file. ``decoded`` is a uint8 array
    (8-bit RGB/gray PNG, decoded by OpenCV) or a Pillow image in mode RGB or L (the rest)."""

    decoded: np.ndarray | Image.Image
    file_sha256: str
    note: str = ""  # lossless conversion applied, if any

    @functools.cached_property
    def image(self) -> Image.Image:
        """The image as Pillow mode RGB or L."""
        d = self.decoded
        return d if isinstance(d, Image.Image) else Image.fromarray(d)

    @functools.cached_property
    def pixels(self) -> np.ndarray:
        """HxWx3 RGB or HxW gray uint8 array."""
        d = self.decoded
        return d if isinstance(d, np.ndarray) else np.asarray(d)


def _high_bit_depth(im: Image.Image) -> bool:
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        return True
    rawmodes = [t[3][0] if isinstance(t[3], tuple) else t[3] for t in getattr(im, "tile", [])]
    return any(isinstance(r, str) and ("16" in r or "48" in r or "64" in r) for r in rawmodes)


def _png_pixels(data: bytes, im: Image.Image) -> np.ndarray | None:
    """An opaque 8-bit RGB or gray PNG decoded by OpenCV (same pixels as Pillow, no Pillow to
    numpy copy, the GIL released): RGB/HxW uint8, or None to let Pillow decode it."""
    import cv2

    if im.format != "PNG" or im.mode not in ("RGB", "L") or "transparency" in im.info:
        return None
    px = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if px is None or px.dtype != np.uint8 or px.shape[:2] != (im.height, im.width):
        return None  # Pillow decodes it again and names the problem
    if px.ndim == 3:
        if px.shape[2] != 3:
            return None
        px = cv2.cvtColor(px, cv2.COLOR_BGR2RGB)
    return px if px.ndim == (3 if im.mode == "RGB" else 2) else None


def decode_image_bytes(data: bytes, path: str | Path) -> tuple[np.ndarray | Image.Image, str]:
    """Decode and validate image bytes; return (uint8 array or RGB/L Pillow image, note on
    any conversion)."""
    if not data:
        raise ImageError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
        if _high_bit_depth(im):
            raise ImageError(
                path,
                f"{_depth_name(im)} samples (mode {im.mode}); carbench needs "
                "8-bit RGB or gray ground truth - convert it to 8 bit first",
            )
        px = _png_pixels(data, im)
        if px is not None:
            _check_size(im.size, path)
            return px, ""
        im.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        fmt = next((name for magic, name in _MAGIC if data.startswith(magic)), None)
        if fmt:
            raise ImageError(path, f"corrupt image ({fmt} signature, unreadable data)") from None
        raise ImageError(path, "not an image file Pillow can read (unknown format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(path, f"image too large to decode safely ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(path, f"corrupt or truncated image ({e})") from None
    note = ""
    mode = im.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        alpha = im.convert("RGBA").getchannel("A") if mode in ("P", "PA") else im.getchannel("A")
        if alpha.getextrema() != (255, 255):
            raise ImageError(
                path,
                "has an alpha channel with transparent pixels; flatten it onto "
                "a background first (compression benchmarks need opaque images)",
            )
        im, note = im.convert("L" if mode == "LA" else "RGB"), "opaque alpha channel dropped"
    elif mode == "P":
        im, note = im.convert("RGB"), "palette expanded to RGB"
    elif mode == "1":
        im, note = im.convert("L"), "bilevel expanded to 8-bit gray"
    elif mode == "CMYK":
        raise ImageError(path, "CMYK image; convert it to RGB with a colour-managed tool first")
    elif mode not in ("RGB", "L"):
        raise ImageError(path, f"unsupported image mode {mode}; carbench needs 8-bit RGB or gray")
    _check_size(im.size, path)
    return im, note


def _check_size(size: tuple[int, int], path: str | Path) -> None:
    w, h = size
    if h < MIN_SIZE or w < MIN_SIZE:
        raise ImageError(
            path, f"image is {w}x{h} pixels; carbench needs at least {MIN_SIZE}x{MIN_SIZE}"
        )


def _depth_name(im: Image.Image) -> str:
    return "32-bit float" if im.mode == "F" else ("32-bit integer" if im.mode == "I" else "16-bit")


def read_image(path: str | Path, hasher: Executor | None = None) -> LoadedImage:
    """Read and validate one image file. With ``hasher`` the file's sha256 is computed there
    while the image decodes (both release the GIL)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ImageError(path, "is a directory, not an image") from None
    except PermissionError:
        raise ImageError(path, "permission denied (cannot read the file)") from None
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    digest = hasher.submit(_sha256_hex, data) if hasher is not None else None
    image, note = decode_image_bytes(data, path)
    return LoadedImage(image, digest.result() if digest else _sha256_hex(data), note)


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    try:
        entries = sorted(folder.iterdir())
    except PermissionError:
        raise ImageError(folder, "permission denied (cannot list the folder)") from None
    except FileNotFoundError:
        raise ImageError(folder, "folder not found") from None
    except NotADirectoryError:
        raise ImageError(folder, "is not a folder") from None
    return [
        p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    ]


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file + rename; never leaves a partial file."""
    path = Path(path)
    if path.parent not in _SWEPT:  # once per folder and process: create it, sweep it
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temp_files(path.parent)
        _SWEPT.add(path.parent)
    owner = f"{_HOST}-{os.getpid()}"
    prefix = f".{path.name}.{owner}."
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    except FileNotFoundError:  # the folder went away since this process made it
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        _unlink_quietly(tmp)
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise DiskFullError(
                f"{path}: disk full while writing ({e.strerror}); nothing "
                "already written was lost - free space and re-run to resume"
            ) from None
        raise
    except BaseException:
        _unlink_quietly(tmp)
        raise


_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_SWEPT: set[Path] = set()
_TEMP_RE = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.[^.]+\.tmp$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_temp_files(folder: str | Path) -> list[Path]:
    """Remove temp files left in ``folder`` by a writer on this host that was killed.

    A temp file's name carries its writer's host and pid (``.NAME.HOST-PID.XXXX.tmp``); one whose
    process is gone is a leftover of a kill between create and rename and is deleted. Files of
    live processes or of other hosts are left alone, so concurrent writers are never disturbed.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if not m or m["host"] != _HOST:
            continue
        pid = int(m["pid"])
        if pid != os.getpid() and not _pid_alive(pid):
            _unlink_quietly(entry.path)
            removed.append(Path(entry.path))
    return removed


def _unlink_quietly(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def encode_png(pixels: np.ndarray) -> bytes:
    """Deterministic PNG bytes of a uint8 image (same input, same bytes)."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", compress_level=3)
    return buf.getvalue()


def write_png_atomic(path: str | Path, pixels: np.ndarray) -> bytes:
    """Write a PNG atomically and return its bytes."""
    data = encode_png(pixels)
    write_bytes_atomic(path, data)
    return data
