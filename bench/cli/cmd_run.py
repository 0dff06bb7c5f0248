"""``bench run``."""

from __future__ import annotations

from typing import Annotated

import typer

from bench.cli.cmd_generate import SweepOpt, with_sweep
from bench.cli.options import (
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
    plan,
    workspace,
)
from bench.core.errors import PARTIAL_FAILURE_EXIT, BenchError


def split_methods(text: str) -> list[str]:
    """``codiff,fbcnn:qf=10,mode=x,jpeg`` -> [codiff, fbcnn:qf=10,mode=x, jpeg]."""
    out: list[str] = []
    for tok in filter(None, (t.strip() for t in text.split(","))):
        if "=" in tok and ":" not in tok and out:
            out[-1] += "," + tok
        else:
            out.append(tok)
    return out


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
    """Generate what is missing, restore, score with the metric runner, append to the store."""
    import methods
    from bench.core.device_pool import parse_devices
    from bench.core.shard import parse_shard
    from bench.datasets import resolve
    from bench.metrics.registry import parse_metrics
    from bench.metrics.runner import MetricRunner
    from bench.metrics.scorers import pick_device
    from bench.metrics.weight_files import missing_files
    from bench.protocols import get_protocol
    from bench.run import finished, run
    from bench.suites import get_suite
    from methods.torch_utils import DTYPE_CHOICES

    ws = workspace(workspace_dir)
    ws.ensure_writable()
    names, proto_name, degs = plan(dataset, protocol, suite, with_sweep(sweep, degradation))
    proto = get_protocol(proto_name)
    if dtype not in DTYPE_CHOICES:
        raise BenchError(f"--dtype must be one of {', '.join(DTYPE_CHOICES)}, got {dtype!r}")
    method_specs = split_methods(methods_opt)
    if suite:  # a suite selects the checkpoint/options its paper used
        s = get_suite(suite)
        for i, spec in enumerate(method_specs):
            method_specs[i] = s.apply_method_options(spec)
            if method_specs[i] != spec:
                typer.echo(f"suite {suite}: {spec} runs as {method_specs[i]} (as its paper)")
    adapters = [methods.get(m) for m in method_specs]
    for a in adapters:
        a.tile = tile
    datasets = [resolve(n, ws.root, data_root) for n in names]
    specs, lenient = parse_metrics(metrics)
    # a finished re-run answers from the store alone: no device is picked (torch costs ~2 s to
    # import), no metric or model made ready
    wanted = {s.id for s in specs if not (lenient and missing_files(s.name))}
    done = finished(ws, datasets, proto, degs, adapters, wanted, parse_shard(shard))
    if done is not None:
        typer.echo(f"metrics: {', '.join(sorted(wanted)) or 'none'} (all in the store)")
        for label in done:
            typer.echo(f"{label}: nothing to do (all in the store)")
        return
    # torch costs ~1.5 s to import: only ask it for a device when something runs on one
    needs_torch = any(a.uses_torch for a in adapters) or any(s.backend != "carbench" for s in specs)
    dev = device or (pick_device() if needs_torch else "cpu")
    restore_devices = parse_devices(devices, dev)
    if len(restore_devices) == 1 and device is None:
        dev = restore_devices[0]  # --devices cuda:1 alone is --device cuda:1
    runner = MetricRunner(specs, dev, lenient=lenient, cache_dir=ws.root / "cache" / "metrics")
    for metric_id, reason in runner.skipped.items():
        typer.echo(f"skipped metric {metric_id}: {reason}", err=True)
    typer.echo(f"metrics: {', '.join(s.id for s in runner.specs) or 'none'} on {dev}")
    if len(restore_devices) > 1 and needs_torch:
        typer.echo(f"restoring on {', '.join(restore_devices)} (one worker process each)")
    try:
        results = run(
            ws,
            datasets,
            proto,
            degs,
            adapters,
            runner,
            device=dev,
            dtype=dtype,
            jobs=jobs,
            on_error=on_error,
            progress=progress,
            backend=backend,
            shard=parse_shard(shard),
            devices=restore_devices,
        )
    finally:
        runner.close()
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
