"""Per-image latency and peak memory of the CNN methods on one LIVE1 image.

CPU by default; ``--device cuda --dtype fp16`` for a GPU (one short run, well under 8 minutes
on one H100). Weights: DnCNN-3 from BENCH_WEIGHTS_DIR when present; FBCNN uses its full-size
architecture with random weights (latency and memory do not depend on the values; no output
of this script is a quality number). Baseline for the ratios: the ``jpeg`` method (decode only).

    python benchmarks/method_speed.py --data-root ../shared/data [--image bikes] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from carbench import methods
from carbench.core.imageio import read_image
from carbench.degradations import Jpeg, decode_jpeg
from carbench.methods.base import Sample


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux)


def _peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _random_weights(m, kinds):
    """Full-size network with random weights, for timing only."""
    net = m.build_network("color" if "rgb" in kinds else "gray")
    net = net.eval().to(m.device)
    if m.device == "cpu":
        net = net.to(memory_format=torch.channels_last)
    m._nets = {"color": net, "gray": net}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--image", default="bikes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rgb = read_image(args.data_root / "LIVE1" / f"{args.image}.png").pixels
    gray = read_image(args.data_root / "LIVE1_gray" / f"{args.image}.png").pixels
    print(
        f"LIVE1/{args.image} {rgb.shape[1]}x{rgb.shape[0]}, JPEG QF 10, device {args.device}, "
        f"dtype {args.dtype}, torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    rows = []
    for spec, img, kinds in [
        ("jpeg", rgb, ("rgb",)),
        ("dncnn3", gray, ("gray",)),
        ("fbcnn", rgb, ("rgb",)),
        ("fbcnn", gray, ("gray",)),
    ]:
        m = methods.get(spec)
        note = ""
        try:
            m.load(args.device, args.dtype, kinds=kinds)
        except Exception:
            m.device, m.dtype = args.device, args.dtype
            if spec == "fbcnn":
                _random_weights(m, kinds)
                note = "random weights"
            else:
                print(f"{spec}: weights missing, skipped")
                continue
        bitstream = Jpeg(10).apply(img).bitstream
        sample = Sample(args.image, decode_jpeg(bitstream), None, "jpeg-q10", {"qf": 10})
        m.restore(sample)  # warm-up
        times = []
        for _ in range(args.repeat):
            _reset_peak(args.device)
            t = time.perf_counter()
            if spec == "jpeg":  # the baseline: decoding the bitstream
                decode_jpeg(bitstream)
            else:
                m.restore(sample)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        rows.append(
            (
                f"{spec} ({'gray' if img.ndim == 2 else 'rgb'})",
                float(np.median(times)),
                _peak_mb(args.device),
                note,
            )
        )
    base = rows[0][1]
    kind = "CUDA allocated" if args.device.startswith("cuda") else "process peak RSS"
    print(f"{'method':<16}{'ms/image':>10}{'x jpeg':>10}{'peak MB':>10}  ({kind})")
    for name, sec, mb, note in rows:
        print(f"{name:<16}{sec * 1000:>10.1f}{sec / base:>10.0f}{mb:>10.0f}  {note}")


if __name__ == "__main__":
    main()
