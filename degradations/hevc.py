"""BPG through the real ``bpgenc``/``bpgdec``, and HEVC-intra through ffmpeg + libx265.

``bpg-qp30`` runs bpgenc (defaults of libbpg 0.9.8: 4:2:0, ycbcr = full-range BT.601, 8 bit,
x265, level 8). ``hevc-qp30`` is the fallback when bpgenc is not installed: ffmpeg + libx265
with bpgenc's settings (full-range BT.601 4:2:0, preset veryslow, tune ssim, constant QP,
keyint 1, no SEI), stored as a raw HEVC bitstream. The two are *not* the same codec output
(the fallback is within about 0.1 dB of bpgenc at QP 30/40/50) and carry different ids so no
table mixes them up. bpp is always computed from the stored bitstream.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from carbench.core.options import Option
from carbench.degradations.base import Degradation, DegradedImage, ImageLike, as_array, ints, need

BPG_CHROMA = ("420", "422", "444")
BPG_COLOR_SPACES = ("ycbcr", "rgb", "ycgco", "ycbcr_bt709", "ycbcr_bt2020")
BPG_ENCODERS = ("x265", "jctvc")
# Accurate rounding and full chroma interpolation in swscale's RGB<->YCbCr: without them the
# round trip alone costs about 0.5 dB (astronaut QP 30: 34.72 dB vs 35.25 dB).
_SWS_FLAGS = "accurate_rnd+full_chroma_int"


class CodecNotFoundError(RuntimeError):
    """An external codec binary is missing."""


def _check_qp(qp: int) -> int:
    if isinstance(qp, bool) or not isinstance(qp, (int, np.integer)) or not 0 <= int(qp) <= 51:
        raise ValueError(f"HEVC/BPG QP must be an integer from 0 to 51, got {qp!r}")
    return int(qp)


def _run(cmd: list[str], what: str, stdin: bytes | None = None) -> bytes:
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    except FileNotFoundError as e:
        raise CodecNotFoundError(f"{what}: '{cmd[0]}' not found on PATH") from e
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()[-800:]
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {err}")
    return proc.stdout


def _pad_even(img: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Edge-replicate to even height and width (4:2:0 HEVC needs it); return the padding."""
    ph, pw = img.shape[0] % 2, img.shape[1] % 2
    if not (ph or pw):
        return img, (0, 0)
    pad = ((0, ph), (0, pw)) + (((0, 0),) if img.ndim == 3 else ())
    return np.pad(img, pad, mode="edge"), (ph, pw)


def bpg_paths() -> tuple[str, str]:
    """Paths of bpgenc and bpgdec (``BENCH_BPGENC`` / ``BENCH_BPGDEC`` or PATH)."""
    return os.environ.get("BENCH_BPGENC", "bpgenc"), os.environ.get("BENCH_BPGDEC", "bpgdec")


def bpgenc_available() -> bool:
    enc, dec = bpg_paths()
    return shutil.which(enc) is not None and shutil.which(dec) is not None


@functools.cache
def _tool_version(cmd: tuple[str, ...], pattern: str) -> str:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, check=False)
    except FileNotFoundError:
        return "not found"
    m = re.search(pattern, (proc.stdout + proc.stderr).decode(errors="replace"))
    return m.group(1) if m else "unknown"


@dataclass(frozen=True)
class Bpg(Degradation):
    """Real bpgenc. Id ``bpg-qp30``; non-default options are appended (``bpg-qp30-444-b10``)."""

    qp: int
    chroma: str = "420"
    color_space: str = "ycbcr"
    bit_depth: int = 8
    encoder_name: str = "x265"
    level: int = 8

    kind: ClassVar[str] = "bpg"
    bitstream_ext: ClassVar[str] = ".bpg"
    stores_decoded: ClassVar[bool] = True
    spec_options: ClassVar[tuple[Option, ...]] = (
        Option("qp", "int", min=0, max=51, required=True, help="quantiser (bpgenc -q)"),
        Option("chroma", "choice", "420", choices=BPG_CHROMA, help="chroma format (-f)"),
        Option("cs", "choice", "ycbcr", choices=BPG_COLOR_SPACES, help="colour space (-c)"),
        Option("bits", "int", 8, min=8, max=12, help="bit depth (-b)"),
        Option("encoder", "choice", "x265", choices=BPG_ENCODERS, help="HEVC encoder (-e)"),
        Option("level", "int", 8, min=1, max=9, help="compression level (-m)"),
    )
    spec_example: ClassVar[str] = "bpg:qp=30,40,50"
    id_pattern: ClassVar[str] = r"bpg-qp(\d+)((?:-[a-z0-9]+)*)"

    def __post_init__(self) -> None:
        _check_qp(self.qp)
        if self.chroma not in BPG_CHROMA:
            raise ValueError(
                f"bpg chroma must be one of {', '.join(BPG_CHROMA)}, got {self.chroma!r}"
            )
        if self.color_space not in BPG_COLOR_SPACES:
            raise ValueError(f"bpg colour space must be one of {', '.join(BPG_COLOR_SPACES)}")
        if not 8 <= self.bit_depth <= 12:
            raise ValueError(f"bpg bit depth must be 8-12, got {self.bit_depth}")
        if self.encoder_name not in BPG_ENCODERS:
            raise ValueError(f"bpg encoder must be x265 or jctvc, got {self.encoder_name!r}")
        if not 1 <= self.level <= 9:
            raise ValueError(f"bpg compression level must be 1-9, got {self.level}")

    def check_available(self) -> None:
        enc, dec = bpg_paths()
        for tool in (enc, dec):
            if shutil.which(tool) is None:
                raise CodecNotFoundError(
                    f"{self.id} needs {tool!r} (libbpg), not found; set "
                    "BENCH_BPGENC / BENCH_BPGDEC or use hevc"
                )

    @property
    def id(self) -> str:
        parts = [f"bpg-qp{self.qp}"]
        if self.chroma != "420":
            parts.append(self.chroma)
        if self.color_space != "ycbcr":
            parts.append(self.color_space.replace("_", ""))
        if self.bit_depth != 8:
            parts.append(f"b{self.bit_depth}")
        if self.encoder_name != "x265":
            parts.append(self.encoder_name)
        if self.level != 8:
            parts.append(f"m{self.level}")
        return "-".join(parts)

    def apply(self, gt: ImageLike) -> DegradedImage:
        gt = as_array(gt)
        enc, dec = bpg_paths()
        with tempfile.TemporaryDirectory(prefix="carbench-bpg-") as tmp:
            src, bpg, out = Path(tmp, "in.png"), Path(tmp, "out.bpg"), Path(tmp, "out.png")
            Image.fromarray(gt).save(src, compress_level=1)
            _run(
                [
                    enc,
                    "-o",
                    str(bpg),
                    "-q",
                    str(self.qp),
                    "-f",
                    self.chroma,
                    "-c",
                    self.color_space,
                    "-b",
                    str(self.bit_depth),
                    "-e",
                    self.encoder_name,
                    "-m",
                    str(self.level),
                    str(src),
                ],
                "bpgenc",
            )
            _run([dec, "-o", str(out), str(bpg)], "bpgdec")
            with Image.open(out) as im:
                decoded = np.asarray(im.convert("L" if gt.ndim == 2 else "RGB"))
            return DegradedImage(bpg.read_bytes(), gt, _decoded=decoded)

    @classmethod
    def from_match(cls, m: re.Match[str]) -> Bpg:
        """``bpg-qp30`` plus the non-default options in any order the id writes them."""
        kw: dict = {}
        for part in filter(None, m[2].split("-")):
            if part in ("420", "422", "444"):
                kw["chroma"] = part
            elif part in ("rgb", "ycgco", "ycbcrbt709", "ycbcrbt2020"):
                kw["color_space"] = part.replace("ycbcrbt", "ycbcr_bt")
            elif re.fullmatch(r"b\d+", part):
                kw["bit_depth"] = int(part[1:])
            elif part == "jctvc":
                kw["encoder_name"] = part
            elif re.fullmatch(r"m\d", part):
                kw["level"] = int(part[1:])
            else:
                raise ValueError(f"unknown bpg id part {part!r}")
        return cls(int(m[1]), **kw)

    @classmethod
    def from_spec(cls, p: dict[str, list[str]]) -> list[Degradation]:
        return [
            cls(qp, c, cs, b, e, lv)
            for qp, c, cs, b, e, lv in itertools.product(
                ints(need(p, "qp", "bpg:qp=30,40,50", "bpg"), "qp"),
                p.get("chroma", ["420"]),
                p.get("cs", ["ycbcr"]),
                ints(p.get("bits", ["8"]), "bits"),
                p.get("encoder", ["x265"]),
                ints(p.get("level", ["8"]), "level"),
            )
        ]

    @property
    def label(self) -> str:
        return "QP=" + self.id.removeprefix("bpg-qp")

    def params(self) -> dict:
        return {
            "qp": self.qp,
            "chroma": self.chroma,
            "color_space": self.color_space,
            "bit_depth": self.bit_depth,
            "bpg_encoder": self.encoder_name,
            "level": self.level,
        }

    def encoder(self) -> str:
        enc, _ = bpg_paths()
        return f"bpgenc {_tool_version((enc, '-h'), r'version ([0-9.]+)')} ({self.encoder_name})"


@dataclass(frozen=True)
class Hevc(Degradation):
    """HEVC intra via ffmpeg + libx265 with bpgenc's settings. Id ``hevc-qp30`` (``-444``)."""

    qp: int
    chroma: str = "420"

    kind: ClassVar[str] = "hevc"
    bitstream_ext: ClassVar[str] = ".hevc"
    stores_decoded: ClassVar[bool] = True
    spec_options: ClassVar[tuple[Option, ...]] = (
        Option("qp", "int", min=0, max=51, required=True, help="x265 quantiser"),
        Option("chroma", "choice", "420", choices=BPG_CHROMA, help="chroma format"),
    )
    spec_example: ClassVar[str] = "hevc:qp=30,40,50"
    id_pattern: ClassVar[str] = r"hevc-qp(\d+)(?:-(420|422|444))?"

    def __post_init__(self) -> None:
        _check_qp(self.qp)
        if self.chroma not in BPG_CHROMA:
            raise ValueError(
                f"hevc chroma must be one of {', '.join(BPG_CHROMA)}, got {self.chroma!r}"
            )

    @property
    def id(self) -> str:
        return f"hevc-qp{self.qp}" + ("" if self.chroma == "420" else f"-{self.chroma}")

    def check_available(self) -> None:
        ffmpeg = os.environ.get("BENCH_FFMPEG", "ffmpeg")
        if shutil.which(ffmpeg) is None:
            raise CodecNotFoundError(
                f"{self.id} needs ffmpeg with libx265, but {ffmpeg!r} was not found (install "
                "Debian's ffmpeg, or set BENCH_FFMPEG to its path)"
            )

    def apply(self, gt: ImageLike) -> DegradedImage:
        gt = as_array(gt)
        ffmpeg = os.environ.get("BENCH_FFMPEG", "ffmpeg")
        gray = gt.ndim == 2
        padded, (ph, pw) = _pad_even(gt) if self.chroma != "444" else (gt, (0, 0))
        h, w = padded.shape[:2]
        in_fmt = "gray" if gray else "rgb24"
        pix_fmt = "gray" if gray else f"yuv{self.chroma}p"
        x265 = f"qp={self.qp}:keyint=1:info=0:log-level=error"
        with tempfile.TemporaryDirectory(prefix="carbench-hevc-") as tmp:
            stream = Path(tmp, "out.hevc")
            _run(
                [
                    ffmpeg,
                    "-nostdin",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "rawvideo",
                    "-pix_fmt",
                    in_fmt,
                    "-s",
                    f"{w}x{h}",
                    "-i",
                    "-",
                    "-vf",
                    "scale=out_color_matrix=bt601:out_range=full:flags=" + _SWS_FLAGS,
                    "-pix_fmt",
                    pix_fmt,
                    "-color_range",
                    "pc",
                    "-colorspace",
                    "bt470bg",
                    "-c:v",
                    "libx265",
                    "-preset",
                    "veryslow",
                    "-tune",
                    "ssim",
                    "-x265-params",
                    x265,
                    "-f",
                    "hevc",
                    str(stream),
                ],
                "ffmpeg/libx265 encode",
                stdin=np.ascontiguousarray(padded).tobytes(),
            )
            raw = _run(
                [
                    ffmpeg,
                    "-nostdin",
                    "-v",
                    "error",
                    "-i",
                    str(stream),
                    "-vf",
                    "scale=in_color_matrix=bt601:in_range=full:flags=" + _SWS_FLAGS,
                    "-f",
                    "rawvideo",
                    "-pix_fmt",
                    in_fmt,
                    "-",
                ],
                "ffmpeg HEVC decode",
            )
            data = stream.read_bytes()
        decoded = np.frombuffer(raw, np.uint8).reshape(padded.shape)[: gt.shape[0], : gt.shape[1]]
        return DegradedImage(
            data, gt, extra={"pad_rows": ph, "pad_cols": pw}, _decoded=np.ascontiguousarray(decoded)
        )

    @classmethod
    def from_match(cls, m: re.Match[str]) -> Hevc:
        return cls(int(m[1]), m[2] or "420")

    @classmethod
    def from_spec(cls, p: dict[str, list[str]]) -> list[Degradation]:
        qps = ints(need(p, "qp", "hevc:qp=30,40,50", "hevc"), "qp")
        return [cls(qp, c) for qp, c in itertools.product(qps, p.get("chroma", ["420"]))]

    @property
    def label(self) -> str:
        """Never a BPG label: this is also what a ``bpg:`` spec becomes without bpgenc."""
        return "HEVC-intra QP=" + self.id.removeprefix("hevc-qp")

    def params(self) -> dict:
        return {
            "qp": self.qp,
            "chroma": self.chroma,
            "color_space": "ycbcr",
            "preset": "veryslow",
            "tune": "ssim",
            "keyint": 1,
        }

    def encoder(self) -> str:
        ffmpeg = os.environ.get("BENCH_FFMPEG", "ffmpeg")
        ver = _tool_version((ffmpeg, "-version"), r"ffmpeg version (\S+)")
        return f"ffmpeg {ver} libx265 (HEVC-intra, BPG-compatible settings)"
