"""The table model: per-set means pivoted into the papers' layout, with best/second ranks.

Rows are methods (grouped: baseline, CNN, transformer, external, diffusion), blocks are
datasets, column groups are degradations, columns are metrics. Each cell knows its value, its
display text (per-metric decimals) and its rank among the methods of its block other than the
JPEG input and the ground truth (1 = best, 2 = second best; ties share a rank, compared at
display precision).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from carbench.bench.metrics.registry import METRICS, find
from carbench.reports.labels import (
    GROUP_ORDER,
    UNRANKED_GROUPS,
    degradation_label,
    method_group,
    method_label,
    metric_decimals,
    metric_label,
)
from carbench.reports.tables import natural_key


@dataclass
class Column:
    degradation: str
    variant: str  # metric variant id, e.g. lpips:alex-v0.1

    @property
    def metric(self) -> str:
        return self.variant.partition(":")[0]

    @property
    def higher_better(self) -> bool:
        spec = find(self.variant)
        return spec.higher_better if spec else True

    @property
    def decimals(self) -> int:
        return metric_decimals(self.variant)

    @property
    def label(self) -> str:
        return metric_label(self.metric)

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_better else "↓"


@dataclass
class Cell:
    value: float | None
    text: str
    n: int = 0
    rank: int | None = None
    key: tuple | None = None  # (dataset, degradation, method, variant), for --ci
    decimals: int = 4  # of the value in ``text`` (intervals are shown with as many)
    sub: str = ""  # a second, smaller line under the text (``--ci-style below``)


@dataclass
class Row:
    key: str  # method id (paper layout) or degradation id (classic layout)
    label: str
    group: str  # rows of different groups are separated by a rule
    cells: list[Cell]


@dataclass
class Block:
    name: str  # dataset
    protocol: str
    rows: list[Row]


@dataclass
class TableModel:
    """Render-ready: a header row of groups, a header row of columns, blocks of rows."""

    title: str
    headers: list[str]  # one per column, e.g. "LPIPS↓"
    blocks: list[Block]
    groups: list[tuple[str, int]] = field(default_factory=list)  # (label, span) over headers
    corner: tuple[str, str] = ("Dataset", "Method")
    footnote: str = ""
    caption: str = ""
    label: str = ""


def _fmt(value: float | None, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "∞"
    return f"{value:.{decimals}f}"


def build_table(
    summary: pd.DataFrame,
    title: str,
    degradations: list[str] | None = None,
    metrics: list[str] | None = None,
    datasets: list[str] | None = None,
    methods: list[str] | None = None,
    footnote: str = "",
    caption: str = "",
    label: str = "",
) -> TableModel:
    """Pivot ``reports.tables.summarize`` output into a TableModel.

    ``metrics`` are metric names or variant ids; None means all present, in registry order.
    """
    df = summary
    if datasets:
        df = df[df.dataset.isin(datasets)]
    degs = degradations or sorted(df.degradation.unique(), key=natural_key)
    degs = [d for d in degs if d in set(df.degradation)] or degs
    present = list(dict.fromkeys(df.variant))
    order = [m.id for m in METRICS]
    if metrics:
        wanted = []
        for m in metrics:
            wanted += [v for v in present if v == m or v.partition(":")[0] == m] or [
                next((x.id for x in METRICS if x.name == m), m)
            ]
        variants = list(dict.fromkeys(wanted))
    else:
        variants = sorted(present, key=lambda v: order.index(v) if v in order else len(order))
    columns = [Column(d, v) for d in degs for v in variants]
    blocks = []
    ds_order = datasets or sorted(df.dataset.unique(), key=natural_key)
    for ds in ds_order:
        sub = df[df.dataset == ds]
        if sub.empty:
            continue
        lookup = {(r.method, r.degradation, r.variant): (r.mean, r.n) for r in sub.itertuples()}
        meths = methods or list(dict.fromkeys(sub.method))
        meths = sorted(
            meths,
            key=lambda m: (
                GROUP_ORDER.index(method_group(m)) if method_group(m) in GROUP_ORDER else 99
            ),
        )
        rows = []
        for m in meths:
            cells = []
            for col in columns:
                v, n = lookup.get((m, col.degradation, col.variant), (None, 0))
                key = (ds, col.degradation, m, col.variant)
                cells.append(Cell(v, _fmt(v, col.decimals), n, key=key, decimals=col.decimals))
            rows.append(Row(m, method_label(m), method_group(m), cells))
        for j, col in enumerate(columns):
            _mark_partial([r.cells[j] for r in rows])  # first: a partial mean is never ranked
            ranked = [r.cells[j] for r in rows if r.group not in UNRANKED_GROUPS]
            rank_cells(ranked, col.higher_better)
        blocks.append(Block(ds, ", ".join(sorted(set(sub.protocol))), rows))
    groups = []
    for col in columns:
        lab = degradation_label(col.degradation)
        if groups and groups[-1][0] == lab:
            groups[-1] = (lab, groups[-1][1] + 1)
        else:
            groups.append((lab, 1))
    headers = [f"{c.label}{c.arrow}" for c in columns]
    return TableModel(
        title, headers, blocks, groups, ("Dataset", "Method"), footnote, caption, label
    )


PARTIAL = "*"


def _mark_partial(cells: list[Cell]) -> None:
    """Flag means over fewer images than the column's fullest cell (not comparable as is)."""
    full = max((c.n for c in cells), default=0)
    for c in cells:
        if c.value is not None and 0 < c.n < full:
            c.text += PARTIAL


def rank_cells(cells: list[Cell], higher_better: bool, key=None) -> None:
    """Mark best (1) and second best (2); ties (equal at display precision) share a rank."""
    key = key or (lambda c: float(c.text.rstrip(PARTIAL)))
    usable = [
        c
        for c in cells
        if c.value is not None and c.text not in ("–", "∞") and not c.text.endswith(PARTIAL)
    ]
    vals = sorted({key(c) for c in usable}, reverse=higher_better)
    for c in usable:
        v = key(c)
        c.rank = 1 if v == vals[0] else 2 if len(vals) > 1 and v == vals[1] else None


CLASSIC = ("psnr:rgb", "ssim:gauss11", "psnrb:fbcnn")


def build_classic(
    summary: pd.DataFrame,
    title: str,
    degradations: list[str] | None = None,
    datasets: list[str] | None = None,
    footnote: str = "",
    caption: str = "",
    label: str = "",
) -> TableModel:
    """FBCNN-style table: rows = (dataset, QF), columns = methods, cells PSNR|SSIM|PSNR-B;
    best/second by PSNR among the methods (not the JPEG input or the ground truth)."""
    df = summary[summary.variant.isin(CLASSIC)]
    if datasets:
        df = df[df.dataset.isin(datasets)]
    meths = sorted(
        dict.fromkeys(df.method),
        key=lambda m: GROUP_ORDER.index(method_group(m)) if method_group(m) in GROUP_ORDER else 99,
    )
    blocks = []
    for ds in datasets or sorted(df.dataset.unique(), key=natural_key):
        sub = df[df.dataset == ds]
        if sub.empty:
            continue
        look = {(r.method, r.degradation, r.variant): (r.mean, r.n) for r in sub.itertuples()}
        degs = [
            d
            for d in (degradations or sorted(sub.degradation.unique(), key=natural_key))
            if d in set(sub.degradation)
        ]
        rows = []
        for d in degs:
            cells = []
            for m in meths:
                trio = [look.get((m, d, v), (None, 0))[0] for v in CLASSIC]
                text = "|".join(_fmt(v, k) for v, k in zip(trio, (2, 3, 2), strict=True))
                cells.append(Cell(trio[0], text, look.get((m, d, CLASSIC[0]), (None, 0))[1]))
            ranked = [
                c
                for c, m in zip(cells, meths, strict=True)
                if method_group(m) not in UNRANKED_GROUPS
            ]
            _mark_partial(cells)  # first: a partial mean is never ranked
            rank_cells(ranked, True, key=lambda c: round(c.value, 2))
            rows.append(Row(d, degradation_label(d), "all", cells))
        blocks.append(Block(ds, ", ".join(sorted(set(sub.protocol))), rows))
    headers = [method_label(m) for m in meths]
    return TableModel(
        title,
        headers,
        blocks,
        [("PSNR|SSIM|PSNR-B", len(headers))],
        ("Dataset", "QF"),
        footnote,
        caption,
        label,
    )
