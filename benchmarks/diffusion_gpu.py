"""GPU timing of the diffusion adapters with full-size architectures and random weights.

One short script (well under 8 minutes on one H100): CODiff and OSEDiff one step at 512x512 and
on a 2040x1356 image (latent tiling + tiled VAE), fp16, with peak memory; DiffBIR v2 time per
sampling step (ControlNet + UNet, with and without guidance) at 512x512; SUPIR at 1024x1024
(GLVControl + connector UNet, both guidance branches in one batch, fp16; SDXL VAE in bf16 as
test.py; text encoders excluded): time per step, VAE passes, peak memory. Random weights:
timings and memory only, never quality numbers. Goal: CODiff 512^2 <= 60 ms on an H100
(OSEDiff reports 104.6 ms on an A100).

    python benchmarks/diffusion_gpu.py [--device cuda] [--dtype fp16] [--repeat 10]
"""

from __future__ import annotations

import argparse
import time

import torch

from carbench.methods.codiff import CODiff, build_cave
from carbench.methods.diffbir import DiffBIR
from carbench.methods.nets.ircontrolnet import build_ircontrolnet
from carbench.methods.osediff import OSEDiff
from carbench.methods.sd import model as sd_model
from carbench.methods.torch_utils import torch_dtype


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
    unet = sd_model.build_unet().eval().to(dev, dt)
    vae = sd_model.build_vae().eval().to(dev, dt)
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
    rows += supir_rows(dev, dt, args.repeat)
    for name, sec, peak in rows:
        print(f"{name:<46}{sec * 1000:>10.1f} ms{peak:>8.2f} GiB peak")
    first = rows[0][1] * 1000
    print(f"CODiff 512^2: {first:.1f} ms (goal <= 60 ms on an H100)")


def supir_rows(dev: str, dt, repeat: int, cfg=None, vae_config=None, size: int = 1024):
    """SUPIR timings and peak memory on a ``size`` x ``size`` image (default: full size)."""
    from carbench.methods.nets.supir_net import SDXL, GLVControl, SupirUNet
    from carbench.methods.sd.supir_sampler import SamplerOptions
    from carbench.methods.supir import SDXL_VAE_CONFIG, Supir

    cfg, vae_config = cfg or SDXL, vae_config or SDXL_VAE_CONFIG
    m = Supir()
    vae = sd_model.build_vae(vae_config)
    m.set_components(
        SupirUNet(cfg),
        GLVControl(cfg),
        vae,
        sd_model.build_vae(vae_config).encoder,
        None,
        device=dev,
        dtype="fp16" if dt == torch.float16 else "fp32",
    )
    n_params = sum(p.numel() for net in (m.unet, m.control) for p in net.parameters())
    x = torch.rand(1, 3, size, size, device=dev) * 2 - 1
    rows = []
    with torch.no_grad():
        sec_enc, peak_enc = _time(lambda: m.encode_lq(x), dev, max(1, repeat // 5))
        z, _ = m.encode_lq(x)
        f = size // z.shape[-1]
        lat = size // f
        ctx = torch.randn(2, 77, cfg.context_dim, device=dev)
        vec = torch.randn(2, cfg.adm_in_channels, device=dev)
        cond = {"crossattn": ctx, "vector": vec, "control": torch.cat([z, z])}
        z2 = torch.randn(2, 4, lat, lat, device=dev)
        sec, peak = _time(lambda: m.model(z2, 500, cond, 1.0), dev, repeat)
        sec_dec, peak_dec = _time(lambda: m.decode(z), dev, max(1, repeat // 5))
    steps = SamplerOptions().steps
    rows.append((f"SUPIR {size}^2 stage 1 (encode+decode)", sec_enc, peak_enc))
    rows.append((f"SUPIR {size}^2 step (GLVControl+UNet, x2 batch)", sec, peak))
    rows.append((f"SUPIR {size}^2 VAE decode", sec_dec, peak_dec))
    total = 2 * sec_enc + steps * sec + sec_dec
    rows.append((f"SUPIR {size}^2, {steps} steps (est.)", total, max(peak, peak_enc, peak_dec)))
    print(f"SUPIR diffusion parameters: {n_params:,} ({n_params * 2 / 2**30:.2f} GiB in fp16)")
    return rows


if __name__ == "__main__":
    main()
