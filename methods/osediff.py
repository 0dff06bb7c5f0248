"""OSEDiff - Wu et al., "One-Step Effective Diffusion Network for Real-World Image
Super-Resolution", NeurIPS 2024. Upstream: cswry/OSEDiff @fcc4f09 (Apache-2.0).

One UNet step at t = 999 on the SD-2.1-base latent of the input (LoRA on VAE encoder and UNet,
rank 4, so scale 8/4 = 2), text condition from the SD-2.1 text encoder. The official prompt is
"<tags>, <user prompt>," with tags from the DAPE/RAM tagging model; carbench does not ship the
tagger, so the prompt is the fixed ``osediff:prompt=...`` (default empty), recorded in the
method id. For artifact removal the upscale factor is 1.
"""

from __future__ import annotations

from bench.weights import WeightFile
from methods.codiff import OneStepSD
from methods.torch_utils import sha256_of, torch_dtype


class OSEDiff(OneStepSD):
    name = "osediff"
    description = "OSEDiff (NeurIPS 2024): one-step SD-2.1 at t = 999, fixed prompt"
    paper = "https://arxiv.org/abs/2406.08177"
    timestep = 999
    weights = {
        "default": [
            WeightFile(
                "osediff.pkl",
                "https://github.com/cswry/OSEDiff/raw/main/preset/models/osediff.pkl",
                licence="Apache-2.0 (git blob sha1 bc84dc9729aa6173e8b1087977025a4fc566a5db)",
            )
        ]
    }

    @property
    def prompt(self) -> str:
        return self.options.get("prompt", "")

    def load(self, device: str = "cpu", dtype: str = "fp32", kinds=("rgb",)) -> None:
        from methods import sd_core

        super(OneStepSD, self).load(device, dtype)
        (pkl,) = self.weight_paths("default")
        ckpt = sd_core.LoraCheckpoint.read(pkl)
        sd = sd_core.load_sd(("unet", "vae", "text_encoder", "tokenizer"))
        sd_core.add_lora(sd["unet"], sd["vae"], ckpt, str(pkl))
        dt = torch_dtype(dtype)
        self.text_encoder = sd["text_encoder"].eval().to(device, dt)
        self.tokenizer = sd["tokenizer"]
        self.set_components(sd["unet"].eval().to(device, dt), sd["vae"].eval().to(device, dt), None)
        self._weights_sha = sha256_of([pkl])

    def condition(self, x01):
        import torch

        text = f"{self.prompt}," if self.prompt else ""
        ids = self.tokenizer(
            text,
            max_length=self.tokenizer.model_max_length,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(x01.device)
        with torch.no_grad():
            return self.text_encoder(ids)[0]
