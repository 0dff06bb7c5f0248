"""Dataset registry, resolve, verify, and fetch against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from carbench.bench.datasets import fetch, get_info, pixel_sha256, registry, resolve, verify
from carbench.core.download import DownloadError, download
from carbench.core.errors import BenchError
from conftest import run_cli

SAMPLE = ["astronaut", "chelsea", "coffee", "rocket"]


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves files from ``root``; honours Range; can cut the first response short."""

    root: Path
    cut_first: set[str] = set()
    requests: list[tuple[str, str | None]] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        path = self.root / self.path.lstrip("/")
        type(self).requests.append((self.path, self.headers.get("Range")))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if self.path in type(self).cut_first:
            type(self).cut_first.discard(self.path)
            self.wfile.write(data[start : start + (len(data) - start) // 2])
            self.wfile.flush()
            self.connection.close()
            return
        self.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = type("H", (_Handler,), {"root": root, "cut_first": set(), "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()


def _sample_pngs(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in SAMPLE:
        p = folder / f"{name}.png"
        Image.fromarray(getattr(skimage.data, name)()).save(p)
        out.append(p)
    return out


def _registry(tmp_path: Path, monkeypatch, entry: str) -> None:
    y = tmp_path / "datasets.yaml"
    y.write_text("datasets:\n  sample:\n" + entry + "suites: {}\n")
    monkeypatch.setenv("BENCH_DATASETS_YAML", str(y))


def _zip(pngs: list[Path], dest: Path, inner: str = "pack/images") -> bytes:
    with zipfile.ZipFile(dest, "w") as z:
        for p in pngs:
            z.write(p, f"{inner}/{p.name}")
    return dest.read_bytes()


def test_registry_entries():
    reg = registry()
    for name in [
        "LIVE1",
        "LIVE1_gray",
        "Classic5",
        "BSDS500",
        "Urban100",
        "DIV2K-val",
        "Kodak24",
        "ICB",
        "sample",
    ]:
        assert name in reg
    assert reg["LIVE1"].count == 29 and len(reg["LIVE1"].checksums) == 29
    assert reg["DIV2K-val"].names[0] == "0801" and len(reg["DIV2K-val"].names) == 100
    assert reg["Classic5"].color == "gray"
    assert get_info("live1").name == "LIVE1"


def test_embedded_sample_resolves_without_download(ws):
    ds = resolve(None, ws)
    assert ds.name == "sample" and ds.ids() == SAMPLE
    assert verify(ds) == []
    assert np.array_equal(np.asarray(Image.open(ds.images[2])), skimage.data.coffee())


def test_shared_sets_verify(data_root, ws):
    for name in ["LIVE1", "LIVE1_gray", "Classic5", "Kodak24"]:
        ds = resolve(name, ws, data_root)
        assert verify(ds) == [], name


def test_verify_names_altered_and_missing_files(tmp_path, ws, data_root, capsys):
    root = tmp_path / "root"
    shutil.copytree(data_root / "Classic5", root / "Classic5")
    img = np.asarray(Image.open(root / "Classic5" / "lena.png")).copy()
    img[10, 10] ^= 1
    Image.fromarray(img).save(root / "Classic5" / "lena.png")
    (root / "Classic5" / "boats.png").rename(root / "Classic5" / "boats.bak")
    ds = type(resolve("sample", ws))("Classic5", root / "Classic5", [], get_info("Classic5"))
    problems = verify(ds)
    assert "boats: missing" in problems
    assert any("lena.png: pixels differ from the registered Classic5 image" in p for p in problems)
    assert run_cli("datasets", "verify", "Classic5", "--data-root", root) == 1
    assert "missing 1 image(s): boats" in capsys.readouterr().err


def test_folder_of_images_is_an_adhoc_set(tmp_path, ws):
    _sample_pngs(tmp_path / "my_photos")
    ds = resolve(str(tmp_path / "my_photos"), ws)
    assert ds.name == "my_photos" and ds.info is None and ds.ids() == SAMPLE


def test_fetch_archive_over_http(tmp_path, ws, server, monkeypatch):
    root, url, handler = server
    data = _zip(_sample_pngs(tmp_path / "src"), root / "sample.zip")
    digest = hashlib.sha256(data).hexdigest()
    _registry(
        tmp_path,
        monkeypatch,
        f"    source: {{kind: archive, url: {url}/sample.zip, "
        f"sha256: {digest}, subdir: pack/images}}\n",
    )
    ds = fetch("sample", ws)
    assert ds.folder == ws / "sources" / "sample" and ds.ids() == SAMPLE
    assert verify(ds) == []
    # a second fetch reuses the verified archive: no request at all
    n = len(handler.requests)
    fetch("sample", ws)
    assert len(handler.requests) == n


def test_fetch_wrong_checksum_and_corrupt_archive(tmp_path, ws, server, monkeypatch):
    root, url, _ = server
    data = _zip(_sample_pngs(tmp_path / "src"), root / "sample.zip")
    _registry(
        tmp_path,
        monkeypatch,
        f"    source: {{kind: archive, url: {url}/sample.zip, "
        f"sha256: '{'0' * 64}', subdir: pack/images}}\n",
    )
    with pytest.raises(DownloadError, match=r"sha256 mismatch for sample.zip: expected 0000"):
        fetch("sample", ws)
    assert not (ws / "downloads" / "sample.zip").exists()
    assert not (ws / "sources" / "sample").exists()
    (root / "sample.zip").write_bytes(data[:100] + b"\x00" * 500 + data[600:])
    _registry(
        tmp_path,
        monkeypatch,
        f"    source: {{kind: archive, url: {url}/sample.zip, subdir: pack/images}}\n",
    )
    with pytest.raises(BenchError, match=r"sample.zip: corrupt archive"):
        fetch("sample", ws)
    assert not (ws / "sources" / "sample").exists()


def test_fetch_files_with_altered_image_fails_verification(tmp_path, ws, server, monkeypatch):
    root, url, _ = server
    pngs = _sample_pngs(root)
    img = np.asarray(Image.open(pngs[0])).copy()
    img[0, 0, 0] ^= 255
    Image.fromarray(img).save(pngs[0])
    _registry(tmp_path, monkeypatch, f"    source: {{kind: files, base_url: '{url}', ext: .png}}\n")
    with pytest.raises(BenchError, match=r"failed verification: .*astronaut.png: pixels differ"):
        fetch("sample", ws)
    assert not (ws / "sources" / "sample").exists()


def test_interrupted_download_resumes_with_range(tmp_path, server):
    root, url, handler = server
    payload = np.random.default_rng(1).bytes(3_000_000)
    (root / "big.bin").write_bytes(payload)
    handler.cut_first.add("/big.bin")
    dest = tmp_path / "dl" / "big.bin"
    digest = hashlib.sha256(payload).hexdigest()
    with pytest.raises(DownloadError, match=r"interrupted .* run the command again to resume"):
        download(f"{url}/big.bin", dest, digest, progress=False)
    assert not dest.exists() and dest.with_name("big.bin.part").stat().st_size == 1_500_000
    download(f"{url}/big.bin", dest, digest, progress=False)
    assert dest.read_bytes() == payload
    assert handler.requests[-1] == ("/big.bin", "bytes=1500000-")


def test_unreachable_server_message(tmp_path):
    with pytest.raises(DownloadError, match=r"cannot connect .* put it at .*x.zip"):
        download("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", progress=False)


def test_pixel_hash_is_format_independent(tmp_path, coffee):
    Image.fromarray(coffee).save(tmp_path / "a.png")
    Image.fromarray(coffee).save(tmp_path / "a.bmp")
    a = pixel_sha256(np.asarray(Image.open(tmp_path / "a.png")))
    assert a == pixel_sha256(np.asarray(Image.open(tmp_path / "a.bmp"))) == pixel_sha256(coffee)
    assert a != pixel_sha256(coffee.reshape(600, 400, 3))
