"""Study tables through the report renderers: methods as rows, degradations as columns (the
CODiff supplementary's user-study layout), best in red, 95% intervals in every cell."""

from __future__ import annotations

import pandas as pd

from reports.model import TableModel, rank_cells

HEADERS = {"mos": "MOS", "bt": "Bradley-Terry", "thurstone": "Thurstone"}
ANCHOR_ROWS = ("baseline", "gt")  # the JPEG input and the ground truth are not ranked


def study_model(
    table: pd.DataFrame, score: str, title: str, footnote: str, decimals: int = 2
) -> TableModel:
    """A TableModel from per-(set, method) ``mean``/``lo``/``hi`` rows; ``score`` is ``mos``,
    ``bt`` or ``thurstone`` (higher is better for all three)."""
    from reports.model import build_table

    summary = table.assign(metric=score, variant=score, mean=table["mean"])
    model = build_table(summary, title, footnote=footnote)
    model.headers = [f"{HEADERS.get(score, score)}↑" for _ in model.headers]
    ci = {(r.dataset, r.degradation, r.method): (r.lo, r.hi) for r in table.itertuples()}
    for block in model.blocks:
        for j in range(len(model.headers)):
            cells = [r.cells[j] for r in block.rows]
            for c in cells:
                c.rank = None
                if c.value is not None:
                    c.text = f"{c.value:.{decimals}f}"
            ranked = [
                r.cells[j]
                for r in block.rows
                if r.group not in ANCHOR_ROWS and r.key not in ANCHOR_ROWS
            ]
            rank_cells(ranked, True)
            for c in cells:
                lo_hi = ci.get(c.key[:3]) if c.key else None
                if lo_hi and c.value is not None:
                    c.text += f" [{lo_hi[0]:.{decimals}f}, {lo_hi[1]:.{decimals}f}]"
    return model


def render_study(table: pd.DataFrame, fmt: str, model: TableModel) -> str:
    """``fmt`` = latex | html | markdown | csv (csv: the numbers with their intervals)."""
    from reports.render import table_html, to_latex, to_markdown

    if fmt == "csv":
        return table.to_csv(index=False, float_format="%.6f")
    if fmt == "latex":
        return to_latex(model)
    if fmt == "html":
        return table_html(model, "study") + "\n"
    if fmt == "markdown":
        return to_markdown(model)
    raise ValueError(f"unknown format {fmt!r}; available: latex, html, markdown, csv")
