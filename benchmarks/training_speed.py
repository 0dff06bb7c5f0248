"""Training-pair generator against a bare read-crop-encode-decode loop.

Bare loops: read (Pillow ``convert("RGB")``, or ``cv2.imread`` + BGR->RGB), a random 128x128
crop, ``cv2.imencode('.jpg', q)`` and ``cv2.imdecode``, in a plain Python loop; the ratio is
against the faster of the two.
Ours: ``PairDataset(folder, 'generic:jpeg:q=uniform(5,95),crop=128')``
through a ``DataLoader`` with 1 and then 2 workers (batch 8). Prints pairs/s, ours(1 worker) /
bare and the 2-worker speed-up, by wall time and by CPU time (process + joined workers: the
ratio that a loaded machine distorts least). Goals: >= 0.9x and >= 1.8x (the second needs two
free cores).

    python benchmarks/training_speed.py FOLDER [--pairs N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from carbench.degradations.training import PairDataset, list_images

RECIPE = "generic:jpeg:q=uniform(5,95),crop=128"


def pillow_read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def opencv_read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (joined DataLoader workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bare(files: list[Path], n: int, read) -> tuple[float, float]:
    """(pairs/s wall, CPU ms per pair)."""
    rng = np.random.default_rng(0)
    c0, t0 = _cpu(), time.perf_counter()
    for i in range(n):
        img = read(files[i % len(files)])
        y = int(rng.integers(0, img.shape[0] - 128 + 1))
        x = int(rng.integers(0, img.shape[1] - 128 + 1))
        bgr = np.ascontiguousarray(img[y : y + 128, x : x + 128, ::-1])
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(5, 96))])
        _ = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return n / (time.perf_counter() - t0), (_cpu() - c0) / n * 1e3


def ours(folder: Path, n: int, workers: int) -> tuple[float, float]:
    """(pairs/s wall after the first batch, CPU ms per pair of all n pairs, workers included)."""
    from torch.utils.data import DataLoader

    c0 = _cpu()
    dl = DataLoader(
        PairDataset(folder, RECIPE, seed=0, length=n),
        batch_size=8,
        num_workers=workers,
        persistent_workers=False,
    )
    it = iter(dl)
    next(it)  # worker start-up excluded from the wall time
    t0 = time.perf_counter()
    count = 8
    for b in it:
        count += len(b["lq"])
    wall = (count - 8) / (time.perf_counter() - t0)
    del it  # joins the workers, so their CPU time is counted
    return wall, (_cpu() - c0) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--pairs", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    files = list_images(args.folder)
    runs: dict[str, list[tuple[float, float]]] = {"bp": [], "bc": [], "o1": [], "o2": []}
    load0 = os.getloadavg()[0]
    for _ in range(args.repeat):  # interleaved, best of each: a shared machine's load varies
        runs["bp"].append(bare(files, args.pairs, pillow_read))
        runs["bc"].append(bare(files, args.pairs, opencv_read))
        runs["o1"].append(ours(args.folder, args.pairs, 1))
        runs["o2"].append(ours(args.folder, args.pairs, 2))
    wall = {k: max(w for w, _ in v) for k, v in runs.items()}
    cpu = {k: min(c for _, c in v) for k, v in runs.items()}
    b, bcpu = max(wall["bp"], wall["bc"]), min(cpu["bp"], cpu["bc"])
    print(f"best of {args.repeat} interleaved runs of {args.pairs} pairs each")
    print(f"cores: {os.cpu_count()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})")
    print("                         wall pairs/s   CPU ms/pair")
    for key, name in (("bp", "bare, Pillow read"), ("bc", "bare, OpenCV read")):
        print(f"{name:24} {wall[key]:9.1f} {cpu[key]:13.2f}")
    for key, name in (("o1", "PairDataset 1 worker"), ("o2", "PairDataset 2 workers")):
        print(f"{name:24} {wall[key]:9.1f} {cpu[key]:13.2f}")
    print(f"1 worker / faster bare: wall {wall['o1'] / b:.2f}x, CPU {bcpu / cpu['o1']:.2f}x")
    print(f"2 workers / 1 worker (wall): {wall['o2'] / wall['o1']:.2f}x (needs 2 free cores)")
    print(f"OpenCV {cv2.__version__}; load average {load0:.2f} -> {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
