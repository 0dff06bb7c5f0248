"""``bench generate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from carbench.cli.options import (
    BackendOpt,
    DataRootOpt,
    DatasetOpt,
    DegradationOpt,
    JobsOpt,
    OnErrorOpt,
    ProtocolOpt,
    ShardOpt,
    SuiteOpt,
    WorkspaceOpt,
    workspace,
)
from carbench.core.errors import PARTIAL_FAILURE_EXIT, BenchError

SweepOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--sweep",
        help="str, default none: rate sweep of these codecs at their documented ladders "
        "(comma-separated or repeatable: jpeg, webp, avif, jxl, jp2k, bpg, hevc, heif, "
        "compressai-MODEL; degradations.sweeps.LADDERS), added to --degradation",
    ),
]


def with_sweep(sweep: list[str] | None, degradation: list[str] | None) -> list[str] | None:
    """``--degradation`` specs plus the ladders of the ``--sweep`` codecs (checked names)."""
    if not sweep:
        return degradation
    from carbench.degradations.sweeps import parse_sweep

    try:
        specs = parse_sweep(sweep)
    except ValueError as e:
        raise BenchError(str(e)) from None
    return [*(degradation or []), *specs]


def generate_cmd(
    dataset: DatasetOpt = None,
    protocol: ProtocolOpt = None,
    suite: SuiteOpt = None,
    degradation: DegradationOpt = None,
    sweep: SweepOpt = None,
    jobs: JobsOpt = 1,
    backend: BackendOpt = "threading",
    shard: ShardOpt = None,
    on_error: OnErrorOpt = "skip",
    workspace_dir: WorkspaceOpt = None,
    data_root: DataRootOpt = None,
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    train: bool = typer.Option(False, "--train", help="write training pairs (shards) instead"),
    images: Path | None = typer.Option(None, "--images", help="--train: ground-truth folder"),
    recipe: str = typer.Option(
        "fbcnn",
        "--recipe",
        help="--train: fbcnn | fbcnn-gray | fbcnn-double | codiff | generic:SPEC; options "
        "after ':' (fbcnn-double:channels=rgb,double=pair), see the README's recipe table",
    ),
    seed: int = typer.Option(0, "--seed", help="--train: seed of every pair"),
    pairs: int | None = typer.Option(None, "--pairs", help="--train: number of pairs [images]"),
    per_shard: int = typer.Option(1000, "--per-shard", help="--train: pairs per tar shard"),
    out: Path | None = typer.Option(None, "--out", help="--train: shard folder"),
) -> None:
    """Write degraded test sets (bitstreams, ground truth, manifest.parquet) into the workspace,
    or with ``--train`` seeded training pairs as WebDataset tar shards."""
    from carbench import api
    from carbench.core.shard import parse_shard

    if train:
        from carbench.cli.cmd_train import write_train_shards

        part = parse_shard(shard)
        write_train_shards(
            images, recipe, seed, pairs, per_shard, out, part, jobs, backend, progress
        )
        return
    res = api.generate(
        dataset,
        with_sweep(sweep, degradation),
        protocol,
        suite=suite,
        workspace=workspace(workspace_dir).root,
        data_root=data_root,
        jobs=jobs,
        backend=backend,
        shard=shard,
        on_error=on_error,
        progress=progress,
        echo=lambda msg, err: typer.echo(msg, err=err),
    )
    failures = 0
    ids = ", ".join(res.degradations)
    for name, s in res.summaries.items():
        where = f"{name}/{res.protocol}{res.shard}"
        if s.done == 0 and not s.failed:
            typer.echo(
                f"{where}: nothing to do, all {s.skipped} image x degradation pairs already "
                f"generated ({ids})"
            )
        else:
            typer.echo(
                f"{where}: generated {s.done}, already present {s.skipped}, failed images "
                f"{len(s.failed)} ({ids})"
            )
        for note, images in s.notes.items():  # once per set, also in manifest column source_note
            more = f" and {len(images) - 5} more" if len(images) > 5 else ""
            shown = ", ".join(images[:5]) + more
            typer.echo(
                f"  note: {len(images)} source image(s) converted losslessly - {note} ({shown}); "
                "recorded in the manifest (source_note)",
                err=True,
            )
        for msg in s.failed:
            typer.echo(f"  failed: {msg}", err=True)
        failures += len(s.failed)
        typer.echo(f"  sets under {res.set_dirs[name]}")
    if failures:
        typer.echo(
            f"{failures} image(s) failed and were skipped (see above); everything else is "
            f"written - exit code {PARTIAL_FAILURE_EXIT}",
            err=True,
        )
        raise typer.Exit(PARTIAL_FAILURE_EXIT)
