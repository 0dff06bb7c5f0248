"""Study tables through the report renderers: methods as rows, degradations as columns (the
CODiff supplementary's user-study layout), best in red, 95% intervals in every cell."""

from __future__ import annotations

import pandas as pd

from reports.ci import interval_note, show_interval
from reports.labels import UNRANKED_GROUPS
from reports.model import TableModel, rank_cells

#: per study mode: what the interval is of, and what the bootstrap resamples (``bench.study.stats``)
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
) -> str:
    """The study table's footnote: raters, the bootstrap behind the intervals (unit, resamples,
    seed, percentile), what is ranked, excluded outlier raters."""
    what, unit = BOOTSTRAPS[mode]
    dropped = f" Excluded outlier raters: {', '.join(excluded)}." if excluded else ""
    return (
        f"{raters} raters; {interval_note(style, what, unit, n_resamples, seed)}; best in red, "
        f"second in blue (JPEG input and ground truth not ranked).{dropped}"
    )


def study_model(
    table: pd.DataFrame, score: str, title: str, footnote: str, style: str = "brackets"
) -> TableModel:
    """A TableModel from per-(set, method) ``mean``/``lo``/``hi`` rows; ``score`` is ``mos``,
    ``bt`` or ``thurstone`` (higher is better for all three; header and decimals from
    ``reports.labels.STUDY_SCORES``); intervals shown in ``style`` (``CI_STYLES``)."""
    from reports.model import build_table

    summary = table.assign(metric=score, variant=score, mean=table["mean"])
    model = build_table(summary, title, footnote=footnote)
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


def render_study(table: pd.DataFrame, fmt: str, model: TableModel) -> str:
    """``fmt`` = latex | html | markdown | csv (csv: the numbers with their intervals); html is
    the page of ``bench report --format html`` (style, sortable columns) around the table."""
    from reports.render import to_latex, to_markdown

    if fmt == "csv":
        return table.to_csv(index=False, float_format="%.6f")
    if fmt == "latex":
        return to_latex(model)
    if fmt == "html":
        from reports.html_report import page

        return page(model, "study")
    if fmt == "markdown":
        return to_markdown(model)
    raise ValueError(f"unknown format {fmt!r}; available: latex, html, markdown, csv")
