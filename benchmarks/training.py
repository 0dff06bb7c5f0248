"""Training-pair generator against a bare read-crop-encode-decode loop.

Bare loop: Pillow read, a random 128x128 crop, ``cv2.imencode('.jpg', q)`` and ``cv2.imdecode``,
in a plain Python loop. Ours: ``PairDataset(folder, 'generic:jpeg:q=uniform(5,95),crop=128')``
through a ``DataLoader`` with 1 and then 2 workers (batch 8). Prints pairs/s, ours(1 worker) /
bare and the 2-worker speed-up. Goals: >= 0.9x and >= 1.8x (the second needs two free cores).

    python benchmarks/training.py FOLDER [--pairs N]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from degradations.training import PairDataset, list_images, read_rgb

RECIPE = "generic:jpeg:q=uniform(5,95),crop=128"


def bare(files: list[Path], n: int) -> float:
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for i in range(n):
        img = read_rgb(files[i % len(files)])
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
    args = ap.parse_args()
    files = list_images(args.folder)
    b = bare(files, args.pairs)
    o1 = ours(args.folder, args.pairs, 1)
    o2 = ours(args.folder, args.pairs, 2)
    print(f"cores: {os.cpu_count()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})")
    print(f"bare Pillow+OpenCV loop {b:7.1f} pairs/s")
    print(f"PairDataset 1 worker    {o1:7.1f} pairs/s; ratio ours/bare {o1 / b:.2f}x")
    print(f"PairDataset 2 workers   {o2:7.1f} pairs/s; speed-up vs 1 worker {o2 / o1:.2f}x")
    print(f"OpenCV {cv2.__version__}")


if __name__ == "__main__":
    main()
