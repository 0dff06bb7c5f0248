"""Record the key layout of OSEDiff's RAM/DAPE tagger (tests/data/ram_swinl_keys.json) from the
official class (tests/test_ram_tagger.py compares carbench's network with it).

Usage: python tests/reference/ram_keys_upstream.py /path/to/OSEDiff-checkout [out.json]
(environment ``ram`` of tests/reference/rebuild.py: transformers 4.28.1, loralib 0.1.2 (OSEDiff's
requirements), tokenizers 0.13.3, huggingface_hub 0.25.2; torch 2.14.1 CPU and timm 1.0.31 from
carbench's venv).

Upstream: cswry/OSEDiff @fcc4f09c7ed66a9bc0ba9433940d76b343142426, ``ram/models/ram_lora.py``
``RAMLora(image_size=384, vit="swin_l")`` (what ``ram(...)`` in OSEDiff's DAPE builds), on CPU.
Written: ``shapes`` (``state_dict()`` names and shapes in the module's order, without the
``tag_encoder.`` / ``text_decoder.`` entries, which the tagger does not run: those are only
counted in ``skipped_key_counts``), ``buffers`` (named buffers of the kept parts),
``tied_to_tag_encoder`` (tagging-head tensors that are the same tensor as a tag_encoder one:
``tie_encoder_decoder_weights``), ``param_count`` (parameters of the kept state-dict entries,
tied ones included, as a network holding its own copies has them; buffers sorted by name),
``official_key_count``.

Not upstream's: ``init_tokenizer`` loads ``bert-base-uncased`` from a local path of the
authors' machine (not available offline); it is replaced by a stand-in with BERT's length plus
the two added tokens (30524). The tokenizer only sizes the tagging head's word embeddings,
which the class deletes, and the prompt length; no kept shape depends on it.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "fcc4f09c7ed66a9bc0ba9433940d76b343142426"
SKIPPED = ("tag_encoder", "text_decoder")
HOW = (
    "official class built on CPU (transformers 4.28.1, loralib 0.1.2); state_dict() of the parts "
    "the tagger uses, in official order; tag_encoder / text_decoder keys only counted"
)


class _Tokenizer:
    """Stands in for the BERT tokenizer: its length and a token list per text."""

    enc_token_id = 30523

    def __len__(self) -> int:
        return 30524  # bert-base-uncased's 30522 + [DEC] + [ENC]

    def __call__(self, text: str):
        return types.SimpleNamespace(input_ids=[101, *range(len(text.split())), 102])


def build(upstream: Path):
    """The official RAMLora(swin_l, 384) on CPU."""
    sys.path.insert(0, str(upstream))
    from ram.models import ram_lora, utils

    utils.init_tokenizer = ram_lora.init_tokenizer = _Tokenizer
    return ram_lora.RAMLora(image_size=384, vit="swin_l")


def layout(model) -> dict:
    import torch

    sd = model.state_dict(keep_vars=True)
    kept = {k: v for k, v in sd.items() if not k.startswith(SKIPPED)}
    enc = {v.data_ptr() for k, v in sd.items() if k.startswith("tag_encoder.")}
    buffers = sorted(k for k, _ in model.named_buffers() if not k.startswith(SKIPPED))
    params = [v for v in kept.values() if isinstance(v, torch.nn.Parameter)]  # tied ones too
    return {
        "source": f"cswry/OSEDiff:ram/models/ram_lora.py@{COMMIT}",
        "class": "RAMLora",
        "constructor_args": {"image_size": 384, "vit": "swin_l"},
        "how": HOW,
        "skipped_key_counts": {p: sum(k.startswith(p + ".") for k in sd) for p in SKIPPED},
        "official_key_count": len(sd),
        "param_count": sum(p.numel() for p in params),
        "buffers": buffers,
        "tied_to_tag_encoder": [
            k for k, v in kept.items() if k.startswith("tagging_head.") and v.data_ptr() in enc
        ],
        "shapes": {k: list(v.shape) for k, v in kept.items()},
    }


def main(upstream: Path, out: Path) -> None:
    doc = layout(build(upstream))
    out.write_text(json.dumps(doc) + "\n")
    print(out, doc["official_key_count"], doc["param_count"], len(doc["shapes"]))


if __name__ == "__main__":
    main(
        Path(sys.argv[1]),
        Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "tests/data/ram_swinl_keys.json",
    )
