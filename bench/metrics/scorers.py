"""Turning a MetricSpec into a scorer: ``scorer(test, ref) -> float`` on uint8 images.

carbench's own PSNR/SSIM/PSNR-B run in numpy/OpenCV on the CPU and in torch on a GPU.
Perceptual metrics run through pyiqa, offline, from the carbench weight cache.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from carbench.bench.metrics import fullref
from carbench.bench.metrics.registry import MetricSpec
from carbench.bench.metrics.weight_files import missing_files
from carbench.core import __version__
from carbench.core.errors import WeightsMissingError
from carbench.core.weights import cache_root


@dataclass
class Scorer:
    spec: MetricSpec
    fn: Callable[[np.ndarray, np.ndarray | None], float]
    implementation: str  # library and version, stored with every value

    def __call__(self, test: np.ndarray, ref: np.ndarray | None) -> float:
        return self.fn(test, ref)


def pick_device(device: str | None = None) -> str:
    """``cuda`` | ``mps`` | ``cpu``; None picks the best available."""
    if device:
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _own(spec: MetricSpec, device: str) -> Scorer:
    """carbench's PSNR/SSIM/PSNR-B: ``spec.compute`` of ``fullref`` (numpy/OpenCV) or of
    ``fullref_torch`` (CUDA), on ``spec.channel`` after the border crop."""
    if spec.score is not None:  # a metric defined outside carbench: a plain function
        return Scorer(spec, spec.score, f"{spec.score.__module__}.{spec.score.__qualname__}")
    channel, border, options = spec.channel, spec.border, dict(spec.options)

    def prep(img: np.ndarray) -> np.ndarray:
        img = fullref.crop_border(img, border)
        return img if channel == "rgb" else fullref.to_y(img, rounded=channel == "y")

    if device.startswith("cuda"):
        import torch

        from carbench.bench.metrics import fullref_torch as impl

        options["device"] = torch.device(device)
        library = f"carbench {__version__} torch {torch.__version__} float64"
    else:
        impl = fullref
        library = f"carbench {__version__} numpy/opencv float64"
    compute = getattr(impl, spec.compute)

    def fn(t, r):
        return compute(prep(t), prep(r), **options)

    return Scorer(spec, fn, f"{library}; {spec.id}")


def configure_offline(root=None) -> None:
    """Point torch hub / Hugging Face caches at carbench's cache and forbid downloads."""
    root = root or cache_root()
    os.environ["TORCH_HOME"] = str(root / "torch")
    os.environ["HF_HOME"] = str(root / "huggingface")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch.hub

    torch.hub.set_dir(str(root / "torch" / "hub"))


@functools.cache
def _pyiqa_module():
    configure_offline()
    import pyiqa
    from pyiqa.utils import download_util

    want = str(cache_root() / "torch" / "hub" / "pyiqa")
    if os.path.abspath(download_util.DEFAULT_CACHE_DIR) != os.path.abspath(want):
        raise WeightsMissingError(
            f"pyiqa was imported before carbench set its cache ({download_util.DEFAULT_CACHE_DIR}"
            f" instead of {want}); set TORCH_HOME={cache_root() / 'torch'} before starting"
        )
    return pyiqa


def _pyiqa(spec: MetricSpec, device: str) -> Scorer:
    missing = missing_files(spec.name)
    if missing:
        raise WeightsMissingError(
            f"metric {spec.name} cannot load, weight file(s) missing (run `bench weights fetch "
            f"{spec.name}` on a machine with internet, or copy them):\n  " + "\n  ".join(missing)
        )
    pyiqa = _pyiqa_module()
    import torch

    model = pyiqa.create_metric(spec.pyiqa_name, device=torch.device(device), as_loss=False)

    def fn(t: np.ndarray, r: np.ndarray | None) -> float:
        x = _to_tensor(t, device)
        with torch.no_grad():
            if spec.kind == "FR":
                return float(model(x, _to_tensor(r, device)).item())
            return float(model(x).item())

    return Scorer(spec, fn, f"pyiqa {pyiqa.__version__} {spec.pyiqa_name}")


def _to_tensor(img: np.ndarray, device: str):
    """uint8 HxW[x3] -> float32 1x3xHxW in [0,1] (gray is replicated to 3 channels)."""
    import torch

    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    t = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255.0
    return t.to(device)


def build_scorer(spec: MetricSpec, device: str = "cpu") -> Scorer:
    """A ready scorer; raises WeightsMissingError naming each missing file."""
    return _BACKENDS[spec.backend](spec, device)


#: how each ``MetricSpec.backend`` is built
_BACKENDS: dict[str, Callable[[MetricSpec, str], Scorer]] = {"carbench": _own, "pyiqa": _pyiqa}
