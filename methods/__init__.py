"""Restoration methods: a registry of adapters (entry-point group ``carbench.methods``).

``methods.get("fbcnn")`` returns an adapter (not loaded); ``methods.get("fbcnn:qf=10")``
passes options. Built-in adapters register exactly like third-party ones would.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from carbench.core.options import parse_spec, unknown_name
from carbench.methods.base import Capabilities, Method, Sample

BUILTIN = {
    "jpeg": "carbench.methods.jpeg:DecodedInput",
    "external": "carbench.methods.external:External",
    "fbcnn": "carbench.methods.fbcnn:Fbcnn",
    "dncnn3": "carbench.methods.dncnn:DnCNN3",
    "jdec": "carbench.methods.jdec:JDEC",
    "promptcir": "carbench.methods.promptcir:PromptCIR",
    "codiff": "carbench.methods.codiff:CODiff",
    "osediff": "carbench.methods.osediff:OSEDiff",
    "diffbir": "carbench.methods.diffbir:DiffBIR",
    "swinir": "carbench.methods.swinir:SwinIRCar",
    "supir": "carbench.methods.supir:Supir",
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
        raise unknown_name("method", name, reg)
    return _load(reg[name])


def get(spec: str) -> Method:
    """``name`` or ``name:key=value,key=value`` -> an adapter instance (not loaded); the
    options are checked against the adapter's declarations."""
    name, given = parse_spec(spec, "method")
    return get_class(name)(**given)


def canonical(method_id: str) -> str:
    """A stored method id in today's canonical form (``fbcnn:variant=color`` -> ``fbcnn``),
    from the declarations alone; a name the registry does not know (an ``external`` output's
    name, a study's ``gt``) comes back unchanged. A registered method's id that today's
    declarations refuse raises their error."""
    name, given = parse_spec(method_id, "method")
    if name not in registry():
        return method_id
    return get_class(name).canonical_id_of(given)


__all__ = ["Capabilities", "Method", "Sample", "canonical", "get", "get_class", "registry"]
