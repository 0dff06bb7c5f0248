"""``bench generate --train``: seeded training pairs written as WebDataset tar shards."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.core.errors import BenchError
from bench.core.shard import Shard


def write_train_shards(
    images: Path | None,
    recipe: str,
    seed: int,
    pairs: int | None,
    per_shard: int,
    out: Path | None,
    part: Shard,
) -> None:
    """Check everything (folder, recipe, spec) before any work, then write this part's shards."""
    from degradations.training import PairDataset, write_shards

    if images is None or out is None:
        raise BenchError("--train needs --images DIR (ground-truth folder) and --out DIR")
    if per_shard < 1:
        raise BenchError(f"--per-shard must be at least 1, got {per_shard}")
    try:
        ds = PairDataset(images, recipe, seed=seed, length=pairs)
        done, skipped = write_shards(ds, out, per_shard, (part.index, part.count))
    except ValueError as e:
        raise BenchError(str(e)) from None
    typer.echo(
        f"train pairs ({recipe}, seed {seed}, {len(ds)} pairs){part.tag}: wrote {done} shard(s), "
        f"{skipped} already complete, under {out}"
    )
