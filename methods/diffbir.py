"""DiffBIR - Lin et al., "DiffBIR: Towards Blind Image Restoration with Generative Diffusion
Prior", ECCV 2024. Upstream: XPixelGroup/DiffBIR @3f8b530 (Apache-2.0).

There is no JPEG task in DiffBIR: carbench runs its general blind-denoising path (the "denoise"
task, upscale 1), our choice, as its description says. Version ``v2`` (the paper): stage 1
SCUNet-PSNR cleans the input (short side resized to >= 512 if smaller), its VAE encoding (mode)
is the IRControlNet hint, SD-2.1-base UNet with the 13 control residuals, spaced DDPM sampler
(50 steps), classifier-free guidance 4 with an empty positive prompt and the paper's negative
prompt, start from noise (seed 231, upstream's default), decode, wavelet colour fix against
the stage-1 output, bicubic resize back, x255 and truncation. SD-2.1-base is the diffusers
form of the same weights (v2-1_512-ema-pruned). Version ``v2.1`` (zero-terminal-SNR SD,
v-prediction, EDM DPM++ 3M SDE, captioner) is not implemented yet; asking for it says so.
"""

from __future__ import annotations

import numpy as np

from bench.errors import BenchError
from bench.weights import WeightFile
from methods.base import Capabilities, Method, Sample
from methods.torch_utils import load_state_dict_file, sha256_of, strict_load, torch_dtype

HF = "https://huggingface.co/lxq007/DiffBIR-v2/resolve/main/"
NEG_PROMPT_V2 = "low quality, blurry, low-resolution, noisy, unsharp, weird textures"


def space_timesteps(num_timesteps: int, count: int) -> list[int]:
    """Evenly spaced subset of ``count`` training timesteps (guided-diffusion respacing, one
    section): start 0, stride (T - 1) / (count - 1), rounded."""
    if count > num_timesteps:
        raise ValueError(f"cannot take {count} steps out of {num_timesteps}")
    stride = 1 if count <= 1 else (num_timesteps - 1) / (count - 1)
    return sorted({round(i * stride) for i in range(count)})


class SpacedSchedule:
    """DDPM posterior on a respaced schedule (float64 tables, as upstream)."""

    def __init__(self, train_alphas_cumprod: np.ndarray, steps: int) -> None:
        used = space_timesteps(len(train_alphas_cumprod), steps)
        betas, last = [], 1.0
        for i, a in enumerate(train_alphas_cumprod):
            if i in used:
                betas.append(1 - a / last)
                last = a
        self.timesteps = np.array(used)
        b = np.array(betas, dtype=np.float64)
        ac = np.cumprod(1 - b)
        ac_prev = np.append(1.0, ac[:-1])
        self.sqrt_recip = np.sqrt(1 / ac)
        self.sqrt_recipm1 = np.sqrt(1 / ac - 1)
        self.var = b * (1 - ac_prev) / (1 - ac)
        self.coef1 = b * np.sqrt(ac_prev) / (1 - ac)
        self.coef2 = (1 - ac_prev) * np.sqrt(1 - b) / (1 - ac)

    def step(self, x, eps, i: int, noise):
        """One reverse step at respaced index ``i`` from an epsilon prediction."""
        x0 = self.sqrt_recip[i] * x - self.sqrt_recipm1[i] * eps
        mean = self.coef1[i] * x0 + self.coef2[i] * x
        return mean + (float(np.sqrt(self.var[i])) * noise if i > 0 else 0)


class DiffBIR(Method):
    name = "diffbir"
    description = (
        "DiffBIR v2 (ECCV 2024), general blind restoration (denoise task) applied to "
        "JPEG; 50-step spaced sampler, guidance 4"
    )
    group = "diffusion"
    paper = "https://arxiv.org/abs/2308.15070"
    capabilities = Capabilities(gray=False)
    weights = {
        "v2": [
            WeightFile("v2.pth", HF + "v2.pth", licence="Apache-2.0"),
            WeightFile(
                "scunet_color_real_psnr.pth",
                "https://github.com/cszn/KAIR/releases/download/v1.0/scunet_color_real_psnr.pth",
                licence="Apache-2.0",
            ),
        ],
        "v2.1": [
            WeightFile("DiffBIR_v2.1.pt", HF + "DiffBIR_v2.1.pt", licence="Apache-2.0"),
            WeightFile(
                "realesrgan_s4_swinir_100k.pth",
                HF + "realesrgan_s4_swinir_100k.pth",
                licence="Apache-2.0",
            ),
            WeightFile(
                "sd2.1-base-zsnr-laionaes5.ckpt",
                HF + "sd2.1-base-zsnr-laionaes5.ckpt",
                licence="CreativeML",
            ),
        ],
    }

    def __init__(self, **options: str) -> None:
        super().__init__(**options)
        self.version = options.get("version", "v2")
        self.steps = int(options.get("steps", "50"))
        self.cfg = float(options.get("cfg", "4"))
        self.seed = int(options.get("seed", "231"))
        self.neg_prompt = options.get("neg", NEG_PROMPT_V2)
        self.pos_prompt = options.get("prompt", "")
        if self.version not in self.weights:
            raise BenchError(f"diffbir: version must be v2 or v2.1, got {self.version!r}")

    def build_network(self, variant: str | None = None):
        from methods.diffbir_nets import build_ircontrolnet, build_scunet, build_swinir

        builders = {
            "ircontrolnet": build_ircontrolnet,
            "stage1-swinir": build_swinir,
            "stage1-scunet": build_scunet,
        }
        if variant not in builders:
            raise BenchError(f"diffbir networks: {', '.join(builders)}")
        return builders[variant]()

    def load(self, device: str = "cpu", dtype: str = "fp32", kinds=("rgb",)) -> None:
        super().load(device, dtype)
        if self.version != "v2":
            raise BenchError(
                "diffbir v2.1 (zero-terminal-SNR SD, v-prediction, EDM DPM++ 3M SDE "
                "sampler) is not implemented in carbench yet; use diffbir:version=v2"
            )
        from methods import sd_core

        control_path, cleaner_path = self.weight_paths("v2")
        sd = sd_core.load_sd(("unet", "vae", "text_encoder", "tokenizer"))
        control = self.build_network("ircontrolnet")
        strict_load(control, _unwrap(load_state_dict_file(control_path)), str(control_path))
        cleaner = self.build_network("stage1-scunet")
        strict_load(cleaner, _unwrap(load_state_dict_file(cleaner_path)), str(cleaner_path))
        dt = torch_dtype(dtype)
        self.set_components(
            sd["unet"].eval().to(device, dt),
            sd["vae"].eval().to(device, dt),
            control.eval().to(device, dt),
            cleaner.eval().to(device),
            sd["text_encoder"].eval().to(device, dt),
            sd["tokenizer"],
        )
        self._weights_sha = sha256_of([control_path, cleaner_path])

    def set_components(self, unet, vae, controlnet, cleaner, text_encoder, tokenizer) -> None:
        self.unet, self.vae, self.controlnet = unet, vae, controlnet
        self.cleaner, self.text_encoder, self.tokenizer = cleaner, text_encoder, tokenizer

    def _text(self, prompt: str):
        ids = self.tokenizer(
            prompt,
            max_length=self.tokenizer.model_max_length,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return self.text_encoder(ids.to(self.device))[0]

    def _eps(self, x, t: int, c_txt, c_img):
        import torch

        dt = next(self.unet.parameters()).dtype
        ts = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        control = self.controlnet(x.to(dt), c_img.to(dt), ts, c_txt.to(dt))
        return self.unet(
            x.to(dt),
            ts,
            encoder_hidden_states=c_txt.to(dt),
            down_block_additional_residuals=tuple(control[:-1]),
            mid_block_additional_residual=control[-1],
        ).sample.float()

    def restore_tensor(self, lq):
        """1x3xHxW in [0,1] -> 1x3xHxW in [0,1] (before the final 8-bit conversion)."""
        import torch
        import torch.nn.functional as F

        from methods import sd_core

        h, w = lq.shape[-2:]
        cond = self.cleaner(lq).clamp(0, 1) if self.cleaner is not None else lq
        if min(cond.shape[-2:]) < 512:  # stage-2 input must be >= 512 on both sides
            s = 512 / min(cond.shape[-2:])
            size = (
                (512, int(cond.shape[-1] * s))
                if cond.shape[-2] <= cond.shape[-1]
                else (int(cond.shape[-2] * s), 512)
            )
            cond = F.interpolate(cond, size=size, mode="bicubic", antialias=True)
        h0, w0 = cond.shape[-2:]
        padded = F.pad(cond, (0, (-w0) % 64, 0, (-h0) % 64))  # zeros, as upstream
        dt = next(self.vae.parameters()).dtype
        c_img = self.vae.encode((padded * 2 - 1).to(dt)).latent_dist.mode() * sd_core.SCALING
        c_txt, u_txt = self._text(self.pos_prompt), self._text(self.neg_prompt)
        sched = SpacedSchedule(sd_core.alphas_cumprod().double().numpy(), self.steps)
        g = torch.Generator(device=lq.device).manual_seed(self.seed)
        x = torch.randn(c_img.shape, generator=g, device=lq.device, dtype=torch.float32)
        for i in reversed(range(len(sched.timesteps))):
            t = int(sched.timesteps[i])
            eps = self._eps(x, t, c_txt, c_img)
            if self.cfg != 1.0:
                eps_u = self._eps(x, t, u_txt, c_img)
                eps = eps_u + self.cfg * (eps - eps_u)
            noise = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
            x = sched.step(x, eps, i, noise)
        img = self.vae.decode((x / sd_core.SCALING).to(dt)).sample.float()[:, :, :h0, :w0]
        img = sd_core.wavelet_color_fix((img + 1) / 2, cond.float())
        return F.interpolate(img, size=(h, w), mode="bicubic", antialias=True)

    def restore(self, sample: Sample) -> np.ndarray:
        import torch

        from methods import sd_core

        img = sample.decoded
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        x = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None].to(self.device)
        with torch.no_grad():
            out = sd_core.to_uint8_truncate(self.restore_tensor(x).clamp(0, 1))
        return out if sample.decoded.ndim == 3 else out.mean(axis=2).round().astype(np.uint8)


def _unwrap(sd: dict) -> dict:
    """Upstream's loader: strip a leading ``module.`` from every key when present."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return sd
