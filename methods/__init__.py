"""Restoration methods: a registry of adapters (entry-point group ``carbench.methods``)."""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from bench.errors import BenchError
from methods.base import Method, Sample
from methods.jpeg import DecodedInput

BUILTIN: dict[str, type[Method]] = {"jpeg": DecodedInput}


@functools.cache
def registry() -> dict[str, type[Method]]:
    """Built-in adapters plus those other packages register under ``carbench.methods``."""
    out = dict(BUILTIN)
    for ep in entry_points(group="carbench.methods"):
        out.setdefault(ep.name, ep.load())
    return out


def get(spec: str) -> Method:
    """``name`` or ``name:key=value,key=value`` -> an adapter instance (not loaded)."""
    name, _, opts = spec.partition(":")
    options = dict(kv.split("=", 1) for kv in opts.split(",") if kv) if opts else {}
    reg = registry()
    if name not in reg:
        raise BenchError(f"unknown method {name!r}; known: {', '.join(sorted(reg))}")
    return reg[name](**options)


__all__ = ["Method", "Sample", "get", "registry"]
