"""Time per rung of a rate sweep: ``bench generate --sweep CODEC`` against calling the codec's
library directly.

Baseline ("direct"): decode each ground truth once with OpenCV, then for every rung encode it
with the codec's own library call (OpenCV ``imencode`` for JPEG, Pillow for WebP/AVIF,
imagecodecs for JPEG XL; one thread each, as carbench runs them), decode the bitstream back
where carbench stores the decoded PNG (WebP, AVIF, JPEG XL: what a method reads) and write the
file(s), the PNG as carbench writes it (Pillow, zlib level 3). ``bench generate`` does the
same through :func:`bench.generate.generate` (one decode per image for all rungs) plus
validation, hashes, the journal and the manifest. Prints seconds per rung (all images) and the
ratio direct / bench (above 1: bench is faster).

    python benchmarks/sweep_speed.py [--dataset Kodak24 --data-root ../shared/data]
        [--codecs jpeg,webp,avif,jxl] [--images 6] [--repeat 1]
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from carbench.bench.datasets import resolve
from carbench.bench.generate import generate
from carbench.bench.protocols import get_protocol
from carbench.core.workspace import Workspace
from carbench.degradations import expand
from carbench.degradations.sweeps import ladder


def _png(path: Path, rgb: np.ndarray) -> None:
    """The decoded PNG as carbench stores it (Pillow, zlib level 3: the same bytes)."""
    Image.fromarray(rgb).save(path, "PNG", compress_level=3)


def direct(codec: str, rungs: list, images: list[Path], out: Path) -> None:
    """The codec's own library at every rung, one decode of each source."""
    import imagecodecs

    for p in images:
        rgb = cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        for d in rungs:
            stem = out / f"{p.stem}-{d.id}"
            if codec == "jpeg":
                ok, buf = cv2.imencode(
                    ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, d.q]
                )
                stem.with_suffix(".jpg").write_bytes(buf.tobytes())
                continue
            if codec == "jxl":
                data = imagecodecs.jpegxl_encode(
                    rgb, distance=d.value, effort=d.effort, usecontainer=False, numthreads=1
                )
                dec = imagecodecs.jpegxl_decode(data, numthreads=1)
            else:
                buf = io.BytesIO()
                kw = {"quality": d.q}
                if codec == "avif":
                    kw.update(speed=d.speed, codec="aom", max_threads=1)
                Image.fromarray(rgb).save(buf, codec.upper(), **kw)
                data = buf.getvalue()
                with Image.open(io.BytesIO(data)) as im:
                    dec = np.asarray(im.convert("RGB"))
            stem.with_suffix("." + codec).write_bytes(data)
            _png(stem.with_suffix(".png"), dec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", default="Kodak24")
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument("--codecs", default="jpeg,webp,avif,jxl")
    ap.add_argument("--images", type=int, default=6, help="first N images of the set")
    ap.add_argument("--repeat", type=int, default=1, help="best of N")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ds = resolve(args.dataset, Path(tmp), args.data_root)
        src = Path(tmp) / "src"
        src.mkdir()
        for p in ds.images[: args.images]:
            shutil.copy(p, src / p.name)
        images = sorted(src.iterdir())
        local = resolve(str(src), Path(tmp))
        print(
            f"{args.dataset}: {len(images)} images; seconds per rung (all images), best of "
            f"{args.repeat}"
        )
        for codec in args.codecs.split(","):
            rungs = expand(ladder(codec).spec)
            t_direct = t_bench = float("inf")
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory() as d:
                    t = time.perf_counter()
                    direct(codec, rungs, images, Path(d))
                    t_direct = min(t_direct, time.perf_counter() - t)
                with tempfile.TemporaryDirectory() as d:
                    t = time.perf_counter()
                    generate(
                        Workspace(Path(d)), local, get_protocol("fbcnn"), rungs, progress=False
                    )
                    t_bench = min(t_bench, time.perf_counter() - t)
            n = len(rungs)
            print(
                f"  {codec:<5} {n} rungs: direct {t_direct / n:.3f} s/rung, bench generate "
                f"{t_bench / n:.3f} s/rung, ratio {t_direct / t_bench:.2f}x"
            )


if __name__ == "__main__":
    main()
