"""Append-only JSON-lines journals: the crash-safe record of finished work.

Workers write their output files atomically and return the records; only the calling process
appends them here, one line per record, flushed per batch. A line cut short by a crash is
ignored on reading, so at worst the work behind it is redone (with identical results).
"""

from __future__ import annotations

import errno
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from carbench.core.errors import DiskFullError


def read_journal(folder: Path) -> Iterator[dict]:
    """All complete records of all journal files in ``folder``."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.jsonl")):
        with open(path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break  # torn last line of a killed run
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue


class JournalWriter:
    """Appends records to a new journal file of its own (no two writers share a file)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._file = None

    def write(self, records: Iterable[dict]) -> None:
        lines = b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in records)
        if not lines:
            return
        try:
            if self._file is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
                self._file = open(self.folder / name, "ab")  # noqa: SIM115 - closed in close()
            self._file.write(lines)
            self._file.flush()
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise DiskFullError(
                    f"{self.folder}: disk full while recording finished work "
                    f"({e.strerror}); free space and re-run to resume"
                ) from None
            raise

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass  # a torn last line is ignored by read_journal
            self._file = None

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
