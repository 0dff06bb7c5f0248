"""carbench: benchmark and dataset generation for compression-artifact removal.

The Python API (``carbench.generate``, ``run``, ``results``, ``report``) is what the ``bench``
command line calls; see :mod:`carbench.api`. Importing ``carbench`` stays light: the API loads
on first use.
"""

from __future__ import annotations

from pathlib import Path as _Path
from typing import TYPE_CHECKING

# In a checkout the packages (core/, bench/, methods/, ...) sit beside this folder, and
# carbench.<name> finds them there; installed, setuptools puts them inside it.
_ROOT = _Path(__file__).resolve().parent.parent
if (_ROOT / "pyproject.toml").is_file() and (_ROOT / "core" / "__init__.py").is_file():
    __path__.append(str(_ROOT))

from carbench.core import __version__  # noqa: E402

if TYPE_CHECKING:
    from carbench.api import RunResult, generate, report, results, run

__all__ = ["RunResult", "__version__", "generate", "report", "results", "run"]


def __getattr__(name: str):
    if name in ("RunResult", "generate", "report", "results", "run"):
        from carbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'carbench' has no attribute {name!r}")
