"""A reproduction drawn as the paper's table: each cell ours (or the published value where we
have none), coloured by agreement, with the published value, delta and tolerance on hover
(HTML) or in a footnote mark (Markdown, LaTeX); and the plain per-cell listing of the CLI."""

from __future__ import annotations

import html
from collections.abc import Iterable

from carbench.reports.reproduce import Outcome, Table
from carbench.reports.tables import natural_key

COLOURS = {"ok": "#c8e6c9", "off": "#ffcdd2", "not-run": "#eeeeee"}
MARKS = {"ok": "✓", "off": "✗", "not-run": "·"}
TEX_COLOURS = {"ok": "green!20", "off": "red!25", "not-run": "gray!15"}


def _fmt(x: float | None, decimals: int, sign: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"


def cell_line(o: Outcome) -> str:
    """One terminal line: where, published, ours, delta, tolerance, verdict or why not run."""
    c, d = o.cell, o.cell.decimals
    head = f"{c.dataset or '-'} {c.degradation or '-'} | {c.label} | {c.metric}"
    if o.status == "not-run":
        return f"  {head}: published {c.printed}; {o.reason}"
    verdict = "within tolerance" if o.status == "ok" else "OUTSIDE tolerance"
    return (
        f"  {head}: published {c.printed}, ours {_fmt(o.ours, d + 2)}, "
        f"delta {_fmt(o.delta, d + 2, sign=True)}, tolerance {o.tol:.{d + 1}f} -> {verdict}"
    )


def _dim(o: Outcome, dim: str) -> str:
    c = o.cell
    return {
        "dataset": c.dataset,
        "degradation": c.degradation,
        "method": c.label,
        "metric": c.metric,
    }[dim] or "-"


def grid(table: Table, outcomes: Iterable[Outcome]):
    """(row keys, column keys, {(row, col): outcome}) in the table's layout, paper order kept
    for methods and metrics, natural order for the rest."""
    outs = [o for o in outcomes if o.cell.paper == table.paper and o.cell.table == table.id]
    rows_d = table.layout.get("rows") or ["dataset", "degradation"]
    cols_d = table.layout.get("columns") or ["method"]
    rest = [d for d in ("dataset", "degradation", "method", "metric") if d not in rows_d + cols_d]
    cols_d = cols_d + rest  # every dimension is shown somewhere

    def order(dims: list[str]) -> list[tuple]:
        seen = list(dict.fromkeys(tuple(_dim(o, d) for d in dims) for o in outs))
        return seen  # file order = paper order

    rows, cols = order(rows_d), order(cols_d)
    cells = {
        (tuple(_dim(o, d) for d in rows_d), tuple(_dim(o, d) for d in cols_d)): o for o in outs
    }
    return rows_d, rows, cols_d, cols, cells


def _shown(o: Outcome) -> str:
    return _fmt(o.ours, o.cell.decimals) if o.ours is not None else o.cell.printed


def _title(o: Outcome) -> str:
    c = o.cell
    if o.status == "not-run":
        return f"published {c.printed}; {o.reason}"
    return (
        f"published {c.printed}; ours {_fmt(o.ours, c.decimals + 2)}; delta "
        f"{_fmt(o.delta, c.decimals + 2, sign=True)}; tolerance {o.tol:.{c.decimals + 1}f}"
    )


def to_html(table: Table, outcomes: Iterable[Outcome], standalone: bool = True) -> str:
    """The table with each cell coloured (green within tolerance, red outside, grey not run)
    and the published value, delta and tolerance in its hover title."""
    rows_d, rows, cols_d, cols, cells = grid(table, outcomes)
    esc = html.escape
    head = "".join(f"<th>{esc(' / '.join(c))}</th>" for c in cols)
    body = []
    for r in rows:
        tds = []
        for c in cols:
            o = cells.get((r, c))
            if o is None:
                tds.append("<td></td>")
                continue
            tds.append(
                f'<td class="{o.status}" style="background:{COLOURS[o.status]}" '
                f'title="{esc(_title(o))}">{esc(_shown(o))} {MARKS[o.status]}</td>'
            )
        body.append(f"<tr><th>{esc(' / '.join(r))}</th>{''.join(tds)}</tr>")
    table_html = (
        f'<table class="reproduce" id="{esc(table.ref)}"><caption>{esc(table.caption)}<br>'
        f"<small>{esc(table.source)}</small></caption>"
        f"<thead><tr><th>{esc(' / '.join(rows_d))} \\ {esc(' / '.join(cols_d))}</th>{head}"
        f"</tr></thead><tbody>{''.join(body)}</tbody></table>"
        "<p><small>Ours where run (else the published value, grey). Green: within tolerance, "
        "red: outside, grey: not run; hover a cell for the published value, delta and "
        "tolerance.</small></p>"
    )
    if not standalone:
        return table_html
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{esc(table.ref)}</title>'
        "<style>table.reproduce{border-collapse:collapse;font:13px sans-serif}"
        "table.reproduce td,table.reproduce th{border:1px solid #bbb;padding:2px 6px}"
        f"</style></head><body>{table_html}</body></html>\n"
    )


def to_markdown(table: Table, outcomes: Iterable[Outcome]) -> str:
    """Markdown: ``ours ✓`` / ``ours ✗`` / ``published ·`` per cell, then one footnote per
    cell that was run off tolerance or not run, naming the published value or the reason."""
    rows_d, rows, cols_d, cols, cells = grid(table, outcomes)
    lines = [
        f"**{table.ref}** - {table.caption}",
        "",
        f"Source: {table.source}",
        "",
        "| " + " / ".join(rows_d) + " | " + " | ".join(" / ".join(c) for c in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    notes: list[str] = []
    for r in rows:
        out = []
        for c in cols:
            o = cells.get((r, c))
            if o is None:
                out.append("")
                continue
            text = f"{_shown(o)} {MARKS[o.status]}"
            if o.status != "ok":
                notes.append(_title(o))
                text += f" [{len(notes)}]"
            out.append(text)
        lines.append("| " + " / ".join(r) + " | " + " | ".join(out) + " |")
    lines += ["", "✓ within tolerance, ✗ outside, · not run (published value shown)."]
    lines += [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_")):
        text = text.replace(a, b)
    return text.replace("#", r"\#").replace("$", r"\$")


def to_latex(table: Table, outcomes: Iterable[Outcome]) -> str:
    """A tabular with ``\\cellcolor`` by agreement (needs ``xcolor`` with ``table``) and the
    published value as a footnote-sized second line of every cell."""
    rows_d, rows, cols_d, cols, cells = grid(table, outcomes)
    lines = [
        r"\begin{table}[t]\centering\scriptsize",
        rf"\caption{{{_tex(table.caption)} ({_tex(table.source)})}}",
        r"\begin{tabular}{l" + "c" * len(cols) + "}",
        r"\hline",
        _tex(" / ".join(rows_d)) + " & " + " & ".join(_tex(" / ".join(c)) for c in cols) + r" \\",
        r"\hline",
    ]
    for r in rows:
        out = []
        for c in cols:
            o = cells.get((r, c))
            if o is None:
                out.append("")
                continue
            out.append(
                rf"\cellcolor{{{TEX_COLOURS[o.status]}}}{_tex(_shown(o))}"
                + (rf"\,{{\tiny({o.cell.printed})}}" if o.ours is not None else "")
            )
        lines.append(_tex(" / ".join(r)) + " & " + " & ".join(out) + r" \\")
    lines += [
        r"\hline",
        r"\end{tabular}",
        r"\par\smallskip{\tiny green: ours within tolerance of the published value (in "
        r"brackets); red: outside; grey: not run, published value shown.}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


RENDERERS = {".html": to_html, ".md": to_markdown, ".tex": to_latex}


def render(tables: list[Table], outcomes: list[Outcome], suffix: str) -> str:
    """Every table in the format of a file suffix (.html, .md, .tex)."""
    if suffix not in RENDERERS:
        raise ValueError(f"report format {suffix!r}: use one of {', '.join(RENDERERS)}")
    if suffix == ".html":
        body = "".join(to_html(t, outcomes, standalone=False) for t in tables)
        return (
            '<!doctype html><html><head><meta charset="utf-8"><title>carbench reproduce</title>'
            "<style>table.reproduce{border-collapse:collapse;font:13px sans-serif;margin:1em 0}"
            "table.reproduce td,table.reproduce th{border:1px solid #bbb;padding:2px 6px}"
            f"</style></head><body>{body}</body></html>\n"
        )
    return "\n".join(RENDERERS[suffix](t, outcomes) for t in tables)


def sort_key(o: Outcome) -> tuple:
    c = o.cell
    return (natural_key(c.dataset or ""), natural_key(c.degradation or ""))


#: ``bench report --format F --reproduce REF``: the renderer of each report format
REPORT_SUFFIX = {"html": ".html", "markdown": ".md", "latex": ".tex"}


def from_store(ref: str, ws_root, fmt: str, data_root=None, tables_dir=None) -> str:
    """A reproduction from what the store already holds (nothing is run): the tables of
    ``ref`` with our means beside the published values, in a report format."""
    from carbench.reports import reproduce as rp

    if fmt not in REPORT_SUFFIX:
        raise ValueError(f"--reproduce renders {', '.join(REPORT_SUFFIX)}, not {fmt}")
    tables = rp.select(ref, tables_dir)
    plans = rp.plan_cells([c for t in tables for c in t.cells], ws_root, data_root)
    ours, reasons = rp.ours_from_store(ws_root, [p.cell for p in plans if p.job], data_root)
    reasons = {**{p.cell.key: p.reason for p in plans if not p.job}, **reasons}
    outcomes = rp.compare([p.cell for p in plans], ours, reasons)
    return render(tables, outcomes, REPORT_SUFFIX[fmt])
