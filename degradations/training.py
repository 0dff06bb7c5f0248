"""Seeded training pairs (degraded, ground truth, parameters) from a folder of images, made with
the test sets' own encoders (a pair's bitstream is byte-identical to ``bench generate``'s for the
same crop and degradation).

Every random draw of pair ``i`` comes from ``numpy.random.default_rng([seed, i])``, so a pair
depends on (seed, index) only: the same in any DataLoader worker and for any worker count. A draw
made once per batch (FBCNN's double-JPEG coin) comes from ``default_rng([seed, i // batch, TAG])``:
the same for the ``batch`` consecutive indices of one block.

Recipes (facts taken from the upstream training code, re-implemented here; the README's table
gives the file and line of each). Each FBCNN-family recipe draws its random numbers in the order
upstream's ``__getitem__`` does and compares them as upstream does (``random() > 0.75``), so a
recorded upstream draw sequence replays into the same pair (tests/reference/fbcnn_recipes.py):

- ``fbcnn``: jiaxi-jiang/FBCNN@54d1831 ``data/dataset_jpeg.py`` (colour model): (P+8)^2 crop,
  flip/rotation mode, QF = randint(8, 96) if random() > 0.75 else choice(10..60), RGB JPEG, then a
  P^2 crop at a random offset if random() > 0.5 else at (0, 0) (P = 96).
- ``fbcnn-gray``: ``data/dataset_jpeggray.py``: as ``fbcnn`` with QF randint(5, 95) / choice(10..60)
  and the patch turned into Y of YCbCr (MATLAB formula, rounded) if random() > 0.25 else into
  OpenCV gray, JPEG-coded as one channel.
- ``fbcnn-double``: ``data/dataset_jpeggraydouble.py``: (P+16)^2 crop, mode, QF1 randint(5, 95) if
  random() > 0.75 else choice(10..70), Y/gray as ``fbcnn-gray``, JPEG; then if the double coin
  (``choice([False, True])``, drawn once per batch of 128) is True a (P+8)^2 crop at a random
  offset (shifts the 8x8 grid) and QF2 randint(5, 95) if random() > 0.5 else choice(10..70), JPEG
  again; then the final P^2 crop as ``fbcnn``.
- ``codiff``: jp-guo/CODiff@86e2f04 ``data/dataset_jpeg.py`` with ``options/codiff.json``: the
  ``fbcnn`` recipe with P = 256.

Options after a colon, ``fbcnn-double:channels=rgb,double=pair``: ``patch=N``,
``channels=rgb|y-gray|y|gray`` and, for ``fbcnn-double``, ``double=batch|pair`` and ``batch=N``.

- ``generic:SPEC``: any degradation spec with distributions, ``jpeg:q=uniform(5,95)``,
  ``webp:q=choice(30/50/70)``, drawn per pair, on a random P^2 crop (P = 128, ``crop=N`` as the
  last parameter: ``generic:jpeg:q=uniform(5,95),crop=96``) with the 8 flip/rotation modes.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import re
import tarfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from carbench.core.options import Option, parse_spec, resolve, unknown_name
from carbench.degradations.base import Degradation

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
BLOCK_TAG = 0x62617463  # third seed word of the once-per-batch draws ("batc")

Pair = tuple[np.ndarray, np.ndarray, dict]
BlockRng = Callable[[int], np.random.Generator]


def augment(img: np.ndarray, mode: int) -> np.ndarray:
    """The 8 flip/rotation modes of KAIR/FBCNN's ``augment_img`` (mode 0 = identity)."""
    ops = {
        0: lambda a: a,
        1: lambda a: np.flipud(np.rot90(a)),
        2: lambda a: np.flipud(a),
        3: lambda a: np.rot90(a, k=3),
        4: lambda a: np.flipud(np.rot90(a, k=2)),
        5: lambda a: np.rot90(a),
        6: lambda a: np.rot90(a, k=2),
        7: lambda a: np.flipud(np.rot90(a, k=3)),
    }
    return np.ascontiguousarray(ops[mode](img))


def _offset(rng: np.random.Generator, size: int, crop: int) -> int:
    """``random.randint(0, max(0, size - crop))`` as upstream crops."""
    return int(rng.integers(0, max(0, size - crop) + 1))


def _crop(img: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    y, x = _offset(rng, img.shape[0], size), _offset(rng, img.shape[1], size)
    return img[y : y + size, x : x + size], y, x


def _jpeg(img: np.ndarray, q: int) -> np.ndarray:
    from carbench.degradations.jpeg import Jpeg

    return np.asarray(Jpeg(q).apply(img).decoded)


@dataclass(frozen=True)
class QfDraw:
    """FBCNN's QF draw: ``randint(lo, hi)`` if ``random() > above`` else ``choice(grid)``."""

    lo: int
    hi: int
    grid: tuple[int, ...]
    above: float

    def __call__(self, rng: np.random.Generator) -> int:
        if rng.random() > self.above:
            return int(rng.integers(self.lo, self.hi + 1))
        return int(self.grid[rng.integers(0, len(self.grid))])


GRID60 = (10, 20, 30, 40, 50, 60)
GRID70 = (*GRID60, 70)
CHANNELS = ("rgb", "y-gray", "y", "gray")


@dataclass(frozen=True)
class FbcnnRecipe:
    """The FBCNN family: crop, flip/rotation, [Y/gray], JPEG, [shifted second JPEG], shift crop.

    ``draw`` makes every random choice (upstream's order and comparisons), ``build`` makes the
    pair from those choices alone, so recorded parameters rebuild a pair exactly.
    """

    name: str
    qf1: QfDraw
    margin: int = 8  # the first crop is (patch + margin)^2
    patch: int = 96
    channels: str = "rgb"
    qf2: QfDraw | None = None  # set: the double-JPEG recipe
    double: str = "batch"  # the double coin: once per ``batch`` indices, or per pair
    batch: int = 128

    def draw(
        self, shape: tuple[int, ...], rng: np.random.Generator, block: BlockRng | None
    ) -> dict:
        first = self.patch + self.margin
        cy, cx = _offset(rng, shape[0], first), _offset(rng, shape[1], first)
        mode = int(rng.integers(0, 8))
        h, w = min(shape[0], first), min(shape[1], first)
        if mode % 2:  # modes 1, 3, 5, 7 transpose (only matters for images under the crop)
            h, w = w, h
        p: dict = {"crop_y": cy, "crop_x": cx, "mode": mode, "qf": self.qf1(rng)}
        p["channels"] = self.channels
        if self.channels == "y-gray":  # upstream: rgb2ycbcr if random() > 0.25 else gray
            p["channels"] = "y" if rng.random() > 0.25 else "gray"
        p.update(double=False, qf2=-1, grid_y=-1, grid_x=-1)
        if self.qf2 is not None:
            coin = block(self.batch) if block is not None and self.double == "batch" else rng
            if int(coin.integers(0, 2)) == 1:  # choice([False, True])
                second = self.patch + 8
                p.update(grid_y=_offset(rng, h, second), grid_x=_offset(rng, w, second))
                p.update(double=True, qf2=self.qf2(rng))
                h, w = min(h, second), min(w, second)
        dy = dx = 0
        if rng.random() > 0.5:
            dy, dx = _offset(rng, h, self.patch), _offset(rng, w, self.patch)
        p.update(shift_y=dy, shift_x=dx)
        return p

    def build(self, img: np.ndarray, p: dict) -> tuple[np.ndarray, np.ndarray]:
        """(lq, gt) from an RGB image and the drawn parameters."""
        first = self.patch + self.margin
        gt = augment(
            img[p["crop_y"] : p["crop_y"] + first, p["crop_x"] : p["crop_x"] + first], p["mode"]
        )
        if p["channels"] == "y":
            from carbench.degradations.color import rgb_to_y_uint8

            gt = rgb_to_y_uint8(gt)
        elif p["channels"] == "gray":
            import cv2

            gt = cv2.cvtColor(gt, cv2.COLOR_RGB2GRAY)
        lq = _jpeg(gt, p["qf"])
        if p["double"]:
            s = self.patch + 8
            sl = (slice(p["grid_y"], p["grid_y"] + s), slice(p["grid_x"], p["grid_x"] + s))
            gt, lq = gt[sl], _jpeg(np.ascontiguousarray(lq[sl]), p["qf2"])
        sl = (
            slice(p["shift_y"], p["shift_y"] + self.patch),
            slice(p["shift_x"], p["shift_x"] + self.patch),
        )
        return np.ascontiguousarray(lq[sl]), np.ascontiguousarray(gt[sl])

    def __call__(
        self, img: np.ndarray, rng: np.random.Generator, block: BlockRng | None = None
    ) -> Pair:
        p = self.draw(img.shape, rng, block)
        return (*self.build(img, p), p)

    @property
    def declared_options(self) -> tuple[Option, ...]:
        """The options ``NAME:key=value`` takes (``double``/``batch`` for the double recipe)."""
        common = (
            Option("patch", "int", self.patch, min=8, help="side of the training patch"),
            Option("channels", "choice", self.channels, choices=CHANNELS, help="colour of the "
                   "pair: rgb, y, gray, or y-gray (Y or gray, as FBCNN's gray training)"),
        )
        if not self.qf2:
            return common
        return common + (
            Option("double", "choice", self.double, choices=("batch", "pair"),
                   help="the single/double coin: once per batch of indices, or per pair"),
            Option("batch", "int", self.batch, min=1, help="indices per coin (double=batch)"),
        )

    def with_options(self, text: str) -> FbcnnRecipe:
        """``patch=N,channels=...[,double=batch|pair,batch=N]`` applied to this recipe."""
        _, given = parse_spec(f"{self.name}:{text}", "training recipe")
        values = resolve(f"recipe {self.name}", self.declared_options, given)
        return dataclasses.replace(self, **{k: values[k] for k in given})


FBCNN = FbcnnRecipe("fbcnn", QfDraw(8, 96, GRID60, 0.75))
FBCNN_GRAY = FbcnnRecipe("fbcnn-gray", QfDraw(5, 95, GRID60, 0.75), channels="y-gray")
FBCNN_DOUBLE = FbcnnRecipe(
    "fbcnn-double",
    QfDraw(5, 95, GRID70, 0.75),
    margin=16,
    channels="y-gray",
    qf2=QfDraw(5, 95, GRID70, 0.5),
)
CODIFF = dataclasses.replace(FBCNN, name="codiff", patch=256)


_DIST = re.compile(r"(uniform|choice)\(([^)]*)\)")


@dataclass(frozen=True)
class GenericRecipe:
    """``generic:KIND:key=uniform(a,b)|choice(a/b/c)|value,...[,crop=N]``."""

    spec: str
    patch: int = 128
    template: str = field(init=False, default="")

    def __post_init__(self) -> None:
        from carbench.degradations.registry import expand

        spec = self.spec
        m = re.search(r",crop=(\d+)$", spec)
        if m:
            object.__setattr__(self, "patch", int(m[1]))
            spec = spec[: m.start()]
        object.__setattr__(self, "template", spec)
        for d in _DIST.finditer(spec):
            vals = re.split(r"[,/]", d[2])
            if d[1] == "uniform" and len(vals) != 2:
                raise ValueError(f"uniform takes two integers, got {d[0]!r}")
            if not all(re.fullmatch(r"-?\d+", v.strip()) for v in vals):
                raise ValueError(f"{d[0]!r}: distribution values must be integers")
        # every extreme of each distribution must be a valid degradation, checked now
        for pick in (min, max):
            expand(_DIST.sub(lambda d, pick=pick: str(pick(_values(d))), spec))

    def sample(self, rng: np.random.Generator) -> Degradation:
        def draw(d: re.Match[str]) -> str:
            vals = _values(d)
            if d[1] == "uniform":
                return str(int(rng.integers(vals[0], vals[1] + 1)))
            return str(vals[int(rng.integers(len(vals)))])

        degs = _expand(_DIST.sub(draw, self.template))
        if len(degs) != 1:
            raise ValueError(f"generic spec {self.template!r} gives {len(degs)} degradations")
        return degs[0]

    def __call__(
        self, img: np.ndarray, rng: np.random.Generator, block: BlockRng | None = None
    ) -> Pair:
        gt, y, x = _crop(img, self.patch, rng)
        mode = int(rng.integers(0, 8))
        gt = augment(gt, mode)
        deg = self.sample(rng)
        deg.check_image(gt.shape)
        out = deg.apply(gt)
        lq = np.asarray(out.decoded)
        return (
            lq,
            np.asarray(out.gt),
            {"degradation": deg.id, "crop_y": y, "crop_x": x, "mode": mode},
        )


@functools.lru_cache(maxsize=4096)
def _expand(spec: str) -> tuple[Degradation, ...]:
    """``registry.expand``, cached: a drawn spec repeats, and degradations are frozen."""
    from carbench.degradations.registry import expand

    return tuple(expand(spec))


def _values(d: re.Match[str]) -> list[int]:
    return [int(v) for v in re.split(r"[,/]", d[2])]


RECIPES: dict[str, FbcnnRecipe] = {r.name: r for r in (FBCNN, FBCNN_GRAY, FBCNN_DOUBLE, CODIFF)}


def get_recipe(name: str) -> FbcnnRecipe | GenericRecipe:
    """A recipe by name (``NAME[:options]``) or ``generic:SPEC``; bad names and specs fail here."""
    if name.startswith("generic:"):
        return GenericRecipe(name.removeprefix("generic:"))
    base, _, options = name.partition(":")
    if base not in RECIPES:
        raise unknown_name("training recipe", base, [*RECIPES, "generic:SPEC"])
    return RECIPES[base].with_options(options)


def list_images(folder: Path) -> list[Path]:
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise ValueError(f"no images under {folder}")
    return files


def read_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB, as FBCNN's ``imread_uint`` reads (``cv2.imread(IMREAD_UNCHANGED)``, gray
    repeated, alpha dropped; no EXIF rotation): OpenCV decodes PNG ~20% faster than Pillow and
    gives no extra copy. Files OpenCV cannot read as 8 bits go through Pillow's ``convert``."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is not None and img.dtype == np.uint8 and img.ndim in (2, 3):
        if img.ndim == 2:
            return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        if img.shape[2] in (3, 4):
            return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


class PairDataset:
    """Map-style ``torch.utils.data.Dataset`` of seeded pairs; index i uses image i mod N.

    Items: ``{"lq": uint8 CHW tensor, "gt": uint8 CHW tensor, "index": i, "image": name,
    **params}``; ``length`` defaults to the number of images (``epochs`` x images otherwise).
    """

    def __init__(self, folder: Path, recipe: str, seed: int = 0, length: int | None = None):
        self.files = list_images(folder)
        self.recipe_name = recipe
        self.recipe = get_recipe(recipe)
        self.seed = seed
        self.length = length or len(self.files)

    def __len__(self) -> int:
        return self.length

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray, dict]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        path = self.files[index % len(self.files)]
        rng = np.random.default_rng([self.seed, index])

        def block(n: int) -> np.random.Generator:
            return np.random.default_rng([self.seed, index // n, BLOCK_TAG])

        lq, gt, params = self.recipe(read_rgb(path), rng, block)
        return lq, gt, {"index": index, "image": path.name, "recipe": self.recipe_name, **params}

    def __getitem__(self, index: int) -> dict:
        import torch

        lq, gt, params = self.pair(index)
        return {"lq": _chw(torch, lq), "gt": _chw(torch, gt), **params}


def _chw(torch, arr: np.ndarray):
    """uint8 HxWxC or HxW (Y/gray) array as a CxHxW tensor."""
    arr = arr[..., None] if arr.ndim == 2 else arr
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _png(arr: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", arr[..., ::-1] if arr.ndim == 3 else arr)
    return buf.tobytes()


def plan_shards(ds: PairDataset, out: Path, per_shard: int, part: tuple[int, int]) -> list[int]:
    """Check or record the settings (``train.json``) and return this part's missing shards.

    Shard k holds pairs k*per_shard...; part (i, n) owns the shards k with k % n == i. Leftover
    temporary files of those shards (a killed run) are removed; run one writer per part.
    """
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "recipe": ds.recipe_name,
        "seed": ds.seed,
        "pairs": len(ds),
        "per_shard": per_shard,
        "images": [p.name for p in ds.files],
    }
    meta_path = out / "train.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old != meta:
            diff = sorted(k for k in meta if old.get(k) != meta[k])
            raise ValueError(f"{out} holds shards of other settings ({', '.join(diff)} differ)")
    else:
        tmp_meta = out / f"train.json.{uuid.uuid4().hex[:8]}.tmp"
        tmp_meta.write_text(json.dumps(meta, indent=1))
        tmp_meta.replace(meta_path)
    i, n = part
    todo = []
    for k in range(i, -(-len(ds) // per_shard), n):
        for stale in out.glob(f"train-{k:05d}.tar*.tmp"):
            stale.unlink(missing_ok=True)
        if not (out / f"train-{k:05d}.tar").exists():
            todo.append(k)
    return todo


def write_shard(ds: PairDataset, out: Path, per_shard: int, k: int) -> int:
    """Write shard k (``KEY.lq.png``, ``KEY.gt.png``, ``KEY.json``; fixed tar headers, so the
    bytes depend on the pairs only) to a temporary file of its own, then rename it into place."""
    final = out / f"train-{k:05d}.tar"
    tmp = out / f"{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    with tarfile.open(tmp, "w") as tar:
        for idx in range(k * per_shard, min(len(ds), (k + 1) * per_shard)):
            lq, gt, params = ds.pair(idx)
            key = f"{idx:09d}"
            for name, data in (
                (f"{key}.lq.png", _png(lq)),
                (f"{key}.gt.png", _png(gt)),
                (f"{key}.json", json.dumps(params, sort_keys=True).encode()),
            ):
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(data), 0
                tar.addfile(info, io.BytesIO(data))
    tmp.replace(final)
    return k


def write_shards(
    ds: PairDataset,
    out: Path,
    per_shard: int = 1000,
    part: tuple[int, int] = (0, 1),
) -> tuple[int, int]:
    """Write this part's missing WebDataset tar shards ``train-00000.tar`` ... under ``out`` one
    after another (``bench generate --train`` spreads them over a backend). A shard appears
    only when complete, so a killed run resumes by writing the missing ones. Returns (written,
    skipped)."""
    todo = plan_shards(ds, out, per_shard, part)
    for k in todo:
        write_shard(ds, out, per_shard, k)
    total = len(range(part[0], -(-len(ds) // per_shard), part[1]))
    return len(todo), total - len(todo)
