"""Restoration methods: a registry of adapters (entry-point group ``carbench.methods``).

``methods.get("fbcnn")`` returns an adapter (not loaded); ``methods.get("fbcnn:qf=10")``
passes options. Built-in adapters register exactly like third-party ones would.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from bench.core.errors import BenchError
from methods.base import Capabilities, Method, Sample

BUILTIN = {
    "jpeg": "methods.jpeg:DecodedInput",
    "external": "methods.external:External",
    "fbcnn": "methods.fbcnn:Fbcnn",
    "dncnn3": "methods.dncnn:DnCNN3",
    "jdec": "methods.jdec:JDEC",
    "promptcir": "methods.promptcir:PromptCIR",
    "codiff": "methods.codiff:CODiff",
    "osediff": "methods.osediff:OSEDiff",
    "diffbir": "methods.diffbir:DiffBIR",
    "swinir": "methods.swinir:SwinIRCar",
    "supir": "methods.supir:Supir",
}


def _load(target: str) -> type[Method]:
    import importlib

    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@functools.cache
def registry() -> dict[str, str]:
    """Method name -> ``module:Class``, built-ins plus the ``carbench.methods`` entry points."""
    out = dict(BUILTIN)
    for ep in entry_points(group="carbench.methods"):
        out.setdefault(ep.name, ep.value)
    return out


def get_class(name: str) -> type[Method]:
    reg = registry()
    if name not in reg:
        raise BenchError(f"unknown method {name!r}; known: {', '.join(sorted(reg))}")
    return _load(reg[name])


def get(spec: str) -> Method:
    """``name`` or ``name:key=value,key=value`` -> an adapter instance (not loaded)."""
    name, _, opts = spec.partition(":")
    options = {}
    for kv in filter(None, opts.split(",")):
        key, sep, value = kv.partition("=")
        if not sep:
            raise BenchError(f"method option {kv!r} of {name} is not key=value")
        options[key.strip()] = value.strip()
    return get_class(name)(**options)


__all__ = ["Capabilities", "Method", "Sample", "get", "get_class", "registry"]
