"""Options and helpers shared by the CLI verbs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bench.core.errors import BenchError

if TYPE_CHECKING:
    from bench.core.workspace import Workspace
    from degradations import Degradation

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder [env BENCH_WORKSPACE; default ./bench-workspace]",
    ),
]
DataRootOpt = Annotated[
    Path | None,
    typer.Option("--data-root", help="Folder holding <DATASET>/ subfolders [env BENCH_DATA_ROOT]"),
]
DatasetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--dataset",
        "-d",
        help="Registered name or a folder of images (repeatable); default: sample, "
        "or the suite's datasets",
    ),
]
ProtocolOpt = Annotated[
    str | None,
    typer.Option(
        "--protocol", "-p", help="codiff | fbcnn | fbcnn-gray [default: the suite's, else codiff]"
    ),
]
SuiteOpt = Annotated[
    str | None, typer.Option("--suite", "-s", help="A paper suite (datasets.yaml)")
]
DegradationOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--degradation",
        "-g",
        help="Spec or id, e.g. jpeg:q=5,10,20 | jpeg2:q1=10,q2=90,shift=4 | "
        "bpg:qp=30,40,50 | jpeg-q10-444 (repeatable)",
    ),
]
JobsOpt = Annotated[int, typer.Option("--jobs", "-j", min=1, help="Parallel workers")]
BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        help="threading | loky | multiprocessing | dask | ray | sequential "
        "(dask: DASK_SCHEDULER_ADDRESS or a local cluster; ray: RAY_ADDRESS or a local instance)",
    ),
]
ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="i/n: only every n-th image starting at i (job arrays); merge stores by "
        "copying results/ parts",
    ),
]
OnErrorOpt = Annotated[str, typer.Option("--on-error", help="skip: report and go on | fail: stop")]

DEFAULT_DEGRADATIONS = ("jpeg:q=5,10,20",)


def workspace(path: Path | None) -> Workspace:
    from bench.core.workspace import Workspace, default_workspace

    return Workspace(path or default_workspace())


def plan(
    datasets: list[str] | None, protocol: str | None, suite: str | None, specs: list[str] | None
) -> tuple[list[str | None], str, list[Degradation]]:
    """Resolve datasets, protocol and degradations from the options and an optional suite."""
    from bench.suites import get_suite

    if suite:
        s = get_suite(suite)
        if specs:
            raise BenchError("give either --suite or --degradation, not both")
        return list(datasets or s.datasets), protocol or s.protocol, _degs(s.degradations)
    return list(datasets or [None]), protocol or "codiff", _degs(specs or DEFAULT_DEGRADATIONS)


def _degs(specs) -> list[Degradation]:
    from degradations import expand_all, with_bpg_fallback

    try:
        asked = expand_all(specs)
        degs = [with_bpg_fallback(d) for d in asked]
    except (ValueError, RuntimeError) as e:
        raise BenchError(str(e)) from None
    swapped = [(a.id, d.id) for a, d in zip(asked, degs, strict=True) if a.id != d.id]
    if swapped:  # said before any work; reports label these columns HEVC-intra
        typer.echo(
            "bpgenc not found: "
            + ", ".join(f"{a} runs as {d}" for a, d in swapped)
            + " (HEVC-intra through ffmpeg + libx265 with bpgenc's default settings; stored, "
            "labelled and reported as HEVC-intra, not BPG). Install bpgenc/bpgdec or set "
            "BENCH_BPGENC/BENCH_BPGDEC for real BPG.",
            err=True,
        )
    return degs
