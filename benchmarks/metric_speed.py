"""Per-image time of carbench's PSNR / SSIM / PSNR-B against pyiqa and scikit-image (CPU).

Baselines: pyiqa ``psnr`` / ``ssim`` (Y, YIQ) / ``ssimc`` (RGB), and scikit-image's
``peak_signal_noise_ratio`` / ``structural_similarity`` (Gaussian, same constants), on LIVE1
JPEG QF 10 images against their ground truth. Prints ms per image and the speed-ups.

    python benchmarks/metric_speed.py [--data-root ../shared/data] [--images 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from carbench.bench.datasets import resolve
from carbench.bench.metrics import fullref
from carbench.core.imageio import read_image
from carbench.degradations import Jpeg


def per_image_ms(fn, pairs, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for out, ref in pairs:
            fn(out, ref)
        best = min(best, time.perf_counter() - t)
    return 1000 * best / len(pairs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", default="LIVE1")
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument("--images", type=int, default=10)
    args = ap.parse_args()
    import tempfile

    import pyiqa
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    with tempfile.TemporaryDirectory() as tmp:
        ds = resolve(args.dataset, Path(tmp), args.data_root)
        refs = [read_image(p).pixels for p in ds.images[: args.images]]
    pairs = [(Jpeg(10).apply(r).decoded, r) for r in refs]
    mp = statistics.mean(r.shape[0] * r.shape[1] for r in refs) / 1e6

    def t(a):
        return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255

    tpairs = [(t(o), t(r)) for o, r in pairs]
    iqa = {n: pyiqa.create_metric(n, device="cpu") for n in ("psnr", "ssim", "ssimc")}

    def run_iqa(name):
        def fn(o, r):
            with torch.no_grad():
                return float(iqa[name](o, r))

        return fn

    rows = {
        "carbench psnr:rgb": per_image_ms(fullref.psnr, pairs),
        "carbench ssim:gauss11 (RGB)": per_image_ms(fullref.ssim, pairs),
        "carbench ssim:gauss11-y": per_image_ms(
            lambda o, r: fullref.ssim(fullref.to_y(o), fullref.to_y(r)), pairs
        ),
        "carbench psnrb:fbcnn": per_image_ms(fullref.psnrb, pairs),
        "scikit-image psnr": per_image_ms(
            lambda o, r: peak_signal_noise_ratio(r, o, data_range=255), pairs
        ),
        "scikit-image ssim (RGB, gaussian)": per_image_ms(
            lambda o, r: structural_similarity(
                r,
                o,
                data_range=255,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                channel_axis=2,
            ),
            pairs,
        ),
        "pyiqa psnr": per_image_ms(run_iqa("psnr"), tpairs),
        "pyiqa ssim (Y)": per_image_ms(run_iqa("ssim"), tpairs, repeat=1),
        "pyiqa ssimc (RGB)": per_image_ms(run_iqa("ssimc"), tpairs, repeat=1),
    }
    print(
        f"{args.dataset}: {len(pairs)} images, mean {mp:.2f} MP, JPEG QF 10, "
        f"torch threads {torch.get_num_threads()}"
    )
    import cv2
    import numpy as np
    import pyiqa
    import skimage

    from carbench.core.provenance import carbench_version

    print(
        f"versions: carbench {carbench_version()}, numpy {np.__version__}, OpenCV "
        f"{cv2.__version__}, torch {torch.__version__}, pyiqa {pyiqa.__version__}, "
        f"scikit-image {skimage.__version__}"
    )
    for name, ms in rows.items():
        print(f"{name:<36}{ms:>10.1f} ms/image")
    r = rows
    ssim_y = r["pyiqa ssim (Y)"] / r["carbench ssim:gauss11-y"]
    print(f"speed-up ssim Y   vs pyiqa ssim : {ssim_y:.1f}x  (goal >= 20x)")
    print(
        f"speed-up ssim RGB vs pyiqa ssimc: "
        f"{r['pyiqa ssimc (RGB)'] / r['carbench ssim:gauss11 (RGB)']:.1f}x  (goal >= 20x)"
    )
    print(
        f"speed-up ssim RGB vs scikit-image: "
        f"{r['scikit-image ssim (RGB, gaussian)'] / r['carbench ssim:gauss11 (RGB)']:.1f}x"
    )
    print(
        f"speed-up psnr vs pyiqa psnr: {r['pyiqa psnr'] / r['carbench psnr:rgb']:.1f}x, "
        f"vs scikit-image: {r['scikit-image psnr'] / r['carbench psnr:rgb']:.1f}x"
    )


if __name__ == "__main__":
    main()
