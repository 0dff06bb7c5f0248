"""CODiff - Guo et al., "Compression-Aware One-Step Diffusion Model for JPEG Artifact Removal",
ICCV 2025. Upstream: jp-guo/CODiff @86e2f04 (Apache-2.0).

Pipeline (main_test_codiff.py): the decoded JPEG in [0,1] goes to CaVE, whose bottleneck
features (512 channels at 1/32 resolution, flattened to tokens) are projected by a Linear
512 -> 1024 and replace the text condition of the SD-2.1-base UNet; the JPEG in [-1,1] is
VAE-encoded (LoRA on the encoder), one UNet step at t = 499 (LoRA on the UNet, fine-tuned
conv_in), x0 decoded, clamped, 8-bit truncated, AdaIN colour fix against the input.
carbench: ``latent=sample`` (official: a draw, unseeded) with a fixed ``seed`` by default, or
``latent=mean``; both recorded in the method id. Inputs whose sides are not multiples of 8 are
replicate-padded and cropped (the official protocol resizes the ground truth instead).
"""

from __future__ import annotations

import numpy as np

from carbench.core.weights import WeightFile
from carbench.methods.base import Sample
from carbench.methods.nets.fbcnn_net import build_fbcnn_unet
from carbench.methods.sd import lora as sd_lora
from carbench.methods.sd import model as sd_model
from carbench.methods.sd.model import sd21_files
from carbench.methods.sd.one_step import OneStepSD
from carbench.methods.torch_utils import (
    load_state_dict_file,
    loaded,
    sha256_of,
    strict_load,
    torch_dtype,
)

CAVE_GDRIVE = "1SZo5UMSMEcYy4Wr-OIQgTk8hUXiFMIbK"
CODIFF_GDRIVE = "1SHZQs8fu3K419jlENoY8qdTKbjAOL0i7"
TIMESTEP = 499


def build_cave():
    """CaVE(in_nc=3, out_nc=3, nc=[64,128,256,512], nb=4, act_mode='BR'): strides 2/4/4."""
    return build_fbcnn_unet(3, 3, batch_norm=True, strides=(2, 4, 4), qf_embedding=False)


class CODiff(OneStepSD):
    name = "codiff"
    label = "CODiff"
    description = "CODiff (ICCV 2025): CaVE-conditioned one-step SD-2.1 at t = 499"
    paper = "https://arxiv.org/abs/2502.09873"
    timestep = TIMESTEP
    weights = {
        "default": [
            WeightFile(
                "codiff.pkl",
                f"https://drive.google.com/file/d/{CODIFF_GDRIVE}",
                gdrive=CODIFF_GDRIVE,
                licence="Apache-2.0",
            ),
            WeightFile(
                "cave.pth",
                f"https://drive.google.com/file/d/{CAVE_GDRIVE}",
                gdrive=CAVE_GDRIVE,
                licence="Apache-2.0",
            ),
        ],
        "sd21-base": sd21_files(("unet", "vae")),
    }

    def build_network(self, variant: str | None = None):
        if variant == "cave":
            return build_cave()
        return super().build_network(variant)

    def load(self, device: str = "cpu", dtype: str = "fp32", kinds=("rgb",)) -> None:
        import torch

        super().load(device, dtype)
        self.check_weights(kinds)  # its own files and SD-2.1-base's, named in one message
        pkl, cave_path = self.weight_paths("default")
        ckpt = sd_lora.LoraCheckpoint.read(pkl)
        sd = sd_model.load_sd(("unet", "vae"))
        # CaVE and proj stay fp32, as upstream
        self.cave = loaded(build_cave(), load_state_dict_file(cave_path), str(cave_path), device)
        proj = torch.nn.Linear(512, 1024)
        strict_load(proj, ckpt.raw["proj"], f"{pkl} (proj)")
        sd_lora.add_lora(sd["unet"], sd["vae"], ckpt, str(pkl))
        dt = torch_dtype(dtype)
        self.proj = proj.eval().to(device)
        self.set_components(sd["unet"].eval().to(device, dt), sd["vae"].eval().to(device, dt), None)
        self._weights_sha = sha256_of([pkl, cave_path])

    def condition(self, x01):
        tokens = self.cave.encode(x01.float()).flatten(2).transpose(1, 2)  # B, N, 512
        return self.proj(tokens)

    def predict_qf(self, sample: Sample) -> int:
        """CaVE's QF head (trained on (100 - QF) / 100): round(100 (1 - q))."""
        import torch

        x = torch.from_numpy(sample.decoded.astype(np.float32) / 255).permute(2, 0, 1)[None]
        with torch.no_grad():
            q = float(self.cave.predict_q(x.to(self.device)))
        return int(round(100 * (1 - q)))
