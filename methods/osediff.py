"""OSEDiff - Wu et al., "One-Step Effective Diffusion Network for Real-World Image
Super-Resolution", NeurIPS 2024. Upstream: cswry/OSEDiff @fcc4f09 (Apache-2.0).

One UNet step at t = 999 on the SD-2.1-base latent of the input (LoRA on VAE encoder and UNet,
rank 4, so scale 8/4 = 2), text condition from the SD-2.1 text encoder. For artifact removal the
upscale factor is 1. As upstream's test_osediff.py (default, ``keep_size=0``): an input with a
side under 512 px is enlarged with PIL's default (bicubic) resize by 512 / short side (sizes
truncated to integers), then Lanczos-resized down to multiples of 8, and the output keeps that
size (upstream's resize back is discarded), so it is larger than the ground truth and only
no-reference metrics can score it. ``osediff:keep_size=1`` instead runs at the input size
(replicate-padded to multiples of 8, cropped back), so full-reference metrics apply.

Prompt (``osediff:tagger=dape|none``): as test_osediff.py, "<tags>, <prompt>," with the tags
that DAPE (RAM Swin-L + LoRA, ``methods.nets.ram_tagger``) finds in the (padded) input, run in
the method's dtype; ``prompt`` is the user prompt (default empty). Without the tagger the prompt
is the fixed "<prompt>," (empty by default). The default is ``dape`` when all tagger files are
present, else ``none``; ``tagger=dape`` shows in the method id, ``none`` does not (ids as before
the tagger).
"""

from __future__ import annotations

from carbench.core.errors import BenchError, WeightsMissingError
from carbench.core.options import Option
from carbench.core.weights import WeightFile
from carbench.methods.base import locate
from carbench.methods.sd.model import sd21_files, token_ids
from carbench.methods.sd.one_step import OneStepSD
from carbench.methods.torch_utils import sha256_of, torch_dtype

DAPE_GDRIVE = "1KIV6VewwO2eDC9g4Gcvgm-a0LDI7Lmwm"
#: the Hugging Face space the OSEDiff README links (file view: .../blob/main/...)
RAM_URL = (
    "https://huggingface.co/spaces/xinyu1205/recognize-anything/resolve/main/ram_swin_large_14m.pth"
)
#: tag list and thresholds at the pinned upstream commit (same blobs in recognize-anything)
RAM_DATA = (
    "https://raw.githubusercontent.com/cswry/OSEDiff/"
    "fcc4f09c7ed66a9bc0ba9433940d76b343142426/ram/data/"
)
TAGGERS = ("dape", "none")
TEXT_ATTENTION = "eager"  # the CLIP text encoder's attention implementation (see load)


class OSEDiff(OneStepSD):
    name = "osediff"
    label = "OSEDiff"
    description = "OSEDiff (NeurIPS 2024): one-step SD-2.1 at t = 999, DAPE-tag prompt"
    paper = "https://arxiv.org/abs/2406.08177"
    timestep = 999
    weights = {
        "default": [
            WeightFile(
                "osediff.pkl",
                "https://github.com/cswry/OSEDiff/raw/main/preset/models/osediff.pkl",
                licence="Apache-2.0 (git blob sha1 bc84dc9729aa6173e8b1087977025a4fc566a5db)",
            )
        ],
        "tagger": [
            WeightFile("ram_swin_large_14m.pth", RAM_URL, licence="Apache-2.0 (RAM)"),
            WeightFile(
                "DAPE.pth",
                f"https://drive.google.com/file/d/{DAPE_GDRIVE}",
                gdrive=DAPE_GDRIVE,
                licence="Apache-2.0",
            ),
            WeightFile(
                "ram_tag_list.txt",
                RAM_DATA + "ram_tag_list.txt",
                "5d96d2f7225527480ad773aaac76b6e5c08a18adf6eae9ca7d2ab923d5e7bd8b",
                41_904,
                licence="Apache-2.0 (RAM)",
            ),
            WeightFile(
                "ram_tag_list_threshold.txt",
                RAM_DATA + "ram_tag_list_threshold.txt",
                "b6f81d0de1bc7f9c251af512c413eae976c77dbfbadf700d4e3d90510f4c6447",
                22_016,
                licence="Apache-2.0 (RAM)",
            ),
        ],
        "sd21-base": sd21_files(("unet", "vae", "text_encoder", "tokenizer")),
    }

    declared_options = (
        *OneStepSD.declared_options,
        Option(
            "tagger",
            "choice",
            "auto",
            choices=("auto", "dape", "none"),
            help="prompt tags: dape (RAM + DAPE, upstream), none (only the fixed prompt) or "
            "auto (dape when its weights are present, else none); the id shows tagger=dape",
        ),
        Option(
            "keep_size",
            "choice",
            "0",
            choices=("0", "1"),
            always_in_id=True,  # the output size depends on it
            help="0: upstream's resize to >= 512 px and multiples of 8 (outputs resized back "
            "to the ground truth for scoring); 1: restore at the input size",
        ),
        Option("prompt", "str", help="fixed prompt text after the tags (upstream: none)"),
    )

    def __init__(self, **given: object) -> None:
        super().__init__(**given)
        mode = self.opt("tagger")
        if mode == "auto":
            mode = "dape" if self._tagger_present() else "none"
        self.tagger_mode = mode
        self.keep_size = self.opt("keep_size")
        self.resize_for_scoring = self.keep_size == "0"  # upstream's output size != input's
        self.tagger = None  # a methods.nets.ram_tagger.RamTagger once loaded (tests inject one)
        self.last_prompt = ""

    def _tagger_present(self) -> bool:
        return all(locate(self.name, wf) for wf in self.weights["tagger"])

    def id_values(self) -> dict[str, object]:
        """``tagger`` as resolved: ``dape`` shown, ``none`` (the fixed prompt) not."""
        return {**super().id_values(), "tagger": "dape" if self.tagger_mode == "dape" else None}

    sd_parts = ("unet", "vae", "text_encoder", "tokenizer")

    def needed_variants(self, kinds=("rgb", "gray")) -> list[str]:
        return ["default", "sd21-base"] + (["tagger"] if self.tagger_mode == "dape" else [])

    #: upstream's process_size (its upscale factor 1 for artifact removal)
    process_size: int = 512

    def prepare_input(self, img):
        """keep_size=0: upstream's enlargement of small inputs and resize to multiples of 8."""
        if self.keep_size == "1":
            return img
        return upstream_resize(img, self.process_size)

    @property
    def prompt(self) -> str:
        return self.opt("prompt") or ""

    def build_network(self, variant: str | None = None):
        if variant == "tagger":
            from carbench.methods.nets.ram_tagger import RamTaggingNet

            return RamTaggingNet()
        return super().build_network(variant)

    def load(self, device: str = "cpu", dtype: str = "fp32", kinds=("rgb",)) -> None:
        from carbench.methods.sd import lora as sd_lora
        from carbench.methods.sd import model as sd_model

        super(OneStepSD, self).load(device, dtype)
        try:  # its own files, SD-2.1-base's and (tagger=dape) DAPE's, named in one message
            self.check_weights(kinds)
        except WeightsMissingError as e:
            dape = self.tagger_mode == "dape"
            hint = "\n(or run osediff:tagger=none for the fixed prompt)" if dape else ""
            raise WeightsMissingError(f"{e}{hint}") from None
        (pkl,) = self.weight_paths("default")
        tagger_files = self.weight_paths("tagger") if self.tagger_mode == "dape" else []
        ckpt = sd_lora.LoraCheckpoint.read(pkl)
        # eager attention: what upstream's pinned transformers (4.28) computes; the default
        # (sdpa) rounds differently in fp16 (65% of a stand-in's embedding values vs 0.7%)
        parts = ("unet", "vae", "text_encoder", "tokenizer")
        sd = sd_model.load_sd(parts, text_attention=TEXT_ATTENTION)
        sd_lora.add_lora(sd["unet"], sd["vae"], ckpt, str(pkl))
        dt = torch_dtype(dtype)
        self.text_encoder = sd["text_encoder"].eval().to(device, dt)
        self.tokenizer = sd["tokenizer"]
        self.set_components(sd["unet"].eval().to(device, dt), sd["vae"].eval().to(device, dt), None)
        if tagger_files:
            from carbench.methods.nets.ram_tagger import RamTagger

            ram, dape, tag_list, thresholds = tagger_files
            self.tagger = RamTagger.from_files(ram, dape, tag_list, thresholds, device, dt)
        self._weights_sha = sha256_of([pkl, *tagger_files])

    def text_prompt(self, x01) -> str:
        """The text for the text encoder: "<tags>, <prompt>," (DAPE) or "<prompt>,"."""
        if self.tagger_mode == "dape":
            if self.tagger is None:
                raise BenchError("osediff: the DAPE tagger is not loaded (call load first)")
            return f"{self.tagger(x01)[0]}, {self.prompt},"
        return f"{self.prompt}," if self.prompt else ""

    def condition(self, x01):
        import torch

        self.last_prompt = text = self.text_prompt(x01)
        ids = token_ids(self.tokenizer, text).to(x01.device)
        with torch.no_grad():
            return self.text_encoder(ids)[0]


def upstream_resize(img, process_size: int = 512):
    """test_osediff.py's input sizing with upscale 1: a side under ``process_size`` -> PIL
    resize (default filter: bicubic) by process_size / short side, each size truncated to an
    integer; then PIL Lanczos down to multiples of 8 (no-op when they already are)."""
    import numpy as np
    from PIL import Image

    pil = Image.fromarray(img)
    w, h = pil.size
    if w < process_size or h < process_size:
        scale = process_size / min(w, h)
        pil = pil.resize((int(scale * w), int(scale * h)), Image.BICUBIC)
    pil = pil.resize((pil.width - pil.width % 8, pil.height - pil.height % 8), Image.LANCZOS)
    return np.asarray(pil).copy()
