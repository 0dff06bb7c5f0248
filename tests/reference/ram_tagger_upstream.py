"""Record OSEDiff's RAM/DAPE tagger outputs from the official code on the seeded stand-in files
of tests/ram_fakes.py (tests/data/ram_tagger_reference.json, tests/test_ram_tagger.py).

Usage: python tests/reference/ram_tagger_upstream.py /path/to/OSEDiff-checkout [out.json]
(BENCH_DATA_ROOT set; environment ``ram`` of tests/reference/rebuild.py: transformers 4.28.1,
loralib 0.1.2, fairscale 0.4.13, tokenizers 0.13.3, huggingface_hub 0.25.2; torch 2.14.1 CPU,
torchvision 0.29.1, timm 1.0.31 from carbench's venv; ~2 min, ~6 GB for the full model).

Upstream: cswry/OSEDiff @fcc4f09c7ed66a9bc0ba9433940d76b343142426, ``ram/models/ram_lora.py``:
``ram(pretrained=RAM, pretrained_condition=DAPE, image_size=384, vit="swin_l")`` (its
``load_checkpoint_swinlarge``: ``vision_multi`` renamed, buffers dropped, non-strict load; then
the DAPE state dict, non-strict), ``eval()`` (loralib merges the LoRA updates), and on the input
of ``test_osediff.py`` (ToTensor, ``Resize((384, 384))`` - on a tensor without antialiasing, as
torchvision 0.15 (OSEDiff's pin, torch 2.0.1) resizes tensors - ImageNet Normalize):
``condition_forward(x, only_feature=False)`` (logits) and ``inference_ram`` (the tag string).

* ``tiny``: ``skimage.data.coffee()``; the config files of tests/ram_fakes.py ``TINY``
  (Swin embed 8, depths 2/2/2/2, heads 1/2/4/8, window 12; tagging head and tag encoder width 32,
  4 heads, MLP 64, 2 layers; 24 tags ``tag 00`` ... with ``TINY_THRESHOLDS``) written into a
  copy of upstream's ``ram`` folder layout (``CONFIG_PATH`` pointed there); the RAM file names
  the head ``vision_multi``; fp32, then the model and input in fp16 (thresholds stay fp32).
* ``full``: LIVE1/bikes.png, the released sizes and tag list (4585 tags and their thresholds);
  fp32: every 45th logit, their sum, the number of tags over threshold.

Stand-in files: ``ram_fakes.fake_files`` over every key of upstream's module (the state dict
of the model built here), so carbench, which builds them over the keys it reads, gets the same
values. Not upstream's: ``init_tokenizer`` loads ``bert-base-uncased`` from a path on the
authors' machine; it is replaced by a stand-in of BERT's length plus the two added tokens (see
ram_keys_upstream.py): the tokenizer is not used on the tagging path.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from ram_fakes import TINY, TINY_TAGS, TINY_THRESHOLDS, fake_files  # noqa: E402
from tests.reference.ram_keys_upstream import _Tokenizer  # noqa: E402

ABOUT = (
    "Outputs of the upstream tagger (cswry/OSEDiff@fcc4f09 ram/models/ram_lora.py: ram(pretrained,"
    " pretrained_condition), eval(), condition_forward / inference_ram) on the seeded stand-in "
    "files of tests/ram_fakes.py, on CPU (torch 2.14.1, transformers 4.28.1, loralib 0.1.2). "
    "Input: ToTensor, Resize((384, 384), antialias=False), ImageNet Normalize. carbench matched "
    "them bit for bit."
)
STRIDE = 45


def _tiny_config_path(upstream: Path, folder: Path) -> Path:
    """A ``ram`` folder layout with TINY's config files, tag list and thresholds."""
    shutil.copytree(upstream / "ram" / "configs", folder / "configs")
    (folder / "data").mkdir()
    swin = dict(
        vision_width=TINY.vision_width,
        image_res=TINY.image_size,
        window_size=TINY.window_size,
        embed_dim=TINY.embed_dim,
        depths=list(TINY.depths),
        num_heads=list(TINY.num_heads),
    )
    (folder / "configs/swin/config_swinL_384.json").write_text(json.dumps(swin))
    for name in ("q2l_config.json", "med_config.json"):
        cfg = json.loads((upstream / "ram/configs" / name).read_text())
        cfg.update(
            hidden_size=TINY.hidden_size,
            num_attention_heads=TINY.head_heads,
            intermediate_size=TINY.intermediate_size,
            num_hidden_layers=TINY.head_layers,
        )
        (folder / "configs" / name).write_text(json.dumps(cfg))
    (folder / "data/ram_tag_list.txt").write_text("\n".join(TINY_TAGS))
    (folder / "data/ram_tag_list_chinese.txt").write_text("\n".join(TINY_TAGS))
    (folder / "data/ram_tag_list_threshold.txt").write_text(
        "\n".join(map(str, TINY_THRESHOLDS)) + "\n"
    )
    return folder


def _build(upstream: Path, config_path: Path, tmp: Path, vision_multi: bool):
    """Upstream's ``ram(...)`` on stand-in files written over its own module's keys."""
    from ram.models import ram_lora, utils

    for mod in (ram_lora, utils):
        mod.CONFIG_PATH = config_path
    utils.init_tokenizer = ram_lora.init_tokenizer = _Tokenizer
    kw = dict(
        image_size=384,
        vit="swin_l",
        condition_config=f"{config_path}/configs/condition_config.json",
        med_config=f"{config_path}/configs/med_config.json",
        tag_list=f"{config_path}/data/ram_tag_list.txt",
        tag_list_chinese=f"{config_path}/data/ram_tag_list_chinese.txt",
    )
    keys = {k: list(v.shape) for k, v in ram_lora.RAMLora(**kw).state_dict().items()}
    ram, dape = fake_files(keys, vision_multi=vision_multi)
    torch.save(ram, tmp / "ram.pth")
    torch.save(dape, tmp / "dape.pth")
    del ram, dape
    return ram_lora.ram(
        pretrained=str(tmp / "ram.pth"), pretrained_condition=str(tmp / "dape.pth"), **kw
    ).eval()


def _input(img: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    from torchvision import transforms

    x = transforms.ToTensor()(img).unsqueeze(0)
    x = transforms.Resize((384, 384), antialias=False)(x)
    x = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])(x)
    return x.to(dtype)


def _run(model, x) -> tuple[torch.Tensor, str]:
    from ram import inference_ram

    with torch.no_grad():
        _, logits, _ = model.condition_forward(x, only_feature=False)
        tags = inference_ram(x, model)[0]
    return logits[0].float(), tags


def main(upstream: Path, out: Path) -> None:
    import skimage.data
    from PIL import Image

    torch.set_num_threads(1)
    sys.path.insert(0, str(upstream))
    doc: dict = {"about": ABOUT}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = _tiny_config_path(upstream, tmp / "tiny_ram")
        model = _build(upstream, cfg, tmp, vision_multi=True)
        coffee = skimage.data.coffee()
        logits, tags = _run(model, _input(coffee))
        doc["tiny"] = {
            "image": "skimage.data.coffee()",
            "config": "tests/ram_fakes.py TINY (RAM file uses the vision_multi name)",
            "fp32": {"logits": logits.tolist(), "tags": tags},
        }
        logits, tags = _run(model.half(), _input(coffee, torch.float16))
        doc["tiny"]["fp16"] = {"logits": logits.tolist(), "tags": tags}
        del model
        model = _build(upstream, upstream / "ram", tmp, vision_multi=False)
        bikes = Path(os.environ["BENCH_DATA_ROOT"]) / "LIVE1/bikes.png"
        logits, tags = _run(model, _input(np.asarray(Image.open(bikes).convert("RGB"))))
        doc["full"] = {
            "image": "LIVE1/bikes.png",
            "config": "RAM Swin-L 384 (RamConfig())",
            "stride": STRIDE,
            "fp32": {
                "logits_every_stride": logits[::STRIDE].tolist(),
                "logit_sum": float(logits.double().sum()),
                "tag_count": len(tags.split(", ")) if tags else 0,
            },
        }
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(out, doc["tiny"]["fp32"]["tags"], doc["full"]["fp32"]["tag_count"])


if __name__ == "__main__":
    main(
        Path(sys.argv[1]),
        Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "tests/data/ram_tagger_reference.json",
    )
