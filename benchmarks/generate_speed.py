"""Throughput of ``bench generate``'s JPEG path against a bare Pillow loop.

Baseline ("bare loop"): for each ground-truth file, open it with Pillow, encode it at each QF
with Pillow (libjpeg-turbo) and write the .jpg - nothing else. ``bench generate`` does that plus
validation, hashing, records and the manifest; it decodes PNGs and encodes JPEGs with OpenCV
(byte-identical output; OpenCV releases the GIL, Pillow's JPEG encoder does not, which capped
two threads at 1.67x). Prints MP/s and the ratios.

    python benchmarks/generate_speed.py [--dataset LIVE1 --data-root ../shared/data] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import PIL
from PIL import Image, features

from carbench.bench.datasets import resolve
from carbench.bench.generate import generate
from carbench.bench.protocols import get_protocol
from carbench.core.provenance import carbench_version
from carbench.core.workspace import Workspace
from carbench.degradations import expand
from carbench.degradations.jpeg import libjpeg_version

QFS = (5, 10, 20)


def bare_loop(images: list[Path], out: Path, jobs: int) -> None:
    def one(p: Path) -> None:
        with Image.open(p) as im:
            im.load()
            for q in QFS:
                im.save(out / f"{p.stem}-q{q}.jpg", "JPEG", quality=q)

    if jobs == 1:
        for p in images:
            one(p)
    else:
        from joblib import Parallel, delayed

        Parallel(n_jobs=jobs, backend="threading")(delayed(one)(p) for p in images)


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            fn(Path(tmp))
            best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", default="LIVE1")
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ds = resolve(args.dataset, Path(tmp), args.data_root)
        # copy the sources locally so both contenders read the same warm files
        src = Path(tmp) / "src"
        src.mkdir()
        for p in ds.images:
            shutil.copy(p, src / p.name)
        images = sorted(src.iterdir())
        ds = resolve(str(src), Path(tmp))
        mp = sum(Image.open(p).width * Image.open(p).height for p in images) * len(QFS) / 1e6
        proto, degs = get_protocol("fbcnn"), expand("jpeg:q=5,10,20")
        results = {}
        for jobs in (1, 2):
            results[("bare", jobs)] = timed(lambda d, j=jobs: bare_loop(images, d, j), args.repeat)
            results[("bench", jobs)] = timed(
                lambda d, j=jobs: generate(Workspace(d), ds, proto, degs, jobs=j, progress=False),
                args.repeat,
            )
    print(f"dataset {args.dataset}: {len(images)} images, QF {QFS}, {mp:.1f} MP encoded per run")
    print(
        f"versions: bare loop Pillow {PIL.__version__} ({features.version('jpg')} API), "
        f"bench generate carbench {carbench_version()} with {libjpeg_version()}"
    )
    print(f"{'contender':<28}{'workers':>8}{'seconds':>10}{'MP/s':>9}")
    for (name, jobs), sec in results.items():
        label = "bare Pillow loop" if name == "bare" else "bench generate (fbcnn)"
        print(f"{label:<28}{jobs:>8}{sec:>10.3f}{mp / sec:>9.1f}")
    for jobs in (1, 2):
        r = results[("bare", jobs)] / results[("bench", jobs)]
        print(f"ratio bench/bare, {jobs} worker(s): {r:.2f}x  (goal >= 0.9x)")
    print(
        f"speed-up of bench generate on 2 workers: "
        f"{results[('bench', 1)] / results[('bench', 2)]:.2f}x  (goal >= 1.8x)"
    )


if __name__ == "__main__":
    main()
