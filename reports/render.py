"""Rendering a TableModel as LaTeX, Markdown or HTML (jinja2 templates), and CSV."""

from __future__ import annotations

import html
import re
from pathlib import Path

import jinja2

from carbench.reports.model import TableModel

TEMPLATES = Path(__file__).parent / "templates"
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False, keep_trailing_newline=True
)
# LaTeX is full of braces: its template uses << >>, <% %> and <# #> instead
_tex_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=False,
    keep_trailing_newline=True,
    block_start_string="<%",
    block_end_string="%>",
    variable_start_string="<<",
    variable_end_string=">>",
    comment_start_string="<#",
    comment_end_string="#>",
)

_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_TEX_SYMBOLS = {"↑": r"$\uparrow$", "↓": r"$\downarrow$", "–": "--", "∞": r"$\infty$", "|": r"$|$"}
_TEX_SYMBOLS["†"] = r"$^\dagger$"


def tex(text: str) -> str:
    """Escape text for LaTeX and turn arrows and dashes into LaTeX."""
    out = re.sub(r"[\\&%$#_{}~^]", lambda m: _TEX_ESCAPES[m[0]], str(text))
    for k, v in _TEX_SYMBOLS.items():
        out = out.replace(k, v)
    return out


def _tex_cell(cell) -> str:
    t = tex(cell.text)
    if cell.sub:  # the interval on a second, smaller line
        t = rf"\shortstack{{{t}\\{{\scriptsize {tex(cell.sub)}}}}}"
    if cell.rank == 1:
        return rf"\textcolor{{red}}{{{t}}}"
    if cell.rank == 2:
        return rf"\textcolor{{blue}}{{{t}}}"
    return t


def _rows_with_rules(block) -> list[dict]:
    out = []
    for i, row in enumerate(block.rows):
        nxt = block.rows[i + 1] if i + 1 < len(block.rows) else None
        out.append(
            {
                "label": row.label,
                "cells": row.cells,
                "rule_after": nxt is not None and nxt.group != row.group,
            }
        )
    return out


def to_latex(model: TableModel, standalone: bool = False) -> str:
    ncols = 2 + len(model.headers)
    rules, col = [], 3
    for _, span in model.groups:
        rules.append(f"{col}-{col + span - 1}")
        col += span
    blocks = [
        {
            "name": tex(b.name),
            "rows": [
                {**r, "label": tex(r["label"]), "cells": [_tex_cell(c) for c in r["cells"]]}
                for r in _rows_with_rules(b)
            ],
        }
        for b in model.blocks
    ]
    return _tex_env.get_template("table.tex.j2").render(
        standalone=standalone,
        caption=tex(model.caption or model.title),
        label=model.label,
        groups=[(tex(g), s) for g, s in model.groups],
        group_rules=rules,
        corner=[tex(c) for c in model.corner],
        headers=[tex(h) for h in model.headers],
        blocks=blocks,
        ncols=ncols,
        footnote=tex(model.footnote),
    )


def to_markdown(model: TableModel) -> str:
    """Pipe table: **best**, _second_; one column group label per column."""

    def esc(text: str) -> str:
        return str(text).replace("|", "\\|")

    def cell(c) -> str:
        t = esc(c.text) + (f"<br>{esc(c.sub)}" if c.sub else "")
        return f"**{t}**" if c.rank == 1 else f"_{t}_" if c.rank == 2 else t

    labels = []
    for g, span in model.groups:
        labels += [g] * span
    head = [model.corner[0], model.corner[1]] + [
        f"{g} {h}".strip() for g, h in zip(labels, model.headers, strict=True)
    ]
    lines = [
        f"**{model.title}**",
        "",
        "| " + " | ".join(map(esc, head)) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * len(model.headers)) + "|",
    ]
    for b in model.blocks:
        for i, r in enumerate(b.rows):
            first = [esc(b.name) if i == 0 else "", esc(r.label)]
            lines.append("| " + " | ".join(first + [cell(c) for c in r.cells]) + " |")
    if model.footnote:
        lines += ["", model.footnote]
    return "\n".join(lines) + "\n"


def table_html(model: TableModel, table_id: str) -> str:
    """One sortable HTML table (inline classes best/second; sorting by the page's script)."""
    e = html.escape
    out = [
        f'<table class="results sortable" id="{e(table_id)}">',
        "<thead>",
        "<tr>",
        f'<th rowspan="2">{e(model.corner[0])}</th><th rowspan="2">{e(model.corner[1])}</th>',
    ]
    out += [f'<th colspan="{s}" class="group">{e(g)}</th>' for g, s in model.groups]
    out += ["</tr>", "<tr>"]
    out += [
        f'<th class="col" data-col="{j}" title="click to sort">{e(h)}</th>'
        for j, h in enumerate(model.headers)
    ]
    out += ["</tr>", "</thead>"]
    for b in model.blocks:
        out.append(f'<tbody data-dataset="{e(b.name)}">')
        prev = None
        for i, r in enumerate(b.rows):
            cls = ' class="group-start"' if prev is not None and r.group != prev else ""
            prev = r.group
            name = f'<th class="ds" rowspan="{len(b.rows)}">{e(b.name)}</th>' if i == 0 else ""
            cells = "".join(
                f'<td class="{"best" if c.rank == 1 else "second" if c.rank == 2 else ""}" '
                f'data-v="{"" if c.value is None else c.value}" title="n={c.n}">{e(c.text)}'
                + (f'<br><small class="ci">{e(c.sub)}</small>' if c.sub else "")
                + "</td>"
                for c in r.cells
            )
            out.append(
                f'<tr{cls} data-key="{e(r.key)}">{name}<th class="m">{e(r.label)}</th>{cells}</tr>'
            )
        out.append("</tbody>")
    out.append("</table>")
    if model.footnote:
        out.append(f'<p class="foot">{e(model.footnote)}</p>')
    return "\n".join(out)
