"""Study designs from published settings: ``bench study create --preset NAME``.

A preset names the published table whose design it follows; the methods and degradations are
read from that table's file in ``reports/published`` (the one home of the published cells),
what the table does not encode (scale, raters, mode) is stated here with where the paper says it.
"""

from __future__ import annotations

from dataclasses import dataclass

from carbench.core.options import unknown_name


@dataclass(frozen=True)
class Preset:
    name: str
    table: str  # ``paper:table`` in reports/published
    mode: str
    scale: tuple[int, int]
    raters: int
    where: str  # where the paper states mode, scale and raters

    def design(self) -> tuple[list[str], list[str]]:
        """(method ids, degradation ids) of the published table, in its row/column order. A
        study's cells are never reproducible (no spec): the column key is the method id, checked
        against the registry."""
        import carbench.methods as registry
        from carbench.reports.reproduce import published

        cells = published(self.table)
        methods = [registry.canonical(m) for m in dict.fromkeys(c.spec or c.method for c in cells)]
        degradations = list(dict.fromkeys(c.degradation for c in cells if c.degradation))
        return methods, degradations

    def published(self) -> dict[tuple[str, str], str]:
        """{(method id, degradation): printed value} of the published table."""
        import carbench.methods as registry
        from carbench.reports.reproduce import published

        return {
            (registry.canonical(c.spec or c.method), c.degradation): c.printed
            for c in published(self.table)
        }


PRESETS = {
    "codiff-table4": Preset(
        "codiff-table4",
        "codiff:table4",
        "rating",
        (1, 10),
        20,
        "CODiff ICCV 2025 supplementary, section 5 and Table 4: '20 participants rate restored "
        "images on a 1-10 scale'",
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; unknown names are refused with the closest known one."""
    if name not in PRESETS:
        raise unknown_name("study preset", name, PRESETS)
    return PRESETS[name]
