"""``bench reproduce PAPER[:TABLE]``: run what a published table needs, compare cell by cell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from carbench.cli.options import DataRootOpt, JobsOpt, ShardOpt, WorkspaceOpt, workspace
from carbench.core.errors import BenchError

#: exit code when no cell of the selection could be compared here
NOTHING_COMPARED_EXIT = 2


def reproduce_cmd(
    ref: Annotated[
        str | None, typer.Argument(help="paper or paper:table (see --list), e.g. dncnn3:readme")
    ] = None,
    list_tables: Annotated[
        bool, typer.Option("--list", help="List the published tables known and their cells")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show every cell with its job and status; run nothing"),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the comparison as JSON (exit 0: every run cell within "
            "tolerance; 1: some cell outside; 2: no cell could run)",
        ),
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Only these method columns: the table's key or the carbench method name "
            "(repeatable), e.g. --only jpeg",
        ),
    ] = None,
    tables_dir: Annotated[
        Path | None,
        typer.Option("--tables", help="Folder of table files [the shipped reports/published]"),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Also write the tables as ours vs published: .html|.md|.tex"),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cuda | mps | cpu [auto]")] = None,
    jobs: JobsOpt = 1,
    shard: ShardOpt = None,
    workspace_dir: WorkspaceOpt = None,
    data_root: DataRootOpt = None,
    progress: bool = typer.Option(False, "--progress/--no-progress"),
) -> None:
    """Regenerate the cells of a published table that can run here (resumable; what is in the
    store is reused), skip the rest saying what to fetch, and print ours vs published."""
    import json

    from carbench.core.imageio import write_bytes_atomic
    from carbench.core.shard import parse_shard
    from carbench.reports import reproduce as rp
    from carbench.reports.reproduce_render import cell_line, render

    if report is not None and report.suffix not in (".html", ".md", ".tex"):
        raise BenchError(f"--report {report}: the file must end in .html, .md or .tex")
    if list_tables:
        for paper in sorted(rp.paper_list(tables_dir), key=lambda p: p.id):
            typer.echo(f"{paper.id}: {paper.title} ({paper.citation}) [{paper.path.name}]")
            for t in paper.tables.values():
                never = sum(1 for c in t.cells if c.never)
                typer.echo(
                    f"  {t.ref:<18} {len(t.cells):>4} cells ({never} not reproducible)  "
                    f"{t.caption[:70]}"
                )
        return
    if not ref:
        raise BenchError("give a paper or paper:table (bench reproduce --list shows them)")
    tables = rp.select(ref, tables_dir)
    cells = [c for t in tables for c in t.cells]
    if only:
        cells = [c for c in cells if c.method in only or (c.spec or "").partition(":")[0] in only]
        if not cells:
            raise BenchError(f"--only {','.join(only)}: no cell of {ref} has that method")
    ws = workspace(workspace_dir)
    plans = rp.plan_cells(cells, ws.root, data_root)
    todo = rp.jobs_of(plans)
    say = (lambda text: typer.echo(text, err=True)) if as_json else typer.echo
    missing = sorted({p for pl in plans if pl.status != "never" for p in pl.problems})
    for line in missing:
        say(f"skipped: {line}")
    if dry_run:
        for t in tables:
            say(f"{t.ref}: {t.caption}")
            for pl in plans:
                c = pl.cell
                if (c.paper, c.table) != (t.paper, t.id):
                    continue
                what = pl.job.command if pl.job else _short(pl)
                say(f"  {c.where} = {c.printed}: {pl.status}: {what}")
        _summary(say, plans, [])
        return
    if todo:
        ws.ensure_writable()
        failures = rp.run_jobs(
            ws, todo, data_root, device, jobs, parse_shard(shard), progress, echo=say
        )
        for f in failures:
            say(f"  failed: {f}")
    ours, reasons = rp.ours_from_store(ws.root, [p.cell for p in plans if p.job], data_root)
    reasons = {**{p.cell.key: _short(p) for p in plans if not p.job}, **reasons}
    outcomes = rp.compare([p.cell for p in plans], ours, reasons)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "tables": [
                        {"ref": t.ref, "caption": t.caption, "source": t.source} for t in tables
                    ],
                    "cells": [
                        {
                            **o.as_dict(),
                            "where": pl.where,
                            "job": pl.job.command if pl.job else None,
                        }
                        for o, pl in zip(outcomes, plans, strict=True)
                    ],
                    "summary": _counts(plans, outcomes),
                },
                indent=1,
            )
        )
    else:
        for t in tables:
            typer.echo(f"{t.ref}: {t.caption}\n  source: {t.source}")
            for o in outcomes:
                if (o.cell.paper, o.cell.table) == (t.paper, t.id):
                    typer.echo(cell_line(o))
    _summary(say, plans, outcomes)
    if report is not None:
        write_bytes_atomic(report, render(tables, outcomes, report.suffix).encode())
        say(f"wrote {report}")
    counts = _counts(plans, outcomes)
    if counts["off"]:
        raise typer.Exit(1)
    if not counts["ok"]:
        say("nothing compared: no cell of the selection could run here")
        raise typer.Exit(NOTHING_COMPARED_EXIT)


def _short(plan) -> str:
    """A cell's reason in a listing: the missing files are named once, under 'skipped'."""
    if plan.status in ("needs-weights", "needs-data"):
        return f"not run: {plan.status.replace('-', ' ')} (see 'skipped' above)"
    return plan.reason


def _counts(plans, outcomes) -> dict[str, int]:
    out = {"cells": len(plans), "here": 0, "elsewhere": 0, "never": 0}
    for p in plans:
        out[p.where] += 1
    for s in ("ok", "off", "not-run"):
        out[s] = sum(1 for o in outcomes if o.status == s)
    return out


def _summary(say, plans, outcomes) -> None:
    c = _counts(plans, outcomes)
    text = (
        f"{c['cells']} cells: {c['here']} reproducible here, {c['elsewhere']} elsewhere "
        f"(weights or data missing here), {c['never']} never"
    )
    if outcomes:
        text += f"; compared {c['ok'] + c['off']}: {c['ok']} within tolerance, {c['off']} outside"
    say(text)
