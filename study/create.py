"""``bench study create``: a study folder from outputs already in a workspace."""

from __future__ import annotations

import itertools
import logging
import random
import secrets
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from carbench.core.errors import BenchError
from carbench.core.workspace import Workspace
from carbench.study.model import Item, Stimulus, Study, StudyConfig, file_sha256

log = logging.getLogger(__name__)
ANCHORS = ("gt", "jpeg")


def _sources(ws: Workspace, datasets, degradations, methods) -> dict[tuple, dict[str, Path | str]]:
    """{(dataset, protocol, degradation, image): {method: output path}} from the result store,
    keeping only images every requested method has on disk."""
    from carbench.bench.store import ResultStore

    rows = ResultStore(ws.root / "results").load(dataset=datasets, degradation=degradations)
    if rows.empty:
        raise BenchError(f"{ws.root}: no results for these datasets/degradations; run `bench run`")
    out: dict[tuple, dict] = {}
    for r in rows.drop_duplicates(
        ["dataset", "protocol", "degradation", "method", "image"]
    ).itertuples():
        if r.method not in methods:
            continue
        path = getattr(r, "output_path", None)
        if r.method == "jpeg":
            path = "jpeg"  # the decoded input (jpeg does not save outputs)
        elif not isinstance(path, str) or not ws.resolve(path).is_file():
            continue
        out.setdefault((r.dataset, r.protocol, r.degradation, r.image), {})[r.method] = path
    wanted = set(methods)
    return {k: v for k, v in out.items() if wanted <= set(v)}


def _load(ws: Workspace, key: tuple, source: str, manifests: dict) -> np.ndarray:
    from carbench.bench.generate import decoded_input, read_manifest
    from carbench.core.imageio import read_image

    ds, proto, deg, image = key
    if (ds, proto, deg) not in manifests:
        manifests[ds, proto, deg] = read_manifest(ws, ds, proto, deg).set_index("image")
    rec = manifests[ds, proto, deg].loc[image]
    if source == "gt":
        return read_image(ws.resolve(rec.gt_path)).pixels
    if source == "jpeg":
        return decoded_input(ws, rec.to_dict(), deg)
    return read_image(ws.resolve(source)).pixels


def create_study(
    ws: Workspace,
    root: Path,
    mode: str,
    methods: Sequence[str],
    datasets: Sequence[str] | None = None,
    degradations: Sequence[str] | None = None,
    anchors: Sequence[str] = (),
    n_images: int | None = None,
    crop: int | None = None,
    seed: int = 0,
    repeats: int = 2,
    scale: tuple[int, int] = (1, 10),
    name: str = "study",
    db_url: str = "",
    preset: str = "",
    adaptive: int = 0,
) -> Study:
    """Copy (and optionally crop, same seeded window for every method) the chosen images into
    ``root/images`` under opaque names and write the study's config, stimuli and items."""
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise BenchError(f"{root}: exists and is not empty; choose a new study folder")
    bad = [a for a in anchors if a not in ANCHORS]
    if bad:
        raise BenchError(f"unknown anchor(s) {bad}; available: {', '.join(ANCHORS)}")
    shown = list(dict.fromkeys([*anchors, *methods]))
    if mode == "pairwise" and len(shown) < 2:
        raise BenchError("a pairwise study needs at least two methods/anchors")
    src = _sources(ws, datasets, degradations, [m for m in shown if m != "gt"])
    if not src:
        raise BenchError(f"no image has outputs on disk for every one of {', '.join(shown)}")
    rng = random.Random(seed)
    keys = sorted(src)
    if n_images is not None:  # the same images for every (dataset, degradation)
        names = sorted({k[3] for k in keys})
        pick = set(rng.sample(names, min(n_images, len(names))))
        keys = [k for k in keys if k[3] in pick]
    token = secrets.token_urlsafe(16)
    config = StudyConfig(
        name,
        mode,
        seed,
        token,
        scale[0],
        scale[1],
        repeats,
        db_url=db_url,
        adaptive=adaptive,
        workspace=str(Path(ws.root).resolve()),
        preset=preset,
    )
    study = Study(root, config)
    from carbench.study.db import StudyDB

    root.mkdir(parents=True, exist_ok=True)
    try:  # claim the database first: a refused one leaves nothing behind
        StudyDB.open(study).close()
    except BenchError:
        root.rmdir()
        raise
    study.images_dir.mkdir()
    from carbench.core.imageio import write_png_atomic

    manifests: dict = {}
    for key in keys:
        group = []
        window = None
        for m in shown:
            pixels = _load(ws, key, "gt" if m == "gt" else src[key][m], manifests)
            if crop:
                h, w = pixels.shape[:2]
                if window is None:
                    cw, ch = min(crop, w), min(crop, h)
                    window = (rng.randrange(w - cw + 1), rng.randrange(h - ch + 1), cw, ch)
                x, y, cw, ch = window
                pixels = np.ascontiguousarray(pixels[y : y + ch, x : x + cw])
            sid = secrets.token_hex(8)
            path = study.images_dir / f"{sid}.png"
            write_png_atomic(path, pixels)
            study.stimuli[sid] = Stimulus(
                sid, *key[:3], m, key[3], path.name, file_sha256(path), window
            )
            group.append(sid)
        if mode == "rating":
            for sid in group:
                study.items[f"i{len(study.items):05d}"] = Item(f"i{len(study.items):05d}", (sid,))
        else:
            for a, b in itertools.combinations(group, 2):
                study.items[f"i{len(study.items):05d}"] = Item(f"i{len(study.items):05d}", (a, b))
    study.save()
    log.info("study %s: %d stimuli, %d items", root, len(study.stimuli), len(study.items))
    return study
