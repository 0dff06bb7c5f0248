"""The method interface: an adapter restores one degraded sample to a uint8 image.

An adapter declares its weight files per variant (official URL / hub id / Google Drive id, file
name, sha256 and size where known, licence) and its capabilities, and implements
``build_network(variant)`` (random init, no weights: usable on the meta device and for
fine-tuning), ``load(device, dtype)`` and ``restore(sample)``. A real run never uses random
weights: ``load`` stops with a message naming each missing file and where it goes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from carbench.core.errors import BenchError, WeightsMissingError
from carbench.core.options import Option, OptionError, canonical_id, resolve
from carbench.core.weights import WeightFile, cache_root, file_problem, sources
from carbench.degradations.color import rgb_to_ycbcr, ycbcr_to_rgb


@dataclass
class Sample:
    """One degraded image as a method sees it."""

    image: str  # image id
    decoded: np.ndarray | None  # the decoded degraded image, uint8 HxWx3 or HxW
    bitstream_path: Path  # the stored bitstream (.jpg, .bpg, .hevc)
    degradation: str  # canonical id, e.g. jpeg-q10
    params: dict = field(default_factory=dict)  # degradation parameters (qf, qf1, qf2, qp, ...)


GRAY_POLICIES = ("native", "replicate", "refuse")
COLOUR_POLICIES = ("native", "luma", "refuse")


@dataclass(frozen=True)
class Capabilities:
    """What inputs a method takes; ``bench run`` enforces each flag before any work
    (:meth:`Method.refusal`) and :func:`restore_sample` applies the gray/colour policies.

    ``gray``: ``native`` (the network takes 1-channel input), ``replicate`` (run on the channel
    copied to RGB, return the rounded mean of the three output channels) or ``refuse``.
    ``colour``: ``native``, ``luma`` (restore BT.601 Y - MATLAB ``rgb2ycbcr`` - and keep Cb/Cr)
    or ``refuse``. ``needs_bitstream``: the bitstream suffix the method reads itself (JDEC reads
    the JPEG's DCT coefficients: ``.jpg``), refused for other kinds. ``needs_qf``: the method
    picks its model by the sample's quality factor, refused for degradations without one.
    """

    gray: str = "native"
    colour: str = "native"
    needs_bitstream: str = ""
    needs_qf: bool = False

    def __post_init__(self) -> None:
        if self.gray not in GRAY_POLICIES or self.colour not in COLOUR_POLICIES:
            raise ValueError(f"Capabilities: gray in {GRAY_POLICIES}, colour in {COLOUR_POLICIES}")


def weights_dir() -> Path:
    """Folder searched for method weights: ``BENCH_WEIGHTS_DIR``, else ``<cache>/weights``."""
    env = os.environ.get("BENCH_WEIGHTS_DIR")
    return Path(env) if env else cache_root() / "weights"


def weight_root(method: str, wf: WeightFile, root: Path | None = None) -> Path:
    """The folder a method's weight file goes under: ``<root>/<method>``, or ``<root>`` itself
    for a file several methods share (SD-2.1-base)."""
    root = root or weights_dir()
    return root if wf.shared else root / method


def weight_candidates(method: str, wf: WeightFile, root: Path | None = None) -> list[Path]:
    """Where a method's weight file may lie, where it goes first (see :func:`weight_root`), then
    the other of ``<root>/<method>/<relpath>`` and ``<root>/<relpath>``."""
    root = root or weights_dir()
    first = weight_root(method, wf, root) / wf.relpath
    other = (root / method if wf.shared else root) / wf.relpath
    return [first, other]


def locate(method: str, wf: WeightFile, root: Path | None = None) -> Path | None:
    """The first of :func:`weight_candidates` that exists, None when the file is missing."""
    return next((c for c in weight_candidates(method, wf, root) if c.is_file()), None)


def how_to_get(method: str, wf: WeightFile, root: Path | None = None) -> str:
    """One line naming a missing file, its sources and where it goes."""
    dest = weight_candidates(method, wf, root)[0]
    size = f", {wf.size:,} bytes" if wf.size else ""
    sha = f", sha256 {wf.sha256}" if wf.sha256 else ""
    if "/drive/folders/" in wf.url and not wf.gdrive:  # published only as a Drive folder
        known = f"{size}{sha}".lstrip(", ") or "no size or sha256 published"
        return (
            f"{wf.name}: download it by hand from the Google Drive folder {wf.url} ({known}; "
            f"e.g. `gdown --folder {wf.url}`) and put it at {dest}"
        )
    src = " or ".join([wf.source()] + [u for k, u in sources(wf) if k == "mirror"])
    return (
        f"{wf.name}: get {src}{size}{sha} and put it at {dest} "
        f"(or run `bench weights fetch {method}`)"
    )


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

    #: the options ``name:key=value,...`` may set, declared once (type, range, default, help,
    #: whether it changes outputs); adapters read them with :meth:`opt`, never from raw text
    declared_options: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, **given: object) -> None:
        self._values = resolve(self.name, self.declared_options, given)
        self.device = "cpu"
        self.dtype = "fp32"
        self._weights_sha: str = ""

    @classmethod
    def canonical_id_of(cls, given: dict[str, str]) -> str:
        """The id of ``name:given`` from the declarations alone (no weight look-up, no
        ``auto`` resolved): how the store reader canonicalises rows written earlier."""
        values = resolve(cls.name, cls.declared_options, given)
        return canonical_id(cls.name, cls.declared_options, values)

    def method_source(self) -> str:
        """The code that restores (module:class), recorded with every row."""
        return f"{type(self).__module__}:{type(self).__qualname__}"

    def opt(self, name: str):
        """The value of a declared option (its default when not given)."""
        if name not in self._values:
            raise OptionError(f"{self.name} reads option `{name}`, which it does not declare")
        return self._values[name]

    def id_values(self) -> dict[str, object]:
        """The option values the id is made of; adapters whose default is worked out at run
        time (``auto``) put the resolved value here."""
        return dict(self._values)

    @property
    def id(self) -> str:
        """Method id in the store: the name, plus the options that change outputs and are not
        at their default, sorted (``fbcnn:qf=10``); the same run always has the same id."""
        return canonical_id(self.name, self.declared_options, self.id_values())

    @property
    def variant(self) -> str:
        v = self._values.get("variant") or (next(iter(self.weights), ""))
        if self.weights and v not in self.weights:
            raise BenchError(f"{self.name} has no variant {v!r}; known: {', '.join(self.weights)}")
        return v

    def needed_variants(self, kinds=("rgb", "gray")) -> list[str]:
        """The weight variants a run on images of ``kinds`` reads (every file of each must be
        present); the default variant unless an adapter says otherwise."""
        return [self.variant] if self.weights else []

    def needed_files(self, kinds=("rgb", "gray")) -> list[WeightFile]:
        """Every weight file a run on images of ``kinds`` needs, shared ones included."""
        files = [wf for v in self.needed_variants(kinds) for wf in self.weights.get(v, [])]
        return list(dict.fromkeys(files))

    def missing_files(self, kinds=("rgb", "gray")) -> list[WeightFile]:
        """The files of :meth:`needed_files` that are not where the run looks for them."""
        return [wf for wf in self.needed_files(kinds) if locate(self.name, wf) is None]

    def check_weights(self, kinds=("rgb", "gray")) -> None:
        """Stop, naming every missing file of :meth:`needed_files` in one message, before any
        file is read."""
        missing = [how_to_get(self.name, wf) for wf in self.missing_files(kinds)]
        if missing:
            raise WeightsMissingError(
                f"method {self.id} cannot run, weight file(s) missing:\n  " + "\n  ".join(missing)
            )

    def refusal(self, degradation, kinds: set[str]) -> str | None:
        """Why this method cannot restore a set of ``degradation`` with image ``kinds``
        (``rgb``/``gray``), from its capabilities; None when it can. Checked before any work."""
        caps = self.capabilities
        if "gray" in kinds and caps.gray == "refuse":
            return f"{self.id} takes colour images only; the set has gray images"
        if "rgb" in kinds and caps.colour == "refuse":
            return f"{self.id} takes gray images only; the set has colour images"
        if caps.needs_bitstream and degradation.bitstream_ext != caps.needs_bitstream:
            return (
                f"{self.id} reads the {caps.needs_bitstream} bitstream itself; {degradation.id} "
                f"stores {degradation.bitstream_ext}"
            )
        if caps.needs_qf and "qf" not in degradation.params():
            return f"{self.id} picks its model by the JPEG QF; {degradation.id} has none"
        return None

    def build_network(self, variant: str | None = None):
        """The network with random weights (no file access)."""
        raise NotImplementedError(f"{self.name} has no network")

    def weight_paths(self, variant: str | None = None, root: Path | None = None) -> list[Path]:
        """Paths of the variant's weight files; raises naming every missing one."""
        return self._locate(self.weights.get(variant or self.variant, []), variant, root)

    def _locate(
        self, files: list[WeightFile], variant: str | None, root: Path | None = None
    ) -> list[Path]:
        """Paths of ``files``; raises naming every missing one with :func:`how_to_get`."""
        found = [locate(self.name, wf, root) for wf in files]
        missing = [
            how_to_get(self.name, wf, root) for wf, p in zip(files, found, strict=True) if p is None
        ]
        if missing:
            raise WeightsMissingError(
                f"method {self.name} ({variant or self.variant}) cannot "
                "run, weight file(s) missing:\n  " + "\n  ".join(missing)
            )
        return found

    def verify_weights(self, variant: str | None = None) -> list[str]:
        """sha256 (or content) problems of present files (missing ones raise in
        ``weight_paths``)."""
        files = self.weights.get(variant or self.variant, [])
        paths = self.weight_paths(variant)
        found = [(p, file_problem(wf, p)) for wf, p in zip(files, paths, strict=True)]
        return [f"{p}: {problem}" for p, problem in found if problem]

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
        """Restore one sample the network takes natively (see :meth:`restore_sample`)."""
        raise NotImplementedError

    def restore_sample(self, sample: Sample) -> np.ndarray:
        """Restore any sample, applying the declared gray/colour policy around :meth:`restore`
        (what ``bench run`` calls)."""
        img, caps = sample.decoded, self.capabilities
        if img is not None and img.ndim == 2 and caps.gray == "replicate":
            rgb = np.repeat(img[:, :, None], 3, axis=2)
            out = self.restore(replace(sample, decoded=rgb))
            return out.mean(axis=2).round().astype(np.uint8)
        if img is not None and img.ndim == 3 and caps.colour == "luma":
            ycc = rgb_to_ycbcr(img)
            y = np.clip(np.round(ycc[..., 0]), 0, 255).astype(np.uint8)
            ycc[..., 0] = self.restore(replace(sample, decoded=y))
            return ycbcr_to_rgb(ycc)
        return self.restore(sample)

    def output_source(self, sample: Sample) -> Path | None:
        """Where an existing output file for ``sample`` lies (external outputs), if any."""
        return None
