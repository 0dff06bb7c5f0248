"""``bench metrics``: every metric with direction, kind, variant id and weight status."""

from __future__ import annotations

import typer


def metrics_cmd() -> None:
    """List metrics: name[:variant], direction, FR/NR, decimals, weights, description."""
    from bench.core.weights import cache_root
    from bench.metrics.registry import METRICS, default_spec
    from bench.metrics.weight_files import missing_files

    typer.echo(f"weight cache: {cache_root()}")
    for m in METRICS:
        default = " (default)" if default_spec(m.name) == m else ""
        if not m.weights:
            weights = "none needed"
        else:
            miss = missing_files(m.name)
            weights = "present" if not miss else f"missing {len(miss)} file(s)"
        typer.echo(f"{m.id:<18} {m.arrow} {m.kind}  {weights:<18} {m.description}{default}")
