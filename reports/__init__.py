"""Reports: the result store as paper-style tables (LaTeX, HTML, Markdown, CSV) and figures.

``reports.build.render_report`` is the entry; ``reports.tables.summarize`` the per-cell means.
"""
