"""``bench study create|serve``: human rating and pairwise (2AFC) studies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.cli.options import WorkspaceOpt, workspace
from reports.presets import CI_STYLES

app = typer.Typer(no_args_is_help=True, help="Human studies: create, serve, report.")


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
    db: Annotated[
        str, typer.Option("--db", help="postgresql:// URL for the answers [answers.sqlite]")
    ] = "",
    workspace_dir: WorkspaceOpt = None,
) -> None:
    """Build a study folder from outputs already in the workspace; print a summary, then the
    admin link and one link per rater (paths under the server's address, also saved in
    FOLDER/links.txt)."""
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
        db_url=db,
    )
    db = StudyDB.open(study)
    links = db.add_raters(study, raters)
    db.close()
    lines = [f"{name} /r/{token}" for name, token in links]
    (folder / "links.txt").write_text(
        f"admin /admin/{study.config.admin_token}\n" + "\n".join(lines) + "\n"
    )
    typer.echo(
        f"study {folder}: {len(study.stimuli)} images, {len(study.items)} items, "
        f"{len(links)} raters; links (paths under the server's address), also in "
        f"{folder / 'links.txt'}:\n" + (folder / "links.txt").read_text(),
        nl=False,
    )


@app.command("serve")
def serve_cmd(
    folder: Annotated[Path, typer.Argument(help="Study folder")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8765,
) -> None:
    """Serve a study (uvicorn); answers go to the folder's SQLite database (WAL) or the
    PostgreSQL database named at creation (`create --db`)."""
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
    model: Annotated[
        str, typer.Option("--model", help="Pairwise scores: bt (Bradley-Terry) | thurstone")
    ] = "bt",
    exclude_outliers: Annotated[bool, typer.Option(help="Drop flagged raters")] = False,
    min_corr: Annotated[
        float, typer.Option(help="Outlier: correlation with the other raters below this")
    ] = 0.3,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples")] = 1000,
    seed: Annotated[int, typer.Option()] = 0,
    ci_style: Annotated[
        str, typer.Option("--ci-style", help=f"Intervals: {' | '.join(CI_STYLES)}")
    ] = "brackets",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the table here")] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="Workspace whose result store gets the rows")
    ] = None,
) -> None:
    """MOS (rating) or Bradley-Terry/Thurstone scores (pairwise) with 95% intervals in the
    paper layout, rater consistency and outlier flags; optionally into the result store."""
    from bench.core.errors import BenchError
    from bench.study.model import Study
    from bench.study.report import render_study, study_model, study_note
    from bench.study.stats import answers_frame, consistency, mos, pairwise_scores, store_rows
    from reports.build import write_report
    from reports.ci import check_style

    check_style(ci_style)

    study = Study.load(folder)
    df = answers_frame(study)
    if df.empty:
        raise BenchError(f"{folder}: no answers yet")
    flags = consistency(df, min_corr)
    typer.echo(flags.to_string(index=False), err=True)
    dropped = sorted(flags.rater[flags.outlier]) if exclude_outliers else []
    df = df[~df.rater.isin(dropped)]
    if df.empty:
        raise BenchError(
            f"every rater ({', '.join(dropped)}) is flagged as an outlier (correlation with the "
            f"other raters below --min-corr {min_corr}); nothing left to report: rerun without "
            "--exclude-outliers or with a lower --min-corr"
        )
    cfg = study.config
    raters = df.rater.nunique()
    if cfg.mode == "pairwise":
        if model not in ("bt", "thurstone"):
            raise BenchError(f"--model {model!r}: use bt or thurstone")
        table = pairwise_scores(df, model, resamples, seed).rename(columns={"score": "mean"})
        name = "Bradley-Terry log-strength" if model == "bt" else "Thurstone Case V score"
        title = f"User study {cfg.name}: {name} (2AFC, mean zero per set)"
        score = model
    else:
        table = mos(df, resamples, seed).rename(columns={"mos": "mean"})
        title = f"User study {cfg.name}: MOS ({cfg.scale_min}-{cfg.scale_max})"
        score = "mos"
    note = study_note(cfg.mode, raters, resamples, seed, ci_style, dropped)
    text = render_study(table, fmt, study_model(table, score, title, note, ci_style))
    if out is not None:
        write_report(out, text)
        typer.echo(f"wrote {out}", err=True)
    else:
        typer.echo(text, nl=False)
    if store is not None:
        from bench.store import ResultStore

        rows = store_rows(df, cfg.mode, f"study {cfg.name}")
        ResultStore(Path(store) / "results").append(rows)
        typer.echo(f"stored {len(rows)} rows in {store}/results", err=True)
