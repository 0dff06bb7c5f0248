"""DiffBIR - Lin et al., "DiffBIR: Towards Blind Image Restoration with Generative Diffusion
Prior", ECCV 2024. Upstream: XPixelGroup/DiffBIR @3f8b530 (Apache-2.0).

There is no JPEG task in DiffBIR: carbench runs its general blind-denoising path (the "denoise"
task, upscale 1), our choice, as its description says. Two versions, each with upstream's
defaults (``diffbir:version=v2`` is the default, the paper's version):

* ``v2`` (paper): stage 1 SCUNet-PSNR, then short side resized to >= 512 if smaller; SD-2.1-base
  (eps-prediction); spaced DDPM sampler, 50 steps; guidance 4 with an empty positive prompt and
  the paper's negative prompt.
* ``v2.1`` (2024-11 release, upstream's default): the input's short side is resized to >= 512
  first, zero-padded to a multiple of 64 for the stage-1 SwinIR and cropped back; the authors'
  zero-terminal-SNR SD-2.1 fine-tune (v-prediction); EDM DPM++(3M) SDE, 10 steps, guidance 6,
  upstream's default positive/negative prompts; captioner ``none`` (LLaVA is not run).

Both: the cleaned image's VAE encoding (posterior mode, zero-padded to a multiple of 64) is the
IRControlNet hint, start from noise (seed 231, upstream's default; carbench seeds its own
generator and draws in upstream's order: start noise, then the step noises or the Brownian
tree's seed), decode, wavelet colour fix against the cleaned image, bicubic resize back, x255 and
truncation. Stable Diffusion comes from the original single-file checkpoint as upstream loads it
(:mod:`methods.sd.single_file`); for v2 the diffusers form of the same weights also works.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from carbench.core.errors import BenchError, WeightsMissingError
from carbench.core.options import Option
from carbench.core.weights import WeightFile
from carbench.methods.base import Capabilities, Method, Sample, how_to_get
from carbench.methods.sd.model import SD21_MIRRORS
from carbench.methods.torch_utils import load_state_dict_file, loaded, sha256_of, torch_dtype

HF = "https://huggingface.co/lxq007/DiffBIR-v2/resolve/main/"
SD21_FILE = "v2-1_512-ema-pruned.ckpt"
ZSNR_FILE = "sd2.1-base-zsnr-laionaes5.ckpt"
# the prompts are upstream's parameter values (README for v2, inference.py for v2.1)
NEG_PROMPT_V2 = "low quality, blurry, low-resolution, noisy, unsharp, weird textures"
POS_PROMPT_V21 = (
    "Cinematic, High Contrast, highly detailed, taken using a Canon EOS R camera, "
    "hyper detailed photo - realistic maximum detail, 32k, Color Grading, ultra HD, extreme "
    "meticulous detailing, skin pore detailing, hyper sharpness, perfect without deformations."
)
NEG_PROMPT_V21 = (
    "painting, oil painting, illustration, drawing, art, sketch, oil painting, cartoon, "
    "CG Style, 3D render, unreal engine, blurring, dirty, messy, worst quality, low quality, "
    "frames, watermark, signature, jpeg artifacts, deformed, lowres, over-smooth."
)


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


@dataclass(frozen=True)
class Version:
    """Upstream's defaults of one DiffBIR version (inference.py, bid_loop.py, configs)."""

    cleaner: str  # "scunet" (v2) | "swinir" (v2.1)
    sd_file: str  # the single-file SD checkpoint it was trained on
    sampler: str  # "spaced" | "edm_dpm++_3m_sde"
    steps: int
    cfg: float
    pos_prompt: str
    neg_prompt: str
    parameterization: str = "eps"
    zero_snr: bool = False


VERSIONS = {
    "v2": Version("scunet", SD21_FILE, "spaced", 50, 4.0, "", NEG_PROMPT_V2),
    "v2.1": Version(
        "swinir", ZSNR_FILE, "edm_dpm++_3m_sde", 10, 6.0, POS_PROMPT_V21, NEG_PROMPT_V21, "v", True
    ),
}


class DiffBIR(Method):
    name = "diffbir"
    label = "DiffBIR"
    description = (
        "DiffBIR v2 (ECCV 2024) / v2.1, general blind restoration (denoise task) applied to "
        "JPEG; v2: 50-step spaced sampler, guidance 4; v2.1: 10-step DPM++ 3M SDE, guidance 6"
    )
    group = "diffusion"
    paper = "https://arxiv.org/abs/2308.15070"
    capabilities = Capabilities(gray="replicate")
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
            WeightFile(ZSNR_FILE, HF + ZSNR_FILE, licence="CreativeML Open RAIL++-M"),
        ],
        # optional for v2: without it the diffusers folder of SD-2.1-base is used
        "sd21": [
            WeightFile(
                SD21_FILE,
                "https://huggingface.co/stabilityai/stable-diffusion-2-1-base/resolve/main/"
                + SD21_FILE,
                # official sha256: deforum-art/deforum-stable-diffusion@9d2caaa
                # helpers/model_load.py (with the official URL) and the HUB_ID cache blob name in
                # User19779/ZoDiac@24c87de; no source states its size with this sha256
                "88ecb782561455673c4b78d05093494b9c539fc6bfc08f3a9a4a0dd7b0b10f36",
                licence="CreativeML Open RAIL++-M",
                mirrors=tuple(
                    f"https://huggingface.co/{m}/resolve/main/{SD21_FILE}" for m in SD21_MIRRORS
                ),
            )
        ],
    }

    declared_options = (
        Option("version", "choice", "v2", choices=tuple(VERSIONS), help="DiffBIR release"),
        Option("steps", "int", min=1, max=1000, help="sampling steps (default: 50 v2, 10 v2.1)"),
        Option("cfg", "float", min=0, help="classifier-free guidance (default: 4 v2, 6 v2.1)"),
        Option("seed", "int", 231, min=0, max=2**63 - 1, help="seed (upstream's default 231)"),
        Option("neg", "str", help="negative prompt (default: the version's)"),
        Option("prompt", "str", help="positive prompt (default: the version's; v2: none)"),
    )
    #: the options whose default is the version's (``Version`` field per option)
    _VERSION_DEFAULTS = {
        "steps": "steps",
        "cfg": "cfg",
        "neg": "neg_prompt",
        "prompt": "pos_prompt",
    }

    def __init__(self, **given: object) -> None:
        super().__init__(**given)
        self.version = self.opt("version")
        v = self.spec = VERSIONS[self.version]
        values = {k: getattr(v, f) for k, f in self._VERSION_DEFAULTS.items()}
        values.update({k: self.opt(k) for k in values if self.opt(k) is not None})
        self.steps, self.cfg = values["steps"], float(values["cfg"])
        self.neg_prompt, self.pos_prompt = values["neg"], values["prompt"]
        self.seed = self.opt("seed")

    def id_values(self) -> dict[str, object]:
        """A value given that equals the version's default is the default (not in the id)."""
        out = super().id_values()
        for k, field in self._VERSION_DEFAULTS.items():
            if out[k] is not None and out[k] == getattr(self.spec, field):
                out[k] = None
        return out

    def needed_variants(self, kinds=("rgb", "gray")) -> list[str]:
        return [self.version]

    def build_network(self, variant: str | None = None):
        from carbench.methods.nets.ircontrolnet import build_ircontrolnet
        from carbench.methods.nets.scunet import build_scunet
        from carbench.methods.nets.swinir_net import build_swinir

        builders = {
            "ircontrolnet": build_ircontrolnet,
            "stage1-swinir": build_swinir,
            "stage1-scunet": build_scunet,
        }
        if variant not in builders:
            raise BenchError(f"diffbir networks: {', '.join(builders)}")
        return builders[variant]()

    def _stable_diffusion_paths(self) -> None:
        """Raise naming the Stable Diffusion files when neither form of them is present."""
        if self.version == "v2":
            from carbench.methods.sd import model as sd_model

            try:
                self.weight_paths("sd21")
            except WeightsMissingError as single:
                folder = sd_model.sd21_missing(("unet", "vae", "text_encoder", "tokenizer"))
                if folder:
                    lines = "\n  ".join(how_to_get(self.name, wf) for wf in folder)
                    raise WeightsMissingError(
                        f"{single}\nor, instead, the SD-2.1-base diffusers folder:\n  {lines}"
                    ) from None

    def _stable_diffusion(self) -> tuple[dict, list]:
        """UNet, VAE, text encoder, tokenizer: the version's single-file checkpoint; for v2
        the diffusers SD-2.1-base folder when that file is absent."""
        from carbench.methods.sd import model as sd_model
        from carbench.methods.sd import single_file as sd_single_file

        parts = ("unet", "vae", "text_encoder", "tokenizer")
        if self.version == "v2.1":
            path = self.weight_paths("v2.1")[2]
            return sd_single_file.load_single_file(path, parts), [path]
        try:
            (path,) = self.weight_paths("sd21")
        except WeightsMissingError as single:
            try:
                return sd_model.load_sd(parts), []
            except WeightsMissingError as folder:
                raise WeightsMissingError(f"{single}\nor, instead:\n  {folder}") from None
        return sd_single_file.load_single_file(path, parts), [path]

    def auto_dtype(self, device: str) -> str:
        """v2: fp32, the README's v2 commands (whose steps, sampler, guidance and prompts v2
        takes) pass ``--precision fp32``; v2.1: inference.py's default ``--precision fp16`` on
        CUDA (its README commands give none)."""
        return "fp16" if device.startswith("cuda") and self.version == "v2.1" else "fp32"

    def load(self, device: str = "cpu", dtype: str = "fp32", kinds=("rgb",)) -> None:
        super().load(device, dtype)
        missing = []
        for step in (self.check_weights, self._stable_diffusion_paths):  # all named at once
            try:
                step()
            except WeightsMissingError as e:
                missing.append(str(e))
        if missing:
            raise WeightsMissingError("\n".join(missing))
        control_path, cleaner_path = self.weight_paths(self.version)[:2]
        sd, sd_paths = self._stable_diffusion()
        control = loaded(
            self.build_network("ircontrolnet"),
            _unwrap(load_state_dict_file(control_path)),
            str(control_path),
            device,
            dtype,
        )
        cleaner = loaded(
            self.build_network(f"stage1-{self.spec.cleaner}"),
            _unwrap(load_state_dict_file(cleaner_path)),
            str(cleaner_path),
            device,
        )
        dt = torch_dtype(dtype)
        self.set_components(
            sd["unet"].eval().to(device, dt),
            sd["vae"].eval().to(device, dt),
            control,
            cleaner,
            sd["text_encoder"].eval().to(device, dt),
            sd["tokenizer"],
        )
        self._weights_sha = sha256_of([control_path, cleaner_path, *sd_paths])

    def set_components(self, unet, vae, controlnet, cleaner, text_encoder, tokenizer) -> None:
        self.unet, self.vae, self.controlnet = unet, vae, controlnet
        self.cleaner, self.text_encoder, self.tokenizer = cleaner, text_encoder, tokenizer

    def _text(self, prompt: str):
        from carbench.methods.sd.model import token_ids
        from carbench.methods.sd.single_file import OpenClipTokenizer

        if isinstance(self.tokenizer, OpenClipTokenizer):
            ids = self.tokenizer([prompt])
        else:
            ids = token_ids(self.tokenizer, prompt)
        return self.text_encoder(ids.to(self.device))[0]

    def _model(self, x, t: int, c_txt, c_img):
        """IRControlNet + UNet: the eps (v2) or v (v2.1) prediction at timestep ``t``."""
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

    def _guided(self, x, t: int, c_txt, u_txt, c_img):
        out = self._model(x, t, c_txt, c_img)
        if self.cfg == 1.0:
            return out
        out_u = self._model(x, t, u_txt, c_img)
        return out_u + self.cfg * (out - out_u)

    def clean(self, lq):
        """Stage 1 on a 1x3xHxW [0,1] tensor -> the condition image (both sides >= 512, not
        clamped, as upstream)."""
        import torch.nn.functional as F

        cleaner = self.cleaner if self.cleaner is not None else (lambda x: x)
        if self.spec.cleaner == "swinir":  # resize first, pad to 64, run, crop
            lq = _resize_short_edge(lq, 512) if min(lq.shape[-2:]) < 512 else lq
            h0, w0 = lq.shape[-2:]
            return cleaner(F.pad(lq, (0, (-w0) % 64, 0, (-h0) % 64)))[..., :h0, :w0]
        cond = cleaner(lq)
        return _resize_short_edge(cond, 512) if min(cond.shape[-2:]) < 512 else cond

    def _sample(self, c_txt, u_txt, c_img, g):
        import torch

        from carbench.methods.sd import edm as edm_sampler

        x = torch.randn(c_img.shape, generator=g, device=c_img.device, dtype=torch.float32)
        if self.spec.sampler == "spaced":
            ac = np.cumprod(1 - edm_sampler.scaled_linear_betas())  # float64, as upstream
            sched = SpacedSchedule(ac, self.steps)
            for i in reversed(range(len(sched.timesteps))):
                eps = self._guided(x, int(sched.timesteps[i]), c_txt, u_txt, c_img)
                noise = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
                x = sched.step(x, eps, i, noise)
            return x
        betas = edm_sampler.scaled_linear_betas()
        if self.spec.zero_snr:
            betas = edm_sampler.zero_terminal_snr(betas)
        sig, ts = edm_sampler.edm_schedule(np.cumprod(1 - betas), self.steps)
        sigmas = torch.tensor(sig, dtype=torch.float32, device=x.device)
        timesteps = torch.tensor(ts, device=x.device)
        denoise = edm_sampler.make_denoiser(
            lambda x_in, t: self._guided(x_in, t, c_txt, u_txt, c_img),
            sigmas,
            timesteps,
            self.spec.parameterization,
        )
        seed = int(torch.randint(0, 2**63 - 1, (), generator=g, device=g.device))
        positive = sigmas[sigmas > 0]
        noise = edm_sampler.brownian_noise(x, positive.min(), positive.max(), seed)
        x = x * torch.sqrt(1 + sigmas[0] ** 2)
        return edm_sampler.sample_dpmpp_3m_sde(denoise, x, sigmas, eta=1.0, noise=noise)

    def restore_tensor(self, lq):
        """1x3xHxW in [0,1] -> 1x3xHxW in [0,1] (before the final 8-bit conversion)."""
        import torch
        import torch.nn.functional as F

        from carbench.methods.sd import color as sd_color
        from carbench.methods.sd import model as sd_model

        h, w = lq.shape[-2:]
        cond = self.clean(lq)
        h0, w0 = cond.shape[-2:]
        padded = F.pad(cond, (0, (-w0) % 64, 0, (-h0) % 64))  # zeros, as upstream
        dt = next(self.vae.parameters()).dtype
        c_img = self.vae.encode((padded * 2 - 1).to(dt)).latent_dist.mode() * sd_model.SCALING
        c_txt, u_txt = self._text(self.pos_prompt), self._text(self.neg_prompt)
        g = torch.Generator(device=lq.device).manual_seed(self.seed)
        x = self._sample(c_txt, u_txt, c_img.float(), g)
        img = self.vae.decode((x / sd_model.SCALING).to(dt)).sample.float()[:, :, :h0, :w0]
        img = sd_color.wavelet_color_fix((img + 1) / 2, cond.float(), clamp=False)
        return F.interpolate(img, size=(h, w), mode="bicubic", antialias=True)

    def restore(self, sample: Sample) -> np.ndarray:
        import torch

        from carbench.methods.sd import color as sd_color

        img = sample.decoded
        x = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None].to(self.device)
        with torch.no_grad():
            out = sd_color.to_uint8_truncate(self.restore_tensor(x).clamp(0, 1))
        return out


def _resize_short_edge(x, size: int):
    """Upstream's resize_short_edge_to: bicubic, antialiased, long side truncated."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    if h == w:
        out = (size, size)
    elif h < w:
        out = (size, int(w * (size / h)))
    else:
        out = (int(h * (size / w)), size)
    return F.interpolate(x, size=out, mode="bicubic", antialias=True)


def _unwrap(sd: dict) -> dict:
    """Upstream's loader: strip a leading ``module.`` from every key when present."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return sd
