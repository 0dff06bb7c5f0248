"""``bench weights list|fetch|verify|where`` for metric weights."""

from __future__ import annotations

import typer

from bench.errors import BenchError
from bench.metrics import weights as W
from bench.weights import cache_root, present

app = typer.Typer(help="Metric weight files: list, fetch, verify, where.", no_args_is_help=True)


@app.command("list")
def list_cmd() -> None:
    """Every weight file, its source and whether it is in the cache."""
    for metric, files in W.METRIC_WEIGHTS.items():
        for wf in files:
            state = "present" if present(wf, cache_root()) else "missing"
            src = wf.source()
            typer.echo(f"{metric:<8} {state:<8} {wf.name:<38} {src}")


@app.command("fetch")
def fetch_cmd(
    names: list[str] = typer.Argument(None, help="Metrics [all with weights]"),
    mirror: str = typer.Option(None, help="Base URL of a mirror [BENCH_WEIGHTS_MIRROR]"),
) -> None:
    """Download (or copy from installed wheels) and verify, then write the cache manifest."""
    for name in names or list(W.METRIC_WEIGHTS):
        paths = W.fetch(name, mirror=mirror)
        typer.echo(f"{name}: {len(paths)} file(s) ready")


@app.command("verify")
def verify_cmd(names: list[str] = typer.Argument(None)) -> None:
    """Check presence and sha256 of each metric's files."""
    bad = 0
    for name in names or list(W.METRIC_WEIGHTS):
        problems = W.verify(name)
        typer.echo(f"{name}: {'OK' if not problems else 'PROBLEMS'}")
        for p in problems:
            typer.echo(f"  {p}", err=True)
        bad += len(problems)
    if bad:
        raise BenchError(f"{bad} weight problem(s)")


@app.command("where")
def where_cmd() -> None:
    """The cache folder (set BENCH_CACHE to move it)."""
    typer.echo(str(cache_root()))
