"""Study tables through the report renderers: methods as rows, degradations as columns (the
CODiff supplementary's user-study layout), best in red, 95% intervals in every cell."""

from __future__ import annotations

import pandas as pd

from carbench.reports.ci import interval_note, show_interval
from carbench.reports.labels import UNRANKED_GROUPS
from carbench.reports.model import TableModel, rank_cells

#: per study mode: what the interval is of, and what the bootstrap resamples
#: (``carbench.study.stats``)
BOOTSTRAPS = {
    "rating": ("the MOS", "raters and images independently (two-way)"),
    "pairwise": ("each score", "raters (each drawn rater with all their answers)"),
}


def study_note(
    mode: str,
    raters: int,
    n_resamples: int,
    seed: int,
    style: str = "brackets",
    excluded: list[str] | None = None,
    interval: str = "bootstrap",
) -> str:
    """The study table's footnote: raters, the bootstrap behind the intervals (unit, resamples,
    seed, percentile) or, ``interval`` bt500, the BT.500 interval; what is ranked, excluded
    outlier raters."""
    what, unit = BOOTSTRAPS[mode]
    dropped = f" Excluded outlier raters: {', '.join(excluded)}." if excluded else ""
    how = (
        "[lo, hi]: the 95% confidence interval of ITU-R BT.500-14 (Annex 1, 2.2.1), MOS +- 1.96 "
        "S / sqrt(N) over the N ratings of the cell"
        if interval == "bt500"
        else interval_note(style, what, unit, n_resamples, seed)
    )
    return (
        f"{raters} raters; {how}; best in red, "
        f"second in blue (JPEG input and ground truth not ranked).{dropped}"
    )


def study_model(
    table: pd.DataFrame,
    score: str,
    title: str,
    footnote: str,
    style: str = "brackets",
    methods: list[str] | None = None,
) -> TableModel:
    """A TableModel from per-(set, method) ``mean``/``lo``/``hi`` rows; ``score`` is ``mos``,
    ``bt`` or ``thurstone`` (higher is better for all three; header and decimals from
    ``reports.labels.STUDY_SCORES``); intervals shown in ``style`` (``CI_STYLES``); rows in
    the order of ``methods`` (a published table's) when given, methods not in it after them."""
    from carbench.reports.model import build_table

    summary = table.assign(metric=score, variant=score, mean=table["mean"])
    if methods:
        present = list(dict.fromkeys(summary.method))
        methods = [m for m in methods if m in present] + [m for m in present if m not in methods]
    model = build_table(summary, title, footnote=footnote, methods=methods or None)
    ci = {(r.dataset, r.degradation, r.method): (r.lo, r.hi) for r in table.itertuples()}
    for block in model.blocks:
        for j in range(len(model.headers)):
            cells = [r.cells[j] for r in block.rows]
            for c in cells:  # no `*` here: a study cell's n counts ratings, not images
                c.rank = None
                if c.value is not None:
                    c.text = f"{c.value:.{c.decimals}f}"
            rank_cells([r.cells[j] for r in block.rows if r.group not in UNRANKED_GROUPS], True)
            for c in cells:
                lo_hi = ci.get(c.key[:3]) if c.key else None
                if lo_hi and c.value is not None:
                    show_interval(c, *lo_hi, style)
    return model


def render_study(
    table: pd.DataFrame,
    fmt: str,
    model: TableModel,
    sections: list[tuple[str, TableModel, str]] = (),
) -> str:
    """``fmt`` = latex | html | markdown | csv (csv: the numbers with their intervals); html is
    the page of ``bench report --format html`` (style, sortable columns) around the table.
    ``sections`` (title, table, text below it; e.g. the metric agreement) follow the table: as
    sections of the HTML page, else as further tables in the same format (csv: their cells)."""
    import html as html_lib

    from carbench.reports.render import table_html, to_latex, to_markdown

    if fmt == "html":
        from carbench.reports.html_report import page

        extra = [
            {
                "title": html_lib.escape(title),
                "html": table_html(m, f"section-{k}")
                + (f"<pre>{html_lib.escape(text)}</pre>" if text else ""),
            }
            for k, (title, m, text) in enumerate(sections)
        ]
        return page(model, "study", sections=extra)
    render = {"latex": to_latex, "markdown": to_markdown, "csv": _cells_csv}.get(fmt)
    if render is None:
        raise ValueError(f"unknown format {fmt!r}; available: latex, html, markdown, csv")
    main = table.to_csv(index=False, float_format="%.6f") if fmt == "csv" else render(model)
    parts = [main] + [
        render(m) + (f"\n{text}\n" if text and fmt != "csv" else "") for _, m, text in sections
    ]
    return "\n".join(parts)


def _cells_csv(model: TableModel) -> str:
    """A TableModel's cells as CSV: block, row key, column header, value, text."""
    out = pd.DataFrame(
        [
            (b.name, r.key, h, c.value, c.text)
            for b in model.blocks
            for r in b.rows
            for h, c in zip(model.headers, r.cells, strict=True)
        ],
        columns=["block", "row", "column", "value", "text"],
    )
    return out.to_csv(index=False, float_format="%.6f")


def agreement_model(
    long: pd.DataFrame,
    comps: pd.DataFrame,
    title: str,
    footnote: str,
    style: str = "brackets",
) -> TableModel:
    """Metric-human agreement as a TableModel: one block per group (pooled, then each
    degradation), metric variants as rows, the statistics as columns (best in red), each cell
    ``value [lo, hi]``; † on a block's best SRCC where the paired bootstrap says it agrees
    better than every other variant."""
    from carbench.reports.ci import MARK
    from carbench.reports.labels import degradation_label, metric_label
    from carbench.reports.model import Block, Cell, Row
    from carbench.study.agreement import POOLED, STAT_LABELS

    stats = [s for s in STAT_LABELS if s in set(long.stat)]
    blocks = []
    for g in dict.fromkeys(long.group):
        sub = long[long.group == g]
        rows = []
        for v in dict.fromkeys(sub.variant):
            cells = []
            for s in stats:
                r = sub[(sub.variant == v) & (sub.stat == s)].iloc[0]
                ok = pd.notna(r.value)
                cell = Cell(
                    float(r.value) if ok else None,
                    f"{r.value:.3f}" if ok else "–",
                    int(r.n),
                    decimals=3,
                )
                if ok and pd.notna(r.lo):
                    show_interval(cell, float(r.lo), float(r.hi), style)
                cells.append(cell)
            name, _, var = v.partition(":")
            rows.append(
                Row(
                    v,
                    f"{metric_label(name)} ({var})" if var else metric_label(name),
                    "metric",
                    cells,
                )
            )
        for j in range(len(stats)):
            rank_cells([r.cells[j] for r in rows], True, key=lambda c: c.value)
        c = comps[comps.group == g]
        if len(c) and c.significant.all() and "srcc" in stats:
            best = next(r for r in rows if r.key == c.best.iloc[0])
            best.cells[stats.index("srcc")].text += MARK
        label = "Pooled" if g == POOLED else degradation_label(g)
        blocks.append(Block(label, "", rows))
    headers = [STAT_LABELS[s] + "↑" for s in stats]
    return TableModel(title, headers, blocks, [("", len(headers))], ("Set", "Metric"), footnote)


def agreement_note(mode: str, raters: int, n_resamples: int, seed: int, style: str) -> str:
    """The agreement table's footnote: what is correlated with what, the logistic, the
    bootstrap, the sign convention and the significance mark."""
    what = "MOS" if mode == "rating" else "Bradley-Terry/Thurstone score within its image"
    pair = (
        " 2AFC acc.: share of human choices the metric predicts (ties count half)."
        if mode == "pairwise"
        else ""
    )
    return (
        f"Correlation of each metric with the {what} of each condition (a method's output of "
        f"one image), {raters} raters; lower-is-better metrics negated, so higher is better "
        "throughout. PLCC (logistic): after the four-parameter logistic of ITU-T P.1401 "
        "(5+ conditions). "
        + interval_note(
            style, "each statistic", "raters and images independently", n_resamples, seed
        )
        + ". † best SRCC, higher than every other metric's by a paired bootstrap of the "
        "difference (95% interval excludes 0)." + pair
    )


def comparisons_text(comps: pd.DataFrame) -> str:
    """One line per group and pair: best vs other, SRCC difference, interval, p."""
    from carbench.reports.labels import degradation_label
    from carbench.study.agreement import POOLED

    lines = []
    for r in comps.itertuples():
        g = "Pooled" if r.group == POOLED else degradation_label(r.group)
        lines.append(
            f"{g}: {r.best} - {r.other}: SRCC difference {r.diff:+.3f} "
            f"[{r.lo:+.3f}, {r.hi:+.3f}], p = {r.p:.3f} (paired bootstrap), "
            f"{r.williams_p:.3f} (Williams' test)" + (" (significant)" if r.significant else "")
        )
    return "\n".join(lines)
