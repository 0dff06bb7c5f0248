"""``docs/options.md`` made from the declarations: every method's, degradation kind's, chain
step's, training recipe's and metric's options. ``python -m bench.cli.docgen > docs/options.md``
writes it; a test fails when the file and the declarations disagree."""

from __future__ import annotations

HEADER = """# Options

Generated from the declarations by `python -m bench.cli.docgen > docs/options.md`; a test
checks that this file matches them. `NAME:key=value,...` is checked against these tables:
an unknown key, a wrong type or an out-of-range value is refused, naming the option, what it
takes and the closest known name. Options marked "in id: no" do not change outputs and never
enter the store's method id; an option at its default is left out of the id.
"""


def options_markdown() -> str:
    """The whole page."""
    import methods
    from bench.core.options import Option, markdown_table
    from bench.metrics.registry import BORDER, METRICS, names, variant_option
    from degradations.base import KINDS
    from degradations.training import RECIPES

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
