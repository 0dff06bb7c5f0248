"""Encode+decode speed of each in-process codec against its Debian command-line tool.

Baselines, as subprocesses on the same images written as PNG: ``cwebp -q 50 -m 4`` then
``dwebp -ppm`` (WebP); ``opj_compress -I -r 20`` then ``opj_decompress`` (JPEG 2000);
``avifenc -j 1 -s 6 --min 32 --max 32`` then ``avifdec -j 1`` (AVIF q50); ``cjxl -d 2 -e 7``
then ``djxl`` (JPEG XL, one thread each); ``heif-enc -p x265:qp=35`` (veryslow, tune ssim) then
``heif-convert`` (HEIF). Library and tool versions differ (see the tests). Ours:
``deg.apply(rgb).decoded`` in process. Prints MP/s of both, the ratio and the versions.

    python benchmarks/codec_speed.py [--images N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from carbench.degradations.avif import Avif
from carbench.degradations.base import Degradation
from carbench.degradations.heif import Heif
from carbench.degradations.jpeg2000 import Jpeg2000
from carbench.degradations.jpegxl import JpegXl
from carbench.degradations.webp import Webp

#: (degradation, tool name, encode argv, decode argv); {i} input PNG, {b} bitstream, {o} output
CASES: list[tuple[Degradation, str, list[str], list[str]]] = [
    (
        Webp(50),
        "cwebp",
        ["cwebp", "-quiet", "-q", "50", "-m", "4", "{i}", "-o", "{b}.webp"],
        ["dwebp", "-quiet", "{b}.webp", "-ppm", "-o", "{o}.ppm"],
    ),
    (
        Jpeg2000("cr", 20),
        "opj_compress",
        ["opj_compress", "-I", "-r", "20", "-i", "{i}", "-o", "{b}.j2k"],
        ["opj_decompress", "-i", "{b}.j2k", "-o", "{o}.ppm"],
    ),
    (
        Avif(50),
        "avifenc",
        ["avifenc", "-j", "1", "-s", "6", "--min", "32", "--max", "32", "{i}", "{b}.avif"],
        ["avifdec", "-j", "1", "{b}.avif", "{o}.png"],
    ),
    (
        JpegXl("d", 2.0),
        "cjxl",
        ["cjxl", "-d", "2", "-e", "7", "--num_threads=0", "{i}", "{b}.jxl"],
        ["djxl", "{b}.jxl", "{o}.png", "--num_threads=0"],
    ),
    (
        Heif(35),
        "heif-enc",
        [
            "heif-enc",
            "-p",
            "x265:qp=35",
            "-p",
            "preset=veryslow",
            "-p",
            "tune=ssim",
            "-o",
            "{b}.heic",
            "{i}",
        ],
        ["heif-convert", "{b}.heic", "{o}.png"],
    ),
]


def _images(n: int) -> list[np.ndarray]:
    base = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    return [np.ascontiguousarray(base[i % len(base)]) for i in range(n)]


def _fill(argv: list[str], **kw: str) -> list[str]:
    return [a.format(**kw) for a in argv]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=8)
    args = ap.parse_args()
    imgs = _images(args.images)
    mp = sum(i.shape[0] * i.shape[1] for i in imgs) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        pngs = []
        for k, im in enumerate(imgs):
            pngs.append(Path(tmp) / f"{k}.png")
            Image.fromarray(im).save(pngs[-1])
        for deg, tool, enc, dec in CASES:
            _ = deg.apply(imgs[0][:64, :64]).decoded  # warm-up: library load
            t0 = time.perf_counter()
            for im in imgs:
                _ = deg.apply(im).decoded
            ours = time.perf_counter() - t0
            print(f"{deg.id}: ours ({deg.encoder()}) {mp / ours:6.1f} MP/s", end="")
            if not shutil.which(tool):
                print(f"; {tool} not on PATH: no baseline")
                continue
            t0 = time.perf_counter()
            for p in pngs:
                kw = {"i": str(p), "b": str(p.with_suffix("")) + "b", "o": str(p) + "o"}
                subprocess.run(_fill(enc, **kw), check=True, capture_output=True)
                subprocess.run(_fill(dec, **kw), check=True, capture_output=True)
            cli = time.perf_counter() - t0
            print(f"; {tool} CLI {mp / cli:6.1f} MP/s; ratio ours/CLI {cli / ours:.2f}x")


if __name__ == "__main__":
    main()
