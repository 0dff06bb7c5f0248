"""User-facing errors: each names the file or value at fault and what to do."""

from __future__ import annotations

from pathlib import Path


class BenchError(Exception):
    """An error the CLI reports as one clear line (no traceback)."""


class ImageError(BenchError):
    """An input image that cannot be used, with the file named."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class DiskFullError(BenchError):
    """Writing a file failed because the disk (or quota) is full."""


class WeightsMissingError(BenchError):
    """Required weight files are not on disk."""


#: Exit code of a command that finished everything it could but skipped failed items
#: (1 is an error that stopped the command, 2 a usage error).
PARTIAL_FAILURE_EXIT = 3
