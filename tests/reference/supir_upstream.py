"""Record SUPIR reference outputs from the official code on seeded stand-in weights.

Usage: python tests/reference/supir_upstream.py /path/to/SUPIR-checkout [out.npz]

Runs upstream's own classes and ``SUPIRModel.batchify_sample`` (Fanghua-Yu/SUPIR @bda91af) on a
small config that keeps every structural option of ``options/SUPIR_v0.yaml`` (three levels of
two residual blocks, attention at ds 2 and 4, linear transformer projections, eps denoiser,
LinearCFG, RestoreEDMSampler / TiledRestoreEDMSampler) with width 32:

* ``GLVControl`` and ``LightGLVUNet``: model_channels 32, transformer depth 1, 16-channel heads,
  context 64, vector 80. LightGLVUNet's connector lists are written for width 320 (mode
  ``XL-base``); here the UNet is built by ``UNetModel.__init__`` and its ``project_modules``
  are upstream's ``ZeroSFT`` / ``ZeroCrossAttn`` with the same lists scaled to width 32, in
  upstream's insertion order (the full-size lists are checked by the key-layout test);
* the VAE: sgm ``Encoder`` / ``Decoder`` with ch 32, ch_mult [1, 1, 1, 1], one residual block,
  attention type ``vanilla``; ``denoise_encoder`` its own stand-in (another seed); the
  autoencoder's ``encode`` (posterior sample) / ``decode`` are sgm's AutoencoderKL methods
  re-stated here (two lines each: sgm.models imports the training stack);
* conditioning: random ``crossattn`` / ``vector`` tensors (stored) stand in for the text
  encoders (``prepare_condition`` returns them);
* ``batchify_sample`` with test.py's defaults (except ``num_steps``: 4) and seed 1234, on CPU,
  fp32; a second run with ``s_stage1 = 2`` (restoration guidance on) and the tiled sampler
  (``TiledRestoreEDMSampler``, tile 4, stride 2 on an 8x8 latent) with linear s_stage2.

Stubbed imports (not used on these paths): ``pytorch_lightning`` (its ``seed_everything`` is
``torch.manual_seed`` + random + numpy here), ``sgm.models.diffusion``, ``k_diffusion.sampling``.
``gaussian_weights`` allocates on CUDA; its module's ``torch`` is wrapped so it lands on CPU.
"""

from __future__ import annotations

import random
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.reference.standin import fill_standin, layout_digest  # noqa: E402
from tests.reference.supir_keys_upstream import stub_packages  # noqa: E402

GAIN = 0.5
MC = 32
UNET = dict(
    adm_in_channels=80,
    num_classes="sequential",
    in_channels=4,
    out_channels=4,
    model_channels=MC,
    attention_resolutions=[4, 2],
    num_res_blocks=2,
    channel_mult=[1, 2, 4],
    num_head_channels=16,
    use_spatial_transformer=True,
    use_linear_in_transformer=True,
    transformer_depth=[1, 1, 1],
    context_dim=64,
    spatial_transformer_attn_type="softmax",
    legacy=False,
)
DDCONFIG = dict(
    attn_type="vanilla",
    double_z=True,
    z_channels=4,
    resolution=64,
    in_channels=3,
    out_ch=3,
    ch=32,
    ch_mult=[1, 1, 1, 1],
    num_res_blocks=1,
    attn_resolutions=[],
    dropout=0.0,
)
SEEDS = dict(control=41, unet=42, vae=43, denoise_encoder=44)


def _stubs() -> None:
    pl = types.ModuleType("pytorch_lightning")

    def seed_everything(seed):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        return seed

    pl.seed_everything = seed_everything
    sys.modules["pytorch_lightning"] = pl
    diffusion = types.ModuleType("sgm.models.diffusion")
    diffusion.DiffusionEngine = nn.Module
    sys.modules["sgm.models"] = types.ModuleType("sgm.models")
    sys.modules["sgm.models.diffusion"] = diffusion
    kd = types.ModuleType("k_diffusion")
    kds = types.ModuleType("k_diffusion.sampling")
    kds.get_sigmas_karras = kds.BrownianTreeNoiseSampler = None
    sys.modules["k_diffusion"], sys.modules["k_diffusion.sampling"] = kd, kds
    import importlib.machinery

    kornia = types.ModuleType("kornia")
    kornia.__spec__ = importlib.machinery.ModuleSpec("kornia", None)
    sys.modules["kornia"] = kornia
    ckpt = types.ModuleType("CKPT_PTH")
    ckpt.SDXL_CLIP1_PATH = ckpt.SDXL_CLIP2_CKPT_PTH = None
    sys.modules["CKPT_PTH"] = ckpt


class _CpuTorch:
    """``torch`` for sgm's sampling module with ``torch.tensor(..., device='cuda')`` on CPU."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def tensor(*args, device=None, **kwargs):
        return torch.tensor(*args, **kwargs)


def connector_lists(mc: int):
    """Mode XL-base's lists (written for 320) at width ``mc``."""
    cond = [mc] * 4 + [2 * mc] * 3 + [4 * mc] * 3
    project = [c // 2 * 2 for c in cond]  # project_channel_scale 2
    concat = [mc] * 2 + [2 * mc] * 3 + [4 * mc] * 4 + [0]
    return cond, project, concat


def build(root: Path):
    from omegaconf import OmegaConf
    from sgm.modules.diffusionmodules import sampling
    from sgm.modules.diffusionmodules.model import Decoder, Encoder
    from sgm.modules.diffusionmodules.openaimodel import UNetModel
    from sgm.modules.diffusionmodules.wrappers import ControlWrapper
    from sgm.modules.distributions.distributions import DiagonalGaussianDistribution
    from sgm.util import instantiate_from_config
    from SUPIR.models.SUPIR_model import SUPIRModel
    from SUPIR.modules.SUPIR_v0 import GLVControl, LightGLVUNet, ZeroCrossAttn, ZeroSFT

    sampling.torch = _CpuTorch()
    control = GLVControl(**UNET, input_upscale=1)
    unet = LightGLVUNet.__new__(LightGLVUNet)
    UNetModel.__init__(unet, **UNET)
    cond, project, concat = connector_lists(MC)
    mods = [ZeroSFT(p, c, concat_channels=k) for c, p, k in zip(cond, project, concat, strict=True)]
    for i in (6, 3):
        mods.insert(i, ZeroCrossAttn(cond[i], concat[i]))
    unet.project_modules = nn.ModuleList(mods)

    class AE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Encoder(**DDCONFIG)
            self.decoder = Decoder(**DDCONFIG)
            self.quant_conv = nn.Conv2d(8, 8, 1)
            self.post_quant_conv = nn.Conv2d(4, 4, 1)

        def encode(self, x):  # AutoencoderKLInferenceWrapper.encode
            return DiagonalGaussianDistribution(self.quant_conv(self.encoder(x))).sample()

        def decode(self, z):
            return self.decoder(self.post_quant_conv(z))

    ae = AE()
    ae.denoise_encoder = Encoder(**DDCONFIG)
    for name, mod in (("control", control), ("unet", unet), ("vae", ae)):
        fill_standin(mod, SEEDS[name], GAIN)
    fill_standin(ae.denoise_encoder, SEEDS["denoise_encoder"], GAIN)

    cfg = OmegaConf.load(root / "options/SUPIR_v0.yaml").model.params
    fake = types.SimpleNamespace()
    fake.first_stage_model = ae.eval()
    fake.scale_factor = cfg.scale_factor
    fake.ae_dtype = torch.float32
    wrapper = ControlWrapper(unet.eval(), dtype=torch.float32)
    wrapper.load_control_model(control.eval())
    fake.model = wrapper
    fake.denoiser = instantiate_from_config(cfg.denoiser_config)
    fake.sampler_config = cfg.sampler_config
    fake.sampler_config.params.device = "cpu"
    fake.p_p, fake.n_p = cfg.p_p, cfg.n_p
    for m in ("encode_first_stage", "encode_first_stage_with_denoise", "decode_first_stage"):
        setattr(fake, m, types.MethodType(getattr(SUPIRModel, m), fake))
    return fake, SUPIRModel, (control, unet, ae)


def sampler_steps(fake) -> dict:
    """Schedules and single ``RestoreEDMSampler.sampler_step`` calls (restore_cfg 2, churn
    gamma 0.1, s_noise 1.01, stored noise) with a toy linear denoiser ``D = 0.5 x + cs * k``
    (``k``: a stored tensor per guidance branch), at next sigmas on both sides of 0.05."""
    from omegaconf import OmegaConf
    from sgm.util import instantiate_from_config

    cfg = OmegaConf.to_container(fake.sampler_config, resolve=True)
    cfg["target"] = "sgm.modules.diffusionmodules.sampling.RestoreEDMSampler"
    cfg["params"].pop("tile_size", None), cfg["params"].pop("tile_stride", None)
    cfg["params"].update(restore_cfg=2.0, s_churn=5.0, s_noise=1.01, num_steps=50)
    cfg["params"]["guider_config"]["params"].update(scale=1.0, scale_min=4.0)
    sampler = instantiate_from_config(cfg)
    g = torch.Generator().manual_seed(6)
    x, center, eps, k_c, k_u = (torch.randn(1, 4, 3, 3, generator=g) for _ in range(5))

    def toy(x2, s2, c, cs):
        return 0.5 * x2 + cs * c["concat"]

    pairs = [(3.0, 1.5), (0.4, 0.1), (0.1, 0.04), (0.04, 0.0)]
    steps = [
        sampler.sampler_step(
            torch.tensor([s]),
            torch.tensor([n]),
            toy,
            x,
            {"concat": k_c},
            {"concat": k_u},
            gamma=0.1,
            x_center=center,
            eps_noise=eps,
            control_scale=0.7,
        ).numpy()
        for s, n in pairs
    ]
    return dict(
        sigmas50=sampler.discretization(50, device="cpu").numpy(),
        train_sigmas=fake.denoiser.sigmas.numpy(),
        step_pairs=np.array(pairs, np.float32),
        step_x=x.numpy(),
        step_center=center.numpy(),
        step_eps=eps.numpy(),
        step_kc=k_c.numpy(),
        step_ku=k_u.numpy(),
        step_out=np.stack(steps),
    )


CLIP_G_TINY = dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=3)


CLIP_L_TINY = dict(
    vocab_size=49408,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=12,
    num_attention_heads=2,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
)


def clip_l_refs(prompts: list[str]) -> np.ndarray:
    """sgm's ``FrozenCLIPEmbedder`` (layer ``hidden``, index 11) with a Hugging Face
    ``CLIPTokenizer`` built from OpenCLIP's bundled BPE (the same vocabulary and merges as
    openai/clip-vit-large-patch14's files, which are not available here; OpenCLIP's special
    token names renamed to Hugging Face's) and a 12-layer
    width-32 ``CLIPTextModel`` (stand-in seed 46, gain 1)."""
    import json
    import tempfile

    from open_clip.tokenizer import SimpleTokenizer
    from sgm.modules.encoders.modules import FrozenCLIPEmbedder
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    bpe = SimpleTokenizer()
    with tempfile.TemporaryDirectory() as d:
        vocab, merges = Path(d) / "vocab.json", Path(d) / "merges.txt"
        names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
        vocab.write_text(json.dumps({names.get(k, k): v for k, v in bpe.encoder.items()}))
        pairs = sorted(bpe.bpe_ranks.items(), key=lambda kv: kv[1])
        merges.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for (a, b), _ in pairs))
        tokenizer = CLIPTokenizer(str(vocab), str(merges))
    model = CLIPTextModel(CLIPTextConfig(**CLIP_L_TINY))
    fill_standin(model, 46, 1.0)
    emb = FrozenCLIPEmbedder.__new__(FrozenCLIPEmbedder)
    nn.Module.__init__(emb)
    emb.tokenizer, emb.transformer, emb.device, emb.max_length = tokenizer, model.eval(), "cpu", 77
    emb.layer, emb.layer_idx, emb.return_pooled = "hidden", 11, False
    return np.stack([emb([p])[0].numpy() for p in prompts])


def text_refs(cfg) -> dict:
    """sgm's ``FrozenOpenCLIPEmbedder2`` (penultimate layer, pooled, legacy False) on an
    OpenCLIP text tower of width 32 / 3 layers / projection 16 (stand-in seed 45, gain 1; built
    with ``open_clip.model.CLIP`` and its visual tower deleted, as the embedder does; its
    ``__init__`` is skipped because it downloads the pretrained model; requirements.txt pins
    open_clip_torch 2.17.1, here 3.3 with its attention switched to sequence-first), on
    test.py's two default prompts and one with '!'; and ``ConcatTimestepEmbedderND(outdim=8)``
    on the size tuples."""
    import open_clip
    from sgm.modules.encoders.modules import ConcatTimestepEmbedderND, FrozenOpenCLIPEmbedder2

    clip = open_clip.model.CLIP(
        embed_dim=16,
        vision_cfg=open_clip.model.CLIPVisionCfg(layers=1, width=64, patch_size=8, image_size=16),
        text_cfg=open_clip.model.CLIPTextCfg(**CLIP_G_TINY),
    )
    del clip.visual
    # sgm feeds the transformer sequence-first (open_clip 2.17 layout); open_clip 3 builds
    # it batch-first: switch the attention layers to sequence-first (same arithmetic)
    clip.transformer.batch_first = False
    for block in clip.transformer.resblocks:
        block.attn.batch_first = False
    fill_standin(clip, 45, 1.0)
    emb = FrozenOpenCLIPEmbedder2.__new__(FrozenOpenCLIPEmbedder2)
    nn.Module.__init__(emb)
    emb.model, emb.device, emb.max_length = clip.eval(), "cpu", 77
    emb.return_pooled, emb.layer, emb.layer_idx, emb.legacy = True, "penultimate", 1, False
    prompts = [str(cfg.p_p), str(cfg.n_p), "Wow! a dog, 100%."]
    z, pooled = emb(prompts)
    sizes = ConcatTimestepEmbedderND(outdim=8)
    size_emb = torch.cat(
        [sizes(torch.tensor([v])) for v in ([1024, 1024], [0, 0], [1024, 1024])], dim=1
    )
    lines = [f"{k}:{list(v.shape)}" for k, v in sorted(clip.state_dict().items())]
    hidden_l = clip_l_refs(prompts)
    return dict(
        clip_l_hidden=hidden_l,
        prompts=np.array(prompts),
        clip_g_keys=np.array(lines),
        clip_g_penultimate=z.numpy(),
        clip_g_pooled=pooled.numpy(),
        size_emb=size_emb.numpy(),
    )


def main(root: Path, out: Path) -> None:
    torch.set_num_threads(1)
    stub_packages(root)
    sys.modules.pop("SUPIR", None)
    for name in ("SUPIR", "SUPIR.models", "SUPIR.utils"):
        mod = types.ModuleType(name)
        mod.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = mod
    _stubs()
    fake, cls, nets = build(root)
    g = torch.Generator().manual_seed(5)
    x = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    c = {"crossattn": torch.randn(1, 7, 64, generator=g), "vector": torch.randn(1, 80, generator=g)}
    uc = {
        "crossattn": torch.randn(1, 7, 64, generator=g),
        "vector": torch.randn(1, 80, generator=g),
    }
    captured = {}

    def prepare_condition(_z, p, p_p, n_p, N):
        captured["z_lq"] = _z.clone()
        return {**c, "control": _z}, {**uc, "control": _z}

    fake.prepare_condition = prepare_condition
    orig_decode = fake.decode_first_stage

    def decode(z):
        y = orig_decode(z)
        captured.setdefault("decoded", []).append(y.clone())
        return y

    fake.decode_first_stage = decode
    orig_encode = fake.encode_first_stage

    def encode(x1):
        z = orig_encode(x1)
        captured["z_center"] = z.clone()
        return z

    fake.encode_first_stage = encode
    arrays = {"x": x.numpy()}
    for k in c:
        arrays[f"c_{k}"], arrays[f"uc_{k}"] = c[k].numpy(), uc[k].numpy()
    with torch.no_grad():
        kw = dict(
            num_steps=4,
            restoration_scale=-1,
            s_churn=5,
            s_noise=1.01,
            cfg_scale=4.0,
            seed=1234,
            control_scale=1.0,
            color_fix_type="Wavelet",
            use_linear_CFG=True,
            use_linear_control_scale=False,
            cfg_scale_start=1.0,
            control_scale_start=0.0,
        )
        samples = cls.batchify_sample(fake, x, [""], **kw)
        arrays.update(
            z_lq=captured["z_lq"].numpy(),
            x_stage1=captured["decoded"][0].numpy(),
            z_center=captured["z_center"].numpy(),
            decoded=captured["decoded"][1].numpy(),
            out=samples.numpy(),
        )
        # restoration guidance on, tiled sampler, linear s_stage2
        captured.clear()
        fake.sampler_config.target = "sgm.modules.diffusionmodules.sampling.TiledRestoreEDMSampler"
        fake.sampler_config.params.tile_size = 4
        fake.sampler_config.params.tile_stride = 2
        kw.update(restoration_scale=2.0, use_linear_control_scale=True, control_scale_start=0.5)
        arrays["tiled_out"] = cls.batchify_sample(fake, x, [""], **kw).numpy()
    arrays.update(sampler_steps(fake))
    with torch.no_grad():
        arrays.update(text_refs(fake))
    control, unet, ae = nets
    arrays["control_layout"] = np.array(layout_digest(control))
    arrays["unet_layout"] = np.array(layout_digest(unet))
    lines = [f"{k}:{list(v.shape)}" for k, v in sorted(ae.state_dict().items())]
    arrays["vae_keys"] = np.array(lines)
    np.savez_compressed(out, **arrays)
    print({k: v.shape for k, v in arrays.items()})


if __name__ == "__main__":
    main(
        Path(sys.argv[1]),
        Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "tests/data/upstream/supir.npz",
    )
