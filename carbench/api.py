"""carbench's Python API: the functions the ``bench`` command line calls.

    import carbench
    carbench.generate("LIVE1", "jpeg:q=5,10,20")
    run = carbench.run("codiff,fbcnn", dataset="LIVE1")         # method ids
    run = carbench.run(my_module, dataset="sample", degradations="jpeg:q=10")   # a model
    df = carbench.results()                                     # the store as a DataFrame
    print(carbench.report("latex"))

Every function takes the workspace (default ``BENCH_WORKSPACE`` or ``./bench-workspace``) and
works exactly as its ``bench`` command: the same checks before any work, the same resumable
files, the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carbench.core.errors import BenchError

if TYPE_CHECKING:
    import pandas as pd

    from carbench.bench.generate import GenerateSummary
    from carbench.bench.run import RunSummary

Echo = Callable[[str, bool], None]  # (message, is_error)


def _quiet(_msg: str, _err: bool) -> None:
    pass


def _workspace(path: str | Path | None):
    from carbench.core.workspace import Workspace, default_workspace

    return Workspace(Path(path) if path else default_workspace())


def _list(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def generate(
    dataset: str | Sequence[str] | None = None,
    degradations: str | Sequence[str] | None = None,
    protocol: str | None = None,
    *,
    suite: str | None = None,
    workspace: str | Path | None = None,
    data_root: str | Path | None = None,
    jobs: int = 1,
    backend: str = "threading",
    shard: str | None = None,
    on_error: str = "skip",
    progress: bool = False,
    echo: Echo = _quiet,
) -> GenerateResult:
    """Degraded test sets (``bench generate``): what was made, per dataset."""
    from carbench.bench.datasets import resolve
    from carbench.bench.generate import generate as generate_set
    from carbench.bench.protocols import get_protocol
    from carbench.bench.suites import plan
    from carbench.core.shard import parse_shard

    ws = _workspace(workspace)
    ws.ensure_writable()
    names, proto_name, degs, note = plan(_list(dataset), protocol, suite, _list(degradations))
    if note:
        echo(note, True)
    proto, part = get_protocol(proto_name), parse_shard(shard)
    root = Path(data_root) if data_root else None
    out = GenerateResult(ws.root, proto.name, [d.id for d in degs], part.tag)
    for name in names:
        ds = resolve(name, ws.root, root)
        out.summaries[ds.name] = generate_set(
            ws,
            ds,
            proto,
            degs,
            jobs=jobs,
            backend=backend,
            on_error=on_error,
            progress=progress,
            shard=part,
        )
        out.set_dirs[ds.name] = ws.set_dir(ds.name, proto.name)
    return out


@dataclass
class GenerateResult:
    """What one ``generate`` made: per dataset its summary and where its sets are."""

    workspace: Path
    protocol: str
    degradations: list[str]
    shard: str = ""  # the shard's tag in names ("" for the whole set)
    summaries: dict[str, GenerateSummary] = field(default_factory=dict)
    set_dirs: dict[str, Path] = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        return [msg for s in self.summaries.values() for msg in s.failed]


@dataclass
class RunResult:
    """What one ``run`` did: per (method, set) summaries, the metrics, where it ran."""

    workspace: Path
    methods: list[str]
    datasets: list[str]
    protocol: str
    degradations: list[str]
    summaries: list[tuple[str, RunSummary]] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    skipped_metrics: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    finished: bool = False  # everything was in the store already: nothing ran

    @property
    def failures(self) -> list[str]:
        return [msg for _, s in self.summaries for msg in s.failed]

    def results(self) -> pd.DataFrame:
        """The store's rows of this run's methods, sets and degradations."""
        return results(
            self.workspace,
            method=self.methods,
            dataset=self.datasets,
            protocol=self.protocol,
            degradation=self.degradations,
        )


def _adapters(methods: Any, suite: str | None, name: str | None, echo: Echo) -> list:
    """Method ids (``"codiff,fbcnn:qf=10"``, a list of them), adapters, callables or modules ->
    adapters; a suite's paper options applied to ids the user left them off."""
    import carbench.methods as registry
    from carbench.bench.suites import get_suite
    from carbench.methods.base import Method
    from carbench.methods.callable import CallableMethod

    if isinstance(methods, str) or not isinstance(methods, Sequence):
        items = split_methods(methods) if isinstance(methods, str) else [methods]
    else:
        items = [t for m in methods for t in (split_methods(m) if isinstance(m, str) else [m])]
    out = []
    for item in items:
        if isinstance(item, Method):
            out.append(item)
        elif isinstance(item, str):
            if suite:
                spec = get_suite(suite).apply_method_options(item)
                if spec != item:
                    echo(f"suite {suite}: {item} runs as {spec} (as its paper)", False)
                item = spec
            out.append(registry.get(item))
        else:
            out.append(CallableMethod(item, name if len(items) == 1 else None))
    return out


def split_methods(text: str) -> list[str]:
    """``codiff,fbcnn:qf=10,mode=x,jpeg`` -> [codiff, fbcnn:qf=10,mode=x, jpeg]."""
    out: list[str] = []
    for tok in filter(None, (t.strip() for t in text.split(","))):
        if "=" in tok and ":" not in tok and out:
            out[-1] += "," + tok
        else:
            out.append(tok)
    return out


def run(
    methods: Any = "jpeg",
    dataset: str | Sequence[str] | None = None,
    degradations: str | Sequence[str] | None = None,
    protocol: str | None = None,
    *,
    suite: str | None = None,
    metrics: str = "psnr,ssim,psnrb",
    name: str | None = None,
    workspace: str | Path | None = None,
    data_root: str | Path | None = None,
    device: str | None = None,
    devices: str | None = None,
    dtype: str = "auto",
    tile: int = 0,
    jobs: int = 1,
    backend: str = "threading",
    shard: str | None = None,
    on_error: str = "skip",
    progress: bool = False,
    echo: Echo = _quiet,
) -> RunResult:
    """Generate what is missing, restore with each method, score, append to the store
    (``bench run``). ``methods``: ids, or a Python callable on uint8 images / a
    ``torch.nn.Module`` on [0, 1] tensors (named ``name``, else its ``__name__``/class)."""
    from carbench.bench.datasets import resolve
    from carbench.bench.metrics.registry import parse_metrics
    from carbench.bench.metrics.runner import MetricRunner
    from carbench.bench.metrics.scorers import pick_device
    from carbench.bench.metrics.weight_files import missing_files
    from carbench.bench.protocols import get_protocol
    from carbench.bench.run import finished
    from carbench.bench.run import run as run_sets
    from carbench.bench.suites import plan
    from carbench.core.device_pool import parse_devices
    from carbench.core.shard import parse_shard
    from carbench.methods.torch_utils import DTYPE_CHOICES

    ws = _workspace(workspace)
    ws.ensure_writable()
    names, proto_name, degs, note = plan(_list(dataset), protocol, suite, _list(degradations))
    if note:
        echo(note, True)
    proto = get_protocol(proto_name)
    if dtype not in DTYPE_CHOICES:
        raise BenchError(f"--dtype must be one of {', '.join(DTYPE_CHOICES)}, got {dtype!r}")
    adapters = _adapters(methods, suite, name, echo)
    for a in adapters:
        a.tile = tile
    root = Path(data_root) if data_root else None
    sets = [resolve(n, ws.root, root) for n in names]
    part = parse_shard(shard)
    out = RunResult(
        ws.root, [a.id for a in adapters], [d.name for d in sets], proto.name, [d.id for d in degs]
    )
    specs, lenient = parse_metrics(metrics)
    # a finished re-run answers from the store alone: no device is picked (torch costs ~2 s to
    # import), no metric or model made ready
    wanted = {s.id for s in specs if not (lenient and missing_files(s.name))}
    done = finished(ws, sets, proto, degs, adapters, wanted, part)
    if done is not None:
        from carbench.bench.run import RunSummary

        out.metrics, out.finished = sorted(wanted), True
        out.summaries = [(label, RunSummary()) for label in done]
        echo(f"metrics: {', '.join(out.metrics) or 'none'} (all in the store)", False)
        return out
    needs_torch = any(a.uses_torch for a in adapters) or any(s.backend != "carbench" for s in specs)
    dev = device or (pick_device() if needs_torch else "cpu")
    restore_devices = parse_devices(devices, dev)
    if len(restore_devices) == 1 and device is None:
        dev = restore_devices[0]  # --devices cuda:1 alone is --device cuda:1
    runner = MetricRunner(specs, dev, lenient=lenient, cache_dir=ws.root / "cache" / "metrics")
    out.device, out.skipped_metrics = dev, dict(runner.skipped)
    out.metrics = [s.id for s in runner.specs]
    for metric_id, reason in runner.skipped.items():
        echo(f"skipped metric {metric_id}: {reason}", True)
    echo(f"metrics: {', '.join(out.metrics) or 'none'} on {dev}", False)
    if len(restore_devices) > 1 and needs_torch:
        echo(f"restoring on {', '.join(restore_devices)} (one worker process each)", False)
    try:
        out.summaries = run_sets(
            ws,
            sets,
            proto,
            degs,
            adapters,
            runner,
            device=dev,
            dtype=dtype,
            jobs=jobs,
            on_error=on_error,
            progress=progress,
            backend=backend,
            shard=part,
            devices=restore_devices,
        )
    finally:
        runner.close()
    return out


def results(workspace: str | Path | None = None, **filters: str | Sequence[str]) -> pd.DataFrame:
    """The result store as a pandas DataFrame, one row per (dataset, protocol, degradation,
    method, image, metric variant), latest per key; ``filters`` select column values."""
    from carbench.bench.store import ResultStore

    root = Path(workspace) if workspace else _workspace(None).root
    return ResultStore(root / "results").load(**filters)


def report(
    format: str = "csv",
    workspace: str | Path | None = None,
    *,
    table: str = "auto",
    dataset: Sequence[str] | None = None,
    method: Sequence[str] | None = None,
    standalone: bool = False,
    ci: int = 0,
    seed: int = 0,
    ci_style: str = "brackets",
) -> str:
    """The store as a paper table (``bench report``): csv, latex, markdown or html text."""
    from carbench.reports.build import render_report
    from carbench.reports.ci import check_style
    from carbench.reports.presets import FORMATS

    if format not in FORMATS:
        raise BenchError(f"unknown report format {format!r}; available: {', '.join(FORMATS)}")
    check_style(ci_style)
    ws = _workspace(workspace)
    rows = results(ws.root, dataset=dataset, method=method)
    if rows.empty:
        raise BenchError("the result store is empty; run `bench run` first")
    return render_report(rows, format, table, ws, standalone, ci, seed, ci_style)
