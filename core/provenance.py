"""Version and git facts recorded with every manifest and result row."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from carbench.core import __version__


@functools.cache
def git_sha() -> str:
    """Short git sha of the carbench checkout (``+dirty`` when modified), or ``unknown``."""
    repo = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def carbench_version() -> str:
    return f"{__version__} ({git_sha()})"
