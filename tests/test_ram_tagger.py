"""The DAPE/RAM tagger (methods.nets.ram_tagger) and OSEDiff's tag prompt.

The upstream code is not needed here: the official key layout (tests/data/ram_swinl_keys.json)
and the upstream outputs on seeded stand-in files (tests/data/ram_tagger_reference.json) were
recorded from cswry/OSEDiff @fcc4f09 once; tests/ram_fakes.py rebuilds the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from carbench import methods
from carbench.core.errors import BenchError, WeightsMissingError
from carbench.methods.nets.ram_tagger import (
    RamConfig,
    RamTagger,
    RamTaggingNet,
    dape_state_dict,
    read_thresholds,
)
from ram_fakes import DAPE_OVERRIDES, TINY, TINY_TAGS, TINY_THRESHOLDS, fake_files, read_keys

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "ram_tagger_reference.json").read_text())


def _x01(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> 1x3xHxW in [0,1] (torchvision ToTensor)."""
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255


def _tagger(cfg: RamConfig, tags, thresholds, dtype=torch.float32, vision_multi=False) -> RamTagger:
    net = RamTaggingNet(cfg)
    ram, dape = fake_files(read_keys(cfg), vision_multi=vision_multi)
    net.load_state_dict(dape_state_dict(net, ram, dape), strict=True)
    net.merge_lora()
    th = torch.tensor(thresholds, dtype=torch.float32)
    return RamTagger(net.eval().to(dtype), list(tags), th)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> RamTagger:
    """Through files, as OSEDiff loads it: RAM checkpoint, DAPE, tag list, thresholds."""
    d = tmp_path_factory.mktemp("ram")
    ram, dape = fake_files(read_keys(TINY), vision_multi=True)
    torch.save(ram, d / "ram.pth")
    torch.save(dape, d / "dape.pth")
    (d / "tags.txt").write_text("\n".join(TINY_TAGS), encoding="utf-8")
    (d / "th.txt").write_text("\n".join(map(str, TINY_THRESHOLDS)) + "\n")
    return RamTagger.from_files(
        d / "ram.pth", d / "dape.pth", d / "tags.txt", d / "th.txt", cfg=TINY
    )


def test_layout_matches_official_ram_lora():
    """Keys, shapes, order and buffers of the official RAMLora (swin_l, 384) minus the unused
    tag_encoder / text_decoder, built on the meta device through the method registry."""
    man = json.loads((DATA / "ram_swinl_keys.json").read_text())
    with torch.device("meta"):
        net = methods.get("osediff:tagger=none").build_network("tagger")
    shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert list(shapes.items()) == list(man["shapes"].items())
    assert sorted(k for k, _ in net.named_buffers()) == sorted(man["buffers"])
    assert sum(p.numel() for p in net.parameters()) == man["param_count"]
    tied = [k for k in shapes if k.startswith("tagging_head.") and ".lora_" not in k]
    assert tied == man["tied_to_tag_encoder"]  # the tie rule the loader follows
    assert man["official_key_count"] == len(shapes) + sum(man["skipped_key_counts"].values())


def test_tiny_matches_upstream_outputs(tiny, coffee):
    """Seeded files (RAM under the old vision_multi name, DAPE over it with LoRA everywhere,
    tag_encoder LoRA merged into the tied weights): logits and tags as upstream computed them."""
    ref = REFERENCE["tiny"]["fp32"]
    logits = tiny.logits(_x01(coffee))
    # fp32, same operations (recorded elsewhere): measured 1.0e-6 here; 1.3e-6 re-recorded here
    assert torch.allclose(logits[0], torch.tensor(ref["logits"]), atol=4e-6, rtol=0)
    assert tiny.select(logits) == [ref["tags"]] == ["tag 00, tag 08, tag 12"]


def test_tiny_fp16_matches_upstream(coffee):
    """fp16 network, thresholds compared in fp32 (upstream's fp16 run on CPU)."""
    tagger = _tagger(TINY, TINY_TAGS, TINY_THRESHOLDS, dtype=torch.float16)
    ref = REFERENCE["tiny"]["fp16"]
    logits = tagger.logits(_x01(coffee))
    assert logits.dtype == torch.float16
    # fp16 on the CPU: measured 0.0039 = 2 fp16 steps at |logit| 2-4; bound 4 steps
    assert torch.allclose(logits[0].float(), torch.tensor(ref["logits"]), atol=8e-3, rtol=0)
    assert tagger.select(logits) == [ref["tags"]]


def test_tags_are_deterministic_and_well_formed(tiny, astronaut, coffee):
    x = torch.cat([_x01(astronaut[:300, :400]), _x01(coffee[:300, :400])])
    a, logits = tiny(x), tiny.logits(x)
    assert tiny.select(logits) == a and len(a) == 2
    for row, text in zip(torch.sigmoid(logits), a, strict=True):
        names = text.split(", ") if text else []
        want = [t for t, p, th in zip(TINY_TAGS, row, TINY_THRESHOLDS, strict=True) if p > th]
        assert names == want  # list order, no repeats, exactly those above threshold


def test_loader_follows_official_load_order():
    """Tied tensors: within a file tagging_head wins over tag_encoder, a later file wins over an
    earlier one; tag_encoder's LoRA is merged into the shared weight before the head's own."""
    net = RamTaggingNet(TINY)
    ram, dape = fake_files(read_keys(TINY))
    state = dape_state_dict(net, ram, dape)
    k = "tagging_head.encoder.layer.0.intermediate.dense.weight"
    assert torch.equal(state[k], ram["model"][k])  # not tag_encoder's copy
    k1 = "tagging_head.encoder.layer.1.intermediate.dense.weight"
    assert "tag_encoder." + k1[13:] in DAPE_OVERRIDES
    assert torch.equal(state[k1], dape["tag_encoder." + k1[13:]])
    q = "tagging_head.encoder.layer.0.crossattention.self.query"
    enc = "tag_encoder." + q[13:]
    want = ram["model"][q + ".weight"] + (dape[enc + ".lora_B"] @ dape[enc + ".lora_A"]) / 8
    assert torch.equal(state[q + ".weight"], want)
    assert torch.equal(state["image_proj.weight"], dape["image_proj.weight"])
    assert "visual_encoder.layers.0.blocks.1.attn_mask" in ram["model"]  # junk there, dropped
    own = net.state_dict()["visual_encoder.layers.0.blocks.1.attn_mask"]
    assert torch.equal(state["visual_encoder.layers.0.blocks.1.attn_mask"], own)


def test_lora_merge_equals_unmerged_forward(coffee):
    net = RamTaggingNet(TINY)
    ram, dape = fake_files(read_keys(TINY))
    net.load_state_dict(dape_state_dict(net, ram, dape), strict=True)
    x = torch.randn(1, 3, 384, 384, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = net(x)
        net.merge_lora()
        after = net(x)
    assert all(m.merged for m in net.lora_layers())
    assert torch.allclose(before, after, rtol=0, atol=1e-6)  # fp32 merge: measured 0.0


def test_loader_errors():
    net = RamTaggingNet(TINY)
    ram, dape = fake_files(read_keys(TINY))
    with pytest.raises(BenchError, match="not a DAPE state dict"):
        dape_state_dict(net, ram, {"unrelated": torch.zeros(1)})
    del ram["model"]["fc.weight"]
    with pytest.raises(BenchError, match="lack 1 tensor"):
        dape_state_dict(net, ram, dape)
    ram, dape = fake_files(read_keys(TINY))
    ram["model"]["fc.weight"] = torch.zeros(2, 2)
    with pytest.raises(BenchError, match=r"fc.weight has shape \(2, 2\)"):
        dape_state_dict(net, ram, dape)
    # without DAPE: plain RAM, LoRA updates zero
    ram, _ = fake_files(read_keys(TINY))
    state = dape_state_dict(net, ram, None)
    assert not state["fc.bias"].equal(dape["fc.bias"])
    assert all(not v.any() for k, v in state.items() if ".lora_" in k)


def test_threshold_rule(tmp_path):
    f = tmp_path / "th.txt"
    f.write_text("0.65\n0.9\n0.95\n1.0\n")
    assert read_thresholds(f, 4).tolist() == pytest.approx([0.65, 0.9, 0.95, 1.0])
    with pytest.raises(BenchError, match="3 tags"):
        read_thresholds(f, 3)


@pytest.mark.slow
@pytest.mark.data
def test_full_swin_l_matches_upstream(live1):
    """The full RAM Swin-L at 384 px with seeded weights on LIVE1 bikes.png: logits as upstream
    (recorded there in fp32; every 45th of the 4585 and their sum)."""
    ref = REFERENCE["full"]
    net = RamTaggingNet()
    ram, dape = fake_files(read_keys(RamConfig()))
    net.load_state_dict(dape_state_dict(net, ram, dape), strict=True)
    del ram, dape
    net.merge_lora()
    tagger = RamTagger(net.eval(), [f"t{i}" for i in range(4585)], torch.full((4585,), 0.68))
    img = np.asarray(Image.open(live1 / "bikes.png").convert("RGB"))
    logits = tagger.logits(_x01(img))[0]
    want = torch.tensor(ref["fp32"]["logits_every_stride"])
    # fp32, a 24-block Swin on another CPU's kernels: measured 2.0e-6 (2.3e-6 re-recorded here)
    assert torch.allclose(logits[:: ref["stride"]], want, atol=6e-6, rtol=0)
    # the sum of 4585 fp32 logits, each ~1e-6 off: measured 5.8e-4 (4.7e-4 re-recorded here)
    assert logits.double().sum().item() == pytest.approx(ref["fp32"]["logit_sum"], abs=1.7e-3)


# ----------------------------------------------------------------------------- OSEDiff wiring


def _tagger_files(root: Path) -> None:
    (root / "osediff").mkdir(parents=True, exist_ok=True)
    for wf in methods.get_class("osediff").weights["tagger"]:
        (root / "osediff" / wf.relpath).write_bytes(b"")


def test_osediff_prompt_is_tags_then_user_prompt(tiny, coffee):
    x = _x01(coffee[:64, :80])
    tags = tiny(x)[0]
    m = methods.get("osediff:tagger=dape,prompt=a photo")
    m.tagger = tiny
    assert m.text_prompt(x) == f"{tags}, a photo,"
    plain = methods.get("osediff:tagger=dape")
    plain.tagger = tiny
    assert plain.text_prompt(x) == f"{tags}, ,"  # upstream with the default empty prompt
    assert methods.get("osediff:tagger=none,prompt=a photo").text_prompt(x) == "a photo,"
    assert methods.get("osediff:tagger=none").text_prompt(x) == ""


def test_osediff_condition_uses_the_tag_prompt(tiny, coffee):
    """condition() encodes the tag prompt (stand-in tokenizer and text encoder)."""
    seen = []

    def tokenizer(text, **kw):
        seen.append(text)
        return type("T", (), {"input_ids": torch.zeros(1, 77, dtype=torch.long)})()

    m = methods.get("osediff:tagger=dape")
    m.tagger, m.tokenizer = tiny, tokenizer
    tokenizer.model_max_length = 77
    m.text_encoder = lambda ids: (torch.ones(1, 77, 4),)
    x = _x01(coffee[:64, :80])
    assert m.condition(x).shape == (1, 77, 4)
    assert seen == [m.last_prompt] == [f"{tiny(x)[0]}, ,"]


def test_osediff_tagger_default_and_id(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path))
    assert methods.get("osediff").tagger_mode == "none"
    # keep_size is always shown: a bare "osediff" in older stores ran at the input size
    assert methods.get("osediff").id == "osediff:keep_size=0"
    assert methods.get("osediff:tagger=none,prompt=x").id == "osediff:keep_size=0,prompt=x"
    assert methods.get("osediff:tagger=dape").id == "osediff:keep_size=0,tagger=dape"
    assert methods.get("osediff:keep_size=1").id == "osediff:keep_size=1"
    _tagger_files(tmp_path)
    m = methods.get("osediff:prompt=x")
    assert m.tagger_mode == "dape" and m.id == "osediff:keep_size=0,prompt=x,tagger=dape"
    assert methods.get("osediff:tagger=none").id == "osediff:keep_size=0"
    with pytest.raises(BenchError, match="`tagger` of osediff takes one of: auto, dape, none"):
        methods.get("osediff:tagger=ram")  # the option's declaration refuses it


def test_osediff_dape_without_files_names_them(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path))
    (tmp_path / "osediff").mkdir()
    (tmp_path / "osediff" / "osediff.pkl").write_bytes(b"")
    with pytest.raises(
        WeightsMissingError,
        match=r"(?s)ram_swin_large_14m.pth: get https://huggingface.co/spaces/xinyu1205/"
        r"recognize-anything/resolve/main/ram_swin_large_14m.pth.*"
        r"DAPE.pth: get Google Drive id 1KIV6VewwO2eDC9g4Gcvgm-a0LDI7Lmwm.*"
        r"ram_tag_list.txt: get https://raw.githubusercontent.com/cswry/OSEDiff/fcc4f09.*"
        r"osediff:tagger=none",
    ):
        methods.get("osediff:tagger=dape").load()
