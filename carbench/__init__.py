"""carbench: benchmark and dataset generation for compression-artifact removal.

The Python API (``carbench.generate``, ``run``, ``results``, ``report``) is what the ``bench``
command line calls; see :mod:`carbench.api`. Importing ``carbench`` stays light: the API loads
on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench import __version__

if TYPE_CHECKING:
    from carbench.api import RunResult, generate, report, results, run

__all__ = ["RunResult", "__version__", "generate", "report", "results", "run"]


def __getattr__(name: str):
    if name in ("RunResult", "generate", "report", "results", "run"):
        from carbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'carbench' has no attribute {name!r}")
