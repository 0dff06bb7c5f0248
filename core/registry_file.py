"""Loading ``datasets.yaml``: the one table of datasets and paper suites."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import yaml

from carbench.core.errors import BenchError


def registry_path() -> Path:
    """``BENCH_DATASETS_YAML``, else the checkout's ``datasets.yaml``, else the installed copy."""
    env = os.environ.get("BENCH_DATASETS_YAML")
    candidates = [Path(env)] if env else []
    candidates += [
        Path(__file__).resolve().parents[1] / "datasets.yaml",
        Path(sys.prefix) / "share" / "carbench" / "datasets.yaml",
    ]
    for c in candidates:
        if c.is_file():
            return c
    raise BenchError(
        "datasets.yaml not found (looked at " + ", ".join(str(c) for c in candidates) + ")"
    )


def load_registry_file(path: str | None = None) -> dict:
    """The parsed registry (cached per file path and modification time)."""
    p = Path(path) if path else registry_path()
    return _load(str(p.resolve()), p.stat().st_mtime_ns)


@functools.cache
def _load(path: str, _mtime: int) -> dict:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise BenchError(f"{p}: invalid YAML ({e})") from None
    if not isinstance(data, dict) or "datasets" not in data:
        raise BenchError(f"{p}: expected top-level keys 'datasets' and 'suites'")
    return data
