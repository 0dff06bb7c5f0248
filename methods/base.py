"""The method interface: an adapter restores one degraded sample to a uint8 image.

An adapter declares its weight files per variant (official URL / hub id / Google Drive id, file
name, sha256 and size where known, licence) and its capabilities, and implements
``build_network(variant)`` (random init, no weights: usable on the meta device and for
fine-tuning), ``load(device, dtype)`` and ``restore(sample)``. A real run never uses random
weights: ``load`` stops with a message naming each missing file and where it goes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from bench.core.errors import BenchError, WeightsMissingError
from bench.core.weights import WeightFile, cache_root, hash_ok, sources


@dataclass
class Sample:
    """One degraded image as a method sees it."""

    image: str  # image id
    decoded: np.ndarray | None  # the decoded degraded image, uint8 HxWx3 or HxW
    bitstream_path: Path  # the stored bitstream (.jpg, .bpg, .hevc)
    degradation: str  # canonical id, e.g. jpeg-q10
    params: dict = field(default_factory=dict)  # degradation parameters (qf, qf1, qf2, qp, ...)


@dataclass(frozen=True)
class Capabilities:
    colour: bool = True
    gray: bool = True
    needs_bitstream: bool = False  # reads the JPEG file itself (DCT coefficients)
    uses_qf: bool = False  # can take the quality factor (from the sample or an option)
    size_multiple: int = 1  # input padded to a multiple of this internally
    gpu_only: bool = False


def weights_dir() -> Path:
    """Folder searched for method weights: ``BENCH_WEIGHTS_DIR``, else ``<cache>/weights``."""
    env = os.environ.get("BENCH_WEIGHTS_DIR")
    return Path(env) if env else cache_root() / "weights"


class Method:
    """Base adapter. Subclasses set the class attributes and implement ``restore``."""

    name: ClassVar[str]
    #: how tables name it (``CODiff``); the registry name when left out
    label: ClassVar[str] = ""
    description: ClassVar[str] = ""
    group: ClassVar[str] = "baseline"  # table grouping: baseline | cnn | transformer | diffusion
    capabilities: ClassVar[Capabilities] = Capabilities()
    saves_outputs: ClassVar[bool] = True  # write restored PNGs under outputs/
    uses_torch: ClassVar[bool] = True  # False for methods that need no device
    #: weight files per variant; the first variant is the default
    weights: ClassVar[dict[str, list[WeightFile]]] = {}
    paper: ClassVar[str] = ""

    def __init__(self, **options: str) -> None:
        self.options = options
        self.device = "cpu"
        self.dtype = "fp32"
        self._weights_sha: str = ""

    @property
    def id(self) -> str:
        """Method id in the store: the name, plus options (``fbcnn:qf=10``)."""
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.name}:{opts}" if opts else self.name

    @property
    def variant(self) -> str:
        v = self.options.get("variant") or (next(iter(self.weights), ""))
        if self.weights and v not in self.weights:
            raise BenchError(f"{self.name} has no variant {v!r}; known: {', '.join(self.weights)}")
        return v

    def build_network(self, variant: str | None = None):
        """The network with random weights (no file access)."""
        raise NotImplementedError(f"{self.name} has no network")

    def weight_paths(self, variant: str | None = None, root: Path | None = None) -> list[Path]:
        """Paths of the variant's weight files; raises naming every missing one."""
        root = root or weights_dir()
        files = self.weights.get(variant or self.variant, [])
        found, missing = [], []
        for wf in files:
            candidates = [root / self.name / wf.relpath, root / wf.relpath]
            if wf.shared:
                candidates.reverse()
            hit = next((c for c in candidates if c.is_file()), None)
            if hit is None:
                size = f", {wf.size:,} bytes" if wf.size else ""
                sha = f", sha256 {wf.sha256}" if wf.sha256 else ""
                src = " or ".join([wf.source()] + [u for k, u in sources(wf) if k == "mirror"])
                missing.append(
                    f"{wf.name}: get {src}{size}{sha} and put it at "
                    f"{candidates[0]} (or run `bench weights fetch {self.name}`)"
                )
            else:
                found.append(hit)
        if missing:
            raise WeightsMissingError(
                f"method {self.name} ({variant or self.variant}) cannot "
                "run, weight file(s) missing:\n  " + "\n  ".join(missing)
            )
        return found

    def verify_weights(self, variant: str | None = None) -> list[str]:
        """sha256 problems of present files (missing files raise in ``weight_paths``)."""
        files = self.weights.get(variant or self.variant, [])
        paths = self.weight_paths(variant)
        return [
            f"{p}: sha256 does not start with {wf.sha256}"
            for wf, p in zip(files, paths, strict=True)
            if not hash_ok(p, wf.sha256)
        ]

    #: tile size for tiled inference (0: whole image); set from ``bench run --tile``
    tile: int = 0
    #: the method's output keeps its official geometry (e.g. OSEDiff's enlargement): for
    #: full-reference scoring it is resized to the ground truth (PIL bicubic), recorded per row
    resize_for_scoring: bool = False

    def auto_dtype(self, device: str) -> str:
        """What ``--dtype auto`` means for this method on ``device``: the precision its official
        test script uses there (fp32 unless a method says otherwise)."""
        return "fp32"

    def resolve_dtype(self, device: str, dtype: str) -> str:
        """``dtype`` with ``auto`` replaced by :meth:`auto_dtype` for ``device``."""
        return self.auto_dtype(device) if dtype == "auto" else dtype

    def load(self, device: str = "cpu", dtype: str = "fp32", kinds=("rgb", "gray")) -> None:
        """Load weights onto a device for the image kinds to come (``rgb``, ``gray``).
        Methods without weights only record the device."""
        self.device, self.dtype = device, dtype

    def weights_sha256(self) -> str:
        return self._weights_sha

    def restore(self, sample: Sample) -> np.ndarray:
        raise NotImplementedError

    def output_source(self, sample: Sample) -> Path | None:
        """Where an existing output file for ``sample`` lies (external outputs), if any."""
        return None
