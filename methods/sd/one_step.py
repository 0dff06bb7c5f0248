"""The base of the one-step SD-2.1 adapters (CODiff, OSEDiff): loading the SD parts and the LoRA
checkpoint, the VAE encode (tiled as upstream's vaehook by default), one UNet step, the decode
and the colour fix; subclasses supply the condition.
"""

from __future__ import annotations

import numpy as np

from carbench.core.options import Option
from carbench.methods.base import Capabilities, Method, Sample, locate
from carbench.methods.sd import color as sd_color
from carbench.methods.sd import model as sd_model
from carbench.methods.sd import tiling as sd_tiling
from carbench.methods.torch_utils import torch_dtype


class OneStepSD(Method):
    """Shared one-step SD-2.1 machinery for CODiff and OSEDiff."""

    group = "diffusion"
    capabilities = Capabilities(gray="replicate")
    declared_options = (
        Option(
            "colorfix",
            "choice",
            "adain",
            choices=("adain", "wavelet", "nofix"),
            help="colour fix of the output against the input (upstream: adain)",
        ),
        Option(
            "latent",
            "choice",
            "sample",
            choices=("sample", "mean"),
            help="VAE latent: a seeded sample of the posterior (upstream) or its mean",
        ),
        Option("seed", "int", 0, min=0, max=2**63 - 1, help="seed of the latent sample"),
        Option(
            "vae_tiling",
            "choice",
            "hook",
            choices=("hook", "pooled"),
            help="tiled VAE of large inputs: hook (upstream's vaehook) or pooled (carbench's "
            "blended tiles with pooled statistics)",
        ),
    )

    def __init__(self, **given: object) -> None:
        super().__init__(**given)
        self.fix = self.opt("colorfix")
        self.latent_mode = self.opt("latent")
        self.seed = self.opt("seed")
        self.vae_tiling = self.opt("vae_tiling")

    def auto_dtype(self, device: str) -> str:
        """Upstream's test scripts run the UNet and VAE in fp16 (``--mixed_precision fp16``,
        on CUDA only); fp32 elsewhere."""
        return "fp16" if device.startswith("cuda") else "fp32"

    #: the SD-2.1-base parts the adapter loads (``load_sd``)
    sd_parts: tuple[str, ...] = ("unet", "vae")

    def needed_variants(self, kinds=("rgb", "gray")) -> list[str]:
        """The adapter's own files and the SD-2.1-base parts it builds on."""
        return ["default", "sd21-base"]

    def missing_files(self, kinds=("rgb", "gray")) -> list:
        """Its own missing files, then SD-2.1-base's (looked for where ``load_sd`` reads)."""
        own = [v for v in self.needed_variants(kinds) if v != "sd21-base"]
        files = [wf for v in own for wf in self.weights[v]]
        missing = [wf for wf in files if locate(self.name, wf) is None]
        return missing + sd_model.sd21_missing(self.sd_parts)

    # components are injected by load(); tests inject tiny ones through set_components
    def set_components(self, unet, vae, cond) -> None:
        self.unet, self.vae, self.cond = unet, vae, cond

    def build_network(self, variant: str | None = None):

        if variant == "unet":
            return sd_model.build_unet()
        if variant == "vae":
            return sd_model.build_vae()
        raise ValueError(f"{self.name} has networks unet and vae")

    #: tiled VAE (tile, padding): upstream's vaehook defaults, encoder tiles of 1024 px with
    #: 32 px context (used above 1024 + 2 x 32), decoder tiles of 224 latent px with 11 px
    #: context (used above 224 + 2 x 11); ``vae_tiling=pooled`` uses the same sizes as tile and
    #: overlap-half of carbench's blended, pooled-statistics scheme
    vae_encoder_tile: tuple[int, int] = (1024, sd_tiling.VAEHOOK_PAD_ENCODER)
    vae_decoder_tile: tuple[int, int] = (224, sd_tiling.VAEHOOK_PAD_DECODER)

    def _vae_part(self, net, x, tile: int, pad: int, scale: float):
        if self.vae_tiling == "hook":
            return sd_tiling.vaehook_tiled(net, x, tile, pad, scale, module=net)
        if max(x.shape[-2:]) > tile + 2 * pad:
            return sd_tiling.tiled_vae(net, x, tile, scale, 2 * pad, module=net)
        return net(x)

    def _encode(self, x):
        """VAE posterior (mean, std) of x in [-1,1], tiled for large inputs."""
        h = self._vae_part(self.vae.encoder, x, *self.vae_encoder_tile, 1 / 8)
        moments = self.vae.quant_conv(h) if self.vae.quant_conv is not None else h
        mean, logvar = moments.chunk(2, dim=1)
        return mean, (0.5 * logvar.clamp(-30.0, 20.0)).exp()

    def _decode(self, z):
        z = self.vae.post_quant_conv(z) if self.vae.post_quant_conv is not None else z
        return self._vae_part(self.vae.decoder, z, *self.vae_decoder_tile, 8)

    def _latent(self, x):
        import torch

        mean, std = self._encode(x)
        if self.latent_mode == "mean":
            z = mean
        else:
            g = torch.Generator(device=x.device).manual_seed(self.seed)
            z = mean + std * torch.randn(mean.shape, generator=g, device=x.device, dtype=mean.dtype)
        return z * sd_model.SCALING

    def condition(self, x01):
        """Encoder hidden states for the UNet."""
        raise NotImplementedError

    def restore_tensor(self, x01, tiles: tuple[int, int] = (96, 32)):
        """1x3xHxW in [0,1] (H, W multiples of 8) -> 1x3xHxW in [0,1] before colour fix, in
        the pipeline's dtype (upstream maps the decoder output to [0,1] in it, then
        ToPILImage)."""
        from carbench.methods.sd import tiling as sd_tiling

        dt = torch_dtype(self.dtype)
        cond = self.condition(x01).to(dt)
        z = self._latent((x01 * 2 - 1).to(dt))
        t = self.timestep

        def unet(tile):
            import torch

            ts = torch.tensor([t], device=tile.device).long()
            return self.unet(
                tile, ts, encoder_hidden_states=cond.expand(tile.shape[0], -1, -1)
            ).sample

        eps = sd_tiling.tiled_latent_apply(unet, z, *tiles)
        x0 = sd_model.one_step_x0(eps.float(), z.float(), t).to(dt)
        img = self._decode(x0 / sd_model.SCALING).clamp(-1, 1)
        return img * 0.5 + 0.5

    def prepare_input(self, img: np.ndarray) -> np.ndarray:
        """The RGB uint8 image the pipeline (and the colour fix) sees; as given by default."""
        return img

    def restore(self, sample: Sample) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        img = self.prepare_input(sample.decoded)
        h, w = img.shape[:2]
        x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        x = x.to(self.device)
        xp = F.pad(x, (0, (-w) % 8, 0, (-h) % 8), mode="replicate")
        with torch.no_grad():
            res = self.finish(self.restore_tensor(xp)[..., :h, :w], x)
        return res

    def finish(self, y, x) -> np.ndarray:
        """The pipeline's output ``y`` (1x3xHxW in [0,1], its dtype) -> uint8 RGB: ToPILImage's
        x255 and truncation, then the colour fix against the input ``x`` (float32 [0,1])."""
        import torch

        y = sd_color.to_uint8_truncate(y)
        out = torch.from_numpy(y.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        if self.fix == "adain":
            out = sd_color.adain_color_fix(out, x.cpu())
        elif self.fix == "wavelet":
            out = sd_color.wavelet_color_fix(out, x.cpu())
        return sd_color.to_uint8_truncate(out)
