"""Reports: the result store as tables (CSV now; LaTeX/HTML/Markdown build on ``summarize``)."""

from reports.tables import summarize

__all__ = ["summarize"]
