"""Record OSEDiff's one-step pipeline from the official code, on small stand-in networks.

Usage: python tests/reference/osediff_upstream.py /path/to/OSEDiff-checkout [out.npz]
(BENCH_DATA_ROOT points at the test sets; upstream's pins, see tests/data/upstream/README.md).
From the checkout (cswry/OSEDiff @fcc4f09) it uses ``osediff.py`` (``initialize_unet`` /
``initialize_vae`` for the LoRA checkpoint at rank 4, ``OSEDiff_gen.save_model`` to write it,
``OSEDiff_test`` to run it, with its own UNet/VAE classes, ``AutoTokenizer`` and
``CLIPTextModel`` loaded from a diffusers-layout folder written here) and
``my_utils/wavelet_color_fix.py``, and repeats the per-image steps of ``test_osediff.py`` from
its resizing on (``--process_size 64 --upscale 1``: the 64 x 64 crop is not enlarged) with the
prompt it builds, ``f"{tags}, {args.prompt},"``, from fixed stand-in tags (the RAM/DAPE tagger
has its own reference, tests/data/ram_tagger_reference.json). The tokenizer is the official
CLIP BPE (the vocabulary open_clip ships, written as SD-2.1-base's tokenizer folder); the text
encoder a 2-layer CLIP text model of SD-2.1's width. UNet, VAE, device handling and seeding as
in ``codiff_upstream.py``.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.reference.codiff_upstream import (  # noqa: E402
    LATENT_SEED,
    cpu_only,
    lq_image,
    write_sd_folder,
)
from tests.reference.standin import fill_standin, layout_digest  # noqa: E402

RANK = 4  # OSEDiff's training rank: LoRA scale 8 / 4
SEEDS = dict(unet=51, vae=52, lora_unet=53, lora_vae=54, text=55)
GAINS = dict(unet=0.5, vae=1.0, lora_unet=0.5, lora_vae=0.5, text=1.0)
ROWS, COLS = (100, 164), (200, 264)  # 64 x 64
TAGS, USER_PROMPT = "bicycle, road, street", ""  # the stand-in tagger's output
#: SD-2.1-base text_encoder/config.json with 2 layers and a narrow MLP (width 1024 and 16 heads
#: kept: the UNet's cross-attention dim)
TEXT_CONFIG = dict(
    vocab_size=49408,
    hidden_size=1024,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=16,
    max_position_embeddings=77,
    hidden_act="gelu",
    layer_norm_eps=1e-5,
    projection_dim=512,
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=1,
)
#: SD-2.1-base tokenizer/tokenizer_config.json and special_tokens_map.json (published values)
TOKENIZER_CONFIG = dict(
    add_prefix_space=False,
    bos_token="<|startoftext|>",
    do_lower_case=True,
    eos_token="<|endoftext|>",
    errors="replace",
    model_max_length=77,
    pad_token="!",
    tokenizer_class="CLIPTokenizer",
    unk_token="<|endoftext|>",
)
SPECIAL_TOKENS = {
    k: TOKENIZER_CONFIG[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token")
}


def upstream_prompt() -> str:
    """test_osediff.py's get_validation_prompt with the stand-in tags."""
    return f"{TAGS}, {USER_PROMPT},"


def write_tokenizer(folder: Path) -> None:
    """CLIP's BPE vocabulary (49408 entries) in Hugging Face's vocab.json / merges.txt form,
    built from open_clip's ``bpe_simple_vocab_16e6.txt.gz`` as CLIP's own tokenizer builds it
    (bytes, bytes + ``</w>``, the first 48894 merges, the two special tokens)."""
    import open_clip
    from open_clip.tokenizer import bytes_to_unicode

    bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({v: i for i, v in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG))
    (folder / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS))


def build_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    text = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)).eval()
    fill_standin(text, SEEDS["text"], GAINS["text"])
    return text


def main(upstream: str, out: str) -> None:
    up = Path(upstream)
    sys.path.insert(0, str(up))
    cpu_only()
    torch.set_num_threads(1)
    import diffusers
    import peft
    import transformers
    from models.autoencoder_kl import AutoencoderKL
    from models.unet_2d_condition import UNet2DConditionModel
    from my_utils import devices  # vaehook's device helper: assumes CUDA
    from my_utils.wavelet_color_fix import adain_color_fix
    from osediff import OSEDiff_gen, OSEDiff_test, initialize_unet, initialize_vae
    from PIL import Image
    from torchvision import transforms

    devices.device = torch.device("cpu")
    print(
        f"diffusers {diffusers.__version__} peft {peft.__version__} transformers "
        f"{transformers.__version__} torch {torch.__version__}"
    )
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sd"
        write_sd_folder(folder, UNet2DConditionModel, AutoencoderKL, SEEDS, GAINS)
        write_tokenizer(folder / "tokenizer")
        text_encoder = build_text_encoder()
        text_encoder.save_pretrained(folder / "text_encoder")
        arrays["text_layout"] = np.array(layout_digest(text_encoder))
        init = SimpleNamespace(pretrained_model_name_or_path=str(folder), lora_rank=RANK)
        vae, vae_modules = initialize_vae(init)
        unet, enc, dec, oth = initialize_unet(init)
        fill_standin(unet, SEEDS["lora_unet"], GAINS["lora_unet"])
        fill_standin(vae, SEEDS["lora_vae"], GAINS["lora_vae"])
        holder = SimpleNamespace(
            lora_vae_modules_encoder=vae_modules,
            lora_unet_modules_encoder=enc,
            lora_unet_modules_decoder=dec,
            lora_unet_others=oth,
            lora_rank_unet=RANK,
            lora_rank_vae=RANK,
            unet=unet,
            vae=vae,
        )
        pkl = Path(tmp) / "osediff.pkl"
        OSEDiff_gen.save_model(holder, pkl)
        arrays["unet_layout"] = np.array(layout_digest(unet))
        arrays["vae_layout"] = np.array(layout_digest(vae))
        args = SimpleNamespace(
            pretrained_model_name_or_path=str(folder),
            osediff_path=str(pkl),
            mixed_precision="fp16",
            merge_and_unload_lora=False,
            vae_decoder_tiled_size=224,
            vae_encoder_tiled_size=1024,
            latent_tiled_size=96,
            latent_tiled_overlap=32,
        )
        model = OSEDiff_test(args)
        rec: dict = {}

        def keep(key, value) -> None:  # hooks return None: outputs stay as they are
            rec[key] = value

        model.text_encoder.register_forward_pre_hook(lambda m, a: keep("ids", a[0]))
        model.text_encoder.register_forward_hook(lambda m, a, o: keep("text", o[0]))
        model.unet.register_forward_hook(lambda m, a, o: keep("eps", o.sample))
        step = model.noise_scheduler.step

        def spy(*a, **k):
            res = step(*a, **k)
            rec["z"], rec["x0"] = a[2], res.prev_sample
            return res

        model.noise_scheduler.step = spy
        lq_u8 = lq_image(ROWS, COLS)
        input_image = Image.fromarray(lq_u8)  # test_osediff.py from its resize on
        w, h = input_image.size
        input_image = input_image.resize((w - w % 8, h - h % 8), Image.LANCZOS)  # no-op here
        prompt = upstream_prompt()
        lq = transforms.ToTensor()(input_image).unsqueeze(0)
        with torch.no_grad():
            torch.manual_seed(LATENT_SEED)
            output_image = model(lq * 2 - 1, prompt=prompt)
        pil = transforms.ToPILImage()(output_image[0].cpu() * 0.5 + 0.5)
        final = np.array(adain_color_fix(target=pil, source=input_image))
    arrays.update(
        lq=lq_u8,
        prompt=np.array(prompt),
        ids=rec["ids"][0].numpy(),
        text=rec["text"][0].numpy(),  # float16 as computed (exact)
        latent=rec["z"][0].float().numpy(),
        eps=rec["eps"][0].float().numpy(),
        x0=rec["x0"][0].float().numpy(),
        decoded=output_image[0].float().numpy(),
        final=final,
    )
    np.savez_compressed(out, **arrays)
    print("wrote", out, {k: v.shape for k, v in arrays.items()})


if __name__ == "__main__":
    default = str(ROOT / "tests/data/upstream/osediff.npz")
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else default)
