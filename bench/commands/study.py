"""``bench study create|serve``: human rating and pairwise (2AFC) studies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.commands.common import WorkspaceOpt, workspace

app = typer.Typer(no_args_is_help=True, help="Human studies: create, serve.")


@app.command("create")
def create_cmd(
    folder: Annotated[Path, typer.Argument(help="New study folder")],
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated method ids")],
    mode: Annotated[str, typer.Option("--mode", help="rating | pairwise")] = "rating",
    dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d")] = None,
    degradation: Annotated[list[str] | None, typer.Option("--degradation", "-g")] = None,
    anchors: Annotated[str, typer.Option(help="Comma-separated: gt, jpeg")] = "",
    images: Annotated[int | None, typer.Option("--images", help="Images per set")] = None,
    crop: Annotated[int | None, typer.Option(help="Seeded random crops of this size")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    repeats: Annotated[int, typer.Option(help="Items repeated per rater")] = 2,
    raters: Annotated[int, typer.Option(help="Rater links to create")] = 20,
    scale_min: Annotated[int, typer.Option()] = 1,
    scale_max: Annotated[int, typer.Option()] = 10,
    workspace_dir: WorkspaceOpt = None,
) -> None:
    """Build a study folder from outputs already in the workspace and print the rater links."""
    from bench.study.create import create_study
    from bench.study.db import StudyDB

    study = create_study(
        workspace(workspace_dir),
        folder,
        mode,
        [m for m in methods.split(",") if m],
        dataset,
        degradation,
        [a for a in anchors.split(",") if a],
        images,
        crop,
        seed,
        repeats,
        (scale_min, scale_max),
        name=folder.name,
    )
    db = StudyDB(study.db_path)
    links = db.add_raters(study, raters)
    db.close()
    lines = [f"{name} /r/{token}" for name, token in links]
    (folder / "links.txt").write_text(
        f"admin /admin/{study.config.admin_token}\n" + "\n".join(lines) + "\n"
    )
    typer.echo(
        f"study {folder}: {len(study.stimuli)} images, {len(study.items)} items, "
        f"{len(links)} raters; links in {folder / 'links.txt'}"
    )


@app.command("serve")
def serve_cmd(
    folder: Annotated[Path, typer.Argument(help="Study folder")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8765,
) -> None:
    """Serve a study (uvicorn); answers go to the folder's SQLite database (WAL)."""
    import logging

    import uvicorn

    from bench.study.model import Study
    from bench.study.server import create_app

    study = Study.load(folder, verify=True)
    handler = logging.FileHandler(folder / "server.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("bench.study.server").addHandler(handler)
    logging.getLogger("bench.study.server").setLevel(logging.INFO)
    typer.echo(f"admin: http://{host}:{port}/admin/{study.config.admin_token}")
    uvicorn.run(create_app(study), host=host, port=port, log_level="warning")


@app.command("report")
def report_cmd(
    folder: Annotated[Path, typer.Argument(help="Study folder")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="latex | html | markdown | csv")] = (
        "markdown"
    ),
    exclude_outliers: Annotated[bool, typer.Option(help="Drop flagged raters")] = False,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples")] = 1000,
    seed: Annotated[int, typer.Option()] = 0,
    store: Annotated[
        Path | None, typer.Option("--store", help="Workspace whose result store gets MOS rows")
    ] = None,
) -> None:
    """MOS (rating) or Bradley-Terry scores (pairwise) with 95% intervals, rater consistency."""
    import time

    from bench.errors import BenchError
    from bench.study.model import Study
    from bench.study.stats import answers_frame, bradley_terry, consistency, mos

    study = Study.load(folder)
    df = answers_frame(study)
    if df.empty:
        raise BenchError(f"{folder}: no answers yet")
    flags = consistency(df)
    typer.echo(flags.to_string(index=False))
    if exclude_outliers:
        df = df[~df.rater.isin(flags.rater[flags.outlier])]
    if study.config.mode == "pairwise":
        table = bradley_terry(df, resamples, seed)
        typer.echo(table.to_string(index=False))
        return
    table = mos(df, resamples, seed)
    from reports.model import build_table
    from reports.render import to_latex, to_markdown
    from reports.tables import natural_key

    summary = table.assign(metric="mos", variant="mos", mean=table.mos)
    model = build_table(
        summary,
        f"User study {study.config.name}: MOS ({study.config.scale_min}-{study.config.scale_max})",
        footnote=f"95% intervals: two-way bootstrap over raters and images, {resamples} "
        f"resamples, seed {seed}.",
    )
    ci = {(r.dataset, r.method, r.degradation): (r.lo, r.hi) for r in table.itertuples()}
    for block in model.blocks:
        for row in block.rows:
            for cell, deg in zip(
                row.cells, sorted(set(table.degradation), key=natural_key), strict=False
            ):
                lo_hi = ci.get((block.name, row.key, deg))
                if lo_hi and cell.value is not None:
                    cell.text += f" [{lo_hi[0]:.2f}, {lo_hi[1]:.2f}]"
    if fmt == "csv":
        typer.echo(table.to_csv(index=False), nl=False)
    elif fmt == "latex":
        typer.echo(to_latex(model), nl=False)
    elif fmt == "html":
        from reports.render import table_html

        typer.echo(table_html(model, "mos"))
    else:
        typer.echo(to_markdown(model), nl=False)
    if store is not None:
        from bench.store import ResultStore

        first = df[df.is_repeat == 0]
        per_image = first.groupby(["dataset", "protocol", "degradation", "method", "image"])
        rows = [
            {
                **dict(
                    zip(["dataset", "protocol", "degradation", "method", "image"], k, strict=True)
                ),
                "metric": "mos",
                "variant": "mos",
                "value": float(g.value.mean()),
                "higher_better": True,
                "kind": "study",
                "implementation": f"study {folder.name}",
                "created": time.time(),
            }
            for k, g in per_image
        ]
        ResultStore(Path(store) / "results").append(rows)
        typer.echo(f"stored {len(rows)} MOS rows in {store}/results")
