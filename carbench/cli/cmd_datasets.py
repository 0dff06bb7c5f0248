"""``bench datasets list|fetch|verify|hash``."""

from __future__ import annotations

from pathlib import Path

import typer

from carbench.cli.options import DataRootOpt, WorkspaceOpt, workspace
from carbench.core.errors import BenchError

app = typer.Typer(help="Test sets: list, fetch, verify.", no_args_is_help=True)


@app.command("list")
def list_cmd(workspace_dir: WorkspaceOpt = None, data_root: DataRootOpt = None) -> None:
    """Registered datasets, where they are found, and the paper suites."""
    from carbench.bench.datasets import registry, resolve
    from carbench.bench.suites import suites

    ws = workspace(workspace_dir)
    for info in registry().values():
        try:
            where = (
                str(resolve(info.name, ws.root, data_root).folder)
                if not info.embedded
                else "embedded"
            )
        except BenchError:
            where = "not on disk (bench datasets fetch " + info.name + ")"
        count = info.count if info.count is not None else "?"
        typer.echo(f"{info.name:<11} {info.color:<4} {count:>4} images  {where}")
        typer.echo(f"{'':<11} {info.description}")
    typer.echo("\nsuites:")
    for s in suites().values():
        typer.echo(
            f"  {s.name:<15} {s.protocol:<7} {','.join(s.datasets)}: "
            f"{' '.join(s.degradations)}  - {s.description}"
        )


@app.command("fetch")
def fetch_cmd(
    name: str,
    workspace_dir: WorkspaceOpt = None,
    mirror: str = typer.Option(
        None, help="Base URL of a mirror with the same file names [env BENCH_DATASETS_MIRROR]"
    ),
) -> None:
    """Download, verify and unpack a registered set into WORKSPACE/sources/NAME."""
    from carbench.bench.datasets import fetch

    ds = fetch(name, workspace(workspace_dir).root, mirror)
    typer.echo(f"{ds.name}: {len(ds.images)} images verified in {ds.folder}")


@app.command("verify")
def verify_cmd(
    name: str, workspace_dir: WorkspaceOpt = None, data_root: DataRootOpt = None
) -> None:
    """Check a set's file names, count and pixel hashes; name every missing or altered file."""
    from carbench.bench.datasets import resolve, verify

    ds = resolve(name, workspace(workspace_dir).root, data_root)
    problems = verify(ds)
    for p in problems:
        typer.echo(f"  {p}", err=True)
    if problems:
        raise BenchError(f"{ds.name} ({ds.folder}): {len(problems)} problem(s)")
    hashed = "pixel hashes match" if ds.info and ds.info.checksums else "no pixel hashes registered"
    typer.echo(f"{ds.name}: OK, {len(ds.images)} images in {ds.folder} ({hashed})")


@app.command("hash")
def hash_cmd(folder: Path) -> None:
    """Print pixel sha256 lines for a folder (the format of bench/checksums/NAME.txt)."""
    from carbench.bench.datasets import pixel_sha256
    from carbench.core.imageio import list_images, read_image

    for p in list_images(folder):
        typer.echo(f"{pixel_sha256(read_image(p).pixels)}  {p.stem}")
