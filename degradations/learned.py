"""Learned image codecs as degradations: CompressAI's pretrained models (``compressai`` package).

``compressai:model=bmshj2018-hyperprior,mbt2018-mean,q=1,2,3[,metric=ms-ssim]`` -> ids
``compressai-bmshj2018-hyperprior-q1`` (``-msssim-q1`` for the MS-SSIM-trained weights). The
image is padded to a multiple of 64 with zeros split evenly on both sides (CompressAI's
``eval_model``), coded on the CPU with the model's real entropy coder (``net.compress``, rANS),
and the stored file is the entropy-coded strings behind a 13 + 4 x strings byte header
(magic ``CAI1``, image height and width, latent shape, string count and lengths); the model and
quality are the set's id, not in the file. ``bytes``/``bpp`` count the whole file;
``extra_entropy_bytes`` is the strings alone. Decoding runs ``net.decompress`` on the stored
strings, crops the padding and rounds to uint8; the decoded PNG is stored (methods never need
torch or these weights). Gray images are coded as RGB (channels replicated) and decoded to the
rounded channel mean.

Weight files are the official ones of CompressAI's zoo (``compressai/zoo/image.py``,
``model_urls``; the 8 hex digits in each name are its sha256 prefix); ``bench weights fetch
compressai`` downloads them into ``BENCH_CACHE/compressai``. None can be fetched here; tests
install models built at random through :func:`use_model`.
"""

from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from carbench.core.options import Option
from carbench.core.weights import WeightFile, cache_root, file_problem, present
from carbench.degradations.base import Degradation, DegradedImage, ImageLike, as_array

ROOT_URL = "https://compressai.s3.amazonaws.com/models/v1"
LICENCE = "BSD-3-Clause-Clear (CompressAI, InterDigital)"
METRICS = ("mse", "ms-ssim")
#: model -> metric -> (file stem, sha256 prefix of quality 1, 2, ...), from compressai 1.2.8's
#: ``compressai.zoo.image.model_urls`` (tests/test_learned_codec.py compares them)
FILES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "bmshj2018-factorized": {
        "mse": (
            "bmshj2018-factorized-prior",
            (
                "446d5c7f",
                "87279a02",
                "5c6f152b",
                "1ed4405a",
                "866ba797",
                "9b02ea3a",
                "6dfd6734",
                "5232faa3",
            ),
        ),
        "ms-ssim": (
            "bmshj2018-factorized-ms-ssim",
            (
                "9781d705",
                "4a584386",
                "5352f123",
                "4f91b847",
                "b3a88897",
                "ee028763",
                "8c265a29",
                "8811bd14",
            ),
        ),
    },
    "bmshj2018-hyperprior": {
        "mse": (
            "bmshj2018-hyperprior",
            (
                "7eb97409",
                "93677231",
                "6d87be32",
                "de1b779c",
                "f8b614e1",
                "1ab9c41e",
                "3804dcbd",
                "a583f0cf",
            ),
        ),
        "ms-ssim": (
            "bmshj2018-hyperprior-ms-ssim",
            (
                "5cf249be",
                "1ff60d1f",
                "92dd7878",
                "4377354e",
                "c34afc8d",
                "3a6d8229",
                "8747d3bc",
                "cc15b5f3",
            ),
        ),
    },
    "mbt2018-mean": {
        "mse": (
            "mbt2018-mean",
            (
                "e522738d",
                "e54a039d",
                "723404a8",
                "6dba02a3",
                "d504e8eb",
                "a19628ab",
                "d5d441d1",
                "8089ae3e",
            ),
        ),
        "ms-ssim": (
            "mbt2018-mean-ms-ssim",
            (
                "5bf9c0b6",
                "e2a1bf3f",
                "640ce819",
                "12626c13",
                "1be7f059",
                "b83bf379",
                "ddf9644c",
                "0cc7b94f",
            ),
        ),
    },
    "mbt2018": {
        "mse": (
            "mbt2018",
            (
                "3f36cd77",
                "43b70cdd",
                "22901978",
                "456e2af9",
                "b4a046dd",
                "7052e5ea",
                "8ba2bf82",
                "dd0097aa",
            ),
        ),
        "ms-ssim": (
            "mbt2018-ms-ssim",
            (
                "2878436b",
                "c41cb208",
                "d0dd64e8",
                "a120e037",
                "9b30e3b7",
                "f8b3626f",
                "16e6ff50",
                "0cb49d43",
            ),
        ),
    },
    "cheng2020-anchor": {
        "mse": (
            "cheng2020-anchor",
            ("dad2ebff", "a29008eb", "e49be189", "98b0b468", "23852949", "4c052b1a"),
        ),
        "ms-ssim": (
            "cheng2020_anchor-ms-ssim",
            ("20f521db", "c7ff5812", "c23e22d5", "0e658304", "c0a95e77", "f2dc1913"),
        ),
    },
    "cheng2020-attn": {
        "mse": (
            "cheng2020_attn-mse",
            ("465f2b64", "e0805385", "2d07bbdf", "f7b0ccf2", "26c8920e", "730501f2"),
        ),
        "ms-ssim": (
            "cheng2020_attn-ms-ssim",
            ("c5381d91", "5dad201d", "5c9be841", "8b2f647e", "5ca1f34c", "216423ec"),
        ),
    },
}
MODELS = tuple(FILES)
MAGIC = b"CAI1"
PAD = 64  # every zoo model downsamples by 2^6


def weight_file(model: str, metric: str, quality: int) -> WeightFile:
    """The official file of one zoo model (destination ``compressai/<name>`` in the cache)."""
    stem, shas = FILES[model][metric]
    name = f"{stem}-{quality}-{shas[quality - 1]}.pth.tar"
    return WeightFile(
        f"compressai/{name}", f"{ROOT_URL}/{name}", sha256=shas[quality - 1], licence=LICENCE
    )


def all_weight_files() -> list[tuple[str, WeightFile]]:
    """Every declared file as (``model:metric:quality``, file), for ``bench weights``."""
    return [
        (f"{m}:{metric}:{q + 1}", weight_file(m, metric, q + 1))
        for m, by in FILES.items()
        for metric, (_, shas) in by.items()
        for q in range(len(shas))
    ]


_MODELS: dict[tuple[str, str, int], object] = {}


def use_model(model: str, metric: str, quality: int, net) -> None:
    """Use ``net`` (a CompressAI model, CDFs updated) for this key instead of loading the
    official file: the tests' models built at random."""
    _MODELS[(model, metric, quality)] = net


def _torch():
    try:
        import compressai  # noqa: F401
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            f"learned codecs need the compressai package ({e}); pip install compressai"
        ) from None
    return torch


def weights_problem(model: str, metric: str, quality: int) -> str | None:
    """Why the official file cannot be used (missing, or not the official bytes), or None."""
    if (model, metric, quality) in _MODELS:
        return None
    wf = weight_file(model, metric, quality)
    path = present(wf, cache_root())
    if path is None:
        return (
            f"missing CompressAI weights {wf.name} (official: {wf.url}); fetch with "
            f"`bench weights fetch compressai` or place it at {cache_root() / wf.relpath}"
        )
    return file_problem(wf, path)


def load_model(model: str, metric: str, quality: int):
    """The zoo model in eval mode on the CPU: a :func:`use_model` one, else the official file
    (sha256-checked), built by CompressAI's own ``from_state_dict``."""
    key = (model, metric, quality)
    if key not in _MODELS:
        problem = weights_problem(model, metric, quality)
        if problem:
            raise RuntimeError(problem)
        torch = _torch()
        from compressai.zoo.image import model_architectures
        from compressai.zoo.pretrained import load_pretrained

        wf = weight_file(model, metric, quality)
        state = torch.load(cache_root() / wf.relpath, map_location="cpu", weights_only=True)
        net = model_architectures[model].from_state_dict(load_pretrained(state))
        net._carbench_official = True
        _MODELS[key] = net.eval()
    return _MODELS[key]


def _padding(h: int, w: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zeros to a multiple of 64, split as CompressAI's eval."""
    nh, nw = -(-h // PAD) * PAD, -(-w // PAD) * PAD
    top, left = (nh - h) // 2, (nw - w) // 2
    return left, nw - w - left, top, nh - h - top


def pack(h: int, w: int, shape: tuple[int, int], strings: list[bytes]) -> bytes:
    """The stored file: header, then the entropy-coded strings."""
    head = MAGIC + struct.pack(">HHHHB", h, w, *shape, len(strings))
    return head + b"".join(struct.pack(">I", len(s)) for s in strings) + b"".join(strings)


def unpack(data: bytes) -> tuple[int, int, tuple[int, int], list[bytes]]:
    """Inverse of :func:`pack`; ``ValueError`` for a file that is not one."""
    if data[:4] != MAGIC or len(data) < 13:
        raise ValueError("not a carbench CompressAI bitstream (magic CAI1)")
    h, w, sh, sw, n = struct.unpack(">HHHHB", data[4:13])
    lens = struct.unpack(f">{n}I", data[13 : 13 + 4 * n])
    strings, pos = [], 13 + 4 * n
    for k in lens:
        strings.append(data[pos : pos + k])
        pos += k
    if pos != len(data):
        raise ValueError(f"bitstream has {len(data) - pos} trailing or missing bytes")
    return h, w, (sh, sw), strings


def encode(net, rgb: np.ndarray) -> tuple[bytes, int]:
    """(stored file, entropy-coded bytes) of a uint8 RGB image."""
    torch = _torch()
    import torch.nn.functional as F

    h, w = rgb.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
    x = F.pad(x, _padding(h, w), mode="constant", value=0)
    with torch.no_grad():
        out = net.compress(x)
    strings = [s[0] for s in out["strings"]]
    return pack(h, w, tuple(int(v) for v in out["shape"]), strings), sum(map(len, strings))


def decode(net, data: bytes) -> np.ndarray:
    """uint8 RGB of a stored file (the model's ``decompress``, padding cropped)."""
    torch = _torch()
    h, w, shape, strings = unpack(data)
    left, _, top, _ = _padding(h, w)
    with torch.no_grad():
        x = net.decompress([[s] for s in strings], list(shape))["x_hat"]
    x = x[0, :, top : top + h, left : left + w].clamp(0, 1)
    return (x.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()).copy()


@functools.cache
def _version() -> str:
    import compressai
    import torch

    return f"compressai {compressai.__version__} / torch {torch.__version__} (CPU)"


@dataclass(frozen=True)
class CompressAI(Degradation):
    """A CompressAI zoo model at quality ``q`` (id ``compressai-mbt2018-mean-q3``)."""

    model: str
    q: int
    metric: str = "mse"

    kind: ClassVar[str] = "compressai"
    bitstream_ext: ClassVar[str] = ".cai"
    stores_decoded: ClassVar[bool] = True
    spec_options: ClassVar[tuple[Option, ...]] = (
        Option("model", "choice", "bmshj2018-hyperprior", choices=MODELS, help="zoo model"),
        Option("metric", "choice", "mse", choices=METRICS, help="training objective"),
        Option("q", "int", min=1, max=8, required=True, help="quality (cheng2020-*: 1-6)"),
    )
    spec_example: ClassVar[str] = "compressai:model=bmshj2018-hyperprior,q=1,2,3"
    id_pattern: ClassVar[str] = r"compressai-(" + "|".join(MODELS) + r")(-msssim)?-q(\d)"

    def __post_init__(self) -> None:
        if self.model not in FILES:
            raise ValueError(f"unknown CompressAI model {self.model!r} (known: {MODELS})")
        if self.metric not in METRICS:
            raise ValueError(f"CompressAI metric must be one of {METRICS}, got {self.metric!r}")
        n = len(FILES[self.model][self.metric][1])
        if not 1 <= self.q <= n:
            raise ValueError(f"{self.model} has qualities 1-{n}, got {self.q}")

    @property
    def id(self) -> str:
        return (
            f"compressai-{self.model}"
            + ("-msssim" if self.metric != "mse" else "")
            + (f"-q{self.q}")
        )

    @property
    def codec(self) -> str:
        """The curve this setting belongs to: one per model and objective."""
        return self.id.rsplit("-q", 1)[0]

    @classmethod
    def from_match(cls, m: re.Match[str]) -> CompressAI:
        return cls(m[1], int(m[3]), "ms-ssim" if m[2] else "mse")

    @classmethod
    def from_spec(cls, p: dict[str, list]) -> list[Degradation]:
        return [cls(mo, q, me) for mo in p["model"] for me in p["metric"] for q in p["q"]]

    @property
    def label(self) -> str:
        return f"{self.model}" + (" (MS-SSIM)" if self.metric != "mse" else "") + f" q={self.q}"

    def weight(self) -> WeightFile:
        return weight_file(self.model, self.metric, self.q)

    def apply(self, gt: ImageLike) -> DegradedImage:
        arr = as_array(gt)
        gray = arr.ndim == 2
        rgb = np.repeat(arr[..., None], 3, axis=2) if gray else arr
        net = load_model(self.model, self.metric, self.q)
        data, entropy = encode(net, rgb)

        def dec(b: bytes) -> np.ndarray:
            out = decode(net, b)
            return np.rint(out.mean(axis=2)).astype(np.uint8) if gray else out

        extra = {"entropy_bytes": entropy, "header_bytes": len(data) - entropy}
        return DegradedImage(data, gt, extra=extra, decoder=dec)

    def decode(self, bitstream: bytes) -> np.ndarray:
        return decode(load_model(self.model, self.metric, self.q), bitstream)

    def params(self) -> dict:
        return {
            "model": self.model,
            "quality": self.q,
            "metric": self.metric,
            "weights": self.weight().name,
            "weights_official": _is_official(self),  # False: a use_model (random) net
        }

    def encoder(self) -> str:
        return _version()

    def check_available(self) -> None:
        problem = weights_problem(self.model, self.metric, self.q)
        if problem:
            raise RuntimeError(f"{self.id}: {problem}")
        _torch()


def _is_official(deg: CompressAI) -> bool:
    """True when the model in use was loaded from the official file."""
    net = _MODELS.get((deg.model, deg.metric, deg.q))
    return bool(getattr(net, "_carbench_official", False))
