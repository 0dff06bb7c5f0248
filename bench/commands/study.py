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
