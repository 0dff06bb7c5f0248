"""``bench report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.commands.common import WorkspaceOpt, workspace
from bench.errors import BenchError
from bench.imageio import write_bytes_atomic
from bench.store import ResultStore
from reports import summarize

FORMATS = ("csv",)


def report_cmd(
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file [stdout]")] = None,
    workspace_dir: WorkspaceOpt = None,
) -> None:
    """Tables from the result store: one row per (dataset, protocol, degradation, method,
    metric) with the mean over images and the image count."""
    if fmt not in FORMATS:
        raise BenchError(f"unknown report format {fmt!r}; available: {', '.join(FORMATS)}")
    df = ResultStore(workspace(workspace_dir).root / "results").load()
    if df.empty:
        raise BenchError("the result store is empty; run `bench run` first")
    text = summarize(df).to_csv(index=False, float_format="%.6f")
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_bytes_atomic(out, text.encode())
        typer.echo(f"wrote {out}")
