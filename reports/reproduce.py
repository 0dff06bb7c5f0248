"""Published tables as data, checked against carbench's own runs, cell by cell.

The tables live in ``reports/published/<paper>.yaml`` (one file per paper, schema in
docs/reproduce.md). Each file is read into :class:`Cell` objects: dataset, protocol,
degradation id, method (its carbench spec, or why it cannot be run), metric variant id, the
value as printed and so its precision. :func:`load_paper` refuses a file naming an unknown
dataset, protocol, degradation, method (or method option) or metric variant, through the same
parsers the CLI uses.

The pure part - :func:`tolerance` and :func:`compare` - turns our per-set means and the
published strings into :class:`Outcome` rows. :func:`plan_cells` says for each cell whether it
can run here (weights, data, metric weights) and which ``bench run`` job makes it;
:func:`run_jobs` runs those jobs through :func:`bench.run.run` (resumable, sharded) and
:func:`ours_from_store` reads the means back from the result store.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from carbench.core.errors import BenchError

TABLES_DIR = Path(__file__).parent / "published"
NUMBER = re.compile(r"-?\d+(\.\d+)?")


@dataclass(frozen=True)
class Drift:
    """A known source of difference between our run and the authors', as an allowance in units
    of the last printed digit (added to the half unit of rounding)."""

    name: str
    ulps: float
    why: str


#: The known sources of drift a table may name for a method (``drift:``); a method may replace
#: the allowance per metric (``ulps: {psnr: 1.5}``) and must then say why (``why:``).
DRIFTS: dict[str, Drift] = {
    d.name: d
    for d in (
        Drift(
            "none",
            0,
            "no floating-point network between codec and metric, or one whose set mean cannot "
            "move by a printed digit: the printed digit must match",
        ),
        Drift(
            "cpu-gpu",
            1,
            "float32 network on another device or kernel library than the authors' (cuDNN vs "
            "CPU): outputs differ in the last bits, a pixel now and then rounds the other way",
        ),
        Drift(
            "fp16",
            3,
            "half-precision UNet/VAE (the official precision on CUDA): fp16 rounding differs "
            "between devices and from fp32",
        ),
        Drift(
            "unseeded",
            10,
            "diffusion noise from a seed or generator the paper does not state: a set mean "
            "moves by the sampling spread",
        ),
    )
}


@dataclass(frozen=True)
class Cell:
    """One published number and everything needed to make it again."""

    paper: str
    table: str
    dataset: str | None
    protocol: str
    degradation: str | None
    method: str  # the column key in the table file (``dncnn3``, ``osdiff-retrained``)
    label: str  # the method as the paper prints it
    spec: str | None  # carbench method id as stored (``fbcnn:variant=gray``); None: never runs
    metric: str  # metric variant id (``psnr:rgb``) or, for metrics carbench lacks, the label
    printed: str  # the value exactly as printed (``12.30``)
    never: str = ""  # why it can never be reproduced (empty: reproducible somewhere)
    drift: str = "none"
    ulps: float = 0.0  # allowance beyond rounding, in units of the last printed digit
    why: str = ""  # the stated reason for the drift allowance

    @property
    def value(self) -> float:
        return float(self.printed)

    @property
    def decimals(self) -> int:
        """The printed precision: digits after the decimal point."""
        return len(self.printed.partition(".")[2])

    @property
    def key(self) -> tuple:
        """(dataset, protocol, degradation, method id, metric variant): the store's key."""
        return (self.dataset, self.protocol, self.degradation, self.spec, self.metric)

    @property
    def where(self) -> str:
        return f"{self.dataset}/{self.degradation} {self.label} {self.metric}"


@dataclass
class Table:
    paper: str
    id: str
    caption: str
    source: str
    layout: dict[str, list[str]]
    cells: list[Cell]

    @property
    def ref(self) -> str:
        return f"{self.paper}:{self.id}"


@dataclass
class Paper:
    id: str
    title: str
    citation: str
    path: Path
    tables: dict[str, Table]
    aliases: tuple[str, ...] = ()


def tolerance(cell: Cell) -> float:
    """How far our value may lie from the published one and still reproduce it.

    Half a unit in the last printed place (the paper rounded; ``12.30`` stands for anything in
    [12.295, 12.305]) plus the allowance of the cell's known source of drift, also counted in
    units of the last printed place: ``(0.5 + ulps) * 10**-decimals``. ``ulps`` is the named
    drift's (:data:`DRIFTS`: ``none`` 0, ``cpu-gpu`` 1, ``fp16`` 3, ``unseeded`` 10) unless the
    table states another for the method and metric, with its reason.
    """
    return (0.5 + cell.ulps) * 10.0**-cell.decimals


@dataclass(frozen=True)
class Outcome:
    """A cell compared (``ok`` / ``off``) or not run (``not-run`` with the reason)."""

    cell: Cell
    status: str  # ok | off | not-run
    ours: float | None = None
    reason: str = ""

    @property
    def delta(self) -> float | None:
        return None if self.ours is None else self.ours - self.cell.value

    @property
    def tol(self) -> float:
        return tolerance(self.cell)

    def as_dict(self) -> dict:
        c = self.cell
        return {
            "table": f"{c.paper}:{c.table}",
            "dataset": c.dataset,
            "protocol": c.protocol,
            "degradation": c.degradation,
            "method": c.spec,
            "label": c.label,
            "metric": c.metric,
            "published": c.printed,
            "ours": self.ours,
            "delta": self.delta,
            "tolerance": self.tol,
            "status": self.status,
            "reason": self.reason,
        }


def compare(
    cells: Iterable[Cell], ours: Mapping[tuple, float], reasons: Mapping[tuple, str] | None = None
) -> list[Outcome]:
    """Each cell against our value for its key (:attr:`Cell.key`): ``ok`` when
    ``|ours - published| <= tolerance(cell)``, ``off`` otherwise, ``not-run`` (with the reason
    from ``reasons`` or the cell's ``never``) when we have no value."""
    reasons = reasons or {}
    out = []
    for c in cells:
        got = ours.get(c.key) if not c.never else None
        if got is None or (isinstance(got, float) and math.isnan(got)):
            why = f"not reproducible: {c.never}" if c.never else reasons.get(c.key, "not run")
            out.append(Outcome(c, "not-run", None, why))
            continue
        ok = abs(got - c.value) <= tolerance(c) + 1e-12  # float noise on the boundary itself
        out.append(Outcome(c, "ok" if ok else "off", float(got)))
    return out


# --- reading and checking the table files -----------------------------------------------------

PAPER_KEYS = {"paper", "aliases", "title", "citation", "methods", "tables"}
TABLE_KEYS = {
    "caption",
    "source",
    "protocol",
    "dataset",
    "degradation",
    "metrics",
    "layout",
    "methods",
    "rows",
}
ROW_KEYS = {"dataset", "degradation", "protocol", "values", "never"}
METHOD_KEYS = {"label", "spec", "never", "drift", "ulps", "why"}
METRIC_KEYS = {"label", "never"}
DIMS = {"dataset", "degradation", "method", "metric"}


def _unknown(where: str, got: Mapping, allowed: set[str]) -> list[str]:
    extra = sorted(set(got) - allowed)
    return (
        [f"{where}: unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}"]
        if extra
        else []
    )


class _Checker:
    """Validates names once each through carbench's own parsers; collects every problem."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self._seen: dict[tuple[str, str], str | None] = {}

    def _once(self, kind: str, name: str, fn) -> str | None:
        if (kind, name) not in self._seen:
            try:
                self._seen[(kind, name)] = fn(name)
            except (BenchError, ValueError, TypeError) as e:
                self._seen[(kind, name)] = None
                self.problems.append(f"{kind} {name!r}: {str(e).splitlines()[0]}")
        return self._seen[(kind, name)]

    def dataset(self, name: str) -> None:
        from carbench.bench.datasets import get_info

        def check(n):
            info = get_info(n)
            if info.name != n:
                raise BenchError(f"write it as {info.name!r}")
            return n

        self._once("dataset", name, check)

    def protocol(self, name: str) -> None:
        from carbench.bench.protocols import get_protocol

        self._once("protocol", name, get_protocol)

    def degradation(self, name: str) -> None:
        from carbench.degradations import from_id

        self._once("degradation", name, lambda n: from_id(n).id)

    def method(self, spec: str) -> str | None:
        """The method's id as the store records it (canonical options), None if refused."""
        from carbench import methods

        def check(s):
            m = methods.get(s)  # an unknown method or option raises here
            m.variant  # noqa: B018 - an unknown variant raises here
            return m.id

        return self._once("method", spec, check)

    def metric(self, variant: str) -> None:
        from carbench.bench.metrics.registry import parse_metric

        def check(v):
            if ":" not in v:
                raise BenchError(f"name the variant (the convention), e.g. {parse_metric(v).id}")
            got = parse_metric(v).id
            if got != v:
                raise BenchError(f"not canonical; write it as {got!r}")
            return got

        self._once("metric", variant, check)


def _methods(where: str, raw: Mapping, chk: _Checker) -> dict[str, dict]:
    out = {}
    for key, m in (raw or {}).items():
        w = f"{where}: method {key}"
        if not isinstance(m, Mapping):
            chk.problems.append(f"{w}: expected a mapping")
            continue
        chk.problems += _unknown(w, m, METHOD_KEYS)
        if not m.get("label"):
            chk.problems.append(f"{w}: no label (the method as the paper prints it)")
        if bool(m.get("spec")) == bool(m.get("never")):
            chk.problems.append(f"{w}: give exactly one of spec (carbench method) or never (why)")
        if m.get("spec"):
            m = {**m, "id": chk.method(str(m["spec"]))}
        drift = m.get("drift", "none")
        if drift not in DRIFTS:
            chk.problems.append(f"{w}: unknown drift {drift!r}; known: {', '.join(DRIFTS)}")
        if m.get("ulps") and not m.get("why"):
            chk.problems.append(f"{w}: an ulps allowance needs its reason (why)")
        out[key] = dict(m)
    return out


def _metrics(where: str, raw, chk: _Checker) -> list[dict]:
    out = []
    if not isinstance(raw, list) or not raw:
        chk.problems.append(f"{where}: metrics must be a non-empty list")
        return out
    for m in raw:
        if isinstance(m, Mapping):
            chk.problems += _unknown(f"{where}: metric", m, METRIC_KEYS)
            if not (m.get("label") and m.get("never")):
                chk.problems.append(
                    f"{where}: a metric carbench does not compute needs a label and never (why)"
                )
            out.append({"id": str(m.get("label", "?")), "never": str(m.get("never", ""))})
        else:
            chk.metric(str(m))
            out.append({"id": str(m), "never": ""})
    return out


def _allowance(method: Mapping, metric: str) -> float:
    ulps = method.get("ulps") or {}
    name = metric.partition(":")[0]
    return float(ulps.get(metric, ulps.get(name, DRIFTS[method.get("drift", "none")].ulps)))


def _table(paper: str, tid: str, t: Mapping, shared: dict[str, dict], chk: _Checker) -> Table:
    where = f"{paper}:{tid}"
    chk.problems += _unknown(where, t, TABLE_KEYS)
    for k in ("caption", "source", "protocol", "rows"):
        if not t.get(k):
            chk.problems.append(f"{where}: no {k}")
    meths = {**shared, **_methods(where, t.get("methods"), chk)}
    mets = _metrics(where, t.get("metrics"), chk)
    layout = dict(t.get("layout") or {"rows": ["dataset", "degradation"], "columns": ["method"]})
    for side in ("rows", "columns"):
        bad = set(layout.get(side) or []) - DIMS
        if bad:
            chk.problems.append(f"{where}: layout {side} has unknown dimension(s) {sorted(bad)}")
    cells: list[Cell] = []
    for i, row in enumerate(t.get("rows") or []):
        w = f"{where}: row {i + 1}"
        if not isinstance(row, Mapping):
            chk.problems.append(f"{w}: expected a mapping")
            continue
        chk.problems += _unknown(w, row, ROW_KEYS)
        ds = row.get("dataset", t.get("dataset"))
        deg = row.get("degradation", t.get("degradation"))
        proto = str(row.get("protocol", t.get("protocol", "")))
        for key, text in (row.get("values") or {}).items():
            m = meths.get(key)
            if m is None:
                chk.problems.append(f"{w}: method {key!r} is not declared under methods")
                continue
            if not isinstance(text, str):
                chk.problems.append(
                    f"{w}: {key}: values must be quoted strings as printed (got {text!r}: "
                    "YAML would drop trailing zeros)"
                )
                continue
            tokens = text.split()
            if len(tokens) != len(mets):
                chk.problems.append(
                    f"{w}: {key}: {len(tokens)} value(s) for {len(mets)} metric(s) ({text!r})"
                )
                continue
            for tok, met in zip(tokens, mets, strict=True):
                if tok == "-":
                    continue  # the paper prints no value here
                if not NUMBER.fullmatch(tok):
                    chk.problems.append(f"{w}: {key}: {tok!r} is not a number")
                    continue
                never = m.get("never") or met["never"] or row.get("never") or ""
                if not never:
                    if ds is None or deg is None:
                        chk.problems.append(
                            f"{w}: {key}: a runnable cell needs dataset and degradation"
                        )
                        continue
                    chk.dataset(str(ds))
                    chk.degradation(str(deg))
                    chk.protocol(proto)
                cells.append(
                    Cell(
                        paper=paper,
                        table=tid,
                        dataset=None if ds is None else str(ds),
                        protocol=proto,
                        degradation=None if deg is None else str(deg),
                        method=key,
                        label=str(m.get("label", key)),
                        spec=None if never else m.get("id"),
                        metric=met["id"],
                        printed=tok,
                        never=str(never),
                        drift=str(m.get("drift", "none")),
                        ulps=_allowance(m, met["id"]) if m.get("drift", "none") in DRIFTS else 0,
                        why=str(m.get("why", "")),
                    )
                )
    seen: dict[tuple, Cell] = {}
    for c in cells:
        k = (c.dataset, c.protocol, c.degradation, c.method, c.metric)
        if k in seen:
            chk.problems.append(
                f"{where}: two values for {c.where}: {seen[k].printed}, {c.printed}"
            )
        seen[k] = c
    return Table(paper, tid, str(t.get("caption", "")), str(t.get("source", "")), layout, cells)


def load_paper(path: Path) -> Paper:
    """Read and check one table file; raises BenchError listing every problem found."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise BenchError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, Mapping) or not data.get("paper"):
        raise BenchError(f"{path}: not a published-table file (no 'paper:')")
    chk = _Checker()
    chk.problems += _unknown(str(data["paper"]), data, PAPER_KEYS)
    shared = _methods(str(data["paper"]), data.get("methods"), chk)
    tables = {
        str(tid): _table(str(data["paper"]), str(tid), t or {}, shared, chk)
        for tid, t in (data.get("tables") or {}).items()
    }
    if not tables:
        chk.problems.append(f"{data['paper']}: no tables")
    if chk.problems:
        raise BenchError(f"{path}: refused:\n  " + "\n  ".join(chk.problems))
    return Paper(
        str(data["paper"]),
        str(data.get("title", "")),
        str(data.get("citation", "")),
        path,
        tables,
        tuple(str(a) for a in data.get("aliases") or ()),
    )


def papers(folder: Path | None = None) -> dict[str, Paper]:
    """Every table file of ``folder`` (default: the shipped ``reports/published``), by id."""
    out: dict[str, Paper] = {}
    for f in sorted(Path(folder or TABLES_DIR).glob("*.yaml")):
        p = load_paper(f)
        for name in (p.id, *p.aliases):
            if name in out:
                raise BenchError(f"{f}: paper id {name!r} is also used by {out[name].path}")
            out[name] = p
    return out


def paper_list(folder: Path | None = None) -> list[Paper]:
    """Each paper once (``papers`` also lists them under their aliases)."""
    return list({p.id: p for p in papers(folder).values()}.values())


def select(ref: str, folder: Path | None = None) -> list[Table]:
    """``paper`` (every table) or ``paper:table`` -> the tables."""
    name, _, tid = ref.partition(":")
    known = papers(folder)
    if name not in known:
        raise BenchError(f"unknown paper {name!r}; known: {', '.join(sorted(known))}")
    paper = known[name]
    if not tid:
        return list(paper.tables.values())
    if tid not in paper.tables:
        raise BenchError(f"{paper.id} has no table {tid!r}; known: {', '.join(paper.tables)}")
    return [paper.tables[tid]]


def published(ref: str, folder: Path | None = None) -> list[Cell]:
    """The cells of ``paper:table`` (tests read published values through this)."""
    return [c for t in select(ref, folder) for c in t.cells]


# --- what can run here, and running it ---------------------------------------------------------


@dataclass
class Job:
    """One ``bench run`` call: a method on a dataset under a protocol, some degradations and
    metrics."""

    dataset: str
    protocol: str
    spec: str
    degradations: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)

    @property
    def command(self) -> str:
        return (
            f"bench run --methods {self.spec} -d {self.dataset} -p {self.protocol} "
            f"-g {','.join(self.degradations)} --metrics {','.join(self.metrics)}"
        )


@dataclass
class CellPlan:
    cell: Cell
    status: str  # runnable | needs-weights | needs-data | never
    problems: list[str] = field(default_factory=list)  # one line per missing thing
    job: Job | None = None

    @property
    def reason(self) -> str:
        return "; ".join(self.problems)

    @property
    def where(self) -> str:
        """here (runs in this environment) | elsewhere (with weights/data) | never."""
        return {"runnable": "here", "never": "never"}.get(self.status, "elsewhere")


def _method_problem(spec: str) -> str:
    """'' when the method's weights are present, else the files to fetch (one line each)."""
    from carbench import methods
    from carbench.core.errors import WeightsMissingError

    m = methods.get(spec)
    try:
        m.weight_paths()
    except WeightsMissingError as e:
        lines = str(e).splitlines()[1:] or [str(e)]
        return "needs weights: " + "; ".join(x.strip() for x in lines)
    return ""


def _metric_problem(variant: str) -> str:
    from carbench.bench.metrics.registry import parse_metric
    from carbench.bench.metrics.weight_files import missing_files

    spec = parse_metric(variant)
    if spec.backend == "carbench":
        return ""
    missing = missing_files(spec.name)
    if missing:
        return (
            f"needs metric weights ({spec.id}): "
            + "; ".join(missing)
            + f" - run `bench weights fetch {spec.name}`"
        )
    return ""


def _data_problem(name: str, ws_root: Path, data_root: Path | None) -> str:
    from carbench.bench.datasets import resolve

    try:
        resolve(name, ws_root, data_root)
    except BenchError as e:
        return f"needs data: {e}"
    return ""


def plan_cells(
    cells: Iterable[Cell], ws_root: Path, data_root: Path | None = None
) -> list[CellPlan]:
    """Each cell's status here and, for runnable ones, the job that makes it (jobs are shared:
    one per (dataset, protocol, method, metric set))."""
    cache: dict[tuple[str, str], str] = {}

    def problem(kind: str, name: str) -> str:
        if (kind, name) not in cache:
            fn = {"method": _method_problem, "metric": _metric_problem}.get(kind)
            cache[(kind, name)] = fn(name) if fn else _data_problem(name, ws_root, data_root)
        return cache[(kind, name)]

    plans: list[CellPlan] = []
    jobs: dict[tuple, Job] = {}
    for c in cells:
        if c.never:
            plans.append(CellPlan(c, "never", [f"not reproducible: {c.never}"]))
            continue
        assert c.spec and c.dataset and c.degradation
        weights = [w for w in (problem("method", c.spec), problem("metric", c.metric)) if w]
        data = problem("data", c.dataset)
        status = "needs-weights" if weights else "needs-data" if data else "runnable"
        plan = CellPlan(c, status, [*weights, data] if data else weights)
        if status == "runnable":
            job = jobs.setdefault(
                (c.dataset, c.protocol, c.spec), Job(c.dataset, c.protocol, c.spec)
            )
            if c.degradation not in job.degradations:
                job.degradations.append(c.degradation)
            if c.metric not in job.metrics:
                job.metrics.append(c.metric)
            plan.job = job
        plans.append(plan)
    return plans


def jobs_of(plans: Iterable[CellPlan]) -> list[Job]:
    return list({id(p.job): p.job for p in plans if p.job is not None}.values())


def run_jobs(
    ws,
    jobs: list[Job],
    data_root: Path | None = None,
    device: str | None = None,
    n_jobs: int = 1,
    shard=None,
    progress: bool = False,
    echo=print,
) -> list[str]:
    """Run every job through :func:`bench.run.run` (what exists is skipped; a killed run
    resumes); returns the failure messages."""
    from carbench import methods
    from carbench.bench.datasets import resolve
    from carbench.bench.metrics.registry import parse_metric
    from carbench.bench.metrics.runner import MetricRunner
    from carbench.bench.metrics.scorers import pick_device
    from carbench.bench.protocols import get_protocol
    from carbench.bench.run import run
    from carbench.core.shard import ALL
    from carbench.degradations import from_id

    failures: list[str] = []
    for job in jobs:
        adapter = methods.get(job.spec)
        specs = [parse_metric(m) for m in job.metrics]
        needs_torch = adapter.uses_torch or any(s.backend != "carbench" for s in specs)
        dev = device or (pick_device() if needs_torch else "cpu")
        runner = MetricRunner(specs, dev, cache_dir=ws.root / "cache" / "metrics")
        echo(f"running: {job.command}")
        try:
            results = run(
                ws,
                [resolve(job.dataset, ws.root, data_root)],
                get_protocol(job.protocol),
                [from_id(d) for d in job.degradations],
                [adapter],
                runner,
                device=dev,
                jobs=n_jobs,
                progress=progress,
                shard=shard or ALL,
            )
        finally:
            runner.close()
        for _, summary in results:
            failures += summary.failed
    return failures


def ours_from_store(ws_root: Path, cells: Iterable[Cell], data_root: Path | None = None):
    """(our means by cell key, reasons for keys without a complete mean). A mean counts only
    when every image of the set is scored (a shard or a failed image leaves it incomplete)."""
    from carbench.bench.datasets import resolve
    from carbench.bench.store import ResultStore
    from carbench.reports.tables import summarize

    cells = [c for c in cells if not c.never]
    if not cells:
        return {}, {}
    store = ResultStore(Path(ws_root) / "results")
    rows = store.load(
        dataset=sorted({c.dataset for c in cells}), method=sorted({c.spec for c in cells})
    )
    summary = summarize(rows) if not rows.empty else None
    means: dict[tuple, tuple[float, int]] = {}
    if summary is not None:
        for r in summary.itertuples(index=False):
            means[(r.dataset, r.protocol, r.degradation, r.method, r.variant)] = (r.mean, r.n)
    sizes: dict[str, int] = {}
    ours: dict[tuple, float] = {}
    reasons: dict[tuple, str] = {}
    for c in cells:
        if c.key not in means:
            continue
        mean, n = means[c.key]
        if c.dataset not in sizes:
            try:
                sizes[c.dataset] = len(resolve(c.dataset, Path(ws_root), data_root).ids())
            except BenchError:
                sizes[c.dataset] = n
        if n < sizes[c.dataset]:
            reasons[c.key] = f"incomplete: {n} of {sizes[c.dataset]} images scored"
        else:
            ours[c.key] = float(mean)
    return ours, reasons
