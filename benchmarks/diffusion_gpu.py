"""GPU timing of the diffusion adapters with full-size architectures and random weights.

One short script (well under 8 minutes on one H100): CODiff and OSEDiff one step at 512x512 and
on a 2040x1356 image (latent tiling + tiled VAE), fp16, with peak memory; DiffBIR v2 time per
sampling step (ControlNet + UNet, with and without guidance) at 512x512. Random weights:
timings and memory only, never quality numbers. Goal: CODiff 512^2 <= 60 ms on an H100
(OSEDiff reports 104.6 ms on an A100).

    python benchmarks/diffusion_gpu.py [--device cuda] [--dtype fp16] [--repeat 10]
"""

from __future__ import annotations

import argparse
import time

import torch

from methods import sd_core
from methods.codiff import CODiff, build_cave
from methods.diffbir import DiffBIR
from methods.diffbir_nets import build_ircontrolnet
from methods.osediff import OSEDiff
from methods.torch_utils import torch_dtype


def _sync(dev: str) -> None:
    if dev.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn, dev: str, repeat: int) -> tuple[float, float]:
    fn()
    _sync(dev)
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.startswith("cuda") else float("nan")
    return sorted(times)[len(times) // 2], peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="fp16")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--big", default="1356x2040", help="HxW of the tiled case")
    args = ap.parse_args()
    dev, dt = args.device, torch_dtype(args.dtype)
    torch.backends.cuda.matmul.allow_tf32 = True
    print(
        f"device {torch.cuda.get_device_name() if dev.startswith('cuda') else dev}, "
        f"dtype {args.dtype}, torch {torch.__version__}"
    )
    unet = sd_core.build_unet().eval().to(dev, dt)
    vae = sd_core.build_vae().eval().to(dev, dt)
    rows = []
    codiff = CODiff()
    codiff.device, codiff.dtype = dev, args.dtype
    codiff.cave = build_cave().eval().to(dev)
    codiff.proj = torch.nn.Linear(512, 1024).to(dev)
    codiff.set_components(unet, vae, None)
    osediff = OSEDiff()
    osediff.device, osediff.dtype = dev, args.dtype
    osediff.set_components(unet, vae, None)
    osediff.condition = lambda x: torch.zeros(1, 77, 1024, device=dev)  # text encoder excluded
    bh, bw = map(int, args.big.split("x"))
    with torch.no_grad():
        for name, m in (("CODiff", codiff), ("OSEDiff (no text encoder)", osediff)):
            for h, w in ((512, 512), (bh, bw)):
                x = torch.rand(1, 3, h, w, device=dev)
                reps = args.repeat if h * w <= 512 * 512 else max(1, args.repeat // 5)
                sec, peak = _time(lambda m=m, x=x: m.restore_tensor(x), dev, reps)
                rows.append((f"{name} one step {h}x{w}", sec, peak))
        control = build_ircontrolnet().eval().to(dev, dt)
        db = DiffBIR()
        db.device, db.dtype = dev, args.dtype
        db.set_components(unet, vae, control, None, None, None)
        z = torch.randn(1, 4, 64, 64, device=dev)
        txt = torch.randn(1, 77, 1024, device=dev)
        sec, peak = _time(lambda: db._model(z, 500, txt, z), dev, args.repeat)
        rows.append(("DiffBIR step 512x512 (ControlNet+UNet)", sec, peak))
        rows.append(("DiffBIR step with guidance (x2)", 2 * sec, peak))
        rows.append(("DiffBIR v2, 50 steps with guidance (est.)", 100 * sec, peak))
        rows.append(("DiffBIR v2.1, 10 steps with guidance (est.)", 20 * sec, peak))
    for name, sec, peak in rows:
        print(f"{name:<46}{sec * 1000:>10.1f} ms{peak:>8.2f} GiB peak")
    first = rows[0][1] * 1000
    print(f"CODiff 512^2: {first:.1f} ms (goal <= 60 ms on an H100)")


if __name__ == "__main__":
    main()
