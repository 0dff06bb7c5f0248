"""Paper suites from ``datasets.yaml``: a protocol, datasets and degradation specs."""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.options import parse_spec, unknown_name
from bench.core.registry_file import load_registry_file


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    protocol: str
    datasets: tuple[str, ...]
    degradations: tuple[str, ...]  # CLI specs
    #: method name -> options its paper used for this table (e.g. FBCNN's double-JPEG
    #: checkpoint); applied by ``bench run --suite`` unless the user sets that option
    method_options: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    def apply_method_options(self, spec: str) -> str:
        """``fbcnn`` -> ``fbcnn:variant=gray-double`` under ``fbcnn-double``; user options win."""
        name, given = parse_spec(spec, "method")
        extra = [f"{k}={v}" for k, v in dict(self.method_options).get(name, ()) if k not in given]
        if not extra:
            return spec
        return f"{name}:{','.join([*(f'{k}={v}' for k, v in given.items()), *extra])}"


def suites() -> dict[str, Suite]:
    out = {}
    for name, e in (load_registry_file().get("suites") or {}).items():
        out[name] = Suite(
            name,
            e.get("description", ""),
            e["protocol"],
            tuple(e["datasets"]),
            tuple(e["degradations"]),
            tuple(
                (m, tuple((str(k), str(v)) for k, v in opts.items()))
                for m, opts in (e.get("method_options") or {}).items()
            ),
        )
    return out


def get_suite(name: str) -> Suite:
    all_suites = suites()
    if name not in all_suites:
        raise unknown_name("suite", name, all_suites)
    return all_suites[name]
