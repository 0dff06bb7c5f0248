"""Seeded training pairs (degraded, ground truth, parameters) from a folder of images, made with
the test sets' own encoders (a pair's bitstream is byte-identical to ``bench generate``'s for the
same crop and degradation).

Every random draw of pair ``i`` comes from ``numpy.random.default_rng([seed, i])``, so a pair
depends on (seed, index) only: the same in any DataLoader worker and for any worker count.

Recipes (facts taken from the upstream training code, re-implemented here):

- ``fbcnn``: FBCNN's colour training (jiaxi-jiang/FBCNN@54d1831 data/dataset_jpeg.py,
  options/train_fbcnn_color.json): crop a (P+8)^2 patch (P = 96), one of the 8 flip/rotation
  modes, QF uniform in 8..96 with probability 1/4 else one of 10..60 in steps of 10, JPEG, then
  with probability 1/2 a P^2 crop at a random offset (shifts the 8x8 grid) else at (0, 0).
- ``fbcnn-double``: FBCNN's double-JPEG augmentation (data/dataset_jpeggraydouble.py) on RGB:
  (P+16)^2 patch, flip/rotation, QF1 (5..95 w.p. 1/4 else 10..70), JPEG; with probability 1/2
  (upstream: per batch) a (P+8)^2 crop at a random offset and QF2 (5..95 w.p. 1/2 else 10..70),
  JPEG again; then the final P^2 crop as in ``fbcnn``. Upstream also turns 3/4 of the patches
  into Y of YCbCr and 1/4 into gray; here the patch stays RGB (stated deviation).
- ``codiff``: CODiff's training (jp-guo/CODiff@86e2f04 data/dataset_jpeg.py with
  options/codiff.json): the ``fbcnn`` recipe with P = 256.
- ``generic:SPEC``: any degradation spec with distributions, ``jpeg:q=uniform(5,95)``,
  ``webp:q=choice(30/50/70)``, drawn per pair, on a random P^2 crop (P = 128, ``crop=N`` as the
  last parameter: ``generic:jpeg:q=uniform(5,95),crop=96``) with the 8 flip/rotation modes.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from degradations.base import Degradation

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


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


def _crop(img: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    h, w = img.shape[:2]
    y = int(rng.integers(0, max(0, h - size) + 1))
    x = int(rng.integers(0, max(0, w - size) + 1))
    return img[y : y + size, x : x + size], y, x


def _fbcnn_qf(rng: np.random.Generator, lo: int, hi: int, choices: list[int], p: float) -> int:
    if rng.random() < p:
        return int(rng.integers(lo, hi + 1))
    return int(choices[rng.integers(len(choices))])


def _jpeg(img: np.ndarray, q: int) -> tuple[bytes, np.ndarray]:
    from degradations.jpeg import Jpeg

    out = Jpeg(q).apply(img)
    return out.bitstream, np.asarray(out.decoded)


Pair = tuple[np.ndarray, np.ndarray, dict]


def fbcnn_recipe(img: np.ndarray, rng: np.random.Generator, patch: int = 96) -> Pair:
    big, y, x = _crop(img, patch + 8, rng)
    mode = int(rng.integers(8))
    gt = augment(big, mode)
    qf = _fbcnn_qf(rng, 8, 96, [10, 20, 30, 40, 50, 60], 0.25)
    _, lq = _jpeg(gt, qf)
    gt, lq, dy, dx = _final_crop(gt, lq, patch, rng)
    return lq, gt, {"qf": qf, "crop_y": y, "crop_x": x, "mode": mode, "shift_y": dy, "shift_x": dx}


def _final_crop(gt, lq, patch, rng):
    h, w = gt.shape[:2]
    if rng.random() < 0.5:
        dy = int(rng.integers(0, max(0, h - patch) + 1))
        dx = int(rng.integers(0, max(0, w - patch) + 1))
    else:
        dy = dx = 0
    sl = (slice(dy, dy + patch), slice(dx, dx + patch))
    return np.ascontiguousarray(gt[sl]), np.ascontiguousarray(lq[sl]), dy, dx


def fbcnn_double_recipe(img: np.ndarray, rng: np.random.Generator, patch: int = 96) -> Pair:
    big, y, x = _crop(img, patch + 16, rng)
    mode = int(rng.integers(8))
    gt = augment(big, mode)
    q1 = _fbcnn_qf(rng, 5, 95, [10, 20, 30, 40, 50, 60, 70], 0.25)
    _, lq = _jpeg(gt, q1)
    params = {"qf": q1, "crop_y": y, "crop_x": x, "mode": mode, "double": False, "qf2": -1}
    params.update(grid_y=-1, grid_x=-1)
    if rng.random() < 0.5:
        sub, sy, sx = _crop(np.concatenate([gt, lq], axis=2), patch + 8, rng)
        gt, lq = np.ascontiguousarray(sub[..., :3]), np.ascontiguousarray(sub[..., 3:])
        q2 = _fbcnn_qf(rng, 5, 95, [10, 20, 30, 40, 50, 60, 70], 0.5)
        _, lq = _jpeg(lq, q2)
        params.update(double=True, qf2=q2, grid_y=sy, grid_x=sx)
    gt, lq, dy, dx = _final_crop(gt, lq, patch, rng)
    return lq, gt, {**params, "shift_y": dy, "shift_x": dx}


_DIST = re.compile(r"(uniform|choice)\(([^)]*)\)")


@dataclass(frozen=True)
class GenericRecipe:
    """``generic:KIND:key=uniform(a,b)|choice(a/b/c)|value,...[,crop=N]``."""

    spec: str
    patch: int = 128
    template: str = field(init=False, default="")

    def __post_init__(self) -> None:
        from degradations.registry import expand

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
        from degradations.registry import expand

        def draw(d: re.Match[str]) -> str:
            vals = _values(d)
            if d[1] == "uniform":
                return str(int(rng.integers(vals[0], vals[1] + 1)))
            return str(vals[int(rng.integers(len(vals)))])

        degs = expand(_DIST.sub(draw, self.template))
        if len(degs) != 1:
            raise ValueError(f"generic spec {self.template!r} gives {len(degs)} degradations")
        return degs[0]

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> Pair:
        gt, y, x = _crop(img, self.patch, rng)
        mode = int(rng.integers(8))
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


def _values(d: re.Match[str]) -> list[int]:
    return [int(v) for v in re.split(r"[,/]", d[2])]


RECIPES: dict[str, Callable[[np.ndarray, np.random.Generator], Pair]] = {
    "fbcnn": fbcnn_recipe,
    "fbcnn-double": fbcnn_double_recipe,
    "codiff": lambda img, rng: fbcnn_recipe(img, rng, patch=256),
}


def get_recipe(name: str) -> Callable[[np.ndarray, np.random.Generator], Pair]:
    """A recipe by name, or ``generic:SPEC``; unknown names and bad specs fail here."""
    if name.startswith("generic:"):
        return GenericRecipe(name.removeprefix("generic:"))
    if name not in RECIPES:
        raise ValueError(
            f"unknown training recipe {name!r}; known: {', '.join(RECIPES)}, generic:SPEC"
        )
    return RECIPES[name]


def list_images(folder: Path) -> list[Path]:
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise ValueError(f"no images under {folder}")
    return files


def read_rgb(path: Path) -> np.ndarray:
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
        lq, gt, params = self.recipe(read_rgb(path), rng)
        return lq, gt, {"index": index, "image": path.name, "recipe": self.recipe_name, **params}

    def __getitem__(self, index: int) -> dict:
        import torch

        lq, gt, params = self.pair(index)
        return {
            "lq": torch.from_numpy(np.ascontiguousarray(lq.transpose(2, 0, 1))),
            "gt": torch.from_numpy(np.ascontiguousarray(gt.transpose(2, 0, 1))),
            **params,
        }


def _png(arr: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", arr[..., ::-1] if arr.ndim == 3 else arr)
    return buf.tobytes()


def write_shards(
    ds: PairDataset,
    out: Path,
    per_shard: int = 1000,
    part: tuple[int, int] = (0, 1),
) -> tuple[int, int]:
    """Write WebDataset tar shards ``train-00000.tar`` (``KEY.lq.png``, ``KEY.gt.png``,
    ``KEY.json``) under ``out``; shard k holds pairs k*per_shard...; with ``part`` = (i, n) only
    shards k with k % n == i. A shard is written to ``.tmp`` and renamed when complete, so a
    killed run leaves only whole shards and resumes by skipping them. Returns (written, skipped).
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
        tmp_meta = meta_path.with_suffix(".json.tmp")
        tmp_meta.write_text(json.dumps(meta, indent=1))
        tmp_meta.replace(meta_path)
    i, n = part
    n_shards = -(-len(ds) // per_shard)
    written = skipped = 0
    for k in range(i, n_shards, n):
        final = out / f"train-{k:05d}.tar"
        if final.exists():
            skipped += 1
            continue
        tmp = final.with_suffix(".tar.tmp")
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
        written += 1
    return written, skipped
