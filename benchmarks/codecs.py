"""Encode+decode speed of each in-process codec against its Debian command-line tool.

Baseline: ``cwebp -q Q -m 4 in.png -o x.webp`` then ``dwebp x.webp -ppm -o x.ppm`` in a
subprocess, on the same images. Ours: ``Webp(q).apply(rgb).decoded`` (libwebp via Pillow).
Prints MP/s of both, the ratio and the library/tool versions.

    python benchmarks/codecs.py [--images N] [--q 50]
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

from degradations.webp import Webp, libwebp_version


def _images(n: int) -> list[np.ndarray]:
    base = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    return [np.ascontiguousarray(base[i % len(base)]) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--q", type=int, default=50)
    args = ap.parse_args()
    imgs = _images(args.images)
    mp = sum(i.shape[0] * i.shape[1] for i in imgs) / 1e6
    _ = Webp(args.q).apply(imgs[0][:64, :64]).decoded  # warm-up: library load
    t0 = time.perf_counter()
    for im in imgs:
        _ = Webp(args.q).apply(im).decoded
    ours = time.perf_counter() - t0
    print(f"ours   {libwebp_version()}: {mp / ours:7.1f} MP/s")
    if not shutil.which("cwebp"):
        print("cwebp not on PATH (apt-get install webp): no baseline")
        return
    version = subprocess.run(["cwebp", "-version"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k, im in enumerate(imgs):
            paths.append(Path(tmp) / f"{k}.png")
            Image.fromarray(im).save(paths[-1])
        t0 = time.perf_counter()
        for p in paths:
            w, o = p.with_suffix(".webp"), p.with_suffix(".ppm")
            subprocess.run(
                ["cwebp", "-quiet", "-q", str(args.q), "-m", "4", str(p), "-o", str(w)], check=True
            )
            subprocess.run(["dwebp", "-quiet", str(w), "-ppm", "-o", str(o)], check=True)
        cli = time.perf_counter() - t0
    print(f"cwebp/dwebp {version}: {mp / cli:7.1f} MP/s (incl. PNG read by the tool)")
    print(f"ratio ours/cli: {cli / ours:.2f}x")


if __name__ == "__main__":
    main()
