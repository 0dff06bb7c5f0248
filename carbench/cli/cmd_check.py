"""``bench check``: CI regression check of the store against a committed baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from carbench.cli.options import WorkspaceOpt, workspace
from carbench.core.errors import BenchError


def check_cmd(
    baseline: Annotated[Path, typer.Option("--baseline", "-b", help="Baseline CSV")],
    tolerance: Annotated[
        str | None, typer.Option(help="Overrides, e.g. psnr=0.05,ssim=0.001")
    ] = None,
    update: Annotated[
        bool, typer.Option("--update", help="Write the store's means as the new baseline")
    ] = False,
    allow_better: Annotated[bool, typer.Option(help="Improvements beyond tolerance pass")] = False,
    summary: Annotated[
        Path | None, typer.Option(help="Also write the Markdown summary here")
    ] = None,
    workspace_dir: WorkspaceOpt = None,
) -> None:
    """Exit non-zero on any regression, missing cell, changed image count or variant id;
    print a Markdown summary suitable for a pull-request comment."""
    from carbench.bench.check import (
        check,
        make_baseline,
        markdown_summary,
        parse_tolerances,
        read_baseline,
    )
    from carbench.bench.store import ResultStore
    from carbench.core.imageio import write_bytes_atomic
    from carbench.reports.tables import summarize

    rows = ResultStore(workspace(workspace_dir).root / "results").load()
    if rows.empty:
        raise BenchError("the result store is empty; run `bench run` first")
    means = summarize(rows)
    tols = parse_tolerances(tolerance)
    if update:
        text = make_baseline(means, tols).to_csv(index=False, float_format="%.10g")
        write_bytes_atomic(baseline, text.encode())
        typer.echo(f"wrote {baseline} ({len(means)} cells)")
        return
    result = check(means, read_baseline(baseline), tols, allow_better)
    md = markdown_summary(result, str(baseline))
    typer.echo(md, nl=False)
    if summary is not None:
        write_bytes_atomic(summary, md.encode())
    if not result.ok:
        raise BenchError(f"{len(result.failed)} cell(s) differ from the baseline")
