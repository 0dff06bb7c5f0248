"""SUPIR - Yu et al., "Scaling Up to Excellence: Practicing Model Scaling for Photo-Realistic
Image Restoration In the Wild", CVPR 2024. Upstream: Fanghua-Yu/SUPIR @bda91af (SUPIR Software
License Agreement: the weights are non-commercial).

carbench runs upstream's ``test.py`` with its defaults and ``--no_llava`` (empty caption; a
folder of caption files can be given with ``supir:captions=DIR``, ``<image id>.txt``):

* geometry (``PIL2Tensor``): PIL bicubic resize so the short side is >= 1024 (``min_size``),
  both sides rounded to a multiple of 64; at the end a bicubic ``interpolate`` (no antialias)
  back to the input size, x127.5 + 127.5, clipped, truncated to uint8;
* stage 1: the degradation-robust encoder (``denoise_encoder``) + the VAE's ``quant_conv``,
  posterior mode, x0.13025 -> ``z_lq`` (the control latent); decoded -> ``x_stage1``; the VAE's
  own encoder on ``x_stage1`` (a posterior *sample*) -> ``z_center``;
* text: ``caption + a_prompt`` and ``n_prompt`` through CLIP ViT-L/14 (hidden layer 11) and
  OpenCLIP ViT-bigG-14 (penultimate layer, pooled + projected), 2048-d context; the vector is
  the pooled bigG embedding plus sinusoidal embeddings of (1024, 1024), (0, 0), (1024, 1024);
* sampler: :mod:`methods.sd.supir_sampler` (50 steps, s_cfg 4 linear from 1, s_churn 5, s_noise
  1.01, s_stage1 -1, s_stage2 1), GLVControl + the connector UNet (:mod:`methods.nets.supir_net`);
* decode, wavelet colour fix against ``x_stage1``.

Options (all in the method id): ``variant`` (v0Q | v0F), ``seed`` (1234), ``steps``, ``cfg``,
``cfg_start``, ``churn``, ``noise``, ``stage1`` (s_stage1), ``stage2`` (s_stage2),
``stage2_start`` + ``linear_stage2``, ``color_fix`` (Wavelet | AdaIn | None), ``min_size``,
``prompt`` / ``neg`` (a_prompt / n_prompt), ``captions``, ``tile`` (latent tile of the tiled
sampler, upstream's ``TiledRestoreEDMSampler`` 128 / stride 64; 0 = off) and ``tile_vae``
(pixel tile of the encoder; the decoder's latent tile is tile_vae / 8).

Weights: the SDXL single file (UNet, VAE, both text encoders: upstream builds its CLIP models
from their own downloads and then overwrites them with this file's weights, so those
downloads are not needed) and the SUPIR checkpoint (GLVControl, connectors, denoise encoder),
loaded with strict key matching: the two files together must give every parameter exactly.

Differences from upstream: the working dtype is applied to the weights (upstream keeps fp32
weights under CUDA autocast; ``--dtype auto`` gives upstream's fp16 diffusion / bf16 VAE on
CUDA; the text encoders stay fp32, where upstream runs them under bf16 autocast); text is
tokenised with OpenCLIP's BPE for both encoders (CLIP ViT-L padded with
``<|endoftext|>`` as its Hugging Face tokenizer does); carbench seeds its own generators (on
CPU the draws equal upstream's global-RNG draws).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from carbench.core.errors import BenchError
from carbench.core.options import Option
from carbench.core.weights import WeightFile
from carbench.methods.base import Capabilities, Method, Sample
from carbench.methods.sd.supir_sampler import SamplerOptions
from carbench.methods.torch_utils import sha256_of, strict_load, torch_dtype

SCALE_FACTOR = 0.13025
SDXL_FILE = "sd_xl_base_1.0_0.9vae.safetensors"
SDXL_URL = "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/"
SUPIR_DRIVE = "https://drive.google.com/drive/folders/1yELzm5SvAi9e7kPcO_jPp2XkTs4vK6aR"
LICENCE = "SUPIR Software License Agreement (non-commercial)"
SDXL_LICENCE = "CreativeML Open RAIL++-M"
# test.py's --a_prompt / --n_prompt defaults (upstream's parameter values)
_S = SamplerOptions()  # test.py's sampler defaults, the options' defaults

A_PROMPT = (
    "Cinematic, High Contrast, highly detailed, taken using a Canon EOS R camera, hyper detailed "
    "photo - realistic maximum detail, 32k, Color Grading, ultra HD, extreme meticulous "
    "detailing, skin pore detailing, hyper sharpness, perfect without deformations."
)
N_PROMPT = (
    "painting, oil painting, illustration, drawing, art, sketch, oil painting, cartoon, CG Style, "
    "3D render, unreal engine, blurring, dirty, messy, worst quality, low quality, frames, "
    "watermark, signature, jpeg artifacts, deformed, lowres, over-smooth"
)
#: CLIP ViT-L/14 text tower (openai/clip-vit-large-patch14 config)
CLIP_L_CONFIG = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    projection_dim=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
)
#: OpenCLIP ViT-bigG-14 text tower
CLIP_G_CONFIG = dict(
    vocab_size=49408,
    hidden_size=1280,
    intermediate_size=5120,
    projection_dim=1280,
    num_hidden_layers=32,
    num_attention_heads=20,
    max_position_embeddings=77,
    hidden_act="gelu",
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=0,
)
SDXL_VAE_CONFIG = dict(
    act_fn="silu",
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4,
    in_channels=3,
    latent_channels=4,
    layers_per_block=2,
    norm_num_groups=32,
    out_channels=3,
    sample_size=1024,
    up_block_types=["UpDecoderBlock2D"] * 4,
    scaling_factor=SCALE_FACTOR,
)
CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
CLIP_G_PREFIX = "conditioner.embedders.1.model."
UNET_PREFIX = "model.diffusion_model."
CONTROL_PREFIX = "model.control_model."
VAE_PREFIX = "first_stage_model."
DENOISE_PREFIX = "first_stage_model.denoise_encoder."


#: sha256 and size of the released checkpoints. Upstream publishes no hash (Google Drive and
#: Baidu links only); these are the Hub copies' LFS values: XCogni/Supir@b13056f97b1f (v0Q.ckpt,
#: v0F.ckpt, pinned with size and sha256 by a SUPIR installer) and camenduru/SUPIR's
#: SUPIR-v0Q.ckpt (same size and sha256, stated by a second project); v0F: one source only
SUPIR_SHA256 = {
    "v0Q": ("d7f418398bb024d0d3c779c4ee4e9f171eb072306093f5bcfb2bf096aa2738f8", 5_329_810_432),
    "v0F": ("9d8906255e2a2cc97b52d95d575461eca2a8971647d5e3e763291965c3a35314", 5_329_719_950),
}


def _supir_file(variant: str) -> WeightFile:
    sha256, size = SUPIR_SHA256[variant]
    return WeightFile(  # the Drive folder: upstream README's link
        f"SUPIR-{variant}.ckpt", SUPIR_DRIVE, sha256, size, licence=LICENCE
    )


def _sdxl_file() -> WeightFile:
    # sha256/size: Navezjt/SimpleSDXL@095b3ae models/models_info.json (base64 sha256, with the
    # official URL); the same for Civitai's copy (model 101055, version 128078,
    # sdXL_v10VAEFix.safetensors), which is therefore a mirror
    return WeightFile(
        SDXL_FILE,
        SDXL_URL + SDXL_FILE,
        "e6bb9ea85bbf7bf6478a7c6d18b71246f22e95d41bcdd80ed40aa212c33cfeff",
        6_938_078_334,
        licence=SDXL_LICENCE,
        mirrors=("https://civitai.com/api/download/models/128078",),
        shared=True,
    )


class Supir(Method):
    name = "supir"
    label = "SUPIR"
    description = (
        "SUPIR (CVPR 2024), SDXL + GLVControl/ZeroSFT, test.py defaults without LLaVA: "
        "50-step restoration-guided EDM, linear CFG 1->4, churn 5, wavelet colour fix"
    )
    group = "diffusion"
    paper = "https://arxiv.org/abs/2401.13627"
    licence_note = "SUPIR weights: SUPIR Software License Agreement, non-commercial use only"
    capabilities = Capabilities(gray="replicate")
    weights = {v: [_supir_file(v), _sdxl_file()] for v in ("v0Q", "v0F")}

    declared_options = (
        Option(
            "variant",
            "choice",
            "v0Q",
            choices=tuple(weights),
            help="checkpoint: v0Q (quality) or v0F (fidelity)",
        ),
        Option("steps", "int", _S.steps, min=1, max=1000, help="EDM sampling steps"),
        Option("cfg", "float", _S.cfg, min=0, help="text guidance scale (linear CFG end)"),
        Option("cfg_start", "float", _S.cfg_start, min=0, help="linear CFG start scale"),
        Option("churn", "float", _S.s_churn, min=0, help="EDM churn s_churn"),
        Option("noise", "float", _S.s_noise, min=0, help="EDM noise scale s_noise"),
        Option("stage1", "float", _S.restore_cfg, help="restoration guidance s_stage1 (<= 0: off)"),
        Option("stage2", "float", _S.control_scale, min=0, help="control scale s_stage2"),
        Option(
            "stage2_start", "float", _S.control_scale_start, min=0, help="linear s_stage2 start"
        ),
        Option("linear_stage2", "bool", _S.linear_control_scale, help="linear s_stage2"),
        Option("tile", "int", _S.tile, min=0, help="latent tile of the tiled sampler (0: off)"),
        Option("stride", "int", _S.stride, min=1, help="stride of the tiled sampler's tiles"),
        Option("seed", "int", 1234, min=0, max=2**63 - 1, help="seed of the sampler's noise"),
        Option("min_size", "int", 1024, min=8, help="short side the input is enlarged to"),
        Option("tile_vae", "int", 0, min=0, help="VAE tile in pixels (0: whole image)"),
        Option(
            "color_fix",
            "choice",
            "Wavelet",
            choices=("Wavelet", "AdaIn", "None"),
            help="colour fix against stage 1's output",
        ),
        Option("prompt", "str", A_PROMPT, help="positive prompt after the caption"),
        Option("neg", "str", N_PROMPT, help="negative prompt"),
        Option("captions", "path", help="folder of <image id>.txt captions (default: none)"),
    )

    def __init__(self, **given: object) -> None:
        super().__init__(**given)
        o = self.opt
        self.sampler = SamplerOptions(
            steps=o("steps"),
            cfg=o("cfg"),
            cfg_start=o("cfg_start"),
            s_churn=o("churn"),
            s_noise=o("noise"),
            restore_cfg=o("stage1"),
            control_scale=o("stage2"),
            control_scale_start=o("stage2_start"),
            linear_control_scale=o("linear_stage2"),
            tile=o("tile"),
            stride=o("stride"),
        )
        self.seed, self.min_size, self.tile_vae = o("seed"), o("min_size"), o("tile_vae")
        self.color_fix, self.a_prompt, self.n_prompt = o("color_fix"), o("prompt"), o("neg")
        self.captions = Path(o("captions")) if o("captions") else None

    def auto_dtype(self, device: str) -> str:
        """test.py: ``--diff_dtype fp16`` (the VAE runs in bf16, ``--ae_dtype``) on CUDA."""
        return "fp16" if device.startswith("cuda") else "fp32"

    def build_network(self, variant: str | None = None):
        """``glvcontrol`` or ``unet`` (SDXL size, random weights)."""
        from carbench.methods.nets.supir_net import GLVControl, SupirUNet

        builders = {"glvcontrol": GLVControl, "unet": SupirUNet}
        if variant not in builders:
            raise BenchError(f"supir networks: {', '.join(builders)}")
        return builders[variant]()

    # -- loading ------------------------------------------------------------------------------

    def load(self, device: str = "cpu", dtype: str = "fp32", kinds=("rgb",)) -> None:
        super().load(device, dtype)
        supir_path, sdxl_path = self.weight_paths()
        from carbench.methods.sd.single_file import read_checkpoint

        sdxl, supir = read_checkpoint(sdxl_path), read_checkpoint(supir_path)
        parts = load_parts(sdxl, supir, f"{sdxl_path} + {supir_path}")
        self.set_components(**parts, device=device, dtype=dtype)
        self._weights_sha = sha256_of([supir_path, sdxl_path])

    def set_components(
        self, unet, control, vae, denoise_encoder, text, device="cpu", dtype="fp32"
    ) -> None:
        """Networks in eval mode on ``device``; the diffusion part in ``dtype``, the VAE in
        bf16 when ``dtype`` is a half type on CUDA (test.py's ``--ae_dtype bf16``)."""
        import torch

        dt = torch_dtype(dtype)
        ae = torch.bfloat16 if device.startswith("cuda") and dt != torch.float32 else dt
        self.device, self.dtype = device, dtype
        self.unet = unet.eval().to(device, dt)
        self.control = control.eval().to(device, dt)
        self.vae = vae.eval().to(device, ae)
        self.denoise_encoder = denoise_encoder.eval().to(device, ae)
        self.text = text.to(device) if text is not None else None

    # -- pipeline -------------------------------------------------------------------------------

    def caption(self, image_id: str) -> str:
        if self.captions is None:
            return ""
        path = self.captions / f"{image_id}.txt"
        if not path.is_file():
            raise BenchError(f"supir: no caption file {path}")
        return path.read_text(encoding="utf-8").strip()

    def encode_lq(self, x):
        """Stage 1 on x in [-1, 1]: (z_lq, x_stage1)."""
        dt = next(self.vae.parameters()).dtype

        def enc(t):
            return self.vae.quant_conv(self.denoise_encoder(t.to(dt)))

        moments = self._tiled(enc, x, self.tile_vae, 1 / 8, self.denoise_encoder)
        z = moments[:, :4].float() * SCALE_FACTOR
        return z, self.decode(z)

    def decode(self, z):
        dt = next(self.vae.parameters()).dtype
        tile = self.tile_vae // 8
        return self._tiled(
            lambda t: self.vae.decode(t.to(dt)).sample, z / SCALE_FACTOR, tile, 8, self.vae.decoder
        ).float()

    def encode_center(self, x_stage1, generator):
        """The VAE's own encoding of x_stage1, a posterior sample (upstream's draw comes from
        the CPU generator), x0.13025."""
        import torch

        dt = next(self.vae.parameters()).dtype

        def enc(t):
            return self.vae.quant_conv(self.vae.encoder(t.to(dt)))

        moments = self._tiled(enc, x_stage1, self.tile_vae, 1 / 8, self.vae.encoder).float()
        mean, logvar = moments.chunk(2, dim=1)
        std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
        noise = torch.randn(mean.shape, generator=generator).to(mean.device)
        return (mean + std * noise) * SCALE_FACTOR

    @staticmethod
    def _tiled(fn, x, tile: int, scale: float, module):
        from carbench.methods.sd import tiling as sd_tiling

        if tile <= 0 or max(x.shape[-2:]) <= tile:
            return fn(x)
        return sd_tiling.vaehook_tiled(fn, x, tile, 32 if scale < 1 else 11, scale, module)

    def model(self, x, idx, cond: dict, control_scale: float, win=None):
        """GLVControl + UNet: eps for both guidance branches (``cond`` holds uncond first)."""
        import torch

        ctrl = (
            cond["control"]
            if win is None
            else cond["control"][..., win[0] : win[1], win[2] : win[3]]
        )
        dt = self.control.dtype
        ts = torch.full((x.shape[0],), int(idx), device=x.device, dtype=torch.long)
        hs = self.control(ctrl.to(dt), ts, x.to(dt), cond["crossattn"], cond["vector"])
        return self.unet(x, ts, cond["crossattn"], cond["vector"], hs, control_scale).float()

    def restore_tensor(self, x, caption: str = ""):
        """1x3xHxW in [-1, 1] (already at the sampling size) -> 1x3xHxW in [-1, 1]."""
        import torch

        from carbench.methods.sd import color as sd_color
        from carbench.methods.sd import supir_sampler

        dev = x.device
        g_cpu = torch.Generator().manual_seed(self.seed)
        g_dev = g_cpu if dev.type == "cpu" else torch.Generator(dev).manual_seed(self.seed)
        z_lq, x_stage1 = self.encode_lq(x)
        z_center = self.encode_center(x_stage1, g_cpu)
        c, uc = self.text(caption + self.a_prompt), self.text(self.n_prompt)
        cond = {k: torch.cat([uc[k], c[k]]) for k in c}
        cond["control"] = torch.cat([z_lq, z_lq])
        opts = self.sampler
        denoise = supir_sampler.guided_denoiser(
            lambda x2, idx, cs, win: self.model(x2, idx, cond, cs, win), opts
        )
        noise = torch.randn(z_lq.shape, generator=g_dev, device=dev, dtype=torch.float32)
        z = supir_sampler.sample(denoise, noise, z_center, opts, g_dev)
        out = self.decode(z)
        if self.color_fix == "Wavelet":
            out = sd_color.wavelet_color_fix(out, x_stage1, clamp=False)
        elif self.color_fix == "AdaIn":
            out = sd_color.adain_color_fix(out, x_stage1, clamp=False)
        return out

    def restore(self, sample: Sample) -> np.ndarray:
        import torch
        import torch.nn.functional as F
        from PIL import Image

        img = sample.decoded
        h0, w0 = img.shape[:2]
        h, w = sampling_size(h0, w0, self.min_size)
        big = np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))
        x = torch.from_numpy(big / 255 * 2 - 1).float().permute(2, 0, 1)[None].to(self.device)
        with torch.no_grad():
            out = self.restore_tensor(x, self.caption(sample.image))
            out = F.interpolate(out, size=(h0, w0), mode="bicubic")
        u8 = (out[0].permute(1, 2, 0) * 127.5 + 127.5).cpu().numpy().clip(0, 255).astype(np.uint8)
        return u8


def sampling_size(h: int, w: int, min_size: int = 1024) -> tuple[int, int]:
    """Upstream's PIL2Tensor geometry (upscale 1): (H, W) to sample at."""
    fh, fw = float(h), float(w)
    if min(fh, fw) < min_size:
        s = min_size / min(fh, fw)
        fh, fw = fh * s, fw * s
    return int(np.round(fh / 64.0)) * 64, int(np.round(fw / 64.0)) * 64


class SdxlText:
    """SDXL's two text encoders as SUPIR's conditioner uses them: ``self(text)`` -> ``{
    "crossattn": (1, 77, 768 + 1280), "vector": (1, 1280 + 3 * 512)}``."""

    def __init__(self, clip_l, clip_g, size_dim: int = 256) -> None:
        from carbench.methods.sd.single_file import OpenClipTokenizer

        self.clip_l, self.clip_g = clip_l.eval(), clip_g.eval()
        self.tokenizer = OpenClipTokenizer()
        self.size_dim = size_dim

    def to(self, device) -> SdxlText:
        self.clip_l, self.clip_g = self.clip_l.to(device), self.clip_g.to(device)
        return self

    def __call__(self, text: str) -> dict:
        import torch

        from carbench.methods.nets.ircontrolnet import timestep_features

        ids = self.tokenizer([text])
        dev = next(self.clip_l.parameters()).device
        # the Hugging Face CLIP tokenizer pads with <|endoftext|>; OpenCLIP's with 0
        eot = CLIP_L_CONFIG["eos_token_id"]
        ids_l = ids.masked_fill((ids == eot).cumsum(-1) > 0, eot)
        hid_l = self.clip_l(ids_l.to(dev), output_hidden_states=True).hidden_states[11]
        out_g = self.clip_g(ids.to(dev), output_hidden_states=True)
        hid_g, pooled = out_g.hidden_states[-2], out_g.text_embeds
        sizes = torch.tensor([1024, 1024, 0, 0, 1024, 1024], device=dev)
        emb = timestep_features(sizes, self.size_dim).reshape(1, -1)
        return {
            "crossattn": torch.cat([hid_l.float(), hid_g.float()], dim=-1),
            "vector": torch.cat([pooled.float(), emb], dim=-1),
        }


def build_text(config_l: dict | None = None, config_g: dict | None = None):
    """(CLIP ViT-L text model, bigG text model with projection), random weights."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    return (
        CLIPTextModel(CLIPTextConfig(**(config_l or CLIP_L_CONFIG))),
        CLIPTextModelWithProjection(CLIPTextConfig(**(config_g or CLIP_G_CONFIG))),
    )


def _strip(sd: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def load_parts(
    sdxl: dict,
    supir: dict,
    source: str,
    unet_cfg=None,
    vae_config: dict | None = None,
    text_configs: tuple[dict, dict] | str | None = None,
    size_dim: int = 256,
) -> dict:
    """Build every network and load it strictly from the SDXL single file's and the SUPIR
    checkpoint's state dicts (SUPIR's keys win where both have one, as upstream loads it last;
    a SUPIR key no network has is an error). ``text_configs="none"``: no text encoders."""
    import torch  # noqa: F401

    from carbench.methods.nets.supir_net import SDXL, GLVControl, SupirUNet
    from carbench.methods.sd import model as sd_model
    from carbench.methods.sd.single_file import convert_vae

    cfg = unet_cfg or SDXL
    known = (UNET_PREFIX, CONTROL_PREFIX, DENOISE_PREFIX)
    if extra := [k for k in supir if not k.startswith(known)]:
        raise BenchError(f"{source}: SUPIR checkpoint keys no network has, e.g. {extra[:3]}")
    merged = {**sdxl, **supir}
    unet, control = SupirUNet(cfg), GLVControl(cfg)
    strict_load(unet, _strip(merged, UNET_PREFIX), f"{source} (unet)")
    strict_load(control, _strip(merged, CONTROL_PREFIX), f"{source} (GLVControl)")

    vcfg = vae_config or SDXL_VAE_CONFIG
    vae_sd = {
        k: v for k, v in merged.items() if k.startswith(VAE_PREFIX) and DENOISE_PREFIX not in k
    }
    vae = sd_model.build_vae(vcfg)
    strict_load(vae, convert_vae(vae_sd, vcfg), f"{source} (vae)")
    enc_prefix = VAE_PREFIX + "encoder."
    swapped = {k: v for k, v in vae_sd.items() if not k.startswith(enc_prefix)}
    swapped.update({enc_prefix + k: v for k, v in _strip(merged, DENOISE_PREFIX).items()})
    denoise = sd_model.build_vae(vcfg).encoder
    strict_load(
        denoise, _strip(convert_vae(swapped, vcfg), "encoder."), f"{source} (denoise_encoder)"
    )

    text = None if text_configs == "none" else load_text(merged, source, text_configs, size_dim)
    return {
        "unet": unet,
        "control": control,
        "vae": vae,
        "denoise_encoder": denoise,
        "text": text,
    }


def load_text(sd: dict, source: str, configs=None, size_dim: int = 256) -> SdxlText:
    """Both text encoders, strictly loaded from the SDXL file's ``conditioner.*`` keys."""
    from carbench.methods.sd.single_file import _match_text_prefix

    cl, cg = build_text(*(configs or (None, None)))
    weights_l = _match_text_prefix(_strip(sd, CLIP_L_PREFIX), cl)
    for k in [k for k in weights_l if k.endswith("position_ids")]:
        if k not in cl.state_dict():  # a buffer older transformers saved; not a weight
            del weights_l[k]
    strict_load(cl, weights_l, f"{source} (CLIP-L)")
    strict_load(cg, convert_clip_g(sd, cg), f"{source} (OpenCLIP bigG)")
    return SdxlText(cl, cg, size_dim)


def convert_clip_g(sd: dict, net) -> dict:
    """``conditioner.embedders.1.model.*`` (OpenCLIP) -> CLIPTextModelWithProjection keys."""
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint

    from carbench.methods.sd.single_file import _match_text_prefix

    part = {k: v for k, v in sd.items() if k.startswith(CLIP_G_PREFIX)}
    part.pop(CLIP_G_PREFIX + "logit_scale", None)
    out = convert_open_clip_checkpoint(net, part, prefix=CLIP_G_PREFIX)
    proj = out.pop("text_projection.weight")
    out = _match_text_prefix(out, net)
    out["text_projection.weight"] = proj
    return out
