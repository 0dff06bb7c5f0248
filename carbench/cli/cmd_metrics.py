"""``bench metrics [show NAME]``: every metric with direction, kind, variant id and weight status;
one metric's variants and its ``@N`` border option."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Metrics: list (direction, FR/NR, weights, convention) or show one's variants.",
    invoke_without_command=True,
)


@app.callback()
def metrics_cmd(ctx: typer.Context) -> None:
    """List metrics: name[:variant], direction, FR/NR, decimals, weights, description."""
    if ctx.invoked_subcommand is not None:
        return
    from carbench.bench.metrics.registry import METRICS, default_spec
    from carbench.bench.metrics.weight_files import missing_files
    from carbench.core.weights import cache_root

    typer.echo(f"weight cache: {cache_root()}")
    for m in METRICS:
        default = " (default)" if default_spec(m.name) == m else ""
        if not m.weights:
            weights = "none needed"
        else:
            miss = missing_files(m.name)
            weights = "present" if not miss else f"missing {len(miss)} file(s)"
        typer.echo(f"{m.id:<18} {m.arrow} {m.kind}  {weights:<18} {m.description}{default}")


@app.command("show")
def metrics_show(name: str = typer.Argument(..., help="A metric name, e.g. psnr")) -> None:
    """A metric's variants (``name:variant``), the default, and the ``@N`` border option."""
    from carbench.bench.metrics.registry import BORDER, METRICS, default_spec, names
    from carbench.bench.metrics.weight_files import missing_files
    from carbench.core.options import unknown_name

    if name not in names():
        raise unknown_name("metric", name, names())
    rows = [m for m in METRICS if m.name == name]
    d = default_spec(name)
    typer.echo(f"{name}: {d.label}, {d.kind}, {d.arrow}, {d.decimals} decimals in tables")
    for m in rows:
        mark = " (default)" if m == d else ""
        typer.echo(f"  {m.id}{mark}: {m.description}")
    if d.backend == "carbench" and d.score is None:
        typer.echo(f"  @N: {BORDER.describe()} [default: 0] - {BORDER.help}")
    if d.weights:
        miss = missing_files(name)
        typer.echo("  weights: " + ("present" if not miss else f"missing {len(miss)} file(s)"))
