"""``bench generate --train``: seeded training pairs written as WebDataset tar shards, one task
per shard on any ``--backend`` (threads, processes, Dask, Ray)."""

from __future__ import annotations

import functools
from pathlib import Path

import typer

from carbench.core.errors import BenchError
from carbench.core.shard import Shard


def write_train_shards(
    images: Path | None,
    recipe: str,
    seed: int,
    pairs: int | None,
    per_shard: int,
    out: Path | None,
    part: Shard,
    jobs: int = 1,
    backend: str = "threading",
    progress: bool = True,
) -> tuple[int, int]:
    """Check everything (folder, recipe, spec, codec libraries) before any work, then write this
    part's missing shards, each a task of ``run_tasks`` (so Dask/Ray workers need ``out`` on a
    shared file system). Holds a lock per (folder, part). Returns (written, skipped).

    ``bench generate --train`` does not pass its ``--jobs``/``--backend``/``--progress`` here yet
    (carbench/cli/cmd_generate.py is outside this change): it writes serially until it does."""
    import numpy as np

    from carbench.core.locks import exclusive
    from carbench.core.parallel import BACKENDS, run_tasks
    from carbench.degradations.training import GenericRecipe, PairDataset, plan_shards, write_shard

    if images is None or out is None:
        raise BenchError("--train needs --images DIR (ground-truth folder) and --out DIR")
    if per_shard < 1:
        raise BenchError(f"--per-shard must be at least 1, got {per_shard}")
    if backend not in BACKENDS:
        raise BenchError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    try:
        ds = PairDataset(images, recipe, seed=seed, length=pairs)
        if isinstance(ds.recipe, GenericRecipe):
            ds.recipe.sample(np.random.default_rng(0)).check_available()
    except (ValueError, RuntimeError) as e:
        raise BenchError(str(e)) from None
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out / f".lock{part.tag}", f"training shards {out}{part.tag}"):
        try:
            todo = plan_shards(ds, out, per_shard, (part.index, part.count))
        except ValueError as e:
            raise BenchError(str(e)) from None
        total = len(range(part.index, -(-len(ds) // per_shard), part.count))
        task = functools.partial(write_shard, ds, out, per_shard)
        for _ in run_tasks(task, todo, jobs, backend, f"train shards{part.tag}", progress):
            pass
    typer.echo(
        f"train pairs ({recipe}, seed {seed}, {len(ds)} pairs){part.tag}: wrote {len(todo)} "
        f"shard(s), {total - len(todo)} already complete, under {out}"
    )
    return len(todo), total - len(todo)
