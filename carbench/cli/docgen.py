"""Pages of facts that live in code, made from the code's declarations and registries:
``docs/options.md`` (every method's, degradation kind's, chain step's, training recipe's and
metric's options; ``python -m carbench.cli.docgen > docs/options.md``, checked by a test), the
reference pages the docs site builds (``docs/gen_pages.py``: methods, metrics, degradations,
data sets, protocols) and the README's table of what is covered (``covered_table``)."""

from __future__ import annotations

HEADER = """# Options

Generated from the declarations by `python -m carbench.cli.docgen > docs/options.md`; a test
checks that this file matches them. `NAME:key=value,...` is checked against these tables:
an unknown key, a wrong type or an out-of-range value is refused, naming the option, what it
takes and the closest known name. Options marked "in id: no" do not change outputs and never
enter the store's method id; an option at its default is left out of the id.
"""


def options_markdown() -> str:
    """The whole page."""
    from carbench import methods
    from carbench.bench.metrics.registry import BORDER, METRICS, names, variant_option
    from carbench.core.options import Option, markdown_table
    from carbench.degradations.base import KINDS
    from carbench.degradations.training import RECIPES

    out = [HEADER, "## Methods\n"]
    for name in sorted(methods.registry()):
        cls = methods.get_class(name)
        out += [f"### `{name}`\n", f"{cls.description}\n", markdown_table(cls.declared_options)]
    out.append("## Degradations\n")
    out.append("Each parameter takes one value or several (`q=5,10,20`); their product is made.\n")
    for kind, cls in KINDS.items():
        eg = f" Example: `{cls.spec_example}`." if cls.spec_example else ""
        out += [f"### `{kind}`\n", f"{(cls.__doc__ or '').strip().splitlines()[0]}{eg}\n"]
        out.append(markdown_table(cls.spec_options))
    out.append("## Training recipes (`bench generate --train RECIPE[:options]`)\n")
    for name, recipe in RECIPES.items():
        out += [f"### `{name}`\n", markdown_table(recipe.declared_options)]
    out.append("## Metrics (`NAME[:VARIANT][@N]`)\n")
    for name in names():
        opts: tuple[Option, ...] = (variant_option(name),)
        row = next(m for m in METRICS if m.name == name)
        if row.backend == "carbench" and row.score is None:
            opts += (BORDER,)
        out += [f"### `{name}`\n", markdown_table(opts)]
    return "\n".join(out)


if __name__ == "__main__":
    print(options_markdown(), end="")


def _md(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "none\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]).replace("|", "\\|") for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def methods_rows() -> list[dict[str, str]]:
    """One row per registered method: id, label, group, paper, licence, weight files."""
    from carbench import methods

    out = []
    for name in sorted(methods.registry()):
        cls = methods.get_class(name)
        files = list(dict.fromkeys(wf for v in cls.weights.values() for wf in v))
        licences = sorted({wf.licence.split(" (")[0] for wf in files if wf.licence})
        out.append(
            {
                "method": f"`{name}`",
                "label": cls.label or cls.name,
                "group": cls.group,
                "paper": cls.paper or "-",
                "licence": ", ".join(licences) or "-",
                "weight files": ", ".join(
                    f"`{wf.relpath if wf.shared else wf.name}`" for wf in files
                )
                or "none",
            }
        )
    return out


def metrics_rows() -> list[dict[str, str]]:
    """One row per metric variant: id (default marked), kind, direction, convention."""
    from carbench.bench.metrics.registry import METRICS, default_spec

    return [
        {
            "id": f"`{m.id}`" + (" (default)" if default_spec(m.name) == m else ""),
            "kind": m.kind,
            "better": m.arrow,
            "backend": m.backend,
            "definition and convention": m.description,
        }
        for m in METRICS
    ]


def degradations_rows() -> list[dict[str, str]]:
    """One row per degradation kind: kind, parameters, example spec, id grammar."""
    from carbench.degradations.base import KINDS

    return [
        {
            "kind": f"`{kind}`",
            "what": (cls.__doc__ or "").strip().splitlines()[0],
            "parameters": ", ".join(f"`{o.name}`" for o in cls.spec_options),
            "example": f"`{cls.spec_example}`" if cls.spec_example else "-",
            "id grammar": f"`{cls.id_pattern}`",
        }
        for kind, cls in KINDS.items()
    ]


def datasets_rows() -> list[dict[str, str]]:
    """One row per registered data set: name, images, colour, licence, description."""
    from carbench.bench.datasets import registry

    return [
        {
            "dataset": f"`{d.name}`",
            "images": str(d.count) if d.count else "-",
            "colour": d.color,
            "licence": d.license or "-",
            "description": d.description,
        }
        for d in registry().values()
    ]


def protocols_rows() -> list[dict[str, str]]:
    from carbench.bench.protocols import PROTOCOLS

    return [
        {"protocol": f"`{p.name}`", "ground truth": p.description, "source": p.source}
        for p in PROTOCOLS.values()
    ]


PAGES = {
    "methods.md": ("Methods", methods_rows, "`bench methods show NAME` prints one's options."),
    "metrics.md": ("Metrics", metrics_rows, "`bench metrics show NAME` prints one's variants."),
    "degradations.md": ("Degradations", degradations_rows, "See options.md for parameters."),
    "datasets.md": ("Data sets", datasets_rows, "The registry is `datasets.yaml`."),
    "protocols.md": ("Protocols", protocols_rows, "How each protocol makes the ground truth."),
}


def reference_page(name: str) -> str:
    """A generated reference page (``PAGES``), or ``options.md``."""
    if name == "options.md":
        return options_markdown()
    title, rows, note = PAGES[name]
    return f"# {title}\n\nGenerated from the code's registry. {note}\n\n{_md(rows())}"


def covered_table() -> str:
    """The README's "what is covered" table: methods, codecs, metrics, data sets."""
    from carbench import methods
    from carbench.bench.datasets import registry
    from carbench.bench.metrics.registry import names
    from carbench.degradations.base import KINDS

    rows = [
        ("methods", sorted(methods.registry())),
        ("degradations", list(KINDS)),
        ("metrics", names()),
        ("data sets", list(registry())),
    ]
    body = "\n".join(f"| {k} | {', '.join(f'`{v}`' for v in vs)} |" for k, vs in rows)
    return "| what | covered |\n|---|---|\n" + body + "\n"
