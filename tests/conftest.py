"""Shared fixtures. Real test sets come from BENCH_DATA_ROOT (``.ci/run`` sets it)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import skimage.data

# One weight cache for the whole session, set before anything imports pyiqa (which fixes its
# cache folder at import time). It only ever holds stand-in weights built by the tests.
os.environ["BENCH_CACHE"] = tempfile.mkdtemp(prefix="carbench-test-cache-")
os.environ["TORCH_HOME"] = os.path.join(os.environ["BENCH_CACHE"], "torch")
os.environ["HF_HOME"] = os.path.join(os.environ["BENCH_CACHE"], "huggingface")
os.environ.pop("BENCH_WEIGHTS_MIRROR", None)


def _env_folder(var: str, must_hold: tuple[str, ...]) -> Path | None:
    """The folder named by ``var``; None when unset; set but wrong is a usage error, not a skip."""
    env = os.environ.get(var)
    if not env:
        return None
    folder = Path(env)
    missing = [name for name in must_hold if not (folder / name).exists()]
    if not folder.is_dir() or missing:
        what = "is not a folder" if not folder.is_dir() else f"lacks {', '.join(missing)}"
        raise pytest.UsageError(f"{var}={env} {what}: point it at the shared folder or unset it")
    return folder


def _data_root() -> Path | None:
    return _env_folder("BENCH_DATA_ROOT", ("LIVE1", "Classic5"))


def _shared_root() -> Path | None:
    """../shared (manifests, weights, notes), named by BENCH_SHARED; independent of the data."""
    return _env_folder("BENCH_SHARED", ("manifests", "weights"))


def pytest_configure(config):
    _data_root()  # fail the whole run at once on a wrong setting
    _shared_root()
    config.addinivalue_line(
        "markers", "published: reproduces a published number (tests named *published* get it)"
    )


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch, tmp_path):
    """Tests never touch the user's workspace or caches."""
    monkeypatch.setenv("BENCH_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.delenv("BENCH_DATASETS_YAML", raising=False)
    monkeypatch.delenv("BENCH_DATASETS_MIRROR", raising=False)
    monkeypatch.delenv("BENCH_WEIGHTS_MIRROR", raising=False)
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "weights"))


@pytest.fixture
def data_root() -> Path:
    root = _data_root()
    if root is None:
        pytest.skip("BENCH_DATA_ROOT not set (real test sets unavailable)")
    return root


@pytest.fixture
def shared_root() -> Path:
    root = _shared_root()
    if root is None:
        pytest.skip("BENCH_SHARED not set (official manifests and DnCNN-3 weights unavailable)")
    return root


@pytest.fixture
def manifests(shared_root) -> Path:
    """``$BENCH_SHARED/manifests``: official checkpoint key names and shapes."""
    return shared_root / "manifests"


@pytest.fixture
def dncnn3_weights(shared_root) -> Path:
    """The original DnCNN-3 release (``$BENCH_SHARED/weights/dncnn3``)."""
    folder = shared_root / "weights" / "dncnn3"
    if not (folder / "DnCNN3.mat").is_file():
        pytest.fail(f"{folder}/DnCNN3.mat not found although BENCH_SHARED is set")
    return folder


@pytest.fixture
def live1(data_root) -> Path:
    return data_root / "LIVE1"


@pytest.fixture
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture
def coffee() -> np.ndarray:
    return skimage.data.coffee()


@pytest.fixture
def camera() -> np.ndarray:
    return skimage.data.camera()


@pytest.fixture
def ws(tmp_path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def ffmpeg():
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg not on PATH: install Debian's ffmpeg (the project's setup does)")
    return shutil.which("ffmpeg")


# The codec tests' reference command-line tools and the Debian package shipping each one
# (scripts/setup.sh installs them all): a missing tool fails the test that needs it.
CODEC_TOOLS = {
    "cwebp": "webp",
    "dwebp": "webp",
    "avifenc": "libavif-bin",
    "avifdec": "libavif-bin",
    "cjxl": "libjxl-tools",
    "djxl": "libjxl-tools",
    "opj_compress": "libopenjp2-tools",
    "opj_decompress": "libopenjp2-tools",
    "heif-enc": "libheif-examples",
    "heif-convert": "libheif-examples",
}


def _codec_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not on PATH: install the Debian package {CODEC_TOOLS[name]} "
            "(scripts/setup.sh installs every codec tool)"
        )
    return path


@pytest.fixture
def codec_tool():
    """``codec_tool("cwebp")``: the tool's path, or a failure naming its Debian package."""
    return _codec_tool


@pytest.fixture(scope="session")
def codec_rgb() -> np.ndarray:
    """The codec tests' 128x160 colour image (a crop of skimage's astronaut)."""
    return np.ascontiguousarray(skimage.data.astronaut()[128:256, 192:352])


@pytest.fixture(scope="session")
def codec_gray() -> np.ndarray:
    """The codec tests' 64x96 gray image (a crop of skimage's camera)."""
    return np.ascontiguousarray(skimage.data.camera()[:64, :96])


def run_cli(*args: str) -> int:
    from carbench.cli import main

    return main([str(a) for a in args])


@pytest.fixture(scope="session")
def standin_weights() -> Path:
    """LPIPS and DISTS runnable offline: the real head files from the lpips and dists-pytorch
    wheels, plus AlexNet/VGG16 trunks from a seeded random init saved under torchvision's
    file names. Values computed with these are meaningless and never reported."""
    import torch
    import torchvision

    from carbench.bench.metrics import weight_files as W
    from carbench.core.weights import cache_root, fetch_file

    root = cache_root()
    for metric in ("lpips", "dists"):
        head = [wf for wf in W.metric_weights()[metric] if wf.wheel][0]
        fetch_file(head, root)  # copied from the installed wheel, sha256 prefix checked
    torch.manual_seed(0)
    trunks = {
        "alexnet-owt-7be5be79.pth": torchvision.models.alexnet(),
        "vgg16-397923af.pth": torchvision.models.vgg16(),
    }
    for name, model in trunks.items():
        path = root / "torch" / "hub" / "checkpoints" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.half() for k, v in model.state_dict().items()}, path)
    return root


@pytest.fixture
def static_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path/www``: yields (folder, base URL)."""
    import functools
    import http.server
    import threading

    www = tmp_path / "www"
    www.mkdir(exist_ok=True)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(www))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


_FIXTURE_MARKERS = {"data_root": "data", "shared_root": "shared", "ffmpeg": "ffmpeg"}


def pytest_collection_modifyitems(config, items):
    """Markers follow the fixtures a test really uses, so ``-m data`` selects exactly those."""
    for item in items:
        for fixture, marker in _FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
        if "published" in item.name:
            item.add_marker("published")


#: published-number checks that skipped in this run (weights or data absent): (test, reason)
_PUBLISHED_SKIPS: list[tuple[str, str]] = []


def pytest_runtest_logreport(report):
    if report.skipped and "published" in report.keywords:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _PUBLISHED_SKIPS.append((report.nodeid, reason.removeprefix("Skipped: ")))


def pytest_terminal_summary(terminalreporter):
    """Name every published-number check that did not run, and why; also into the file named
    by BENCH_SKIPPED_PUBLISHED (``.ci/run`` prints it at the end)."""
    lines = [f"{nodeid}: {reason}" for nodeid, reason in _PUBLISHED_SKIPS]
    if lines:
        terminalreporter.section(f"published-number checks NOT run ({len(lines)})", yellow=True)
        for line in lines:
            terminalreporter.line(line)
    out = os.environ.get("BENCH_SKIPPED_PUBLISHED")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)


#: upstream reference outputs (tests/reference/*.py made them; README beside them)
UPSTREAM_DATA = Path(__file__).parent / "data" / "upstream"


def upstream_arrays(name: str) -> dict[str, np.ndarray]:
    """Every array of one reference file under tests/data/upstream, loaded."""
    with np.load(UPSTREAM_DATA / name) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module: on small crops more threads gain little, and a
    busy machine (parallel test runs) makes OpenMP threads oversubscribe the CPUs (5-10x
    slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
