"""From the result store to a finished report in one call (used by ``bench report``)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from carbench.core.errors import BenchError
from carbench.core.imageio import write_bytes_atomic
from carbench.core.provenance import carbench_version
from carbench.core.workspace import Workspace
from carbench.reports.model import build_classic, build_table
from carbench.reports.presets import get_preset
from carbench.reports.render import to_latex, to_markdown
from carbench.reports.tables import summarize


def provenance_note(rows: pd.DataFrame) -> str:
    """Footnote naming protocols, metric variants with their implementations, and versions."""
    protos = ", ".join(sorted(rows.protocol.unique()))
    impls = (
        rows.drop_duplicates("variant")[["variant", "implementation"]]
        if "implementation" in rows
        else pd.DataFrame(columns=["variant", "implementation"])
    )
    metrics = "; ".join(f"{v} = {i.split(';')[0]}" for v, i in impls.values)
    made = ", ".join(sorted(rows.carbench.dropna().unique())) if "carbench" in rows else ""
    return (
        f"Protocol: {protos}. Metrics: {metrics}. Means over images; best in red, second "
        f"best in blue (JPEG input and ground truth not ranked); * = mean over fewer images "
        f"than the rest of its column. Scored with carbench {made}; "
        f"tabled with carbench {carbench_version()}."
    ) + _licence_notes(rows)


def _licence_notes(rows: pd.DataFrame) -> str:
    """`` Licences: ...`` from the ``licence_note`` of each method class in ``rows`` (e.g.
    SUPIR's non-commercial weights); empty when none declares one."""
    from carbench import methods

    notes = []
    for name in sorted({str(m).partition(":")[0] for m in rows.method.unique()}):
        try:
            note = getattr(methods.get_class(name), "licence_note", "")
        except (BenchError, ImportError):  # an unknown or unimportable method: no note
            note = ""
        if note:
            notes.append(note)
    return f" Licences: {'; '.join(notes)}." if notes else ""


def render_report(
    rows: pd.DataFrame,
    fmt: str,
    table: str = "auto",
    ws: Workspace | None = None,
    standalone: bool = False,
    ci: int = 0,
    seed: int = 0,
    ci_style: str = "brackets",
) -> str:
    """The report text in ``fmt`` (latex | html | markdown | csv) for a table preset; ``ci``
    resamples give every cell its interval, shown in ``ci_style`` (``CI_STYLES``)."""
    summary = summarize(rows)
    if fmt == "csv":
        return summary.to_csv(index=False, float_format="%.6f")
    preset = get_preset(table)
    note = provenance_note(rows)
    if preset.layout == "classic":
        model = build_classic(
            summary,
            preset.title,
            list(preset.degradations or []) or None,
            footnote=note,
            label=f"tab:{preset.name}",
        )
    else:
        model = build_table(
            summary,
            preset.title,
            list(preset.degradations or []) or None,
            list(preset.metrics or []) or None,
            footnote=note,
            label=f"tab:{preset.name}",
        )
    if ci:
        from carbench.reports.ci import add_intervals

        add_intervals(model, rows, ci, seed, ci_style)
    if fmt == "latex":
        return to_latex(model, standalone=standalone)
    if fmt == "markdown":
        return to_markdown(model)
    from carbench.reports.html_report import to_html

    return to_html(model, summary, rows, ws)


def write_report(path: str | Path, text: str) -> None:
    """Write a report file atomically, with the mode of any new file (0666 less the umask:
    0644 under the usual 022), not the 0600 of ``write_bytes_atomic``'s temp file."""
    write_bytes_atomic(path, text.encode())
    mask = os.umask(0o022)  # the only way to read the umask is to set it
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
