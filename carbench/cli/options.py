"""Options and helpers shared by the CLI verbs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from carbench.core.workspace import Workspace

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


def workspace(path: Path | None) -> Workspace:
    from carbench.core.workspace import Workspace, default_workspace

    return Workspace(path or default_workspace())
