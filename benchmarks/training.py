"""Training-pair generator against a bare read-crop-encode-decode loop.

Bare loops: read (Pillow ``convert("RGB")``, or ``cv2.imread`` + BGR->RGB), a random 128x128
crop, ``cv2.imencode('.jpg', q)`` and ``cv2.imdecode``, in a plain Python loop; the ratio is
against the faster of the two.
Ours: ``PairDataset(folder, 'generic:jpeg:q=uniform(5,95),crop=128')``
through a ``DataLoader`` with 1 and then 2 workers (batch 8). Prints pairs/s, ours(1 worker) /
bare and the 2-worker speed-up. Goals: >= 0.9x and >= 1.8x (the second needs two free cores).

    python benchmarks/training.py FOLDER [--pairs N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from degradations.training import PairDataset, list_images

RECIPE = "generic:jpeg:q=uniform(5,95),crop=128"


def pillow_read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def opencv_read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def bare(files: list[Path], n: int, read) -> float:
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for i in range(n):
        img = read(files[i % len(files)])
        y = int(rng.integers(0, img.shape[0] - 128 + 1))
        x = int(rng.integers(0, img.shape[1] - 128 + 1))
        bgr = np.ascontiguousarray(img[y : y + 128, x : x + 128, ::-1])
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(5, 96))])
        _ = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return n / (time.perf_counter() - t0)


def ours(folder: Path, n: int, workers: int) -> float:
    from torch.utils.data import DataLoader

    dl = DataLoader(
        PairDataset(folder, RECIPE, seed=0, length=n),
        batch_size=8,
        num_workers=workers,
        persistent_workers=False,
    )
    it = iter(dl)
    next(it)  # worker start-up excluded
    t0 = time.perf_counter()
    count = 8
    for b in it:
        count += len(b["lq"])
    return (count - 8) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--pairs", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    files = list_images(args.folder)
    runs: dict[str, list[float]] = {"bp": [], "bc": [], "o1": [], "o2": []}
    for _ in range(args.repeat):  # interleaved, best of each: a shared machine's load varies
        runs["bp"].append(bare(files, args.pairs, pillow_read))
        runs["bc"].append(bare(files, args.pairs, opencv_read))
        runs["o1"].append(ours(args.folder, args.pairs, 1))
        runs["o2"].append(ours(args.folder, args.pairs, 2))
    bp, bc, o1, o2 = (max(v) for v in runs.values())
    b = max(bp, bc)
    print(f"best of {args.repeat} interleaved runs of {args.pairs} pairs each")
    print(f"cores: {os.cpu_count()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})")
    print(f"bare loop, Pillow read  {bp:7.1f} pairs/s")
    print(f"bare loop, OpenCV read  {bc:7.1f} pairs/s")
    print(f"PairDataset 1 worker    {o1:7.1f} pairs/s; ratio ours/faster bare {o1 / b:.2f}x")
    print(f"PairDataset 2 workers   {o2:7.1f} pairs/s; speed-up vs 1 worker {o2 / o1:.2f}x")
    print(f"OpenCV {cv2.__version__}; load average {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
