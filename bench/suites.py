"""Paper suites from ``datasets.yaml``: a protocol, datasets and degradation specs."""

from __future__ import annotations

from dataclasses import dataclass

from carbench.core.errors import BenchError
from carbench.core.options import parse_spec, unknown_name
from carbench.core.registry_file import load_registry_file


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


#: what runs when neither a suite nor degradations are given
DEFAULT_DEGRADATIONS = ("jpeg:q=5,10,20",)


def plan(
    datasets: list[str] | None,
    protocol: str | None,
    suite: str | None,
    specs: list[str] | None,
) -> tuple[list[str | None], str, list, str]:
    """Datasets, protocol and degradations from the user's choices and an optional suite, and
    a note naming the BPG specs that run as HEVC-intra (bpgenc absent; "" when none)."""
    if suite:
        s = get_suite(suite)
        if specs:
            raise BenchError("give either --suite or --degradation, not both")
        names, proto, specs = list(datasets or s.datasets), protocol or s.protocol, s.degradations
    else:
        names, proto = list(datasets or [None]), protocol or "codiff"
        specs = specs or DEFAULT_DEGRADATIONS
    from carbench.degradations import expand_all, with_bpg_fallback

    try:
        asked = expand_all(specs)
        degs = [with_bpg_fallback(d) for d in asked]
    except (ValueError, RuntimeError) as e:
        raise BenchError(str(e)) from None
    swapped = [(a.id, d.id) for a, d in zip(asked, degs, strict=True) if a.id != d.id]
    note = ""
    if swapped:
        note = (
            "bpgenc not found: "
            + ", ".join(f"{a} runs as {d}" for a, d in swapped)
            + " (HEVC-intra through ffmpeg + libx265 with bpgenc's default settings; stored, "
            "labelled and reported as HEVC-intra, not BPG). Install bpgenc/bpgdec or set "
            "BENCH_BPGENC/BENCH_BPGDEC for real BPG."
        )
    return names, proto, degs, note
