"""Paper suites from ``datasets.yaml``: a protocol, datasets and degradation specs."""

from __future__ import annotations

from dataclasses import dataclass

from bench.errors import BenchError
from bench.registry_file import load_registry_file


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    protocol: str
    datasets: tuple[str, ...]
    degradations: tuple[str, ...]  # CLI specs


def suites() -> dict[str, Suite]:
    out = {}
    for name, e in (load_registry_file().get("suites") or {}).items():
        out[name] = Suite(
            name,
            e.get("description", ""),
            e["protocol"],
            tuple(e["datasets"]),
            tuple(e["degradations"]),
        )
    return out


def get_suite(name: str) -> Suite:
    all_suites = suites()
    if name not in all_suites:
        raise BenchError(f"unknown suite {name!r}; known: {', '.join(all_suites)}")
    return all_suites[name]
