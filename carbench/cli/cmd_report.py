"""``bench report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from carbench.cli.options import WorkspaceOpt, workspace
from carbench.core.errors import BenchError
from carbench.reports.presets import CI_STYLES, FORMATS, PRESETS

#: rate-distortion formats (reports.rd): curves, and BD deltas against --anchor
RD_FORMATS = ("rd", "bd")


def report_cmd(
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help=" | ".join((*FORMATS, *RD_FORMATS)) + "; rd: RD curves (--out .csv/.json "
            "CompressAI layout/.html page with plots), bd: BD-rate table (--out .csv/.md/.tex/"
            ".html)",
        ),
    ] = "csv",
    table: Annotated[str, typer.Option("--table", "-t", help=" | ".join(PRESETS))] = "auto",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file [stdout]")] = None,
    dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d")] = None,
    method: Annotated[list[str] | None, typer.Option("--method", "-m")] = None,
    standalone: Annotated[bool, typer.Option(help="LaTeX: a complete document")] = False,
    ci: Annotated[int, typer.Option("--ci", help="Bootstrap resamples for 95% intervals")] = 0,
    seed: Annotated[int, typer.Option(help="--ci seed")] = 0,
    ci_style: Annotated[
        str, typer.Option("--ci-style", help=f"--ci intervals: {' | '.join(CI_STYLES)}")
    ] = "brackets",
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            help="str, default none: rd/bd: the anchor curve, CODEC (the codec alone, e.g. "
            "jpeg) or CODEC+METHOD (jpeg+dncnn3); bd needs it",
        ),
    ] = None,
    interp: Annotated[
        str,
        typer.Option(
            "--interp",
            help="choice cubic | pchip | akima, default pchip: BD "
            "interpolation (cubic = VCEG-M33 polynomial, pchip = JVET CTC)",
        ),
    ] = "pchip",
    per_image: Annotated[
        bool, typer.Option("--per-image", help="bool, default off: bd: also one row per image")
    ] = False,
    reproduce: Annotated[
        str | None,
        typer.Option(
            "--reproduce",
            help="PAPER[:TABLE], default none: html/markdown/latex: that published table with "
            "the store's values beside the paper's, cells coloured by agreement (nothing runs; "
            "bench reproduce runs what is missing)",
        ),
    ] = None,
    workspace_dir: WorkspaceOpt = None,
) -> None:
    """Tables from the result store. CSV: one row per (dataset, protocol, degradation, method,
    metric) with the mean over images and the image count; LaTeX/Markdown/HTML: paper layout."""
    from carbench.bench.store import ResultStore
    from carbench.reports.build import render_report, write_report
    from carbench.reports.ci import check_style

    if fmt not in (*FORMATS, *RD_FORMATS):
        raise BenchError(
            f"unknown report format {fmt!r}; available: {', '.join((*FORMATS, *RD_FORMATS))}"
        )
    check_style(ci_style)
    ws = workspace(workspace_dir)
    if reproduce is not None:
        from carbench.reports.reproduce_render import from_store

        try:
            text = from_store(reproduce, ws.root, fmt)
        except ValueError as e:
            raise BenchError(str(e)) from None
        if out is None:
            typer.echo(text, nl=False)
        else:
            write_report(out, text)
            typer.echo(f"wrote {out}")
        return
    rows = ResultStore(ws.root / "results").load(dataset=dataset, method=method)
    if rows.empty:
        raise BenchError("the result store is empty; run `bench run` first")
    if fmt in RD_FORMATS:
        from carbench.reports.rd import render_rd

        text = render_rd(rows, fmt, out, anchor, interp, ci, seed, ci_style, per_image)
        if text is None:  # CompressAI JSON: written as one file per curve
            return
    else:
        text = render_report(rows, fmt, table, ws, standalone, ci, seed, ci_style)
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_report(out, text)
        typer.echo(f"wrote {out}")
