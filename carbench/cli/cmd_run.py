"""``bench run``."""

from __future__ import annotations

from typing import Annotated

import typer

from carbench.cli.cmd_generate import SweepOpt, with_sweep
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
from carbench.core.errors import PARTIAL_FAILURE_EXIT


def run_cmd(
    methods_opt: Annotated[
        str, typer.Option("--methods", "-m", help="Comma-separated methods, e.g. jpeg,fbcnn:qf=10")
    ] = "jpeg",
    dataset: DatasetOpt = None,
    protocol: ProtocolOpt = None,
    suite: SuiteOpt = None,
    degradation: DegradationOpt = None,
    sweep: SweepOpt = None,
    metrics: Annotated[
        str,
        typer.Option(
            "--metrics",
            help="psnr,ssim,psnrb | all | available "
            "(variants: psnr:y, ssim:box8, psnrb:swinir, psnr:y@4)",
        ),
    ] = "psnr,ssim,psnrb",
    device: Annotated[str | None, typer.Option(help="cuda | mps | cpu [auto]")] = None,
    devices: Annotated[
        str | None,
        typer.Option(
            help="Restore on several devices, one worker process each (each loads the methods "
            "once): auto (every visible CUDA GPU; one or none: --device) | cuda:0,cuda:1 | "
            "cpu,cpu. Metrics run on --device.",
        ),
    ] = None,
    dtype: Annotated[
        str,
        typer.Option(
            help="auto (each method's official precision on the device: fp16 on CUDA for "
            "codiff, osediff, diffbir; else fp32) | fp32 | fp16 | bf16; rows record the one used"
        ),
    ] = "auto",
    tile: Annotated[int, typer.Option(help="Tile size for tiled inference (0: whole image)")] = 0,
    jobs: JobsOpt = 1,
    backend: BackendOpt = "threading",
    shard: ShardOpt = None,
    on_error: OnErrorOpt = "skip",
    workspace_dir: WorkspaceOpt = None,
    data_root: DataRootOpt = None,
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Generate what is missing, restore, score with the metric runner, append to the store
    (``carbench.run``, the same function as the Python API)."""
    from carbench import api

    def echo(msg: str, err: bool) -> None:
        typer.echo(msg, err=err)

    result = api.run(
        methods_opt,
        dataset,
        with_sweep(sweep, degradation),
        protocol,
        suite=suite,
        metrics=metrics,
        workspace=workspace(workspace_dir).root,
        data_root=data_root,
        device=device,
        devices=devices,
        dtype=dtype,
        tile=tile,
        jobs=jobs,
        backend=backend,
        shard=shard,
        on_error=on_error,
        progress=progress,
        echo=echo,
    )
    if result.finished:
        for label, _ in result.summaries:
            typer.echo(f"{label}: nothing to do (all in the store)")
        return
    results = result.summaries
    failures = 0
    for label, s in results:
        if s.scored or s.skipped:
            state = (
                "nothing to do (all in the store)"
                if not s.scored
                else f"scored {s.scored} image(s), {s.rows} rows"
            )
            typer.echo(
                f"{label}: {state}"
                + (f", {s.skipped} already done" if s.scored and s.skipped else "")
            )
        for msg in s.failed:
            typer.echo(f"  failed: {msg}", err=True)
        failures += len(s.failed)
    if failures:
        typer.echo(
            f"{failures} item(s) failed and were skipped (see above); everything else is "
            f"stored - exit code {PARTIAL_FAILURE_EXIT}",
            err=True,
        )
        raise typer.Exit(PARTIAL_FAILURE_EXIT)
